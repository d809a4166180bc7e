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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	prom "github.com/prometheus/client_golang/prometheus/testutil"
	ctrl "sigs.k8s.io/controller-runtime"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func mustParse(t *testing.T, s string) *Whitelist {
	t.Helper()
	wl, err := Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

// TestWhitelistGeneration: the generation follows what a whitelist
// enforces, not how its file is written.
func TestWhitelistGeneration(t *testing.T) {
	base := mustParse(t, "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*']}]\n")
	tests := []struct {
		name string
		wl   string
		same bool
	}{
		{"a comment and another layout", "# tenants' jq\ncommands:\n  - path: /usr/bin/jq\n    name: jq\n    args:\n      - '-c'\n      - '\\..*'\n", true},
		{"one more argument pattern", "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '-r', '\\..*']}]\n", false},
		{"another path", "commands: [{name: jq, path: /usr/local/bin/jq, args: ['-c', '\\..*']}]\n", false},
		{"a max timeout", "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*'], maxTimeout: 5s}]\n", false},
		{"nothing allowed", "commands: []\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			gen := mustParse(t, tt.wl).Generation()
			g.Expect(gen).To(MatchRegexp(`^[0-9a-f]{16}$`))
			if tt.same {
				g.Expect(gen).To(Equal(base.Generation()))
			} else {
				g.Expect(gen).ToNot(Equal(base.Generation()))
			}
		})
	}
	NewWithT(t).Expect((*Whitelist)(nil).Generation()).To(Equal(NoGeneration))
}

// TestRejectedField names the part of a hook the whitelist refuses.
func TestRejectedField(t *testing.T) {
	wl := mustParse(t, "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*'], env: [TZ]}]\n")
	tests := []struct {
		name string
		hook exsv1beta1.Hook
		want string
	}{
		{"allowed", exsv1beta1.Hook{Command: "jq", Args: []string{"-c", ".a"}, Env: []exsv1beta1.HookEnvVar{{Name: "TZ", Value: "UTC"}}}, ""},
		{"command", exsv1beta1.Hook{Command: "curl", Args: []string{"-c"}}, ".command"},
		{"second argument", exsv1beta1.Hook{Command: "jq", Args: []string{"-c", "--rawfile", "x"}}, ".args[1]"},
		{"environment", exsv1beta1.Hook{Command: "jq", Args: []string{"."}, Env: []exsv1beta1.HookEnvVar{{Name: "TZ", Value: "UTC"}, {Name: "LD_PRELOAD", Value: "/x.so"}}}, ".env[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(RejectedField(wl, tt.hook)).To(Equal(tt.want))
		})
	}
}

// startServer runs a sidecar Server in-process on a Unix socket whose
// whitelist is whatever wl returns at each call.
func startServer(t *testing.T, wl func() *Whitelist) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hookgen-") // short path: Unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "hook.sock")
	srv := &Server{Socket: socket, Executor: &Executor{Whitelist: wl, MaxOutput: 1 << 20, TempDir: dir}, Log: ctrl.Log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	NewWithT(t).Eventually(func() error { _, err := os.Stat(socket); return err }).Should(Succeed())
	return socket
}

