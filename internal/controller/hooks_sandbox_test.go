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

package controller

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/hook/sandboxtest"
)

// TestHookSandboxThroughTheController runs the escape table of
// internal/hook/sandboxtest as pre- and post-request hooks of real
// ExternalSources, through the real sidecar process of the suite: every
// attempt ends in HookFailed carrying the kernel's refusal, and nothing
// secret reaches the conditions. The bombs are killed with a message naming
// the limit, and the sidecar serves the next object.
func TestHookSandboxThroughTheController(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	yq, err := sandboxtest.YQ()
	g.Expect(err).ToNot(HaveOccurred())
	probe, err := sandboxtest.BuildProbe(testCtx, dir)
	g.Expect(err).ToNot(HaveOccurred())

	// The suite's whitelist (jq, sh) plus the shipped yq entry and the
	// probe; restored afterwards.
	shipped, err := sandboxtest.ShippedWhitelist(yq, "")
	g.Expect(err).ToNot(HaveOccurred())
	yqEntry := shipped[strings.Index(shipped, "  - name: yq"):]
	g.Expect(writeWhitelist(suiteWhitelist + yqEntry + sandboxtest.ProbeEntries(probe))).To(Succeed())
	t.Cleanup(func() { _ = writeWhitelist(suiteWhitelist) })
	// Both the controller's copy and the sidecar's take the change.
	sidecar := hook.NewClient(filepath.Join(filepath.Dir(controllerBin), "hook.sock"))
	g.Eventually(func() error {
		if _, err := testWhitelist.Get().Check(exsv1beta1.Hook{Name: "p", Command: "probe"}); err != nil {
			return err
		}
		return sidecar.Run(testCtx, exsv1beta1.Hook{Name: "p", Command: "probe", Args: []string{"limits"}}, strings.NewReader(""), io.Discard)
	}, timeout).Should(Succeed())

	secret := fmt.Sprintf("tok-%d", time.Now().UnixNano())
	env := sandboxtest.Env{
		WhitelistPath: testWhitelistPath,
		TokenPath:     filepath.Join(dir, "token"),
		Secret:        secret,
		OutsideDir:    t.TempDir(),
		ModuleDir:     t.TempDir(),
		VictimSecret:  fmt.Sprintf("victim-%d", time.Now().UnixNano()),
		SidecarPID:    sidecarPID(g, filepath.Join(filepath.Dir(controllerBin), "hook.sock")),
		EnvMarker:     fmt.Sprintf("env-marker-%d", time.Now().UnixNano()),
	}
	g.Expect(os.WriteFile(env.TokenPath, []byte(`"`+secret+`"`), 0o644)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(env.ModuleDir, "secret.b64"), []byte(base64.StdEncoding.EncodeToString([]byte(secret))), 0o644)).To(Succeed())
	var accepted atomic.Int64
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { tcp.Close() })
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	env.TCPAddr = tcp.Addr().String()
	env.AbstractSocket = fmt.Sprintf("exs-ctrl-sandbox-%d", time.Now().UnixNano())
	env.SidecarSocket = filepath.Join(filepath.Dir(controllerBin), "hook.sock")
	var datagrams atomic.Int64
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := udp.ReadFrom(buf); err != nil {
				return
			}
			datagrams.Add(1)
		}
	}()
	env.UDPAddr = udp.LocalAddr().String()

	// Another run, beside the attacks, holding its input unread.
	vctx, vcancel := context.WithCancel(testCtx)
	vdone := make(chan struct{})
	go func() {
		defer close(vdone)
		_ = sidecar.Run(vctx, exsv1beta1.Hook{Name: "victim", Command: "probe", Args: []string{"hold", "600"}, Timeout: &metav1.Duration{Duration: 10 * time.Minute}},
			strings.NewReader(env.VictimSecret), io.Discard)
	}()
	t.Cleanup(func() { vcancel(); <-vdone })
	g.Eventually(func() int { env.VictimPID = pidWithCmdline(probe + " hold 600"); return env.VictimPID }, timeout).ShouldNot(BeZero())
	env.VictimDir, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", env.VictimPID))
	g.Expect(err).ToNot(HaveOccurred())
	g.Eventually(filepath.Join(env.VictimDir, "mine"), timeout).Should(BeAnExistingFile())

	n := 0
	for _, a := range sandboxtest.Attacks(env) {
		// Rows the suite's whitelist refuses are the whitelist's business
		// (TestHooksRejectedByTheWhitelist); here: what runs.
		if a.Hook.Command == "jq" || a.ShippedRejects || strings.Contains(a.Name, "abstract") || strings.Contains(a.Name, "signals") {
			continue
		}
		for _, stage := range []string{"pre", "post"} {
			n++
			t.Run(stage+"/"+a.Name, func(t *testing.T) {
				g := NewWithT(t)
				up := newUpstream(t, a.Stdin)
				attack := a.Hook
				var obj *exsv1beta1.ExternalSource
				if stage == "post" {
					obj = withHooks(newSource(ns, fmt.Sprintf("post-%d", n), up.URL), nil, []exsv1beta1.Hook{attack})
				} else {
					// A pre-request hook reads the request: a jq hook first
					// adds the attack's input to it.
					var pre []exsv1beta1.Hook
					if a.Stdin != "" {
						pre = append(pre, jq("input", "-c", ". + "+a.Stdin))
					}
					obj = withHooks(newSource(ns, fmt.Sprintf("pre-%d", n), up.URL), append(pre, attack), nil)
				}
				g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
				cur := waitHookFailed(t, obj, false, `hook "attack" failed`)
				msg := conditions.GetMessage(cur, exsv1beta1.HookFailedCondition)
				g.Expect(msg).To(Or(ContainSubstring("ermission denied"), ContainSubstring("operation not permitted")), "the kernel's refusal")
				for _, s := range a.Never {
					g.Expect(msg).ToNot(ContainSubstring(s))
					g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).ToNot(ContainSubstring(s))
				}
				if a.Created != "" {
					g.Expect(a.Created).ToNot(BeAnExistingFile())
				}
				if stage == "pre" {
					g.Expect(up.requests.Load()).To(BeZero(), "the request was never sent")
				}
			})
		}
	}
	// Pinned: 19 rows of the table run here, each as a pre- and a
	// post-request hook. A row added to sandboxtest.Attacks, or a change of
	// the filter above, changes this count on purpose.
	g.Expect(n).To(Equal(38), "the rows of the table that ran")
	g.Expect(accepted.Load()).To(BeZero())
	g.Expect(datagrams.Load()).To(BeZero())

	bombs := []struct {
		name string
		hook exsv1beta1.Hook
		want string
	}{
		{"memory", jq("attack", "-n", "[range(100000000)]"), "exceeded its memory limit (512Mi)"},
		{"fork", exsv1beta1.Hook{Name: "attack", Command: "probe", Args: []string{"fork"}}, "exceeded its process limit (16)"},
	}
	for _, b := range bombs {
		t.Run("bomb/"+b.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newUpstream(t, `{"a": 1}`)
			// Far off, so that a loaded machine cannot turn a limit into a
			// timeout.
			b.hook.Timeout = &metav1.Duration{Duration: 30 * time.Second}
			obj := withHooks(newSource(ns, "bomb-"+b.name, up.URL), nil, []exsv1beta1.Hook{b.hook})
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			waitHookFailed(t, obj, false, `hook "attack" failed`, b.want)
			// The sidecar survived: the next object is served.
			next := withHooks(newSource(ns, "after-"+b.name, up.URL), nil, []exsv1beta1.Hook{jq("ok", "-c", ".a")})
			g.Expect(k8sClient.Create(testCtx, next)).To(Succeed())
			waitReady(t, next)
			g.Expect(archived(g, next)).To(Equal("1\n"))
		})
	}
}

