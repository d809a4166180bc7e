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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
	"github.com/externalsource/externalsource-controller/internal/hook/sandboxtest"
	proctest "github.com/externalsource/externalsource-controller/internal/testutil"
)

// sandboxRig is a real sidecar (Server on a Unix socket, this test binary
// as its trampoline) with the shipped whitelist plus the probe, and the
// targets of the attacks.
type sandboxRig struct {
	dir, socket string
	store       *Store
	client      *Client
	env         sandboxtest.Env
	probe       string
	yq          string
	accepted    atomic.Int64 // TCP and abstract connections that got through
}

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// buildProbe builds the probe once for the package's tests.
func buildProbe(t testing.TB) string {
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hookprobe-")
		if err != nil {
			probeErr = err
			return
		}
		probePath, probeErr = sandboxtest.BuildProbe(context.Background(), dir)
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probePath
}

func newSandboxRig(t testing.TB, mode SandboxMode, permissive bool) *sandboxRig {
	t.Helper()
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "hooksb-") // short: Unix socket paths are limited
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &sandboxRig{dir: dir, socket: filepath.Join(dir, "hook.sock"), probe: buildProbe(t)}
	r.yq, err = sandboxtest.YQ()
	g.Expect(err).ToNot(HaveOccurred())

	secret := fmt.Sprintf("tok-%d", time.Now().UnixNano())
	for _, d := range []string{"wl", "secrets", "modules", "outside", "runs"} {
		g.Expect(os.MkdirAll(filepath.Join(dir, d), 0o755)).To(Succeed())
	}
	r.env = sandboxtest.Env{
		WhitelistPath: filepath.Join(dir, "wl", "whitelist.yaml"),
		TokenPath:     filepath.Join(dir, "secrets", "token"),
		Secret:        secret,
		OutsideDir:    filepath.Join(dir, "outside"),
		ModuleDir:     filepath.Join(dir, "modules"),
		VictimSecret:  fmt.Sprintf("victim-input-%d", time.Now().UnixNano()),
		SidecarPID:    os.Getpid(),
	}
	g.Expect(os.WriteFile(r.env.TokenPath, []byte(`"`+secret+`"`), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(r.env.ModuleDir, "secret.jq"), []byte(`def leak: "`+secret+`";`), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(r.env.ModuleDir, "secret.json"), []byte(`"`+secret+`"`), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(r.env.ModuleDir, "secret.b64"), []byte(base64.StdEncoding.EncodeToString([]byte(secret))), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(r.env.OutsideDir, "victim.yaml"), []byte("b: 2\n"), 0o644)).To(Succeed())

	wl, err := sandboxtest.ShippedWhitelist(r.yq, r.probe)
	g.Expect(err).ToNot(HaveOccurred())
	if permissive {
		wl = sandboxtest.Permissive(wl)
	}
	g.Expect(os.WriteFile(r.env.WhitelistPath, []byte(wl), 0o644)).To(Succeed())
	r.store, err = NewStore(r.env.WhitelistPath, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())

	// Listeners a hook must not reach.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	r.env.TCPAddr = tcp.Addr().String()
	r.env.AbstractSocket = fmt.Sprintf("exs-sandbox-%d-%d", os.Getpid(), time.Now().UnixNano())
	abstract, err := net.Listen("unix", "@"+r.env.AbstractSocket)
	g.Expect(err).ToNot(HaveOccurred())
	for _, ln := range []net.Listener{tcp, abstract} {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				r.accepted.Add(1)
				c.Close()
			}
		}()
	}

	srv := &Server{Socket: r.socket, Log: ctrl.Log,
		Executor: &Executor{Whitelist: r.store.Get, MaxOutput: 1 << 20, TempDir: filepath.Join(dir, "runs"), Sandbox: mode}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(func() error { _, err := os.Stat(r.socket); return err }, 10*time.Second).Should(Succeed())
	r.client = NewClient(r.socket)
	return r
}

