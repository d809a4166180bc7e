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
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/redact"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// suiteHooks is the hook runner of the suite's managers: the real sidecar
// behind the controller's check of the suite's whitelist.
func suiteHooks() hook.Runner { return backends["memory"].hooks }

// isolatedReconciler is a reconciler of the test's own (no manager), on
// the memory store, for objects labelled isolatedLabel.
func isolatedReconciler(runner hook.Runner, limits HookLimits) (*ExternalSourceReconciler, *events.FakeRecorder) {
	rec := events.NewFakeRecorder(64, false)
	return &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       rec,
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memoryStore(),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
		HookRunner:     runner,
		HookLimits:     limits,
	}, rec
}

// reconcileErr runs one reconcile of obj and returns its error: nil for a
// success and for a stall (final, not retried), the error for anything
// controller-runtime retries.
//
// A failure is not returned by Reconcile (the reconciler requeues it with
// its own backoff): it is the Ready=False the reconcile wrote, returned
// here as an error; a stalled object is not an error (nothing retries it).
func reconcileErr(r *ExternalSourceReconciler, obj *exsv1beta1.ExternalSource) error {
	res, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
	if err != nil {
		return err
	}
	cur := &exsv1beta1.ExternalSource{}
	if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), cur); err != nil {
		return err
	}
	if conditions.IsFalse(cur, meta.ReadyCondition) && !conditions.IsStalled(cur) {
		return fmt.Errorf("reconcile failed, requeued after %s: %s", res.RequeueAfter,
			conditions.GetMessage(cur, meta.ReadyCondition))
	}
	return nil
}

