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
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// archived returns the data the source's artifact holds at its path.
func archived(g Gomega, obj *exsv1beta1.ExternalSource) string {
	cur := getSource(g, obj)
	g.Expect(cur.Status.Artifact).ToNot(BeNil())
	files := untar(g, download(g, cur.Status.Artifact.URL))
	g.Expect(files).To(HaveLen(1))
	return files[obj.Spec.DestinationPath]
}

func withHooks(obj *exsv1beta1.ExternalSource, pre, post []exsv1beta1.Hook) *exsv1beta1.ExternalSource {
	obj.Spec.Hooks = &exsv1beta1.Hooks{PreRequest: pre, PostRequest: post}
	return obj
}

func jq(name string, args ...string) exsv1beta1.Hook {
	return exsv1beta1.Hook{Name: name, Command: "jq", Args: args}
}

func sh(name, script string) exsv1beta1.Hook {
	return exsv1beta1.Hook{Name: name, Command: "sh", Args: []string{"-c", script}}
}

// waitHookFailed waits for HookFailed with a message containing all parts.
func waitHookFailed(t *testing.T, obj *exsv1beta1.ExternalSource, stalled bool, parts ...string) *exsv1beta1.ExternalSource {
	t.Helper()
	var cur *exsv1beta1.ExternalSource
	NewWithT(t).Eventually(func(g Gomega) {
		cur = getSource(g, obj)
		g.Expect(conditions.IsTrue(cur, exsv1beta1.HookFailedCondition)).To(BeTrue(), "HookFailed: %v", conditions.Get(cur, exsv1beta1.HookFailedCondition))
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.IsStalled(cur)).To(Equal(stalled))
		for _, p := range parts {
			g.Expect(conditions.GetMessage(cur, exsv1beta1.HookFailedCondition)).To(ContainSubstring(p))
			g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(p))
		}
	}, timeout).Should(Succeed())
	return cur
}

// TestHooksTransformTheData: a JSON API answer turned by jq into a
// ConfigMap manifest, through chained post-request hooks, is what the
// artifact holds.
func TestHooksTransformTheData(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, `{"items": [{"sku": "a", "cents": 150}, {"sku": "b", "cents": 99}]}`)
	obj := withHooks(newSource(ns, "jq", up.URL), nil, []exsv1beta1.Hook{
		jq("prices", "-c", "[.items[] | {key: .sku, value: (.cents | tostring)}] | from_entries"),
		jq("configmap", "-S", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prices"}, "data": .}`),
	})
	obj.Spec.DestinationPath = "prices.json"
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitReady(t, obj)
	g.Expect(archived(g, obj)).To(MatchJSON(`{"apiVersion": "v1", "data": {"a": "150", "b": "99"}, "kind": "ConfigMap", "metadata": {"name": "prices"}}`))

	// The same answer through the same hooks is the same revision.
	rev := getSource(g, obj).Status.Artifact.Revision
	g.Expect(requestReconcile(t, obj).Status.Artifact.Revision).To(Equal(rev))
}

// TestPreRequestHookSignsTheRequest: a pre-request hook adds a header the
// server requires, and sees the headers from the Secret.
func TestPreRequestHookSignsTheRequest(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Signature") != "sig:Bearer t0ken" || r.URL.Query().Get("region") != "eu" {
			http.Error(w, "unsigned", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "signed: true\n")
	}))
	defer srv.Close()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth", Namespace: ns},
		StringData: map[string]string{"Authorization": "Bearer t0ken"}}
	g.Expect(k8sClient.Create(testCtx, secret)).To(Succeed())
	obj := withHooks(newSource(ns, "signed", srv.URL+"/data"), []exsv1beta1.Hook{
		jq("sign", "-c", `.headers["X-Signature"] = ("sig:" + .headers.Authorization) | .url = (.url + "?region=eu")`),
	}, nil)
	obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitReady(t, obj)
	g.Expect(archived(g, obj)).To(Equal("signed: true\n"))
}