// startVictim runs a hook (the probe, holding its stdin unread) beside
// the attacks, and returns its pid once it runs.
func (r *sandboxRig) startVictim(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	marker := fmt.Sprint(20 + time.Now().Nanosecond()%1000)
	go func() {
		defer close(done)
		_ = r.client.Run(ctx, exsv1beta1.Hook{Name: "victim", Command: "probe", Args: []string{"hold", marker}, Timeout: &metav1.Duration{Duration: time.Minute}},
			strings.NewReader(r.env.VictimSecret), io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	var pid int
	NewWithT(t).Eventually(func() int {
		pid = pidOf(r.probe + " hold " + marker)
		return pid
	}, 10*time.Second, 10*time.Millisecond).ShouldNot(BeZero())
	return pid
}

// victimDir is the working directory of the run with pid, once its file
// is there.
func victimDir(t testing.TB, pid int) string {
	t.Helper()
	g := NewWithT(t)
	dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	g.Expect(err).ToNot(HaveOccurred())
	g.Eventually(filepath.Join(dir, "mine"), 10*time.Second, 10*time.Millisecond).Should(BeAnExistingFile())
	return dir
}

// pidOf finds the process whose command line is cmdline.
func pidOf(cmdline string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			return pid
		}
	}
	return 0
}

// run runs a hook through the sidecar and returns its output and the
// error with its stderr.
func (r *sandboxRig) run(h exsv1beta1.Hook, stdin string) (string, error) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.client.Run(ctx, h, strings.NewReader(stdin), &out)
	return out.String(), err
}

// errText is everything a failure says (reason and stderr).
func errText(err error) string {
	if err == nil {
		return ""
	}
	var ee *ExecError
	if errors.As(err, &ee) {
		return ee.Reason + "\n" + ee.Stderr
	}
	return err.Error()
}

// TestSandboxStopsEscapes is the acceptance table: with the shipped
// whitelist every attempt is refused by the whitelist or stopped by the
// kernel with a permission error, and with every pattern widened to '.*'
// the kernel still stops all of them. Nothing secret comes out, nothing
// is written outside the run, no connection arrives.
func TestSandboxStopsEscapes(t *testing.T) {
	for _, permissive := range []bool{false, true} {
		name := "shipped whitelist"
		if permissive {
			name = "patterns widened to .*"
		}
		t.Run(name, func(t *testing.T) {
			r := newSandboxRig(t, SandboxLandlock, permissive)
			r.env.VictimPID = r.startVictim(t)
			r.env.VictimDir = victimDir(t, r.env.VictimPID)
			for _, a := range sandboxtest.Attacks(r.env) {
				t.Run(a.Name, func(t *testing.T) {
					g := NewWithT(t)
					out, err := r.run(a.Hook, a.Stdin)
					g.Expect(err).To(HaveOccurred(), "output: %s", out)
					text := errText(err)
					if a.ShippedRejects && !permissive {
						g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
					} else {
						g.Expect(IsRejected(err)).To(BeFalse(), "the kernel, not the whitelist, must stop it: %v", err)
						g.Expect(text).To(Or(containsAny(a.Denied)...), "the kernel's refusal")
					}
					for _, s := range a.Never {
						g.Expect(out).ToNot(ContainSubstring(s))
						g.Expect(text).ToNot(ContainSubstring(s))
					}
					if a.Created != "" {
						g.Expect(a.Created).ToNot(BeAnExistingFile())
					}
				})
			}
			g := NewWithT(t)
			g.Expect(r.accepted.Load()).To(BeZero(), "no connection got through")
			b, err := os.ReadFile(filepath.Join(r.env.OutsideDir, "victim.yaml"))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(string(b)).To(Equal("b: 2\n"), "not written by yq -i")
		})
	}
}

func containsAny(subs []string) []OmegaMatcher {
	var m []OmegaMatcher
	for _, s := range subs {
		m = append(m, ContainSubstring(s))
	}
	return m
}

