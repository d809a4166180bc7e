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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// execWhitelist allows real commands for the executor tests: jq (what the
// tests are about), sh (to fork children), env (to show the environment).
const execWhitelist = `
commands:
  - name: jq
    path: /usr/bin/jq
    args: ['-[cerSn]+', '\.[A-Za-z0-9_.\[\]|{}:", ()]*', 'range\(.*\)|\[.*\]']
    env: [TZ]
  - name: sh
    path: /bin/sh
    args: ['-c', '.*']
    maxTimeout: 2s
    # sh runs other programs (sleep, pwd): they must be readable and
    # executable in the sandbox
    readPaths: [/usr/bin, /bin, /usr/lib, /lib, /lib64, /usr/lib64, /etc/ld.so.cache]
  - name: env
    path: /usr/bin/env
    env: [TZ, GREETING]
  - name: missing
    path: /nonexistent/bin/tool
`

func newExecutor(t *testing.T, maxOutput int64) *Executor {
	wl, err := Parse([]byte(execWhitelist))
	if err != nil {
		t.Fatal(err)
	}
	return &Executor{Whitelist: func() *Whitelist { return wl }, MaxOutput: maxOutput}
}

func TestExecutor(t *testing.T) {
	tests := []struct {
		name      string
		hook      exsv1beta1.Hook
		stdin     string
		maxOutput int64
		want      string
		wantErr   string
		exitCode  int
	}{
		{name: "jq transforms", hook: exsv1beta1.Hook{Name: "t", Command: "jq", Args: []string{"-c", ".items"}},
			stdin: `{"items": [1, 2]}`, want: "[1,2]\n"},
		{name: "exit code and stderr", hook: exsv1beta1.Hook{Name: "t", Command: "jq", Args: []string{".items["}},
			stdin: `{}`, wantErr: "exit code 3", exitCode: 3},
		{name: "output over the cap", hook: exsv1beta1.Hook{Name: "t", Command: "jq", Args: []string{"-n", "[range(0; 100000)]"}},
			maxOutput: 1000, wantErr: "output exceeds the limit of 1000 bytes (--hook-max-output)", exitCode: -1},
		{name: "minimal environment", hook: exsv1beta1.Hook{Name: "t", Command: "env", Env: []exsv1beta1.HookEnvVar{{Name: "GREETING", Value: "hi"}}},
			want: "GREETING=hi\n"},
		{name: "binary missing", hook: exsv1beta1.Hook{Name: "t", Command: "missing"}, wantErr: "starting /nonexistent/bin/tool", exitCode: -1},
		{name: "rejected before running", hook: exsv1beta1.Hook{Name: "t", Command: "jq", Args: []string{"--rawfile", "a", "/etc/passwd"}},
			wantErr: "rejected by the whitelist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var out bytes.Buffer
			err := newExecutor(t, tt.maxOutput).Run(context.Background(), tt.hook, strings.NewReader(tt.stdin), &out)
			if tt.wantErr == "" {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(out.String()).To(Equal(tt.want))
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
			var ee *ExecError
			if errors.As(err, &ee) {
				g.Expect(ee.ExitCode).To(Equal(tt.exitCode))
				if tt.exitCode == 3 {
					g.Expect(ee.Stderr).To(ContainSubstring("error"))
				}
			}
		})
	}
}

// TestExecutorKillsTheProcessGroup: a hook that forks a sleeping child and
// then times out leaves no process behind.
func TestExecutorKillsTheProcessGroup(t *testing.T) {
	g := NewWithT(t)
	marker := fmt.Sprintf("%d.%d", 40+time.Now().Nanosecond()%50, time.Now().Nanosecond()%1000)
	h := exsv1beta1.Hook{Name: "forker", Command: "sh", Args: []string{"-c", "sleep " + marker + " & sleep " + marker},
		Timeout: &metav1.Duration{Duration: time.Minute}} // capped at the whitelist's 2s
	start := time.Now()
	err := newExecutor(t, 0).Run(context.Background(), h, strings.NewReader(""), &bytes.Buffer{})
	g.Expect(err).To(MatchError(ContainSubstring("timed out after 2s")))
	g.Expect(time.Since(start)).To(BeNumerically("<", 30*time.Second), "the timeout applies, not the sleep")
	g.Eventually(func() []string { return testutil.ProcessesWith("sleep " + marker) }, 5*time.Second).Should(BeEmpty())
}

// TestExecutorKillsLeftoverChildren: a hook that exits at once but leaves
// a background child holding its output gets that child killed too.
func TestExecutorKillsLeftoverChildren(t *testing.T) {
	g := NewWithT(t)
	marker := fmt.Sprintf("%d.%d", 50+time.Now().Nanosecond()%50, time.Now().Nanosecond()%1000)
	h := exsv1beta1.Hook{Name: "leaver", Command: "sh", Args: []string{"-c", "sleep " + marker + " & echo done"}}
	var out bytes.Buffer
	err := newExecutor(t, 0).Run(context.Background(), h, strings.NewReader(""), &out)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out.String()).To(Equal("done\n"))
	g.Eventually(func() []string { return testutil.ProcessesWith("sleep " + marker) }, 5*time.Second).Should(BeEmpty())
}