// TestHookRetryPolicies runs each policy with a command that fails.
func TestHookRetryPolicies(t *testing.T) {
	ns := newNamespace(t)
	up := newUpstream(t, `{"v": 1}`)

	t.Run("fail keeps the last artifact", func(t *testing.T) {
		g := NewWithT(t)
		obj := withHooks(newSource(ns, "fail", up.URL), nil, []exsv1beta1.Hook{jq("ok", "-c", ".")})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		a := waitReady(t, obj).Status.Artifact

		cur := getSource(g, obj)
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Spec.Hooks.PostRequest = []exsv1beta1.Hook{jq("broken", "-c", ".v[")}
		g.Expect(k8sClient.Patch(testCtx, cur, patch)).To(Succeed())
		failed := waitHookFailed(t, obj, false, `hook "broken" failed`, "exit code 3", "error")
		g.Expect(failed.Status.Artifact).To(Equal(a))
		g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(a))
		g.Eventually(func(g Gomega) {
			g.Expect(warningEvents(g, ns, obj.Name, `hook "broken" failed`)).ToNot(BeEmpty())
		}, timeout).Should(Succeed())
	})

	t.Run("retry succeeds on the third run", func(t *testing.T) {
		g := NewWithT(t)
		// The sandbox lets a hook write nowhere but in its own run: it
		// reads its run number from a FIFO the test fills instead.
		fifo := filepath.Join("/var/tmp", fmt.Sprintf("exs-retry-%d", time.Now().UnixNano()))
		g.Expect(syscall.Mkfifo(fifo, 0o644)).To(Succeed())
		t.Cleanup(func() { os.Remove(fifo) })
		f, err := os.OpenFile(fifo, os.O_RDWR, 0)
		g.Expect(err).ToNot(HaveOccurred())
		t.Cleanup(func() { f.Close() })
		_, err = f.WriteString("0\n1\n2\n3\n")
		g.Expect(err).ToNot(HaveOccurred())
		script := fmt.Sprintf(`read n < %s; [ "$n" -ge 2 ] && cat`, fifo)
		h := sh("flaky", script)
		h.RetryPolicy, h.MaxRetries = exsv1beta1.HookRetryPolicyRetry, ptr.To(int32(3))
		obj := withHooks(newSource(ns, "retry", up.URL), nil, []exsv1beta1.Hook{h})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitReady(t, obj)
		g.Expect(archived(g, obj)).To(Equal(`{"v": 1}`))
		g.Expect(f.SetReadDeadline(time.Now().Add(time.Second))).To(Succeed())
		rest := make([]byte, 16)
		n, _ := f.Read(rest)
		g.Expect(string(rest[:n])).To(Equal("3\n"), "two failures, then success: three runs")
	})

	t.Run("retry gives up after maxRetries", func(t *testing.T) {
		g := NewWithT(t)
		h := sh("always-fails", "echo nope >&2; exit 7")
		h.RetryPolicy, h.MaxRetries = exsv1beta1.HookRetryPolicyRetry, ptr.To(int32(1))
		obj := withHooks(newSource(ns, "give-up", up.URL), nil, []exsv1beta1.Hook{h})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitHookFailed(t, obj, false, `hook "always-fails" failed`, "exit code 7", "nope")
	})

	t.Run("ignore passes the input on", func(t *testing.T) {
		g := NewWithT(t)
		h := jq("broken", "-c", ".v[")
		h.RetryPolicy = exsv1beta1.HookRetryPolicyIgnore
		obj := withHooks(newSource(ns, "ignore", up.URL), nil, []exsv1beta1.Hook{h, jq("after", "-c", "{w: .v}")})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitReady(t, obj)
		g.Expect(archived(g, obj)).To(Equal("{\"w\":1}\n"), "the broken hook's input went to the next hook")
		g.Eventually(func(g Gomega) {
			g.Expect(warningEvents(g, ns, obj.Name, "ignored")).ToNot(BeEmpty())
		}, timeout).Should(Succeed())
	})

	t.Run("timeout kills the forking command", func(t *testing.T) {
		g := NewWithT(t)
		marker := fmt.Sprintf("%d.%03d", 60+time.Now().Nanosecond()%30, time.Now().Nanosecond()%1000)
		h := sh("forker", "sleep "+marker+" & sleep "+marker)
		h.Timeout = &metav1.Duration{Duration: time.Second}
		obj := withHooks(newSource(ns, "timeout", up.URL), nil, []exsv1beta1.Hook{h})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitHookFailed(t, obj, false, `hook "forker" failed`, "timed out after 1s")
		g.Eventually(func() []string { return testutil.ProcessesWith("sleep " + marker) }, 10*time.Second).Should(BeEmpty())
	})

	t.Run("output over the cap", func(t *testing.T) {
		g := NewWithT(t)
		obj := withHooks(newSource(ns, "too-much", up.URL), nil, []exsv1beta1.Hook{jq("flood", "-c", "[range(0; 100000)]")})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitHookFailed(t, obj, false, `hook "flood" failed`, fmt.Sprintf("exceeds the limit of %d bytes (--hook-max-output)", hookMaxOutput))
	})

	t.Run("minimal environment", func(t *testing.T) {
		g := NewWithT(t)
		h := sh("env", "env | sort")
		h.Env = []exsv1beta1.HookEnvVar{{Name: "MARK", Value: "visible"}}
		obj := withHooks(newSource(ns, "env", up.URL), nil, []exsv1beta1.Hook{h})
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitReady(t, obj)
		out := archived(g, obj)
		g.Expect(out).To(ContainSubstring("MARK=visible"))
		g.Expect(out).ToNot(ContainSubstring("SECRET_OF_THE_CONTROLLER"))
		g.Expect(out).ToNot(ContainSubstring("KUBECONFIG"))
	})
}

