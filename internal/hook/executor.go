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
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
)

// DefaultMaxOutput caps a hook's stdout when no limit is given.
const DefaultMaxOutput = 64 << 20

// stderrTail is how much of a failing hook's stderr is reported.
const stderrTail = 2048

// pipeDelay is how long a finished command's children may keep its output
// open before the pipes are closed and the process group is killed.
const pipeDelay = time.Second

// ExecError says a hook ran and failed: non-zero exit, timeout, output over
// the cap, or a binary that could not start. The reconciler applies the
// hook's retry policy to it.
type ExecError struct {
	Hook     string
	ExitCode int    // -1 when the command did not exit by itself
	Reason   string // what failed
	Stderr   string // the tail of stderr
}

func (e *ExecError) Error() string {
	msg := fmt.Sprintf("hook %q failed: %s", e.Hook, e.Reason)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// TimedOut reports whether the hook was killed at its timeout. The reason
// travels as text between the sidecar and the controller, so the text is
// the contract: it starts with "timed out".
func (e *ExecError) TimedOut() bool {
	return e.ExitCode == -1 && strings.HasPrefix(e.Reason, "timed out")
}

// Executor runs hooks as local processes: argv without a shell, the
// whitelist checked again, a minimal environment, its own process group
// killed on timeout and after exit (no orphans), output capped, and every
// run confined by the sandbox (Landlock and rlimits, see sandbox.go) and
// watched for its memory and process limits.
type Executor struct {
	// Whitelist returns the whitelist in force.
	Whitelist func() *Whitelist
	// MaxOutput caps stdout in bytes.
	MaxOutput int64
	// TempDir is where each hook gets its scratch working directory; ""
	// is os.TempDir(). The sidecar passes its spool directory
	// (internal/spool), so that what a killed sidecar left is removed at
	// its next start.
	TempDir string
	// Sandbox is landlock (the default, also when "") or none (rlimits
	// and the watchdog only).
	Sandbox SandboxMode
	// StartMode is how a run is started and confined (StartMode's
	// values); "" is ParseStartMode's default.
	StartMode StartMode
	// Trampoline is, with StartTrampoline, the binary that confines a run
	// and execs its command:
	// one whose main calls RunSandboxExecIfAsked first, such as
	// internal/hook/sandbox/trampoline (hook-sandbox in the image). "" is
	// this process's own binary.
	Trampoline string
	// Protected are paths no entry's readPaths may hold (the sidecar's
	// whitelist file); the directory of the runs (TempDir) always is.
	Protected []string
	// Node is what this node gives the sandbox (CheckSandbox's answer,
	// with --hook-sandbox-max-landlock-abi); nil is the kernel's, found
	// at the first run.
	Node *SandboxStatus

	nodeOnce sync.Once
	node     SandboxStatus
	// runAs starts the runs as another user, for a test run as root to see
	// what the kernel holds a non-root sidecar's runs to; never set by the
	// sidecar, which runs them as itself.
	runAs *syscall.Credential
}

// Status is what this node gives the executor's runs.
func (e *Executor) Status() SandboxStatus {
	e.nodeOnce.Do(func() {
		if e.Node != nil {
			e.node = *e.Node
			return
		}
		mode := e.Sandbox
		if mode == "" {
			mode = SandboxLandlock
		}
		st, err := NodeSandbox(mode, -1)
		if err != nil {
			// An unknown mode: every protection missing, every run refused.
			st = SandboxStatus{Mode: mode, KernelLandlockABI: LandlockABI(), Protections: map[string]bool{}}
		}
		e.node = st
	})
	return e.node
}

var _ Runner = (*Executor)(nil)

// Run implements Runner.
func (e *Executor) Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error {
	// The phases of the run (runPhases): each mark is when one ends.
	// A direct start sets its sandbox up (prepared) before the clone,
	// the trampoline after its own start.
	var started, prepared, spawned, armedAt, waited time.Time
	began := time.Now()
	defer func() {
		end := time.Now()
		observePhase(PhasePrepare, began, started)
		if prepared.IsZero() {
			observePhase(PhaseStart, started, spawned)
			observePhase(PhaseSandbox, spawned, armedAt)
		} else {
			observePhase(PhaseSandbox, started, prepared)
			observePhase(PhaseStart, prepared, spawned)
		}
		execFrom := armedAt
		if spawned.After(execFrom) {
			execFrom = spawned
		}
		observePhase(PhaseExec, execFrom, waited)
		observePhase(PhaseCleanup, waited, end)
	}()
	res, err := e.Whitelist().Check(h)
	if err != nil {
		return err
	}
	max := e.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	node := e.Status()
	if msg := node.Refusal(); msg != "" {
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: "sandbox: " + msg}
	}
	if _, err := os.Stat(res.Path); err != nil {
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: fmt.Sprintf("starting %s: %v", res.Path, err)}
	}
	dir, err := os.MkdirTemp(e.TempDir, "hook-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	pol := res.Sandbox
	if e.Sandbox != SandboxNone {
		if err := e.checkReadPaths(pol.ReadPaths, dir); err != nil {
			return &ExecError{Hook: h.Name, ExitCode: -1, Reason: "sandbox: " + err.Error()}
		}
	}
	spec := sandbox.Spec{Path: res.Path, Args: res.Args, Env: res.Env, Dir: dir,
		ReadPaths: pol.ReadPaths, Network: pol.Network, DataBytes: pol.Memory,
		CPUSeconds: int64((pol.CPU + time.Second - 1) / time.Second), FileSize: pol.FileSize,
		Processes: pol.Processes, OpenFiles: pol.OpenFiles,
		LandlockABI: node.LandlockABI, Seccomp: node.Seccomp}
	ctx, cancel := context.WithTimeout(ctx, res.Timeout)
	defer cancel()
	if e.runAs != nil {
		if err := os.Chown(dir, int(e.runAs.Uid), int(e.runAs.Gid)); err != nil {
			return err
		}
	}
	// Over the cap the command's writes fail and wait reports it.
	out := &iobuf.CappedWriter{W: stdout, Max: max}
	errBuf := &tailBuffer{max: stderrTail}
	rio := runIO{stdin: stdin, stdout: out, stderr: errBuf}

	oomBefore, oomKnown := oomKills()
	started = time.Now()
	var p *startedRun
	if e.startMode() == StartDirect {
		p, err = e.startDirect(ctx, &spec, rio)
	} else {
		p, err = e.startTrampoline(ctx, &spec, rio)
	}
	spawned = time.Now()
	var sbErr *sandboxError
	switch {
	case errors.As(err, &sbErr):
		armedAt, waited = spawned, spawned
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: "sandbox: " + sbErr.Error()}
	case err != nil:
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: fmt.Sprintf("starting %s: %v", res.Path, err)}
	}
	prepared = p.prepared
	run := &watchedRun{pgid: p.pid, policy: pol}
	defaultWatchdog.add(run)
	defer defaultWatchdog.remove(run)
	sandboxErr := make(chan string, 1)
	go func() {
		msg, at := p.armed()
		armedAt = at
		if msg == "" {
			run.armed.Store(true)
		}
		sandboxErr <- msg
	}()
	// Kill whatever the command left behind, whatever happened.
	ps, waitErr := p.wait()
	waited = time.Now()
	_ = killGroup(p.pid)
	if msg := <-sandboxErr; msg != "" {
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: "sandbox: " + msg, Stderr: strings.TrimSpace(errBuf.String())}
	}

	stderr := strings.TrimSpace(errBuf.String())
	switch {
	case out.Exceeded():
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: fmt.Sprintf("output exceeds the limit of %d bytes (--hook-max-output)", max), Stderr: stderr}
	case run.Exceeded() != "":
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: "exceeded its " + run.Exceeded(), Stderr: stderr}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: fmt.Sprintf("timed out after %s", res.Timeout), Stderr: stderr}
	case waitErr != nil:
		if limit := exceededLimit(ps, pol, errBuf.Head()+"\n"+stderr); limit != "" {
			code := -1
			if ps != nil {
				code = ps.ExitCode()
			}
			return &ExecError{Hook: h.Name, ExitCode: code, Reason: "exceeded its " + limit, Stderr: stderr}
		}
		if ws, ok := processWaitStatus(ps); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && ctx.Err() == nil {
			// Neither the watchdog, nor the timeout, nor the CPU limit.
			return &ExecError{Hook: h.Name, ExitCode: -1, Reason: killedReason(pol, oomBefore, oomKnown), Stderr: stderr}
		}
		var exitErr *exec.ExitError
		if errors.As(waitErr, &exitErr) && exitErr.ExitCode() >= 0 {
			return &ExecError{Hook: h.Name, ExitCode: exitErr.ExitCode(), Reason: fmt.Sprintf("exit code %d", exitErr.ExitCode()), Stderr: stderr}
		}
		if errors.Is(waitErr, exec.ErrWaitDelay) {
			// The command exited 0 but a child kept its output open; the
			// group is killed, the output is what was written.
			return nil
		}
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: waitErr.Error(), Stderr: stderr}
	}
	if ctx.Err() != nil {
		return &ExecError{Hook: h.Name, ExitCode: -1, Reason: ctx.Err().Error(), Stderr: stderr}
	}
	return nil
}

