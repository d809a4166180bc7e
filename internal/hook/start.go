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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
)

// StartMode is the sidecar's --hook-sandbox-start: how a run's process is
// confined before it execs the command. Both apply the same layers
// (Landlock, no_new_privs, rlimits, the seccomp filter) in the same
// process that then execs; they differ in who runs that code.
type StartMode string

const (
	// StartDirect: the sidecar's own child confines itself between clone
	// and exec (sandbox.Start). The default where the build has it
	// (sandbox.DirectStart: linux on amd64 and arm64).
	StartDirect StartMode = "direct"
	// StartTrampoline: the child execs a trampoline program
	// (Executor.Trampoline), which confines itself and execs the command:
	// one more exec and Go runtime start per run.
	StartTrampoline StartMode = "trampoline"
)

// ParseStartMode checks a --hook-sandbox-start value; "" is the default.
func ParseStartMode(s string) (StartMode, error) {
	switch m := StartMode(s); m {
	case "":
		if sandbox.DirectStart {
			return StartDirect, nil
		}
		return StartTrampoline, nil
	case StartDirect:
		if !sandbox.DirectStart {
			return "", errors.New("--hook-sandbox-start=direct: not in this build (linux on amd64 and arm64 only); use trampoline")
		}
		return m, nil
	case StartTrampoline:
		return m, nil
	default:
		return "", fmt.Errorf("--hook-sandbox-start=%q: want %s or %s", s, StartDirect, StartTrampoline)
	}
}

// startedRun is a run's first process, however it was started.
type startedRun struct {
	pid int
	// wait waits for the process and for its output to be copied, with
	// exec.Cmd.Wait's answers: nil, *exec.ExitError, exec.ErrWaitDelay
	// (exited 0, a child kept the output open past pipeDelay), or a copy
	// error.
	wait func() (*os.ProcessState, error)
	// armed answers, to its one caller, once the command itself runs
	// (""), or why the sandbox could not start it, and when.
	armed func() (string, time.Time)
	// prepared, for a direct start, is when the sandbox's set-up in the
	// sidecar ended and the clone began (zero for the trampoline, which
	// sets itself up after its start).
	prepared time.Time
}

// sandboxError says the sandbox could not confine the run, or exec its
// command once confined: what the trampoline reports on its error pipe.
type sandboxError struct{ err error }

func (e *sandboxError) Error() string { return e.err.Error() }
func (e *sandboxError) Unwrap() error { return e.err }

// runIO is a run's standard input, output and error as Run hands them.
type runIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// startTrampoline starts the trampoline with the spec on its descriptor
// 4; it reports on descriptor 3 whether it could exec the command.
func (e *Executor) startTrampoline(ctx context.Context, spec *sandbox.Spec, rio runIO) (*startedRun, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	tramp := e.Trampoline
	if tramp == "" {
		tramp = "/proc/self/exe"
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		errR.Close()
		errW.Close()
		return nil, err
	}
	cmd := exec.CommandContext(ctx, tramp, sandbox.ExecArg)
	// Nothing of our own environment leaks in: the command's is in the
	// spec. The trampoline's own is one Go setting: a single P, so its
	// runtime neither reads the cgroup files that size GOMAXPROCS nor
	// starts threads for goroutines it never runs, which is most of what
	// a Go program costs to start and the trampoline starts every run.
	cmd.Env = []string{"GOMAXPROCS=1"}
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.SysProcAttr.Credential = e.runAs
	// fd 3: the trampoline's error pipe; fd 4: its spec.
	cmd.ExtraFiles = []*os.File{errW, specR}
	cmd.Stdin = rio.stdin
	cmd.Stdout = rio.stdout
	cmd.Stderr = rio.stderr
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = pipeDelay
	err = cmd.Start()
	errW.Close()
	specR.Close()
	if err != nil {
		errR.Close()
		specW.Close()
		return nil, err
	}
	// Written while the trampoline reads: a spec may exceed the pipe's
	// buffer. A trampoline that dies first makes the write fail, and the
	// run fails on its own account.
	go func() {
		_, _ = specW.Write(specJSON)
		specW.Close()
	}()
	type answer struct {
		msg string
		at  time.Time
	}
	armed := make(chan answer, 1)
	go func() {
		defer errR.Close()
		// EOF without a word: the command was exec'd in its sandbox.
		b, _ := io.ReadAll(io.LimitReader(errR, stderrTail))
		armed <- answer{string(b), time.Now()}
	}()
	return &startedRun{
		pid: cmd.Process.Pid,
		wait: func() (*os.ProcessState, error) {
			err := cmd.Wait()
			return cmd.ProcessState, err
		},
		// Run asks once.
		armed: func() (string, time.Time) {
			a := <-armed
			return a.msg, a.at
		},
	}, nil
}