// TestHooksRejectedByTheWhitelist: nothing runs, the object is Stalled
// with a message naming the hook and what failed.
func TestHooksRejectedByTheWhitelist(t *testing.T) {
	ns := newNamespace(t)
	up := newUpstream(t, `{}`)
	marker := filepath.Join(os.TempDir(), fmt.Sprintf("exs-ran-%d", time.Now().UnixNano()))
	touch := "touch " + marker + "; cat"
	tests := []struct {
		name string
		hook exsv1beta1.Hook
		want string
	}{
		{"not-on-the-whitelist", exsv1beta1.Hook{Name: "curl", Command: "curl", Args: []string{"http://169.254.169.254/"}}, `command "curl" is not on the whitelist`},
		{"path-trick", exsv1beta1.Hook{Name: "jq-elsewhere", Command: "/tmp/x/jq", Args: []string{"."}}, `command "/tmp/x/jq" is not on the whitelist`},
		{"rawfile", jq("exfiltrate", "--rawfile", "x", "/etc/passwd"), `argument 0 ("--rawfile") matches none of the patterns`},
		{"bash-env", exsv1beta1.Hook{Name: "inject", Command: "sh", Args: []string{"-c", touch}, Env: []exsv1beta1.HookEnvVar{{Name: "BASH_ENV", Value: "/tmp/evil"}}},
			`env "BASH_ENV" is never allowed`},
		{"ld-preload", exsv1beta1.Hook{Name: "preload", Command: "sh", Args: []string{"-c", touch}, Env: []exsv1beta1.HookEnvVar{{Name: "LD_PRELOAD", Value: "/tmp/evil.so"}}},
			`env "LD_PRELOAD" is never allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := withHooks(newSource(ns, tt.name, up.URL), nil, []exsv1beta1.Hook{tt.hook})
			NewWithT(t).Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			cur := waitHookFailed(t, obj, true, fmt.Sprintf("hook %q rejected by the whitelist", tt.hook.Name), tt.want)
			NewWithT(t).Expect(conditions.GetReason(cur, meta.StalledCondition)).To(Equal(exsv1beta1.HookRejectedReason))
		})
	}
	_, err := os.Stat(marker)
	NewWithT(t).Expect(os.IsNotExist(err)).To(BeTrue(), "no rejected hook ran")
}

// TestWhitelistHotReload: allowing a command in the whitelist unstalls the
// objects that use it, without a restart and without a spec change;
// removing it stalls them again at their next reconcile.
func TestWhitelistHotReload(t *testing.T) {
	g := NewWithT(t)
	t.Cleanup(func() { _ = writeWhitelist(suiteWhitelist) })
	ns := newNamespace(t)
	up := newUpstream(t, "abc")
	obj := withHooks(newSource(ns, "reload", up.URL), nil, []exsv1beta1.Hook{{Name: "upper", Command: "tr", Args: []string{"a-z", "A-Z"}}})
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitHookFailed(t, obj, true, `command "tr" is not on the whitelist`)
	gen := getSource(g, obj).Generation

	g.Expect(writeWhitelist(suiteWhitelist + "  - name: tr\n    path: /usr/bin/tr\n    args: ['[a-zA-Z-]+']\n")).To(Succeed())
	ready := waitReady(t, obj)
	g.Expect(ready.Generation).To(Equal(gen), "no spec change was needed")
	g.Expect(archived(g, obj)).To(Equal("ABC"))

	g.Expect(writeWhitelist(suiteWhitelist)).To(Succeed())
	waitHookFailed(t, obj, true, `command "tr" is not on the whitelist`)
}

// TestHookExecutorDown: with the sidecar unreachable, objects with hooks
// fail and retry (not Stalled), keeping nothing half-done.
func TestHookExecutorDown(t *testing.T) {
	ns := newNamespace(t)
	up := newUpstream(t, `{}`)
	obj := withHooks(newSourceOn("hooks-down", ns, "down", up.URL), nil, []exsv1beta1.Hook{jq("ok", "-c", ".")})
	NewWithT(t).Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitHookFailed(t, obj, false, "hook executor unreachable")
}

// sidecarRuns counts the runs of the hook named name in the suite
// sidecar's log (one "hook ran" line per run, logged before the answer).
func sidecarRuns(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(hookExecutorLog)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "hook ran") && strings.Contains(line, fmt.Sprintf(`"hook": %q`, name)) {
			n++
		}
	}
	return n
}

// TestPostRequestHooksRunOnlyForNewInput: the post-request hooks' output
// is part of the revision only when their input changed. On the real
// sidecar, a hook that stamps the time (its output differs at every run)
// runs once for the first fetch; a fetch of the same bytes without
// validators runs no hook and keeps the revision (the input digest
// decides), and so does a 304 after a HEAD; new bytes, a forced
// reconcile and a new generation run it again.
func TestPostRequestHooksRunOnlyForNewInput(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	stamp := "stamp-" + ns
	filter := `{v: .v, at: now}`
	runs := func() int { return sidecarRuns(t, stamp) }

	// No ETag, no Last-Modified: every check is a plain GET.
	up := newUpstream(t, `{"v": 1}`)
	obj := withHooks(newSource(ns, "plain", up.URL), nil, []exsv1beta1.Hook{jq(stamp, "-c", filter)})
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	rev := waitReady(t, obj).Status.Artifact.Revision
	g.Expect(runs()).To(Equal(1))
	cur := getSource(g, obj)
	g.Expect(cur.Status.LastHandledInputDigest).To(HavePrefix("sha256:"))

	for range 3 {
		reqs := up.requests.Load()
		cur = requestReconcile(t, obj)
		g.Expect(up.requests.Load()).To(BeNumerically(">", reqs), "the upstream was asked")
		g.Expect(cur.Status.ChangeDetection).To(Equal(generator.ChangeDetectionGET))
		g.Expect(cur.Status.Artifact.Revision).To(Equal(rev), "the same input is the same revision")
		g.Expect(runs()).To(Equal(1), "no hook runs for the input the artifact was built from")
	}

	// New bytes: the hook runs, a new revision.
	up.set(http.StatusOK, `{"v": 2}`)
	cur = requestReconcile(t, obj)
	g.Expect(runs()).To(Equal(2))
	g.Expect(cur.Status.Artifact.Revision).NotTo(Equal(rev))
	rev = cur.Status.Artifact.Revision

	// A forced reconcile runs the hooks on the same bytes.
	g.Eventually(func() error {
		c := &exsv1beta1.ExternalSource{}
		if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), c); err != nil {
			return err
		}
		p := client.MergeFrom(c.DeepCopy())
		c.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "force-1", meta.ForceRequestAnnotation: "force-1"}
		return k8sClient.Patch(testCtx, c, p)
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		c := getSource(g, obj)
		g.Expect(c.Status.LastHandledForceAt).To(Equal("force-1"))
	}, timeout).Should(Succeed())
	g.Expect(runs()).To(Equal(3))
	g.Expect(getSource(g, obj).Status.Artifact.Revision).NotTo(Equal(rev), "the stamp changed")

	// A new generation (the hooks changed): they run.
	g.Eventually(func() error {
		c := &exsv1beta1.ExternalSource{}
		if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), c); err != nil {
			return err
		}
		p := client.MergeFrom(c.DeepCopy())
		c.Spec.Hooks.PostRequest[0].Args = []string{"-c", `{v: .v, at: now, gen: 2}`}
		return k8sClient.Patch(testCtx, c, p)
	}, timeout).Should(Succeed())
	waitReady(t, obj)
	g.Expect(runs()).To(Equal(4))

	// With an ETag: the HEAD's 304 skips the download and the hooks.
	stampE := "stamp-etag-" + ns
	upE := newCountingUpstream(t, `{"v": 1}`, `"e1"`, "", true)
	objE := withHooks(newSource(ns, "etag", upE.URL), nil, []exsv1beta1.Hook{jq(stampE, "-c", filter)})
	g.Expect(k8sClient.Create(testCtx, objE)).To(Succeed())
	revE := waitReady(t, objE).Status.Artifact.Revision
	g.Expect(sidecarRuns(t, stampE)).To(Equal(1))
	for range 2 {
		cur = requestReconcile(t, objE)
		g.Expect(cur.Status.Artifact.Revision).To(Equal(revE))
	}
	g.Expect(upE.heads.Load()).To(BeNumerically(">=", 1))
	g.Expect(sidecarRuns(t, stampE)).To(Equal(1))
}