// TestHooksRefusedUpFront: when any hook of an object is refused, nothing
// runs and nothing is sent: the upstream (a POST, with side effects) sees
// no request and no pre-request hook runs, even one listed before the
// refused hook. A control object with the same marking hook and allowed
// hooks shows that the marker does appear when the hook runs.
func TestHooksRefusedUpFront(t *testing.T) {
	ns := newNamespace(t)
	// A marking hook is a pre-request hook named for the case: the
	// sidecar's debug log names every hook it runs, whatever the sandbox
	// lets the hook itself do.
	mark := func(name string) exsv1beta1.Hook { return jq(ns+"-"+name, "-c", ".") }
	marked := func(name string) bool { return sidecarRan(t, ns+"-"+name) }
	post := func(obj *exsv1beta1.ExternalSource) *exsv1beta1.ExternalSource {
		obj.Spec.Generator.HTTP.Method = "POST"
		obj.Spec.Generator.HTTP.Body = `{"order": 1}`
		return obj
	}

	t.Run("control: allowed hooks run and the upstream is called", func(t *testing.T) {
		g := NewWithT(t)
		up := newUpstream(t, `{"ok": true}`)
		obj := post(withHooks(newSource(ns, "control", up.URL), []exsv1beta1.Hook{mark("control")}, []exsv1beta1.Hook{jq("ok", "-c", ".")}))
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitReady(t, obj)
		g.Eventually(func() bool { return marked("control") }, timeout).Should(BeTrue(), "the marking hook ran")
		g.Expect(up.requests.Load()).To(BeNumerically(">=", 1))
	})

	tests := []struct {
		name      string
		pre, post []exsv1beta1.Hook
		field     string
		want      string
	}{
		{name: "post-request argument", pre: []exsv1beta1.Hook{mark("post-arg")},
			post:  []exsv1beta1.Hook{jq("ok", "-c", "."), jq("exfiltrate", "--rawfile", "x", "/etc/passwd")},
			field: `spec.hooks.postRequest[1].args[0]: hook "exfiltrate" rejected by the whitelist`,
			want:  `argument 0 ("--rawfile") matches none of the patterns allowed for command "jq"`},
		{name: "post-request command", pre: []exsv1beta1.Hook{mark("post-cmd")},
			post:  []exsv1beta1.Hook{{Name: "net", Command: "nc", Args: []string{"-l"}}},
			field: `spec.hooks.postRequest[0].command: hook "net" rejected by the whitelist`,
			want:  `command "nc" is not on the whitelist`},
		{name: "post-request environment", pre: []exsv1beta1.Hook{mark("post-env")},
			post: []exsv1beta1.Hook{{Name: "preload", Command: "sh", Args: []string{"-c", "cat"},
				Env: []exsv1beta1.HookEnvVar{{Name: "MARK", Value: "x"}, {Name: "LD_PRELOAD", Value: "/tmp/evil.so"}}}},
			field: `spec.hooks.postRequest[0].env[1]: hook "preload" rejected by the whitelist`,
			want:  `env "LD_PRELOAD" is never allowed`},
		{name: "second pre-request hook", pre: []exsv1beta1.Hook{mark("pre-second"), {Name: "curl", Command: "curl"}},
			field: `spec.hooks.preRequest[1].command: hook "curl" rejected by the whitelist`,
			want:  `command "curl" is not on the whitelist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newUpstream(t, `{"ok": true}`)
			obj := post(withHooks(newSource(ns, strings.ReplaceAll(tt.name, " ", "-"), up.URL), tt.pre, tt.post))
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			cur := waitHookFailed(t, obj, true, tt.field, tt.want)
			g.Expect(conditions.GetReason(cur, meta.StalledCondition)).To(Equal(exsv1beta1.HookRejectedReason))
			g.Expect(up.requests.Load()).To(BeZero(), "no request reached the upstream")
			g.Expect(marked(strings.TrimPrefix(tt.pre[0].Name, ns+"-"))).To(BeFalse(), "no pre-request hook ran")
		})
	}
}

// TestWhitelistGenerationsDisagree: the controller and the sidecar read
// the whitelist from different files here, changed at different moments,
// as happens for the few milliseconds between their reloads of one
// ConfigMap. While their generations differ, a refusal by either is
// retried (an error for controller-runtime, not Stalled); once they
// agree, the object ends Ready or Stalled as the whitelist says, without
// any spec change.
func TestWhitelistGenerationsDisagree(t *testing.T) {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "exs-gen-") // short: Unix socket paths are limited
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	withTr := suiteWhitelist + "  - name: tr\n    path: /usr/bin/tr\n    args: ['[a-zA-Z-]+']\n"
	sidecarPath, controllerPath := filepath.Join(dir, "sidecar.yaml"), filepath.Join(dir, "controller.yaml")
	write := func(path, content string) { g.Expect(os.WriteFile(path, []byte(content), 0o644)).To(Succeed()) }
	write(sidecarPath, suiteWhitelist)
	write(controllerPath, suiteWhitelist)

	socket := filepath.Join(dir, "hook.sock")
	stop, err := startSidecar(socket, filepath.Join(dir, "sidecar.log"), "--hook-whitelist="+sidecarPath)
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(stop)
	store, err := hook.NewStore(controllerPath, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())
	sidecar := hook.NewClient(socket)
	r, _ := isolatedReconciler(hook.Instrumented(hook.Checked(store.Get, sidecar)), HookLimits{})

	// The controller reloads when the test says; the sidecar watches its
	// file, and the test waits until it reports the generation.
	reloadController := func(content string) {
		write(controllerPath, content)
		_, err := store.Reload()
		g.Expect(err).ToNot(HaveOccurred())
	}
	reloadSidecar := func(content string) {
		write(sidecarPath, content)
		want, err := hook.Parse([]byte(content))
		g.Expect(err).ToNot(HaveOccurred())
		g.Eventually(func() (string, error) { return sidecar.WhitelistGeneration(testCtx) }, timeout).Should(Equal(want.Generation()))
	}

	ns := newNamespace(t)
	up := newUpstream(t, "abc")
	obj := withHooks(newSource(ns, "generations", up.URL), nil, []exsv1beta1.Hook{{Name: "upper", Command: "tr", Args: []string{"a-z", "A-Z"}}})
	obj.Labels = map[string]string{isolatedLabel: "generations"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())

	stalled := func(parts ...string) {
		t.Helper()
		cur := getSource(g, obj)
		g.Expect(conditions.IsStalled(cur)).To(BeTrue(), "Stalled: %v", conditions.Get(cur, meta.StalledCondition))
		g.Expect(conditions.GetReason(cur, meta.StalledCondition)).To(Equal(exsv1beta1.HookRejectedReason))
		for _, p := range parts {
			g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(p))
		}
	}
	retried := func(err error, controllerGen, sidecarGen string) {
		t.Helper()
		g.Expect(err).To(HaveOccurred(), "a disagreement is retried")
		cur := getSource(g, obj)
		g.Expect(conditions.IsStalled(cur)).To(BeFalse(), "not Stalled: nothing would requeue it")
		g.Expect(conditions.GetReason(cur, exsv1beta1.HookFailedCondition)).To(Equal(exsv1beta1.HookRejectedReason))
		g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(
			fmt.Sprintf("hook whitelist generations differ (controller %s, hook executor %s): retrying", controllerGen, sidecarGen)))
	}

	// Both refuse tr: a refusal that stands.
	g.Expect(reconcileErr(r, obj)).To(Succeed())
	stalled(`spec.hooks.postRequest[0].command: hook "upper" rejected by the whitelist: command "tr" is not on the whitelist`)

	// The sidecar allows tr first: the controller's refusal is retried.
	reloadSidecar(withTr)
	ctrlGen, sideGen := store.Generation(), mustGeneration(t, withTr)
	g.Expect(ctrlGen).ToNot(Equal(sideGen))
	retried(reconcileErr(r, obj), ctrlGen, sideGen)
	g.Expect(up.requests.Load()).To(BeZero(), "refused up front")

	// The controller catches up: Ready, same generation of the spec.
	reloadController(withTr)
	g.Expect(reconcileErr(r, obj)).To(Succeed())
	ready := getSource(g, obj)
	g.Expect(conditions.IsReady(ready)).To(BeTrue(), "Ready: %v", conditions.Get(ready, meta.ReadyCondition))
	g.Expect(ready.Status.ObservedGeneration).To(Equal(ready.Generation))
	g.Expect(archived(g, obj)).To(Equal("ABC"))

	// Now the sidecar drops tr first: its refusal is retried, and the
	// published artifact stays.
	up.set(200, "abcd")
	reloadSidecar(suiteWhitelist)
	retried(reconcileErr(r, obj), store.Generation(), mustGeneration(t, suiteWhitelist))
	g.Expect(archived(g, obj)).To(Equal("ABC"))

	// The controller catches up: both refuse, the object stalls correctly.
	reloadController(suiteWhitelist)
	g.Expect(reconcileErr(r, obj)).To(Succeed())
	stalled(`command "tr" is not on the whitelist`)
	g.Expect(getSource(g, obj).Generation).To(Equal(ready.Generation), "no spec change at any point")
}

// sidecarRan reports whether the suite's sidecar logged a run of the hook
// named name.
func sidecarRan(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile(hookExecutorLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "hook ran") && strings.Contains(line, fmt.Sprintf(`"hook": %q`, name)) {
			return true
		}
	}
	return false
}

func mustGeneration(t *testing.T, content string) string {
	wl, err := hook.Parse([]byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return wl.Generation()
}

// heapDuring runs f while sampling the live heap every millisecond; it
// returns how far the heap rose above where it was when f started, and
// how many bytes were allocated meanwhile.
func heapDuring(f func()) (peak, allocated uint64) {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	base, alloc0 := s[0].Value.Uint64(), s[1].Value.Uint64()
	var top uint64
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		live := s[:1:1]
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			metrics.Read(live)
			top = max(top, live[0].Value.Uint64())
		}
	}()
	f()
	close(done)
	<-sampled
	metrics.Read(s)
	top = max(top, s[0].Value.Uint64())
	if top > base {
		peak = top - base
	}
	return peak, s[1].Value.Uint64() - alloc0
}

// TestPreRequestHookOutputIsCapped: a pre-request hook that prints a
// 60 MB body fails at --max-pre-request-output, and the controller's heap
// never holds more than a few times the cap (before the cap it rose by
// 153 MiB, 186 MiB allocated, for this very hook); a request under the
// cap passes whole. A sidecar of the test's own allows large outputs, so
// the controller's cap is what stops the hook.
func TestPreRequestHookOutputIsCapped(t *testing.T) {
	dir, err := os.MkdirTemp("", "exs-big-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "hook.sock")
	stop, err := startSidecar(socket, filepath.Join(dir, "sidecar.log"), "--hook-max-output=268435456")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	r, _ := isolatedReconciler(hook.Checked(testWhitelist.Get, hook.NewClient(socket)), HookLimits{})

	tests := []struct {
		name    string
		size    int
		wantErr string
	}{
		{name: "60 MB body", size: 60_000_000,
			wantErr: fmt.Sprintf(`spec.hooks.preRequest[0]: hook "inflate" failed: output exceeds the limit of %d bytes (--max-pre-request-output)`, DefaultMaxPreRequestOutput)},
		{name: "3 MB body", size: 3_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := withHooks(newSource("ns", "inflate", "http://upstream.test/"),
				[]exsv1beta1.Hook{jq("inflate", "-c", fmt.Sprintf(`.body = ("x" * %d)`, tt.size))}, nil)
			pre := r.preRequestHooks(obj)
			req := &generator.HookRequest{URL: "http://upstream.test/", Method: "POST", Headers: map[string]string{}}
			var err error
			peak, allocated := heapDuring(func() { err = pre(testCtx, req) })
			t.Logf("%s: heap rose by %.1f MiB, %.1f MiB allocated", tt.name, float64(peak)/(1<<20), float64(allocated)/(1<<20))
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(isHookError(err)).To(BeTrue(), "HookFailed, not FetchFailed")
			} else {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(req.Body).To(HaveLen(tt.size))
			}
			// The buffer stops at the cap (4 MiB): its growth, the
			// decoded request and the next hook's input stay a few times
			// the cap, where the unbounded read took 153 MiB. The heap is
			// the process's (the suite's managers allocate too), sampled:
			// the bound is generous, and still far below the failure.
			g.Expect(peak).To(BeNumerically("<", 96<<20))
		})
	}

	// The whole reconcile, generator included (its copies of the body
	// are bounded by the cap too): before the cap, the 60 MB body raised
	// the heap by 212 MiB (246 MiB allocated) and was POSTed.
	t.Run("whole reconciles", func(t *testing.T) {
		ns := newNamespace(t)
		var received atomic.Int64
		var requests atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			requests.Add(1)
			n, _ := io.Copy(io.Discard, req.Body)
			received.Store(n)
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(up.Close)
		for _, tt := range []struct {
			size  int
			ready bool
		}{{60_000_000, false}, {4_000_000, true}} {
			g := NewWithT(t)
			requests.Store(0)
			name := fmt.Sprintf("body-%d", tt.size)
			obj := withHooks(newSource(ns, name, up.URL), []exsv1beta1.Hook{jq("inflate", "-c", fmt.Sprintf(`.body = ("x" * %d)`, tt.size))}, nil)
			obj.Spec.Generator.HTTP.Method = "POST"
			obj.Labels = map[string]string{isolatedLabel: name}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			var err error
			peak, allocated := heapDuring(func() { err = reconcileErr(r, obj) })
			t.Logf("whole reconcile, %d-byte body: heap rose by %.1f MiB, %.1f MiB allocated", tt.size, float64(peak)/(1<<20), float64(allocated)/(1<<20))
			cur := getSource(g, obj)
			if tt.ready {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(conditions.IsReady(cur)).To(BeTrue(), "Ready: %v", conditions.Get(cur, meta.ReadyCondition))
				g.Expect(received.Load()).To(Equal(int64(tt.size)))
			} else {
				g.Expect(err).To(HaveOccurred())
				g.Expect(conditions.GetMessage(cur, exsv1beta1.HookFailedCondition)).To(ContainSubstring("(--max-pre-request-output)"))
				g.Expect(requests.Load()).To(BeZero())
			}
			// Generous (a sampled, process-wide heap), and far below the
			// 212 MiB the uncapped read cost.
			g.Expect(peak).To(BeNumerically("<", 128<<20))
		}
	})

	t.Run("the reconcile fails with HookFailed and sends nothing", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		up := newUpstream(t, "{}")
		r, _ := isolatedReconciler(suiteHooks(), HookLimits{MaxPreRequestOutput: 1024})
		obj := withHooks(newSource(ns, "capped", up.URL), []exsv1beta1.Hook{jq("inflate", "-c", `.body = ("x" * 5000)`)}, nil)
		obj.Labels = map[string]string{isolatedLabel: "capped"}
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		g.Expect(reconcileErr(r, obj)).To(HaveOccurred())
		cur := getSource(g, obj)
		g.Expect(conditions.GetReason(cur, exsv1beta1.HookFailedCondition)).To(Equal(exsv1beta1.HookFailedReason))
		g.Expect(conditions.GetMessage(cur, exsv1beta1.HookFailedCondition)).To(ContainSubstring(
			`spec.hooks.preRequest[0]: hook "inflate" failed: output exceeds the limit of 1024 bytes (--max-pre-request-output)`))
		g.Expect(up.requests.Load()).To(BeZero())
	})
}

// spoolFile is a file of a reconcile's spool directory.
type spoolFile struct {
	name string
	size int64
}

// observingRunner runs hooks with the suite's real runner and lists the
// reconcile's spool directory when each hook starts and when it ends
// (before the reconciler removes its input).
type observingRunner struct {
	hook.Runner
	dir          string
	mu           sync.Mutex
	starts, ends [][]spoolFile
}

func listSpool(dir string) []spoolFile {
	entries, _ := os.ReadDir(dir)
	var out []spoolFile
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			out = append(out, spoolFile{e.Name(), fi.Size()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (o *observingRunner) Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error {
	o.mu.Lock()
	o.starts = append(o.starts, listSpool(o.dir))
	o.mu.Unlock()
	err := o.Runner.Run(ctx, h, stdin, stdout)
	o.mu.Lock()
	o.ends = append(o.ends, listSpool(o.dir))
	o.mu.Unlock()
	return err
}

func totalSize(files []spoolFile) int64 {
	var n int64
	for _, f := range files {
		n += f.size
	}
	return n
}

// TestPostRequestHooksSpool: a chain of post-request hooks holds at most
// its running hook's input and output in the spool (the old code kept
// every intermediate file until the reconcile ended), and a reconcile's
// spool use is capped.
func TestPostRequestHooksSpool(t *testing.T) {
	const dataSize = 20_000
	cat := func(name string) exsv1beta1.Hook { return sh(name, "cat") }
	setup := func(t *testing.T, limits HookLimits, maxData int64, hooks []exsv1beta1.Hook) (*ExternalSourceReconciler, *observingRunner, *exsv1beta1.ExternalSource, *reconcileState) {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		if err := os.WriteFile(data, []byte(strings.Repeat("x", dataSize)), 0o644); err != nil {
			t.Fatal(err)
		}
		o := &observingRunner{Runner: suiteHooks(), dir: dir}
		r, _ := isolatedReconciler(o, limits)
		r.MaxDataSize = maxData
		st := &reconcileState{tmpDir: dir, dataFile: data, dataSize: dataSize, deadline: time.Now().Add(timeout)}
		return r, o, withHooks(newSource("ns", "spool", "http://upstream.test/"), nil, hooks), st
	}

	t.Run("intermediate files removed as soon as consumed", func(t *testing.T) {
		g := NewWithT(t)
		var hooks []exsv1beta1.Hook
		for i := range 6 {
			hooks = append(hooks, cat(fmt.Sprintf("copy-%d", i)))
		}
		r, o, obj, st := setup(t, HookLimits{}, 1<<20, hooks)
		g.Expect(r.reconcileHooks(testCtx, obj, st)).To(Succeed())

		g.Expect(o.starts).To(HaveLen(6))
		var peak int64
		for i := range 6 {
			in := "data"
			if i > 0 {
				in = fmt.Sprintf("hook-%d", i-1)
			}
			out := fmt.Sprintf("hook-%d", i)
			g.Expect(o.starts[i]).To(Equal([]spoolFile{{in, dataSize}, {out, 0}}), "hook %d starts with its input and an empty output only", i)
			g.Expect(o.ends[i]).To(Equal([]spoolFile{{in, dataSize}, {out, dataSize}}), "hook %d ends with its input and output only", i)
			peak = max(peak, totalSize(o.ends[i]))
		}
		g.Expect(listSpool(st.tmpDir)).To(Equal([]spoolFile{{"hook-5", dataSize}}), "only the result is left for the archive")
		g.Expect(st.dataFile).To(Equal(filepath.Join(st.tmpDir, "hook-5")))
		t.Logf("6 hooks on %d bytes: at most %d bytes in the spool at once (keeping every intermediate file: %d)", dataSize, peak, 7*dataSize)
		g.Expect(peak).To(Equal(int64(2 * dataSize)))
	})

	t.Run("an ignored failure's output is removed, its input passes on", func(t *testing.T) {
		g := NewWithT(t)
		broken := sh("broken", "head -c 100; exit 3")
		broken.RetryPolicy = exsv1beta1.HookRetryPolicyIgnore
		r, _, obj, st := setup(t, HookLimits{}, 1<<20, []exsv1beta1.Hook{cat("copy"), broken, cat("last")})
		g.Expect(r.reconcileHooks(testCtx, obj, st)).To(Succeed())
		g.Expect(listSpool(st.tmpDir)).To(Equal([]spoolFile{{"hook-2", dataSize}}))
	})

	tests := []struct {
		name    string
		limits  HookLimits
		maxData int64
		want    string
	}{
		{name: "spool budget", limits: HookLimits{MaxSpoolBytes: 70_000}, maxData: 1 << 20,
			want: `spec.hooks.postRequest[1]: hook "triple" failed: output exceeds the 50000 bytes its input of 20000 bytes leaves of the reconcile's spool budget of 70000 bytes (--max-spool-bytes-per-reconcile)`},
		{name: "per-fetch size", limits: HookLimits{}, maxData: 30_000,
			want: `spec.hooks.postRequest[1]: hook "triple" failed: output exceeds the maximum size of 30000 bytes (--max-response-size)`},
		{name: "input alone over the budget", limits: HookLimits{MaxSpoolBytes: 10_000}, maxData: 1 << 20,
			want: `spec.hooks.postRequest[0]: hook "copy": its input of 20000 bytes leaves nothing of the reconcile's spool budget of 10000 bytes (--max-spool-bytes-per-reconcile)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r, _, obj, st := setup(t, tt.limits, tt.maxData, []exsv1beta1.Hook{cat("copy"), sh("triple", "cat > f; cat f f f")})
			err := r.reconcileHooks(testCtx, obj, st)
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(conditions.GetReason(obj, exsv1beta1.HookFailedCondition)).To(Equal(exsv1beta1.HookFailedReason))
			g.Expect(conditions.IsStalled(obj)).To(BeFalse())
			for _, f := range listSpool(st.tmpDir) {
				g.Expect(f.size).To(BeNumerically("<=", dataSize), "nothing over the cap is left: %v", f)
			}
		})
	}
}

// TestIgnoredHookFailuresAreRedacted: a pre-request hook that fails on a
// header value from a Secret (jq's error prints it) under the retry and
// ignore policies: the log lines and events the retry policy writes carry
// no Secret value, and the error that reaches the reconciler's output is
// redactable by the reconcile's Set.
func TestIgnoredHookFailuresAreRedacted(t *testing.T) {
	const secret = "Bearer s3cr3t-t0ken-value"
	set := &redact.Set{}
	set.Add(secret)
	var logMu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})

	tests := []struct {
		name   string
		policy string
		filter string
	}{
		{"retry then fail, value itself", exsv1beta1.HookRetryPolicyRetry, ".headers.Authorization | error"},
		{"ignore, value itself", exsv1beta1.HookRetryPolicyIgnore, ".headers.Authorization | error"},
		{"ignore, headers as JSON", exsv1beta1.HookRetryPolicyIgnore, ".headers | tostring | error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			logMu.Lock()
			logs = nil
			logMu.Unlock()
			r, rec := isolatedReconciler(suiteHooks(), HookLimits{})
			h := jq("leaky", "-c", tt.filter)
			h.RetryPolicy, h.MaxRetries = tt.policy, ptr.To(int32(1))
			obj := withHooks(newSource("ns", "leaky", "http://upstream.test/"), []exsv1beta1.Hook{h}, nil)
			ctx := redact.NewContext(ctrl.LoggerInto(testCtx, logger), set)
			req := &generator.HookRequest{URL: "http://upstream.test/", Method: "GET", Headers: map[string]string{"Authorization": secret}}
			err := r.preRequestHooks(obj)(ctx, req)

			logMu.Lock()
			written := append([]string(nil), logs...)
			logMu.Unlock()
			var evs []string
			for len(rec.Events) > 0 {
				evs = append(evs, (<-rec.Events).Message)
			}
			g.Expect(written).ToNot(BeEmpty(), "the policy logged the failure")
			everything := strings.Join(append(written, evs...), "\n")
			g.Expect(everything).To(ContainSubstring(redact.Placeholder))
			g.Expect(everything).ToNot(ContainSubstring("s3cr3t"))

			if tt.policy == exsv1beta1.HookRetryPolicyIgnore {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(evs).To(ContainElement(ContainSubstring("ignored: retryPolicy is ignore")))
				g.Expect(req.Headers).To(HaveKeyWithValue("Authorization", secret), "the input passed on")
			} else {
				// The stderr reaches the error whole, so the Set finds it.
				g.Expect(err).To(HaveOccurred())
				g.Expect(err.Error()).To(ContainSubstring("s3cr3t"))
				g.Expect(set.String(err.Error())).ToNot(ContainSubstring("s3cr3t"))
				g.Expect(errors.As(err, new(*hook.ExecError))).To(BeTrue())
			}
		})
	}
}