// TestCheckedComparesGenerations: a refusal by the controller's or the
// sidecar's whitelist stands when both enforce the same generation, and
// is a GenerationError (not a rejection) when they differ.
func TestCheckedComparesGenerations(t *testing.T) {
	const onlyJq = "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*']}]\n"
	withTr := mustParse(t, "commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*']}, {name: tr, path: /usr/bin/tr, args: ['[a-z-]+', '[A-Z-]+']}]\n")
	without := mustParse(t, onlyJq)
	upper := exsv1beta1.Hook{Name: "upper", Command: "tr", Args: []string{"a-z", "A-Z"}}

	var sidecar atomic.Pointer[Whitelist]
	socket := startServer(t, func() *Whitelist { return sidecar.Load() })
	client := NewClient(socket)
	ctx := context.Background()

	tests := []struct {
		name                string
		controller, sidecar *Whitelist
		// wantGeneration: a GenerationError; wantRejected: a refusal
		// that stands; neither: the hook ran.
		wantGeneration, wantRejected bool
		wantOut                      string
	}{
		{name: "both allow", controller: withTr, sidecar: withTr, wantOut: "ABC"},
		{name: "both refuse", controller: without, sidecar: without, wantRejected: true},
		{name: "the controller refuses, the sidecar has reloaded", controller: without, sidecar: withTr, wantGeneration: true},
		{name: "the sidecar refuses, the controller has reloaded", controller: withTr, sidecar: without, wantGeneration: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			sidecar.Store(tt.sidecar)
			gen, err := client.WhitelistGeneration(ctx)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(gen).To(Equal(tt.sidecar.Generation()))

			before := prom.ToFloat64(generationMismatches)
			r := Instrumented(Checked(func() *Whitelist { return tt.controller }, client))
			var out bytes.Buffer
			err = r.Run(ctx, upper, strings.NewReader("abc"), &out)
			checkErr := r.(Checker).Check(ctx, upper)
			switch {
			case tt.wantGeneration:
				g.Expect(IsGenerationError(err)).To(BeTrue(), "got %v", err)
				g.Expect(IsRejected(err)).To(BeFalse(), "a disagreement is not a refusal that stands")
				g.Expect(err.Error()).To(ContainSubstring("hook whitelist generations differ (controller %s, hook executor %s): retrying",
					tt.controller.Generation(), tt.sidecar.Generation()))
				g.Expect(Result(err)).To(Equal("unavailable"))
				g.Expect(prom.ToFloat64(generationMismatches)).To(BeNumerically(">", before))
			case tt.wantRejected:
				g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
				g.Expect(IsGenerationError(err)).To(BeFalse())
				var fe *FieldError
				g.Expect(errors.As(err, &fe)).To(BeTrue())
				g.Expect(fe.Field).To(Equal(".command"))
			default:
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(out.String()).To(Equal(tt.wantOut))
			}
			// The up-front check says the same as the run, except that it
			// cannot see a refusal only the sidecar would make.
			if tt.controller == withTr {
				g.Expect(checkErr).ToNot(HaveOccurred())
			} else {
				g.Expect(IsRejected(checkErr) || IsGenerationError(checkErr)).To(BeTrue())
				g.Expect(IsGenerationError(checkErr)).To(Equal(tt.wantGeneration))
			}
		})
	}

	t.Run("an unreachable sidecar leaves the controller's refusal standing", func(t *testing.T) {
		g := NewWithT(t)
		down := NewClient(filepath.Join(t.TempDir(), "nobody.sock"))
		err := Checked(func() *Whitelist { return without }, down).(Checker).Check(ctx, upper)
		g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
	})
}

