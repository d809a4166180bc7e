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
	"os"
	"path/filepath"
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
		SidecarPID:    os.Getpid(),
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
	g.Expect(n).To(BeNumerically(">=", 20), "the table ran")
	g.Expect(accepted.Load()).To(BeZero())

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
