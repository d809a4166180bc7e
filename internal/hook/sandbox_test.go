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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
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
	datagrams   atomic.Int64 // UDP datagrams that got through
	runs        string       // the runs' directory
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
	return newSandboxRigStarting(t, mode, permissive, "")
}

// newSandboxRigStarting is newSandboxRig whose executor starts runs as
// start says ("" is the default).
func newSandboxRigStarting(t testing.TB, mode SandboxMode, permissive bool, start StartMode) *sandboxRig {
	t.Helper()
	if mode != SandboxNone {
		requireSandboxKernel(t)
	}
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
		EnvMarker:     fmt.Sprintf("env-marker-%d", time.Now().UnixNano()),
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
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { udp.Close() })
	r.env.UDPAddr = udp.LocalAddr().String()
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			r.datagrams.Add(1)
		}
	}()
	r.env.SidecarSocket = r.socket
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

	r.runs = filepath.Join(dir, "runs")
	srv := &Server{Socket: r.socket, Log: ctrl.Log,
		Executor: &Executor{Whitelist: r.store.Get, MaxOutput: 1 << 20, TempDir: r.runs, Sandbox: mode, StartMode: start}}
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
	// Held far longer than any test runs (cancelled at its end): a victim
	// gone would make the rows aimed at it fail for the wrong reason.
	marker := fmt.Sprint(600 + time.Now().Nanosecond()%1000)
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
	type variant struct {
		start      StartMode
		permissive bool
	}
	// Both ways of starting a run, with the shipped patterns and with
	// every pattern widened; the trampoline once, with the wider.
	for _, v := range []variant{{StartDirect, false}, {StartDirect, true}, {StartTrampoline, true}} {
		permissive := v.permissive
		name := string(v.start) + ", shipped whitelist"
		if permissive {
			name = string(v.start) + ", patterns widened to .*"
		}
		t.Run(name, func(t *testing.T) {
			r := newSandboxRigStarting(t, SandboxLandlock, permissive, v.start)
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
					if a.Survivor != "" {
						g.Expect(proctest.ProcessesWith(a.Survivor)).To(BeEmpty(), "nothing outlived the run")
					}
				})
			}
			g := NewWithT(t)
			g.Expect(r.accepted.Load()).To(BeZero(), "no connection got through")
			g.Expect(r.datagrams.Load()).To(BeZero(), "no datagram got through")
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
			if strings.Contains(a.Name, "another run") || strings.Contains(a.Name, "another tenant") {
				env := r.env
				env.VictimPID = r.startVictim(t)
				env.VictimDir = victimDir(t, env.VictimPID)
				for _, b := range sandboxtest.Attacks(env) {
					if b.Name == a.Name {
						a = b
					}
				}
			}
			switch a.Label {
			case "UDP", "hook.sock", "setsid", "another run":
				// The rows of the seccomp layer: each gets through.
				through, _ := r.attempt(&Executor{Whitelist: r.store.Get, TempDir: r.runs, Sandbox: SandboxNone}, a)
				g.Expect(through).ToNot(BeEmpty())
				return
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

// TestSandboxNetworkAllowed: `network: true` lifts the TCP rule and lets
// IP sockets be made (and only for that entry); Unix sockets stay denied.
func TestSandboxNetworkAllowed(t *testing.T) {
	g := NewWithT(t)
	r := newSandboxRig(t, SandboxLandlock, false)
	out, err := r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: []string{"connect", r.env.TCPAddr}}, "")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(Equal("connected\n"))
	g.Eventually(r.accepted.Load).Should(BeNumerically("==", 1))
	out, err = r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: []string{"udp", r.env.UDPAddr}}, "")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(Equal("sent\n"))
	g.Eventually(r.datagrams.Load).Should(BeNumerically(">", 0))
	// Unix sockets stay closed to it: the sidecar's own, abstract ones.
	for _, args := range [][]string{{"unix", r.socket}, {"abstract", r.env.AbstractSocket}} {
		_, err = r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: args}, "")
		g.Expect(errText(err)).To(ContainSubstring("permission denied"), "%v", args)
	}
	// The filesystem rules still hold for it.
	_, err = r.run(exsv1beta1.Hook{Name: "net", Command: "probe-net", Args: []string{"read", r.env.TokenPath}}, "")
	g.Expect(errText(err)).To(ContainSubstring("permission denied"))
}