// TestServerReportsItsGeneration: every /v1/run response carries the
// generation it checked with, and a refusal by the executor's own check
// at the start of the run (the whitelist changed in between) comes back
// as a refusal with the generation then in force, not as an internal
// error.
func TestServerReportsItsGeneration(t *testing.T) {
	g := NewWithT(t)
	withTr := mustParse(t, "commands: [{name: tr, path: /usr/bin/tr, args: ['[a-zA-Z-]+']}]\n")
	without := mustParse(t, "commands: []\n")
	// The server's check sees withTr; the executor's check and everything
	// after see the whitelist without tr: a reload between the two.
	var calls atomic.Int64
	socket := startServer(t, func() *Whitelist {
		if calls.Add(1) == 1 {
			return withTr
		}
		return without
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	hc := &http.Client{Transport: tr}

	enc, err := encodeHook(exsv1beta1.Hook{Name: "upper", Command: "tr", Args: []string{"a-z", "A-Z"}})
	g.Expect(err).ToNot(HaveOccurred())
	req, _ := http.NewRequest(http.MethodPost, "http://hook-executor"+runPath, strings.NewReader("abc"))
	req.Header.Set(hookHeader, enc)
	resp, err := hc.Do(req)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	g.Expect(resp.Header.Get(generationHeader)).To(Equal(withTr.Generation()))
	_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
	resp.Body.Close()
	g.Expect(resp.Trailer.Get(trailerError)).To(Equal("rejected"))
	g.Expect(resp.Trailer.Get(trailerGeneration)).To(Equal(without.Generation()))

	// The Client turns it into a refusal that carries the generation.
	calls.Store(0)
	err = NewClient(socket).Run(context.Background(), exsv1beta1.Hook{Name: "upper", Command: "tr", Args: []string{"a-z", "A-Z"}}, strings.NewReader("abc"), &bytes.Buffer{})
	var er *ExecutorRejectedError
	g.Expect(errors.As(err, &er)).To(BeTrue(), "got %v", err)
	g.Expect(er.Generation).To(Equal(without.Generation()))
	g.Expect(IsRejected(err)).To(BeTrue())

	// GET /v1/whitelist: the generation, the number of commands and what
	// the node gives the sandbox, in DESIGN.md's shape.
	resp, err = hc.Get("http://hook-executor" + whitelistPath)
	g.Expect(err).ToNot(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).ToNot(HaveOccurred())
	var st WhitelistStatus
	g.Expect(json.Unmarshal(body, &st)).To(Succeed())
	g.Expect(st.Generation).To(Equal(without.Generation()))
	g.Expect(st.Commands).To(BeZero())
	var raw struct {
		Sandbox struct {
			LandlockABI *int            `json:"landlockABI"`
			Protections map[string]bool `json:"protections"`
		} `json:"sandbox"`
	}
	g.Expect(json.Unmarshal(body, &raw)).To(Succeed())
	g.Expect(raw.Sandbox.LandlockABI).ToNot(BeNil(), "%s", body)
	g.Expect(*raw.Sandbox.LandlockABI).To(Equal(LandlockABI()))
	g.Expect(raw.Sandbox.Protections).To(HaveKey("files"))
	g.Expect(raw.Sandbox.Protections).To(HaveLen(6))
}

// TestStoreGeneration: the store's generation is its whitelist's, and a
// reload that changes what is enforced changes it.
func TestStoreGeneration(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "whitelist.yaml")
	g.Expect(os.WriteFile(path, []byte(allowJq), 0o644)).To(Succeed())
	s, err := NewStore(path, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())
	first := s.Generation()
	g.Expect(first).To(Equal(s.Get().Generation()))

	g.Expect(os.WriteFile(path, []byte("# only a comment more\n"+allowJq), 0o644)).To(Succeed())
	_, err = s.Reload()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(s.Generation()).To(Equal(first), "the same rules")

	g.Expect(os.WriteFile(path, []byte(allowYq), 0o644)).To(Succeed())
	_, err = s.Reload()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(s.Generation()).ToNot(Equal(first))
}

// failingWriter refuses everything after max bytes, as the controller's
// output caps do.
type failingWriter struct{ max, n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.max {
		return 0, errors.New("cap reached")
	}
	f.n += len(p)
	return len(p), nil
}

// TestClientOutputRefused: when the caller refuses a hook's output (a
// cap), the run is a failure of the hook (ExecError, result "failure"),
// not an unavailable sidecar.
func TestClientOutputRefused(t *testing.T) {
	g := NewWithT(t)
	// sh runs head: the sandbox must let it read the programs.
	wl := mustParse(t, "commands: [{name: sh, path: /bin/sh, args: ['-c', '.*'], "+
		"readPaths: [/bin, /usr/bin, /lib, /lib64, /usr/lib, /usr/lib64, /etc/ld.so.cache]}]\n")
	socket := startServer(t, func() *Whitelist { return wl })
	err := NewClient(socket).Run(context.Background(), exsv1beta1.Hook{Name: "flood", Command: "sh", Args: []string{"-c", "yes | head -c 1000000"}},
		strings.NewReader(""), &failingWriter{max: 1000})
	var ee *ExecError
	g.Expect(errors.As(err, &ee)).To(BeTrue(), "got %v", err)
	g.Expect(ee.Reason).To(Equal("writing its output: cap reached"))
	g.Expect(Result(err)).To(Equal("failure"))
}