// pidWithCmdline finds the process whose command line is cmdline.
// sidecarPID is the pid of the suite's hook-executor process serving
// socket (a process of its own, not the test's), for the rows that signal
// the sidecar.
func sidecarPID(g Gomega, socket string) int {
	entries, err := os.ReadDir("/proc")
	g.Expect(err).ToNot(HaveOccurred())
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[0] == controllerBin && args[1] == "hook-executor" && args[2] == "--socket="+socket {
			var pid int
			_, _ = fmt.Sscan(e.Name(), &pid)
			return pid
		}
	}
	g.Expect("").ToNot(BeEmpty(), "no hook-executor process serves %s", socket)
	return 0
}

func pidWithCmdline(cmdline string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
			var pid int
			_, _ = fmt.Sscan(e.Name(), &pid)
			return pid
		}
	}
	return 0
}

// TestHooksOnANodeWithoutLandlock: a sidecar on a node without Landlock
// (forced with --hook-sandbox-max-landlock-abi=0) starts, serves and says
// why at start-up; a source with hooks gets HookFailed naming the missing
// protection and the node's ABI, retried and not Stalled; a source without
// hooks is Ready and its artifact downloads. With --hook-sandbox=none the
// hook runs, and the sidecar's gauges say 0 but for limits.
func TestHooksOnANodeWithoutLandlock(t *testing.T) {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "exs-nolandlock-") // short: Unix socket paths are limited
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket, logPath := filepath.Join(dir, "hook.sock"), filepath.Join(dir, "sidecar.log")
	stop, err := startSidecar(socket, logPath, "--hook-sandbox-max-landlock-abi=0")
	g.Expect(err).ToNot(HaveOccurred(), "the sidecar starts")
	t.Cleanup(stop)
	logged, err := os.ReadFile(logPath)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(logged)).To(ContainSubstring("WARNING: hook sandbox: this node cannot confine hook runs"))

	ns := newNamespace(t)
	up := newUpstream(t, `{"a": 1}`)
	r, _ := isolatedReconciler(hook.Instrumented(hook.Checked(testWhitelist.Get, hook.NewClient(socket))), HookLimits{})
	withHook := withHooks(newSource(ns, "with-hooks", up.URL), nil, []exsv1beta1.Hook{jq("ok", "-c", ".a")})
	noHook := newSource(ns, "without-hooks", up.URL)
	for _, obj := range []*exsv1beta1.ExternalSource{withHook, noHook} {
		obj.Labels = map[string]string{isolatedLabel: "nolandlock-" + ns} // no manager reconciles it
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	}

	g.Expect(reconcileErr(r, withHook)).To(HaveOccurred(), "retried")
	cur := getSource(g, withHook)
	g.Expect(conditions.IsStalled(cur)).To(BeFalse())
	g.Expect(conditions.GetReason(cur, exsv1beta1.HookFailedCondition)).To(Equal(exsv1beta1.HookFailedReason))
	msg := conditions.GetMessage(cur, exsv1beta1.HookFailedCondition)
	g.Expect(msg).To(ContainSubstring("missing protection files"))
	g.Expect(msg).To(MatchRegexp(`the node's Landlock ABI is \d+, capped at 0 by --hook-sandbox-max-landlock-abi`))

	g.Expect(reconcileErr(r, noHook)).To(Succeed())
	g.Expect(conditions.IsReady(getSource(g, noHook))).To(BeTrue())
	g.Expect(archived(g, noHook)).To(Equal(`{"a": 1}`))

	// The explicit opt-out runs hooks, and says it has no protection.
	noneSocket := filepath.Join(dir, "none.sock")
	noneLog := filepath.Join(dir, "none.log")
	stopNone, err := startSidecar(noneSocket, noneLog, "--hook-sandbox=none", "--metrics-addr=127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(stopNone)
	r.HookRunner = hook.Instrumented(hook.Checked(testWhitelist.Get, hook.NewClient(noneSocket)))
	g.Expect(reconcileErr(r, withHook)).To(Succeed())
	g.Expect(archived(g, withHook)).To(Equal("1\n"))
	var addr string
	g.Eventually(func() string {
		b, _ := os.ReadFile(noneLog)
		if m := regexp.MustCompile(`serving metrics.*"addr": "([0-9.:]+)"`).FindSubmatch(b); m != nil {
			addr = string(m[1])
		}
		return addr
	}, timeout).ShouldNot(BeEmpty())
	resp, err := http.Get("http://" + addr + "/metrics")
	g.Expect(err).ToNot(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).ToNot(HaveOccurred())
	for _, p := range []string{"files", "network", "unix", "signals", "syscalls"} {
		g.Expect(string(body)).To(ContainSubstring(`externalsource_hook_sandbox_protection{protection="` + p + `"} 0`))
	}
	g.Expect(string(body)).To(ContainSubstring(`externalsource_hook_sandbox_protection{protection="limits"} 1`))
}