// TestEscapesSucceedWithoutTheSandbox proves the table's attacks are real:
// with the sandbox off (--hook-sandbox=none) and patterns widened, every
// one of them gets through: what TestSandboxStopsEscapes stops is the
// kernel's doing, not a typo in an attack.
func TestEscapesSucceedWithoutTheSandbox(t *testing.T) {
	r := newSandboxRig(t, SandboxNone, true)
	r.env.VictimPID = 1 // replaced per row: reading a victim's stdin consumes it
	for _, a := range sandboxtest.Attacks(r.env) {
		t.Run(a.Name, func(t *testing.T) {
			g := NewWithT(t)
			if strings.Contains(a.Name, "another run") {
				env := r.env
				env.VictimPID = r.startVictim(t)
				env.VictimDir = victimDir(t, env.VictimPID)
				for _, b := range sandboxtest.Attacks(env) {
					if b.Name == a.Name {
						a = b
					}
				}
			}
			before := r.accepted.Load()
			out, err := r.run(a.Hook, a.Stdin)
			if a.Name == "yq --split-exp writes outside" {
				// yq names the file from the expression: it is written.
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(a.Created).To(BeAnExistingFile())
				return
			}
			if a.Name == "probe signals the sidecar" || a.Name == "probe ptraces another run" || strings.Contains(a.Name, "socket") || strings.Contains(a.Name, "TCP") {
				g.Expect(err).ToNot(HaveOccurred())
				if strings.Contains(a.Name, "socket") || strings.Contains(a.Name, "TCP") {
					g.Eventually(r.accepted.Load).Should(BeNumerically(">", before))
				} else {
					g.Expect(out).To(Or(Equal("signalled\n"), Equal("attached\n")))
				}
				return
			}
			if a.Name == "yq -i writes outside" {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(os.ReadFile(filepath.Join(r.env.OutsideDir, "victim.yaml"))).To(ContainSubstring("a: 1"))
				return
			}
			if len(a.Never) == 0 {
				g.Expect(err).ToNot(HaveOccurred(), "without the sandbox %q gets through", a.Name)
			}
			// What the kernel stops with the sandbox leaks without it, in
			// the output or in the error.
			for _, s := range a.Never {
				g.Expect(out + errText(err)).To(ContainSubstring(s))
			}
		})
	}
}

// TestSandboxNetworkAllowed: `network: true` lifts the TCP rule (and only
// for that entry).
func TestSandboxNetworkAllowed(t *testing.T) {
	g := NewWithT(t)
	r := newSandboxRig(t, SandboxLandlock, false)
	out, err := r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: []string{"connect", r.env.TCPAddr}}, "")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(Equal("connected\n"))
	g.Eventually(r.accepted.Load).Should(BeNumerically("==", 1))
	// The filesystem rules still hold for it.
	_, err = r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: []string{"read", r.env.TokenPath}}, "")
	g.Expect(errText(err)).To(ContainSubstring("permission denied"))
}

// TestSandboxLimits: each limit stops its bomb with a failure that names
// it; the sidecar survives and the next run works.
func TestSandboxLimits(t *testing.T) {
	r := newSandboxRig(t, SandboxLandlock, false)
	probe := func(args ...string) exsv1beta1.Hook {
		return exsv1beta1.Hook{Name: "bomb", Command: "probe", Args: args}
	}
	tests := []struct {
		name string
		hook exsv1beta1.Hook
		want string
	}{
		{name: "jq memory bomb", hook: exsv1beta1.Hook{Name: "bomb", Command: "jq", Args: []string{"-n", "[range(100000000)]"}}, want: "exceeded its memory limit (256Mi)"},
		{name: "probe memory bomb", hook: probe("mem", fmt.Sprint(1<<30)), want: "exceeded its memory limit (128Mi)"},
		{name: "fork bomb", hook: probe("fork"), want: "exceeded its process limit (16)"},
		{name: "cpu", hook: probe("spin"), want: "exceeded its cpu limit (1s)"},
		{name: "file size", hook: probe("fsize", fmt.Sprint(2<<20)), want: "exceeded its file size limit (1Mi)"},
		{name: "open files", hook: probe("nofile", "100"), want: "exceeded its open files limit (16)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			// A timeout far off (capped at 30s for jq), so that a loaded
			// machine cannot turn a limit into a timeout: the message says
			// which limit stopped it.
			tt.hook.Timeout = &metav1.Duration{Duration: time.Minute}
			_, err := r.run(tt.hook, "")
			var ee *ExecError
			g.Expect(errors.As(err, &ee)).To(BeTrue(), "got %v", err)
			g.Expect(ee.Error()).To(ContainSubstring(`hook "bomb" failed: ` + tt.want))
			// Nothing of it is left, and the next run is fine.
			g.Eventually(func() []string { return proctest.ProcessesWith(r.probe + " ") }, 5*time.Second).Should(BeEmpty())
			out, err := r.run(exsv1beta1.Hook{Name: "next", Command: "jq", Args: []string{"-c", ".a"}}, `{"a": [1]}`)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(out).To(Equal("[1]\n"))
		})
	}
}