// TestSandboxSignalsWithinTheRun: the seccomp filter holds signals to the
// run, not within it: a run signals its own process group (kill(0)) and
// itself, and Go programs (the probe, yq) preempt their threads with
// tgkill on their own pid.
func TestSandboxSignalsWithinTheRun(t *testing.T) {
	g := NewWithT(t)
	r := newSandboxRig(t, SandboxLandlock, false)
	// kill(0), its own pid and its group by number: the filter holds the
	// last two by value, written in by the run's child (a direct start)
	// or known to the trampoline.
	for _, to := range []string{"0", "self", "group"} {
		out, err := r.run(exsv1beta1.Hook{Name: "own", Command: "probe", Args: []string{"signal", to}}, "")
		g.Expect(err).ToNot(HaveOccurred(), to)
		g.Expect(out).To(Equal("signalled\n"), to)
	}
	// A spinning Go program is preempted by signals to its own threads;
	// it is stopped at its CPU limit, not by a refused signal.
	_, err := r.run(exsv1beta1.Hook{Name: "spin", Command: "probe", Args: []string{"spin"}, Timeout: &metav1.Duration{Duration: time.Minute}}, "")
	g.Expect(err).To(MatchError(ContainSubstring("exceeded its cpu limit (1s)")))
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
		{name: "jq memory bomb", hook: exsv1beta1.Hook{Name: "bomb", Command: "jq", Args: []string{"-n", "[range(100000000)]"}}, want: "exceeded its memory limit (128Mi)"},
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

// TestTrampolineIsStrict: a trampoline, or a direct start, asked for less
// than the sandbox needs, or for a path it cannot grant, refuses to exec
// the command and says why (on the trampoline's error pipe; in Start's
// error); nothing runs.
func TestTrampolineIsStrict(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "not-executable")
	NewWithT(t).Expect(os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644)).To(Succeed())
	tests := []struct {
		name string
		spec sandbox.Spec
		want string
	}{
		{name: "binary missing", spec: sandbox.Spec{Path: "/nonexistent/jq", LandlockABI: LandlockABI(), Seccomp: true}, want: "no such file or directory"},
		// Confined, then refused by execve: the child's own report.
		{name: "binary not executable", spec: sandbox.Spec{Path: notExecutable, LandlockABI: LandlockABI(), Seccomp: true}, want: "exec " + notExecutable + ": permission denied"},
	}
	if LandlockABI() < 10 {
		// ABI 10 handles UDP: a kernel before it cannot enforce the
		// ruleset, and the run fails rather than run with less.
		tests = append(tests, struct {
			name string
			spec sandbox.Spec
			want string
		}{name: "ABI newer than the kernel's", spec: sandbox.Spec{Path: "/usr/bin/jq", LandlockABI: 10}, want: "landlock: "})
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

			// The direct start: the child's report, and no child left.
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			g.Expect(err).ToNot(HaveOccurred())
			defer null.Close()
			pid, _, err := sandbox.Start(&tt.spec, [3]*os.File{null, null, null}, nil)
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(pid).To(BeZero())
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

// TestCheckSandbox: what the sidecar says about the node, at the kernel's
// ABI, forced lower and with the sandbox off: every protection in the
// gauge, and the refusal only where a protection is missing. An unknown
// mode is the only error: nothing about the kernel stops the sidecar.
func TestCheckSandbox(t *testing.T) {
	requireSandboxKernel(t)
	tests := []struct {
		name    string
		mode    SandboxMode
		maxABI  int
		want    map[string]float64
		enabled float64
		refusal string
	}{
		{name: "kernel's ABI", mode: SandboxLandlock, maxABI: -1, enabled: 1,
			want: map[string]float64{"files": 1, "network": 1, "unix": 1, "signals": 1, "syscalls": 1, "limits": 1}},
		{name: "ABI 1", mode: SandboxLandlock, maxABI: 1, enabled: 1,
			want: map[string]float64{"files": 1, "network": 1, "unix": 1, "signals": 1, "syscalls": 1, "limits": 1}},
		{name: "no Landlock", mode: SandboxLandlock, maxABI: 0, enabled: 1,
			want:    map[string]float64{"files": 0, "network": 1, "unix": 1, "signals": 1, "syscalls": 1, "limits": 1},
			refusal: "missing protection files (files needs Landlock ABI 1 (Linux 5.13+ with landlock in the lsm= list); the node's Landlock ABI is"},
		{name: "none", mode: SandboxNone, maxABI: -1, enabled: 0,
			want: map[string]float64{"files": 0, "network": 0, "unix": 0, "signals": 0, "syscalls": 0, "limits": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			st, err := CheckSandbox(tt.mode, tt.maxABI)
			g.Expect(err).ToNot(HaveOccurred())
			for p, v := range tt.want {
				g.Expect(testutil.ToFloat64(sandboxProtection.WithLabelValues(p))).To(Equal(v), p)
			}
			g.Expect(testutil.ToFloat64(sandboxEnabled)).To(Equal(tt.enabled))
			if tt.refusal == "" {
				g.Expect(st.Refusal()).To(BeEmpty())
			} else {
				g.Expect(st.Refusal()).To(ContainSubstring(tt.refusal))
			}
		})
	}
	g := NewWithT(t)
	_, err := CheckSandbox("seccomp", -1)
	g.Expect(err).To(MatchError(ContainSubstring(`unknown hook sandbox "seccomp"`)))
	// Exported by the registry the sidecar serves.
	n, err := testutil.GatherAndCount(metrics.Registry, "externalsource_hook_sandbox_protection")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(6))
}

