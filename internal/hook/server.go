/*
Copyright 2026 The externalsource-controller authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package hook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
)

// The wire protocol between the controller and the hook-executor sidecar:
// HTTP/1.1 over a Unix socket. POST /v1/run carries the hook (JSON, base64)
// in a header and stdin as the body; the response streams stdout, and its
// trailers say how the command ended. A refusal by the whitelist is a 403
// before anything runs.
//
// Every response of /v1/run carries the generation of the whitelist the
// sidecar checked the hook with (generationHeader); a refusal found when
// the run starts (the whitelist changed in between) is the trailer error
// "rejected" with the generation then in force (trailerGeneration).
// GET /v1/whitelist returns {"generation", "commands", "sandbox"}: the
// controller asks it when its own whitelist refuses a hook, to tell a
// refusal that stands from one the sidecar's newer whitelist no longer
// makes; "sandbox" says what confinement this node gives (SandboxStatus).
const (
	runPath           = "/v1/run"
	whitelistPath     = "/v1/whitelist"
	hookHeader        = "X-Hook"
	namespaceHeader   = "X-Hook-Namespace"
	generationHeader  = "X-Hook-Whitelist-Generation"
	trailerError      = "X-Hook-Error"
	trailerReason     = "X-Hook-Reason"
	trailerExit       = "X-Hook-Exit-Code"
	trailerStderr     = "X-Hook-Stderr"
	trailerGeneration = "X-Hook-Whitelist-Generation-End"
)

// WhitelistStatus is the answer of GET /v1/whitelist.
type WhitelistStatus struct {
	// Generation is the generation of the whitelist in force.
	Generation string `json:"generation"`
	// Commands is how many commands it allows.
	Commands int `json:"commands"`
	// Sandbox is what this node gives hook runs.
	Sandbox *SandboxStatus `json:"sandbox,omitempty"`
}

// Server is the hook-executor sidecar: it serves an Executor on a Unix
// socket in a volume shared with the controller, never on a TCP port.
type Server struct {
	Socket   string
	Executor *Executor
	Log      logr.Logger
	// Budget admits runs by their memory limits (budget.go); nil admits
	// every run.
	Budget *Budget
}

// Serve listens on the socket (replacing a stale one) until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	_ = os.Remove(s.Socket)
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		return err
	}
	// Only the controller's user (and group: the shared volume) may talk.
	if err := os.Chmod(s.Socket, 0o660); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.Log.Info("hook executor listening", "socket", s.Socket)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("GET "+whitelistPath, func(w http.ResponseWriter, _ *http.Request) {
		wl := s.Executor.Whitelist()
		node := s.Executor.Status()
		st := WhitelistStatus{Generation: wl.Generation(), Sandbox: &node}
		if wl != nil {
			st.Commands = len(wl.Commands)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	mux.HandleFunc("POST "+runPath, func(w http.ResponseWriter, r *http.Request) {
		// One snapshot: the generation reported is that of the whitelist
		// the hook is checked with.
		wl := s.Executor.Whitelist()
		w.Header().Set(generationHeader, wl.Generation())
		h, err := decodeHook(r.Header.Get(hookHeader))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Defence in depth: the controller checked the whitelist already.
		res, err := wl.Check(h)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_ = json.NewEncoder(w).Encode(map[string]string{"reason": err.(*RejectedError).Reason})
			return
		}
		// The run waits here, before its response starts, until its
		// memory limit fits in the budget, or is refused.
		waitBudget := time.Now()
		release, berr := s.Budget.Acquire(r.Context(), r.Header.Get(namespaceHeader), res.Sandbox.Memory)
		observePhase(PhaseBudget, waitBudget, time.Now())
		// stdout streams back while stdin still streams in.
		_ = http.NewResponseController(w).EnableFullDuplex()
		// A run may end before its stdin is read to the end (a refusal, a
		// command that never reads it). In full duplex, net/http would read
		// the rest only after the handler returns, too late to stop its
		// background read, and panic on the connection's next request
		// (golang/go#68560): the handler closes the body itself.
		defer r.Body.Close()
		w.Header().Set("Trailer", trailerError+", "+trailerReason+", "+trailerExit+", "+trailerStderr+", "+trailerGeneration)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		start := time.Now()
		if berr != nil {
			err = &ExecError{Hook: h.Name, ExitCode: -1, Reason: berr.Error()}
		} else {
			err = s.Executor.Run(r.Context(), h, r.Body, flushWriter{w})
			release()
		}
		var ee *ExecError
		var rej *RejectedError
		switch {
		case err == nil:
			w.Header().Set(trailerExit, "0")
		case errors.As(err, &rej):
			// The executor checks again with the whitelist then in force,
			// which a reload may have changed since the check above.
			w.Header().Set(trailerError, "rejected")
			w.Header().Set(trailerReason, base64.StdEncoding.EncodeToString([]byte(rej.Reason)))
			w.Header().Set(trailerGeneration, s.Executor.Whitelist().Generation())
		case errors.As(err, &ee):
			w.Header().Set(trailerError, "exec")
			w.Header().Set(trailerReason, base64.StdEncoding.EncodeToString([]byte(ee.Reason)))
			w.Header().Set(trailerExit, strconv.Itoa(ee.ExitCode))
			w.Header().Set(trailerStderr, base64.StdEncoding.EncodeToString([]byte(ee.Stderr)))
		default:
			w.Header().Set(trailerError, "internal")
			w.Header().Set(trailerReason, base64.StdEncoding.EncodeToString([]byte(err.Error())))
		}
		s.Log.V(1).Info("hook ran", "hook", h.Name, "command", h.Command, "duration", time.Since(start).String(), "result", outcome(err))
	})
	return mux
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if f, ok := f.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

// outcome says how a run ended, for the sidecar's log, without the hook's
// stderr: the sidecar does not know the Secret values a hook was given
// (a pre-request hook reads the request headers), so what a hook printed
// goes back to the controller only, which redacts it.
func outcome(err error) string {
	var e *ExecError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return fmt.Sprintf("failed: %s (exit code %d)", e.Reason, e.ExitCode)
	default:
		return "failed: " + err.Error()
	}
}

func encodeHook(h exsv1beta1.Hook) (string, error) {
	b, err := json.Marshal(h)
	return base64.StdEncoding.EncodeToString(b), err
}

func decodeHook(s string) (exsv1beta1.Hook, error) {
	var h exsv1beta1.Hook
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return h, fmt.Errorf("bad %s header: %w", hookHeader, err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("bad %s header: %w", hookHeader, err)
	}
	return h, nil
}

// Client runs hooks in the hook-executor sidecar over its Unix socket.
type Client struct {
	socket string
	http   *http.Client
}

var (
	_ Runner             = (*Client)(nil)
	_ GenerationReporter = (*Client)(nil)
)

// NewClient returns a client of the sidecar at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Run implements Runner.
func (c *Client) Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error {
	enc, err := encodeHook(h)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://hook-executor"+runPath, stdin)
	if err != nil {
		return err
	}
	req.Header.Set(hookHeader, enc)
	req.Header.Set(namespaceHeader, NamespaceFrom(ctx))
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("hook executor unreachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		var body struct{ Reason string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
		return &ExecutorRejectedError{Generation: resp.Header.Get(generationHeader),
			Rejected: &RejectedError{Hook: h.Name, Reason: body.Reason + " (refused by the hook executor)"}}
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("hook executor: %s: %s", resp.Status, b)
	}
	out := &recordingWriter{w: stdout}
	if _, err := iobuf.Copy(out, resp.Body); err != nil {
		if out.err != nil {
			// The caller refused the output (a cap, a full disk): the run
			// failed on what it wrote, the sidecar is fine.
			return &ExecError{Hook: h.Name, ExitCode: -1, Reason: fmt.Sprintf("writing its output: %v", out.err)}
		}
		return fmt.Errorf("hook %q: reading output: %w", h.Name, err)
	}
	reason := decodeTrailer(resp.Trailer.Get(trailerReason))
	switch resp.Trailer.Get(trailerError) {
	case "":
		if resp.Trailer.Get(trailerExit) != "0" {
			return fmt.Errorf("hook %q: the hook executor ended the output early", h.Name)
		}
		return nil
	case "rejected":
		return &ExecutorRejectedError{Generation: resp.Trailer.Get(trailerGeneration),
			Rejected: &RejectedError{Hook: h.Name, Reason: reason + " (refused by the hook executor)"}}
	case "exec":
		code, _ := strconv.Atoi(resp.Trailer.Get(trailerExit))
		return &ExecError{Hook: h.Name, ExitCode: code, Reason: reason, Stderr: decodeTrailer(resp.Trailer.Get(trailerStderr))}
	default:
		return fmt.Errorf("hook %q: hook executor: %s", h.Name, reason)
	}
}

// WhitelistGeneration implements GenerationReporter: it asks the sidecar
// which whitelist generation it enforces.
func (c *Client) WhitelistGeneration(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hook-executor"+whitelistPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("hook executor unreachable at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("hook executor: %s %s: %s", http.MethodGet, whitelistPath, resp.Status)
	}
	var st WhitelistStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&st); err != nil {
		return "", fmt.Errorf("hook executor: %s %s: %w", http.MethodGet, whitelistPath, err)
	}
	if st.Generation == "" {
		return "", fmt.Errorf("hook executor: %s %s: no generation", http.MethodGet, whitelistPath)
	}
	return st.Generation, nil
}

// recordingWriter remembers the error of the writer it wraps, to tell a
// failure to write the output from a failure to read it from the sidecar.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

func decodeTrailer(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return s
	}
	return string(b)
}