// TestSandboxRlimitsAsSet: the limits of the entry are the hard limits the
// command runs with (it cannot raise them), with Landlock or without.
func TestSandboxRlimitsAsSet(t *testing.T) {
	for _, mode := range []SandboxMode{SandboxLandlock, SandboxNone} {
		t.Run(string(mode), func(t *testing.T) {
			g := NewWithT(t)
			r := newSandboxRig(t, mode, false)
			out, err := r.run(exsv1beta1.Hook{Name: "limits", Command: "probe", Args: []string{"limits"}}, "")
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(out).To(ContainSubstring("cpu=1/2\n"))
			g.Expect(out).To(ContainSubstring(fmt.Sprintf("data=%d/%d\n", 128<<20, 128<<20)))
			g.Expect(out).To(ContainSubstring(fmt.Sprintf("fsize=%d/%d\n", 1<<20, 1<<20)))
			g.Expect(out).To(ContainSubstring("nofile=16/16\n"))
			g.Expect(out).To(ContainSubstring("core=0/0\n"))
			if os.Getuid() == 0 {
				g.Expect(out).To(ContainSubstring("nproc=16/16\n"))
			} else {
				g.Expect(out).To(MatchRegexp(`nproc=\d+/\d+`))
			}
		})
	}
}

// TestSandboxLargeArguments: the spec travels on a pipe, so the arguments
// of a hook are bounded as for any exec (128 KiB each), not together.
func TestSandboxLargeArguments(t *testing.T) {
	g := NewWithT(t)
	wl, err := Parse([]byte("commands: [{name: jq, path: /usr/bin/jq, args: ['.*']}]"))
	g.Expect(err).ToNot(HaveOccurred())
	e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: t.TempDir()}
	big := strings.Repeat("x", 100_000)
	var out bytes.Buffer
	h := exsv1beta1.Hook{Name: "big", Command: "jq", Args: []string{"-n", "--arg", "a", big, "--arg", "b", big, "($a + $b) | length"}}
	g.Expect(e.Run(context.Background(), h, strings.NewReader(""), &out)).To(Succeed())
	g.Expect(out.String()).To(Equal("200000\n"))
}

// TestSandboxReadPathsProtected: an entry whose readPaths hold the runs'
// directories or the whitelist fails to run, rather than let one run read
// another's files.
func TestSandboxReadPathsProtected(t *testing.T) {
	base := t.TempDir()
	runs := filepath.Join(base, "runs")
	wlDir := filepath.Join(base, "wl")
	for _, d := range []string{runs, wlDir} {
		NewWithT(t).Expect(os.MkdirAll(d, 0o755)).To(Succeed())
	}
	tests := []struct {
		name      string
		readPaths string
		want      string
	}{
		{name: "the runs' parent", readPaths: base, want: "holds " + runs},
		{name: "the runs' directory", readPaths: runs, want: "holds " + runs},
		{name: "the whitelist's directory", readPaths: wlDir, want: "holds " + filepath.Join(wlDir, "whitelist.yaml")},
		{name: "elsewhere", readPaths: "/usr/lib"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			wl, err := Parse([]byte(fmt.Sprintf("commands: [{name: jq, path: /usr/bin/jq, args: ['.*'], readPaths: [%s, /lib, /lib64, /etc/ld.so.cache]}]", tt.readPaths)))
			g.Expect(err).ToNot(HaveOccurred())
			e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: runs, Protected: []string{filepath.Join(wlDir, "whitelist.yaml")}}
			var out bytes.Buffer
			err = e.Run(context.Background(), exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"-c", "."}}, strings.NewReader("1"), &out)
			if tt.want == "" {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(out.String()).To(Equal("1\n"))
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring("sandbox: readPaths " + tt.readPaths + " " + tt.want)))
			g.Expect(out.String()).To(BeEmpty())
		})
	}
}