// startDirect starts the command with sandbox.Start and does for it what
// exec.Cmd does for the trampoline: the pipes and their copies, the kill
// of the group when ctx ends, and the wait with pipeDelay.
func (e *Executor) startDirect(ctx context.Context, spec *sandbox.Spec, rio runIO) (*startedRun, error) {
	var (
		closeAfterStart []*os.File // the child's ends
		closeAfterWait  []*os.File // ours
		copies          []func() error
	)
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	fail := func(err error) (*startedRun, error) {
		closeAll(closeAfterStart)
		closeAll(closeAfterWait)
		return nil, err
	}
	var stdio [3]*os.File
	if rio.stdin == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		stdio[0], closeAfterStart = f, append(closeAfterStart, f)
	} else {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		stdio[0] = r
		closeAfterStart = append(closeAfterStart, r)
		closeAfterWait = append(closeAfterWait, w)
		copies = append(copies, func() error {
			_, err := io.Copy(w, rio.stdin)
			// A command may exit without reading all its input, as
			// exec.Cmd allows.
			if errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed) {
				err = nil
			}
			if cerr := w.Close(); err == nil && !errors.Is(cerr, os.ErrClosed) {
				err = cerr
			}
			return err
		})
	}
	for i, dst := range []io.Writer{rio.stdout, rio.stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		stdio[1+i] = w
		closeAfterStart = append(closeAfterStart, w)
		closeAfterWait = append(closeAfterWait, r)
		copies = append(copies, func() error {
			_, err := io.Copy(dst, r)
			return err
		})
	}
	pid, prepared, err := sandbox.Start(spec, stdio, e.runAs)
	if err != nil {
		return fail(&sandboxError{err})
	}
	armedAt := time.Now()
	closeAll(closeAfterStart)
	proc, err := os.FindProcess(pid)
	if err != nil {
		// Not on Linux: FindProcess always answers there.
		_ = killGroup(pid)
		closeAll(closeAfterWait)
		return nil, err
	}
	// The first copy is stdin's when there is one: after pipeDelay Wait
	// stops waiting for it (it may be blocked reading the caller's
	// input), not for the output copies, which end once their pipes are
	// closed, so that nothing is written to stdout after Wait.
	errs := make([]chan error, len(copies))
	for i, c := range copies {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- c() }()
	}
	exited := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = killGroup(pid)
		case <-exited:
		}
	}()
	return &startedRun{
		pid:      pid,
		prepared: prepared,
		armed:    func() (string, time.Time) { return "", armedAt },
		wait: func() (*os.ProcessState, error) {
			ps, werr := proc.Wait()
			close(exited)
			var copyErr error
			keep := func(err error) {
				if copyErr == nil && err != nil && !errors.Is(err, os.ErrClosed) {
					copyErr = err
				}
			}
			delayed := false
			timer := time.NewTimer(pipeDelay)
			defer timer.Stop()
			got := make([]bool, len(errs))
			for i, ch := range errs {
				select {
				case err := <-ch:
					keep(err)
					got[i] = true
					continue
				case <-timer.C:
				}
				// A child of the command keeps a pipe open: close ours,
				// which ends the output copies (the last two).
				delayed = true
				closeAll(closeAfterWait)
				for j := len(errs) - 2; j < len(errs); j++ {
					if !got[j] {
						keep(<-errs[j])
					}
				}
				break
			}
			closeAll(closeAfterWait)
			switch {
			case werr != nil:
				return ps, werr
			case !ps.Success():
				return ps, &exec.ExitError{ProcessState: ps}
			case delayed:
				return ps, exec.ErrWaitDelay
			}
			return ps, copyErr
		},
	}, nil
}