// BenchmarkSandboxOverhead: the cost of the sandbox per hook run, jq on a
// small input: a plain exec (what the executor did before the sandbox),
// the trampoline with rlimits only (--hook-sandbox=none), and Landlock
// with the seccomp filter, each with the test binary as trampoline (as
// the sidecar's own binary is when no --hook-sandbox-trampoline is given),
// with the small hook-sandbox trampoline, and started directly (the
// default, no trampoline); and Landlock without the filter, whose
// difference to Landlock with it is the filter's cost.
// Run with -benchtime=200x.
func BenchmarkSandboxOverhead(b *testing.B) {
	wl, err := Parse([]byte("commands: [{name: jq, path: /usr/bin/jq, args: ['.*']}]"))
	if err != nil {
		b.Fatal(err)
	}
	h := exsv1beta1.Hook{Name: "b", Command: "jq", Args: []string{"-c", ".a"}}
	small := buildImageTrampoline(b)
	b.Run("plain-exec", func(b *testing.B) {
		defer reportChildCPU(b)()
		for b.Loop() {
			cmd := exec.Command("/usr/bin/jq", "-c", ".a")
			cmd.Stdin = strings.NewReader(`{"a": 1}`)
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	withoutSeccomp, err := NodeSandbox(SandboxLandlock, -1)
	if err != nil {
		b.Fatal(err)
	}
	withoutSeccomp.Seccomp = false
	for _, c := range []struct {
		name       string
		mode       SandboxMode
		trampoline string
		node       *SandboxStatus
	}{
		{"none-own-binary", SandboxNone, "", nil},
		{"landlock-own-binary", SandboxLandlock, "", nil},
		{"none-hook-sandbox", SandboxNone, small, nil},
		{"landlock-without-seccomp-hook-sandbox", SandboxLandlock, small, &withoutSeccomp},
		{"landlock-hook-sandbox", SandboxLandlock, small, nil},
		{"none-direct", SandboxNone, "", nil},
		{"landlock-direct", SandboxLandlock, "", nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			start := StartTrampoline
			if strings.HasSuffix(c.name, "-direct") {
				start = StartDirect
			}
			e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: b.TempDir(), Sandbox: c.mode, StartMode: start,
				Trampoline: c.trampoline, Node: c.node}
			defer reportChildCPU(b)()
			for b.Loop() {
				if err := e.Run(context.Background(), h, strings.NewReader(`{"a": 1}`), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTrampolineCPU: the CPU a run's confinement costs, apart from
// its command's: /bin/true (whose own cost is small and steady, unlike
// jq's) exec'd plain and through the executor with Landlock and the
// seccomp filter, started directly (the default) and through the
// hook-sandbox trampoline. A row's child-cpu-ms/op less the plain exec's
// is what confining a run costs its processes. Run with -benchtime=1000x
// -count=3.
func BenchmarkTrampolineCPU(b *testing.B) {
	wl, err := Parse([]byte("commands: [{name: true, path: /bin/true, args: []}]"))
	if err != nil {
		b.Fatal(err)
	}
	small := buildImageTrampoline(b)
	b.Run("plain-exec", func(b *testing.B) {
		defer reportChildCPU(b)()
		for b.Loop() {
			if err := exec.Command("/bin/true").Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name  string
		start StartMode
	}{
		{"landlock-direct", StartDirect},
		{"landlock-hook-sandbox", StartTrampoline},
	} {
		b.Run(c.name, func(b *testing.B) {
			e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: b.TempDir(), Sandbox: SandboxLandlock,
				StartMode: c.start, Trampoline: small}
			h := exsv1beta1.Hook{Name: "b", Command: "true"}
			defer reportChildCPU(b)()
			for b.Loop() {
				if err := e.Run(context.Background(), h, strings.NewReader(""), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// buildImageTrampoline builds the hook-sandbox trampoline as the image
// does (Dockerfile.hook-executor) into a temporary directory.
func buildImageTrampoline(b *testing.B) string {
	small := filepath.Join(b.TempDir(), "hook-sandbox")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", small, "./sandbox/trampoline")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	return small
}

// reportChildCPU reports, when the returned func runs, the CPU its
// benchmark's children used per op (user and system, as the kernel
// accounts the processes it reaped: trampoline and command): on a
// CPU-bound node what a run costs the others is its CPU, not its wall
// time.
func reportChildCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before := cpu()
	return func() {
		b.ReportMetric(float64(cpu()-before)/float64(time.Millisecond)/float64(b.N), "child-cpu-ms/op")
	}
}

// BenchmarkSeccompPerSyscall: what the filter adds to each system call
// of a run: the probe makes 1,000,000 getppid calls (which pass the whole
// filter, as most calls do) with Landlock alone and with the filter; the
// difference of the two rows divided by 1,000,000 is the cost per call.
// Run with -benchtime=20x.
func BenchmarkSeccompPerSyscall(b *testing.B) {
	probe := buildProbe(b)
	wl, err := Parse([]byte(fmt.Sprintf("commands: [{name: probe, path: %s, args: ['.*'], readPaths: []}]", probe)))
	if err != nil {
		b.Fatal(err)
	}
	h := exsv1beta1.Hook{Name: "b", Command: "probe", Args: []string{"syscalls", "1000000"}}
	for _, seccomp := range []bool{false, true} {
		node, err := NodeSandbox(SandboxLandlock, -1)
		if err != nil {
			b.Fatal(err)
		}
		node.Seccomp = seccomp
		b.Run(fmt.Sprintf("seccomp=%t", seccomp), func(b *testing.B) {
			e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: b.TempDir(), Node: &node}
			for b.Loop() {
				if err := e.Run(context.Background(), h, strings.NewReader(""), io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nprocRig runs the trampoline directly (without the sidecar's watchdog)
// as a non-root uid, from a directory that uid can read: what the kernel
// alone holds a run to.
type nprocRig struct {
	dir, tramp, probe, yq string
	uid                   int
}

func newNprocRig(t *testing.T) *nprocRig {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "hooknproc-")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	g.Expect(os.Chmod(dir, 0o755)).To(Succeed())
	r := &nprocRig{dir: dir, tramp: filepath.Join(dir, "hook-sandbox"), probe: filepath.Join(dir, "probe"), yq: filepath.Join(dir, "yq"), uid: os.Getuid()}
	build := exec.Command("go", "build", "-o", r.tramp, "./sandbox/trampoline")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	built, err := build.CombinedOutput()
	g.Expect(err).ToNot(HaveOccurred(), "%s", built)
	yq, err := sandboxtest.YQ()
	g.Expect(err).ToNot(HaveOccurred())
	for src, dst := range map[string]string{buildProbe(t): r.probe, yq: r.yq} {
		b, err := os.ReadFile(src)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(os.WriteFile(dst, b, 0o755)).To(Succeed())
	}
	if r.uid == 0 {
		r.uid = 65532 // the shipped sidecar's: the kernel exempts root from RLIMIT_NPROC
	}
	return r
}

// run runs path confined as a run of the rig's uid and returns its
// output and stderr; hidden runs it in a PID namespace of its own with
// its own /proc, as the sidecar container is, where the uid's tasks of
// other pods are not to be seen.
func (r *nprocRig) run(t *testing.T, hidden bool, stdin, path string, args ...string) (string, string, error) {
	g := NewWithT(t)
	work, err := os.MkdirTemp(r.dir, "run-")
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(os.Chown(work, r.uid, r.uid)).To(Succeed())
	spec, err := json.Marshal(sandbox.Spec{Path: path, Args: args, Dir: work, LandlockABI: LandlockABI(), Seccomp: true,
		ReadPaths: []string{}, DataBytes: 512 << 20, CPUSeconds: 10, FileSize: 1 << 20, Processes: 32, OpenFiles: 64})
	g.Expect(err).ToNot(HaveOccurred())
	errR, errW, err := os.Pipe()
	g.Expect(err).ToNot(HaveOccurred())
	defer errR.Close()
	specR, specW, err := os.Pipe()
	g.Expect(err).ToNot(HaveOccurred())
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(r.tramp, sandbox.ExecArg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if hidden {
		cmd = exec.Command("/proc/self/exe", hiddenExecArg, strconv.Itoa(r.uid), r.tramp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS}
	} else if os.Getuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.uid)}
	}
	cmd.Dir, cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = work, []string{}, strings.NewReader(stdin), &stdout, &stderr
	cmd.ExtraFiles = []*os.File{errW, specR}
	g.Expect(cmd.Start()).To(Succeed())
	errW.Close()
	specR.Close()
	_, _ = specW.Write(spec)
	specW.Close()
	err = cmd.Wait()
	msg, _ := io.ReadAll(errR)
	g.Expect(string(msg)).To(BeEmpty(), "the sandbox was applied")
	return stdout.String(), stderr.String(), err
}

// TestSandboxNprocForANonRootSidecar: the shipped sidecar runs as a
// non-root uid, where the kernel holds a run to RLIMIT_NPROC (root is
// exempt). It is a uid-wide backstop only, the uid's tasks plus
// sandbox.NprocBackstop, never the run's own limit, which is the
// watchdog's count of its process group (TestSandboxLimits).
func TestSandboxNprocForANonRootSidecar(t *testing.T) {
	g := NewWithT(t)
	r := newNprocRig(t)
	out, _, err := r.run(t, false, "", r.probe, "limits")
	g.Expect(err).ToNot(HaveOccurred())
	var cur, max int
	g.Expect(out).To(ContainSubstring("nproc="))
	_, err = fmt.Sscanf(out[strings.Index(out, "nproc="):], "nproc=%d/%d", &cur, &max)
	g.Expect(err).ToNot(HaveOccurred(), out)
	g.Expect(cur).To(Equal(max))
	g.Expect(cur).To(BeNumerically(">", sandbox.NprocBackstop), "the uid's tasks plus the backstop")
	g.Expect(cur).To(BeNumerically("<", sandbox.NprocBackstop+200))
}

// TestSandboxNprocHiddenTasks is issue 23's attack: a process of the
// sidecar's uid in another PID namespace (another pod running as 65532)
// holds 40 threads, which the kernel counts against RLIMIT_NPROC but the
// sidecar, in a PID namespace of its own, cannot see. No yq run of any
// tenant may fail for it.
func TestSandboxNprocHiddenTasks(t *testing.T) {
	g := NewWithT(t)
	if os.Getuid() != 0 {
		t.Fatal("TestSandboxNprocHiddenTasks needs root: it makes PID namespaces and processes of another uid")
	}
	r := newNprocRig(t)
	holder := exec.Command(r.probe, "threads", "40", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Credential: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.uid)}}
	out, err := holder.StdoutPipe()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(holder.Start()).To(Succeed())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	line := make([]byte, 8)
	_, err = io.ReadFull(out, line)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(line)).To(Equal("holding\n"))
	g.Eventually(func() (string, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", holder.Process.Pid))
		return string(b), err
	}, 10*time.Second, 10*time.Millisecond).Should(MatchRegexp(`Threads:\s+4\d`), "the hidden tasks are there")

	failed := 0
	for i := 0; i < 10; i++ {
		out, stderr, err := r.run(t, true, "a: 1\n", r.yq, "-o", "json", "-I", "0", ".a")
		if err != nil || out != "1\n" {
			failed++
			t.Logf("run %d: %v: %s", i, err, stderr)
		}
	}
	g.Expect(failed).To(BeZero(), "yq runs failed for tasks of the uid the sidecar cannot see")
}

// TestSandboxTenantsCannotExhaustEachOther: two tenants at once on a
// non-root sidecar, one running fork bombs, the other yq. The bombs are
// killed for their own process limit (the watchdog's count of each run's
// group) and every yq run of the victim succeeds: RLIMIT_NPROC, counted
// per uid for all runs, is a backstop far above what the bombs reach.
func TestSandboxTenantsCannotExhaustEachOther(t *testing.T) {
	g := NewWithT(t)
	if os.Getuid() != 0 {
		t.Fatal("TestSandboxTenantsCannotExhaustEachOther needs root: it runs hooks as another uid, as the shipped sidecar")
	}
	r := newNprocRig(t)
	runs := filepath.Join(r.dir, "runs")
	g.Expect(os.Mkdir(runs, 0o755)).To(Succeed())
	wl, err := Parse([]byte(fmt.Sprintf(`commands:
  - {name: probe, path: %s, args: ['.*'], readPaths: [], limits: {memory: 128Mi, processes: 16}}
  - {name: yq, path: %s, args: ['.*'], readPaths: [], limits: {memory: 256Mi, processes: 32}}
`, r.probe, r.yq)))
	g.Expect(err).ToNot(HaveOccurred())
	e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: runs, Trampoline: r.tramp,
		runAs: &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.uid)}}

	// Four bombs at a time, again and again, while the victim runs.
	var wg sync.WaitGroup
	done := make(chan struct{})
	var mu sync.Mutex
	var bombErrs []error
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				err := e.Run(context.Background(), exsv1beta1.Hook{Name: "bomb", Command: "probe", Args: []string{"fork"},
					Timeout: &metav1.Duration{Duration: 30 * time.Second}}, strings.NewReader(""), io.Discard)
				mu.Lock()
				bombErrs = append(bombErrs, err)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	failed := 0
	for i := 0; i < 10; i++ {
		var out bytes.Buffer
		err := e.Run(context.Background(), exsv1beta1.Hook{Name: "victim", Command: "yq", Args: []string{"-o", "json", "-I", "0", ".a"}},
			strings.NewReader("a: 1\n"), &out)
		if err != nil || out.String() != "1\n" {
			failed++
			t.Logf("victim run %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	g.Expect(failed).To(BeZero(), "the victim's runs succeed")
	g.Expect(len(bombErrs)).To(BeNumerically(">=", 4))
	for _, err := range bombErrs {
		// The watchdog kills a bomb for its process count, or for the
		// memory (or CPU) its processes use together if that comes first.
		g.Expect(err).To(MatchError(ContainSubstring(`hook "bomb" failed: exceeded its `)))
	}
	g.Eventually(func() []string { return proctest.ProcessesWith(r.probe + " ") }, 30*time.Second).Should(BeEmpty())
}

// TestExecutorRefusesWhatItCannotConfine: on a node without Landlock
// (forced: --hook-sandbox-max-landlock-abi=0) a run is refused before
// anything starts, with a failure (retried by the controller, not a
// whitelist refusal) naming the missing protection and the node's ABI;
// with --hook-sandbox=none the same hook runs.
func TestExecutorRefusesWhatItCannotConfine(t *testing.T) {
	g := NewWithT(t)
	wl, err := Parse([]byte("commands: [{name: jq, path: /usr/bin/jq, args: ['.*']}]"))
	g.Expect(err).ToNot(HaveOccurred())
	noLandlock, err := NodeSandbox(SandboxLandlock, 0)
	g.Expect(err).ToNot(HaveOccurred())
	h := exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"-c", ".a"}}

	e := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: t.TempDir(), Node: &noLandlock}
	var out bytes.Buffer
	err = e.Run(context.Background(), h, strings.NewReader(`{"a": 1}`), &out)
	var ee *ExecError
	g.Expect(errors.As(err, &ee)).To(BeTrue(), "got %v", err)
	g.Expect(IsRejected(err)).To(BeFalse())
	g.Expect(ee.Reason).To(ContainSubstring("sandbox: this node cannot confine hook runs as --hook-sandbox=landlock requires: missing protection files"))
	g.Expect(ee.Reason).To(ContainSubstring(fmt.Sprintf("the node's Landlock ABI is %d, capped at 0 by --hook-sandbox-max-landlock-abi", LandlockABI())))
	g.Expect(out.String()).To(BeEmpty())
	entries, err := os.ReadDir(e.TempDir)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(entries).To(BeEmpty(), "no run directory was made")

	none := &Executor{Whitelist: func() *Whitelist { return wl }, TempDir: t.TempDir(), Sandbox: SandboxNone}
	out.Reset()
	g.Expect(none.Run(context.Background(), h, strings.NewReader(`{"a": 1}`), &out)).To(Succeed())
	g.Expect(out.String()).To(Equal("1\n"))
}

// TestDirectStartStdioBelow3: a stdio source that is itself one of the
// descriptors 0-2 (a sidecar started with them closed gets its pipes
// there) still reaches the command where it belongs: the child's dup3
// onto 0-2, in order, must not replace it first. Here the command's stdout
// is a pipe placed at descriptor 0, which the stdin's dup3 would replace.
func TestDirectStartStdioBelow3(t *testing.T) {
	g := NewWithT(t)
	r, w, err := os.Pipe()
	g.Expect(err).ToNot(HaveOccurred())
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	g.Expect(err).ToNot(HaveOccurred())
	defer null.Close()
	// From here to the restore below nothing may fail: descriptor 0 is
	// the pipe.
	saved, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	g.Expect(err).ToNot(HaveOccurred())
	dupErr := unix.Dup3(int(w.Fd()), 0, unix.O_CLOEXEC)
	w.Close()
	low := os.NewFile(0, "stdout-at-0")
	pid, _, startErr := sandbox.Start(&sandbox.Spec{Path: "/bin/echo", Args: []string{"wired"}, Dir: t.TempDir(),
		DataBytes: 1 << 30, CPUSeconds: 10, FileSize: 1 << 20, Processes: 16, OpenFiles: 16}, [3]*os.File{null, low, null}, nil)
	// The test's own stdin back before anything is asserted.
	low.Close()
	g.Expect(unix.Dup3(saved, 0, 0)).To(Succeed())
	unix.Close(saved)
	g.Expect(dupErr).ToNot(HaveOccurred())
	g.Expect(startErr).ToNot(HaveOccurred())
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, 0, nil)
	g.Expect(err).ToNot(HaveOccurred())
	out, err := io.ReadAll(r)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(out)).To(Equal("wired\n"))
}