// TestTrampolineIsStrict: a trampoline asked for less than the sandbox
// needs, or for a path it cannot grant, refuses to exec the command and
// says why on its error pipe; nothing runs.
func TestTrampolineIsStrict(t *testing.T) {
	tests := []struct {
		name string
		spec sandbox.Spec
		want string
	}{
		{name: "ABI older than needed", spec: sandbox.Spec{Path: "/usr/bin/jq", LandlockABI: 5}, want: "landlock ABI 5 is older than the 6 the hook sandbox needs"},
		{name: "binary missing", spec: sandbox.Spec{Path: "/nonexistent/jq", LandlockABI: LandlockABI()}, want: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tt.spec.Dir = t.TempDir()
			tt.spec.DataBytes, tt.spec.CPUSeconds, tt.spec.FileSize, tt.spec.Processes, tt.spec.OpenFiles = 1<<30, 10, 1<<20, 16, 16
			spec, err := json.Marshal(tt.spec)
			g.Expect(err).ToNot(HaveOccurred())
			r, w, err := os.Pipe()
			g.Expect(err).ToNot(HaveOccurred())
			defer r.Close()
			cmd := exec.Command("/proc/self/exe", sandbox.ExecArg)
			cmd.ExtraFiles = []*os.File{w, nil}
			cmd.Stdin = nil
			specR, specW, err := os.Pipe()
			g.Expect(err).ToNot(HaveOccurred())
			cmd.ExtraFiles[1] = specR
			g.Expect(cmd.Start()).To(Succeed())
			w.Close()
			specR.Close()
			_, _ = specW.Write(spec)
			specW.Close()
			err = cmd.Wait()
			g.Expect(cmd.ProcessState.ExitCode()).To(Equal(127), "%v", err)
			msg, _ := io.ReadAll(r)
			g.Expect(string(msg)).To(ContainSubstring(tt.want))
		})
	}
}

// TestSandboxWorks: the sandboxed jq and yq of the shipped whitelist do
// their job.
func TestSandboxWorks(t *testing.T) {
	g := NewWithT(t)
	r := newSandboxRig(t, SandboxLandlock, false)
	out, err := r.run(exsv1beta1.Hook{Name: "jq", Command: "jq", Args: []string{"-c", "{n: (.items | length)}"}}, `{"items": [1, 2, 3]}`)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(Equal("{\"n\":3}\n"))
	out, err = r.run(exsv1beta1.Hook{Name: "yq", Command: "yq", Args: []string{"-o", "json", "-I", "0", ".spec"}}, "spec:\n  a: 1\n")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(Equal("{\"a\":1}\n"))
}

func TestCheckSandbox(t *testing.T) {
	g := NewWithT(t)
	g.Expect(LandlockABI()).To(BeNumerically(">=", MinLandlockABI), "this kernel has Landlock")
	g.Expect(CheckSandbox(SandboxLandlock)).To(Succeed())
	g.Expect(testutil.ToFloat64(sandboxEnabled)).To(Equal(1.0))
	g.Expect(CheckSandbox(SandboxNone)).To(Succeed())
	g.Expect(testutil.ToFloat64(sandboxEnabled)).To(Equal(0.0))
	g.Expect(CheckSandbox("seccomp")).To(MatchError(ContainSubstring(`unknown hook sandbox "seccomp"`)))
	// Exported by the registry the sidecar serves.
	n, err := testutil.GatherAndCount(metrics.Registry, "externalsource_hook_sandbox_enabled")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(1))
}