func TestServerAndClient(t *testing.T) {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "hooksock-") // short path: Unix socket paths are limited
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "hook.sock")

	// The sidecar's whitelist is the one that counts: it allows jq only.
	srvWL, err := Parse([]byte("commands: [{name: jq, path: /usr/bin/jq, args: ['-c', '\\..*']}]"))
	g.Expect(err).ToNot(HaveOccurred())
	srv := &Server{Socket: socket, Executor: &Executor{Whitelist: func() *Whitelist { return srvWL }, MaxOutput: 1 << 20}, Log: ctrl.Log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(func() error { _, err := os.Stat(socket); return err }).Should(Succeed())
	fi, _ := os.Stat(socket)
	g.Expect(fi.Mode().Perm()).To(Equal(os.FileMode(0o660)))

	c := NewClient(socket)
	var out bytes.Buffer
	big := `{"items": [` + strings.Repeat(`{"a": 1},`, 20000) + `{"a": 2}]}`
	err = c.Run(ctx, exsv1beta1.Hook{Name: "ok", Command: "jq", Args: []string{"-c", ".items | length"}}, strings.NewReader(big), &out)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out.String()).To(Equal("20001\n"))

	out.Reset()
	err = c.Run(ctx, exsv1beta1.Hook{Name: "bad", Command: "jq", Args: []string{"-c", ".x["}}, strings.NewReader("{}"), &out)
	var ee *ExecError
	g.Expect(errors.As(err, &ee)).To(BeTrue(), "got %v", err)
	g.Expect(ee.ExitCode).To(Equal(3))
	g.Expect(ee.Stderr).To(ContainSubstring("error"))

	err = c.Run(ctx, exsv1beta1.Hook{Name: "sneaky", Command: "sh", Args: []string{"-c", "id"}}, strings.NewReader(""), &out)
	g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring(`command "sh" is not on the whitelist (refused by the hook executor)`))

	down := NewClient(filepath.Join(dir, "nobody.sock"))
	err = down.Run(ctx, exsv1beta1.Hook{Name: "x", Command: "jq"}, strings.NewReader(""), &out)
	g.Expect(err).To(MatchError(ContainSubstring("hook executor unreachable")))
}

// TestExecutorWorkingDirectory: a hook runs in a fresh directory inside
// the executor's TempDir (the sidecar's spool, swept at start-up after a
// crash), removed when the hook ends.
func TestExecutorWorkingDirectory(t *testing.T) {
	tests := []struct {
		name    string
		tempDir func(t *testing.T) string
		want    func(tempDir string) string // the parent expected
	}{
		{name: "in TempDir", tempDir: func(t *testing.T) string { return t.TempDir() },
			want: func(d string) string { return d }},
		{name: "empty TempDir is os.TempDir", tempDir: func(t *testing.T) string {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			return ""
		}, want: func(string) string { return os.Getenv("TMPDIR") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newExecutor(t, 0)
			e.TempDir = tt.tempDir(t)
			var out bytes.Buffer
			h := exsv1beta1.Hook{Name: "pwd", Command: "sh", Args: []string{"-c", "pwd"}}
			g.Expect(e.Run(context.Background(), h, strings.NewReader(""), &out)).To(Succeed())
			wd := strings.TrimSpace(out.String())
			g.Expect(filepath.Dir(wd)).To(Equal(tt.want(e.TempDir)))
			g.Expect(filepath.Base(wd)).To(HavePrefix("hook-"))
			g.Expect(wd).ToNot(BeAnExistingFile(), "removed after the hook")
		})
	}
}

// TestTailBufferDropsTheCutLine: when stderr is longer than what is kept,
// the first kept line (the end of a longer one, maybe the end of a Secret
// value the controller could no longer recognise) is not shown.
func TestTailBufferDropsTheCutLine(t *testing.T) {
	tests := []struct {
		name, write, want string
	}{
		{name: "short", write: "line 1\nline 2\n", want: "line 1\nline 2\n"},
		{name: "cut inside a line", write: "secret-value-xyz\nerror: boom\n", want: "...\nerror: boom\n"},
		{name: "cut, no newline left", write: "0123456789abcdefghijklmnop", want: "abcdefghijklmnop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b := &tailBuffer{max: 16}
			_, _ = b.Write([]byte(tt.write))
			g.Expect(b.String()).To(Equal(tt.want))
		})
	}
}

// TestExceededLimit: a command that failed on its own is told which limit
// it ran into from what it printed; a refused fork or thread says it may
// be the limit every run shares, not only the run's own.
func TestExceededLimit(t *testing.T) {
	pol := SandboxPolicy{Memory: 128 << 20, FileSize: 1 << 20, OpenFiles: 16, Processes: 32}
	tests := []struct {
		name, stderr, want string
	}{
		{name: "jq out of memory", stderr: "jq: error: cannot allocate memory\n", want: "memory limit (128Mi)"},
		{name: "file too large", stderr: "write: File too large", want: "file size limit (1Mi)"},
		{name: "open files", stderr: "open f17: too many open files", want: "open files limit (16)"},
		{name: "Go thread refused", stderr: "runtime: failed to create new OS thread (have 2 already; errno=11)",
			want: "process limit (32), or the limit on tasks all runs share"},
		{name: "fork refused", stderr: "sh: fork: Resource temporarily unavailable",
			want: "process limit (32), or the limit on tasks all runs share"},
		{name: "anything else", stderr: "jq: error: syntax error", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(exceededLimit(nil, pol, tt.stderr)).To(Equal(tt.want))
		})
	}
}