// startMode is the StartMode in force.
func (e *Executor) startMode() StartMode {
	if e.StartMode != "" {
		return e.StartMode
	}
	m, _ := ParseStartMode("")
	return m
}

// processWaitStatus is how the run's first process ended, when it did.
func processWaitStatus(ps *os.ProcessState) (syscall.WaitStatus, bool) {
	if ps == nil {
		return 0, false
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ws, ok
}

// checkReadPaths refuses readPaths that would hold a protected path: the
// directory of every run (so one run could read another's), or the
// whitelist. Both sides are compared as written and with symlinks
// resolved (/lib is often a link to /usr/lib).
func (e *Executor) checkReadPaths(readPaths []string, runDir string) error {
	protected := append([]string{filepath.Dir(runDir)}, e.Protected...)
	forms := func(p string) []string {
		out := []string{filepath.Clean(p)}
		if r, err := filepath.EvalSymlinks(p); err == nil && r != out[0] {
			out = append(out, r)
		}
		return out
	}
	for _, rp := range readPaths {
		for _, r := range forms(rp) {
			for _, p := range protected {
				for _, q := range forms(p) {
					if q == r || strings.HasPrefix(q, strings.TrimSuffix(r, "/")+"/") {
						return fmt.Errorf("readPaths %s holds %s, which no hook may read", rp, p)
					}
				}
			}
		}
	}
	return nil
}

// exceededLimit names the rlimit a failed command ran into, or "". The
// kernel's signals say it for CPU time and file size; a refused
// allocation, file or fork is only visible in what the command printed,
// so those are read from its stderr (the messages of glibc, jq and the Go
// runtime).
func exceededLimit(ps *os.ProcessState, pol SandboxPolicy, stderr string) string {
	cpu := fmt.Sprintf("cpu limit (%s)", pol.CPU)
	if ws, ok := processWaitStatus(ps); ok && ws.Signaled() {
		switch ws.Signal() {
		case syscall.SIGXCPU:
			return cpu
		case syscall.SIGXFSZ:
			return fmt.Sprintf("file size limit (%s)", quantity(pol.FileSize))
		case syscall.SIGKILL:
			// The hard CPU limit is a SIGKILL, one second after the
			// soft one's SIGXCPU (which Go programs ignore).
			if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
				used := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				if used >= pol.CPU {
					return cpu
				}
			}
		}
	}
	low := strings.ToLower(stderr)
	switch {
	case strings.Contains(low, "cannot allocate memory"), strings.Contains(low, "out of memory"):
		return fmt.Sprintf("memory limit (%s)", quantity(pol.Memory))
	case strings.Contains(low, "file too large"):
		return fmt.Sprintf("file size limit (%s)", quantity(pol.FileSize))
	case strings.Contains(low, "too many open files"):
		return fmt.Sprintf("open files limit (%d)", pol.OpenFiles)
	case strings.Contains(low, "resource temporarily unavailable"), strings.Contains(low, "failed to create new os thread"):
		// The watchdog kills a run over its own count (and says so); a
		// refused fork or thread it did not see is the uid-wide backstop
		// (RLIMIT_NPROC) or the pod's PID limit, which every run shares:
		// the run may have been far below its own limit.
		return fmt.Sprintf("process limit (%d), or the limit on tasks all runs share", pol.Processes)
	}
	return ""
}

// killGroup kills the run whose first process is pid, with everything
// it started.
func killGroup(pid int) error {
	// The negative pid addresses the whole group (the run's first process
	// leads its own).
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// tailBuffer keeps the last max bytes written, and the first headMax:
// the reason a program dies is often said first (Go's "fatal error: out
// of memory") and followed by pages of goroutine dumps.
type tailBuffer struct {
	mu   sync.Mutex
	buf  []byte
	head []byte
	max  int
	// cut says the start of stderr was dropped: the first kept line may
	// be the end of a longer one, possibly the end of a Secret value the
	// controller could no longer recognise to redact, so it is not shown.
	cut bool
}

// headMax is how much of the start of stderr is kept for exceededLimit.
const headMax = 512

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := headMax - len(t.head); n > 0 {
		t.head = append(t.head, p[:min(n, len(p))]...)
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cut {
		if i := bytes.IndexByte(t.buf, '\n'); i >= 0 {
			return "..." + string(t.buf[i:])
		}
	}
	return string(t.buf)
}

// Head returns the first bytes written.
func (t *tailBuffer) Head() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.head)
}