// BenchmarkSandboxOverhead: the cost of the sandbox per hook run, jq on a
// small input: a plain exec (what the executor did before the sandbox),
// the trampoline with rlimits only (--hook-sandbox=none), and Landlock,
// each with the test binary as trampoline (as the sidecar's own binary
// is by default) and with the small hook-sandbox trampoline.
// Run with -benchtime=200x.
func BenchmarkSandboxOverhead(b *testing.B) {
	wl, err := Parse([]byte("commands: [{name: jq, path: /usr/bin/jq, args: ['.*']}]"))
	if err != nil {
		b.Fatal(err)
	}
	h := exsv1beta1.Hook{Name: "b", Command: "jq", Args: []string{"-c", ".a"}}
	small := filepath.Join(b.TempDir(), "hook-sandbox")
	build := exec.Command("go", "build", "-o", small, "./sandbox/trampoline")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	b.Run("plain-exec", func(b *testing.B) {
		for b.Loop() {
			cmd := exec.Command("/usr/bin/jq", "-c", ".a")
			cmd.Stdin = strings.NewReader(`{"a": 1}`)
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name       string
		mode       SandboxMode
		trampoline string
	}{
		{"none-own-binary", SandboxNone, ""},
		{"landlock-own-binary", SandboxLandlock, ""},
		{"none-hook-sandbox", SandboxNone, small},
		{"landlock-hook-sandbox", SandboxLandlock, small},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: b.TempDir(), Sandbox: c.mode, Trampoline: c.trampoline}
			for b.Loop() {
				if err := e.Run(context.Background(), h, strings.NewReader(`{"a": 1}`), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSandboxNprocForANonRootSidecar: the shipped sidecar runs as uid
// 65532, where the kernel holds a run to RLIMIT_NPROC (root is exempt, so
// the suite's other tests prove the watchdog alone): the run's limit is
// the uid's tasks plus its share, and a fork bomb meets EAGAIN from the
// kernel without the watchdog.
func TestSandboxNprocForANonRootSidecar(t *testing.T) {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "hooknproc-")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	g.Expect(os.Chmod(dir, 0o755)).To(Succeed())
	tramp := filepath.Join(dir, "hook-sandbox")
	build := exec.Command("go", "build", "-o", tramp, "./sandbox/trampoline")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	built, err := build.CombinedOutput()
	g.Expect(err).ToNot(HaveOccurred(), "%s", built)
	probe := filepath.Join(dir, "probe")
	b, err := os.ReadFile(buildProbe(t))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(os.WriteFile(probe, b, 0o755)).To(Succeed())
	uid := os.Getuid()
	if uid == 0 {
		uid = 65534 // nobody: the kernel exempts root from RLIMIT_NPROC
	}

	// run runs the probe confined as a run of that uid; with until (a
	// regular expression), it waits only until stderr matches it, then
	// kills the run's group.
	run := func(until string, args ...string) (string, string) {
		work, err := os.MkdirTemp(dir, "run-")
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(os.Chown(work, uid, uid)).To(Succeed())
		spec, err := json.Marshal(sandbox.Spec{Path: probe, Args: args, Dir: work, LandlockABI: LandlockABI(),
			ReadPaths: []string{}, DataBytes: 128 << 20, CPUSeconds: 10, FileSize: 1 << 20, Processes: 16, OpenFiles: 16})
		g.Expect(err).ToNot(HaveOccurred())
		errR, errW, err := os.Pipe()
		g.Expect(err).ToNot(HaveOccurred())
		defer errR.Close()
		specR, specW, err := os.Pipe()
		g.Expect(err).ToNot(HaveOccurred())
		var stdout bytes.Buffer
		stderr := &tailBuffer{max: 1 << 16}
		cmd := exec.Command(tramp, sandbox.ExecArg)
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = work, []string{}, &stdout, stderr
		cmd.ExtraFiles = []*os.File{errW, specR}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if os.Getuid() == 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
		}
		g.Expect(cmd.Start()).To(Succeed())
		errW.Close()
		specR.Close()
		_, _ = specW.Write(spec)
		specW.Close()
		if until == "" {
			_ = cmd.Wait()
		} else {
			g.Eventually(stderr.String, 20*time.Second, 10*time.Millisecond).Should(MatchRegexp(until))
		}
		// A bomb's children outlive its first process: the group goes.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if until != "" {
			_ = cmd.Wait()
		}
		msg, _ := io.ReadAll(errR)
		g.Expect(string(msg)).To(BeEmpty(), "the sandbox was applied")
		return stdout.String(), stderr.String()
	}

	out, _ := run("", "limits")
	var cur, max int
	g.Expect(out).To(ContainSubstring("nproc="))
	_, err = fmt.Sscanf(out[strings.Index(out, "nproc="):], "nproc=%d/%d", &cur, &max)
	g.Expect(err).ToNot(HaveOccurred(), out)
	g.Expect(cur).To(Equal(max))
	g.Expect(cur).To(BeNumerically(">", 16), "the uid's tasks plus the run's share")
	g.Expect(cur).To(BeNumerically("<", 16+200))

	// EAGAIN from the kernel, met by a fork or by the Go runtime of a
	// child starting a thread, whichever comes first.
	_, stderr := run("resource temporarily unavailable|failed to create new OS thread", "fork")
	g.Expect(exceededLimit(nil, SandboxPolicy{Processes: 16}, stderr)).To(Equal("process limit (16)"))
}
