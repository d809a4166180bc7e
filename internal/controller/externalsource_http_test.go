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
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// countingUpstream is an API with configurable conditional-request support
// that counts HEADs and GETs.
type countingUpstream struct {
	*httptest.Server
	mu           sync.Mutex
	body         string
	etag         string // "" : no ETag support
	lastModified string // "" : no Last-Modified support
	headAllowed  bool   // false: HEAD answers 405
	status       int

	heads, gets, conditionalGets, notModified atomic.Int64
}

func newCountingUpstream(t *testing.T, body, etag, lastModified string, headAllowed bool) *countingUpstream {
	u := &countingUpstream{body: body, etag: etag, lastModified: lastModified, headAllowed: headAllowed, status: http.StatusOK}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *countingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	body, etag, lm, headAllowed, status := u.body, u.etag, u.lastModified, u.headAllowed, u.status
	u.mu.Unlock()
	inm, ims := r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")
	switch r.Method {
	case http.MethodHead:
		u.heads.Add(1)
		if !headAllowed {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
	case http.MethodGet:
		u.gets.Add(1)
		if inm != "" || ims != "" {
			u.conditionalGets.Add(1)
		}
	}
	if status != http.StatusOK {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "failing on purpose")
		return
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	if lm != "" {
		w.Header().Set("Last-Modified", lm)
	}
	if (etag != "" && inm == etag) || (inm == "" && lm != "" && ims == lm) {
		if r.Method == http.MethodGet {
			u.notModified.Add(1)
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, body)
	}
}

func (u *countingUpstream) set(body, etag string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.body, u.etag = body, etag
}

func (u *countingUpstream) setStatus(status int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status = status
}

// counts is what the upstream received: HEADs and GETs.
type counts struct{ heads, gets int64 }

func (u *countingUpstream) counts() counts { return counts{u.heads.Load(), u.gets.Load()} }

func (c counts) minus(o counts) counts { return counts{c.heads - o.heads, c.gets - o.gets} }

// reconcileOnce runs one reconcile of obj outside the manager, like the
// requeue at the end of an interval: no annotation, no spec change. It
// uses the suite's generators, so HTTP clients are shared as in production.
func reconcileOnce(t *testing.T, obj client.Object) (ctrl.Result, *events.FakeRecorder) {
	t.Helper()
	rec := events.NewFakeRecorder(16, false)
	r := &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       rec,
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memoryStore(),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
	}
	res, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
	NewWithT(t).Expect(err).ToNot(HaveOccurred())
	return res, rec
}

// TestRequestsPerInterval measures what one interval costs the upstream when
// nothing changed, for servers with different conditional-request support,
// and that it costs the API server nothing: no status write, no event.
func TestRequestsPerInterval(t *testing.T) {
	const lm = "Wed, 21 Oct 2026 07:28:00 GMT"
	tests := []struct {
		name         string
		etag, lm     string
		headAllowed  bool
		perInterval  counts
		detection    string
		notModified  bool // the GET is answered 304
		conditionals bool // the GET carries validators
	}{
		{name: "etag", etag: `"v1"`, headAllowed: true, perInterval: counts{heads: 1, gets: 0}, detection: generator.ChangeDetectionHEAD},
		{name: "etag-head-405", etag: `"v1"`, headAllowed: false, perInterval: counts{heads: 1, gets: 1},
			detection: generator.ChangeDetectionConditionalGET, notModified: true, conditionals: true},
		{name: "last-modified-only", lm: lm, headAllowed: true, perInterval: counts{heads: 0, gets: 1},
			detection: generator.ChangeDetectionConditionalGET, notModified: true, conditionals: true},
		{name: "no-validators", headAllowed: true, perInterval: counts{heads: 0, gets: 1}, detection: generator.ChangeDetectionGET},
	}
	ns := newNamespace(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newCountingUpstream(t, `{"price": 1}`, tt.etag, tt.lm, tt.headAllowed)
			obj := newSource(ns, tt.name, up.URL)
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			ready := waitReady(t, obj)
			// The first fetch knows no validators: one plain GET, no HEAD.
			g.Expect(up.counts()).To(Equal(counts{heads: 0, gets: 1}))
			rev := ready.Status.Artifact.Revision
			g.Expect(ready.Status.LastHandledETag).To(Equal(tt.etag))
			g.Expect(ready.Status.LastModified).To(Equal(tt.lm))

			// Three reconcile requests, each costing exactly perInterval.
			for i := range 3 {
				before := up.counts()
				cur := requestReconcile(t, obj)
				got := up.counts().minus(before)
				g.Expect(got).To(Equal(tt.perInterval), "reconcile %d", i+1)
				g.Expect(cur.Status.Artifact.Revision).To(Equal(rev))
				g.Expect(cur.Status.ChangeDetection).To(Equal(tt.detection))
				g.Expect(conditions.IsReady(cur)).To(BeTrue())
			}
			if tt.conditionals {
				g.Expect(up.conditionalGets.Load()).To(Equal(int64(3)))
			}
			if tt.notModified {
				g.Expect(up.notModified.Load()).To(Equal(int64(3)))
			}

			// The requeue at the end of an interval: same cost upstream, no
			// write to the API server (the resourceVersion stays) and no event.
			stable := getSource(g, obj)
			before := up.counts()
			res, rec := reconcileOnce(t, obj)
			got := up.counts().minus(before)
			g.Expect(got).To(Equal(tt.perInterval))
			g.Expect(res.RequeueAfter).To(BeNumerically(">=", obj.Spec.Interval.Duration))
			g.Expect(getSource(g, obj).ResourceVersion).To(Equal(stable.ResourceVersion))
			g.Expect(rec.Events).To(BeEmpty())
			t.Logf("unchanged upstream (%s): %d HEAD, %d GET per interval; revision unchanged", tt.name, got.heads, got.gets)
		})
	}
}

// TestETagChangeDetection: a changed upstream is fetched despite the HEAD,
// a spec change and a forced reconcile refetch without asking HEAD even
// when the ETag matches, and a missing stored artifact is fetched again.
func TestETagChangeDetection(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newCountingUpstream(t, "a: 1\n", `"v1"`, "", true)
	obj := newSource(ns, "etag", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	rev1 := ready.Status.Artifact.Revision

	// Upstream changes: the HEAD sees another ETag, the conditional GET
	// returns the new data.
	up.set("a: 2\n", `"v2"`)
	before := up.counts()
	cur := requestReconcile(t, obj)
	g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 1, gets: 1}))
	g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(rev1))
	g.Expect(cur.Status.LastHandledETag).To(Equal(`"v2"`))
	rev2 := cur.Status.Artifact.Revision

	// A spec change: no HEAD, an unconditional GET, even though the ETag
	// matches; the new destinationPath makes a new revision.
	before = up.counts()
	condBefore := up.conditionalGets.Load()
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.DestinationPath = "other/path.yaml"
	g.Expect(k8sClient.Patch(testCtx, cur, patch)).To(Succeed())
	cur = waitReady(t, obj)
	g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 0, gets: 1}))
	g.Expect(up.conditionalGets.Load()).To(Equal(condBefore))
	g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(rev2))
	// Recorded as the next checks will detect a change: the response has
	// an ETag and the server answers HEAD.
	g.Expect(cur.Status.ChangeDetection).To(Equal(generator.ChangeDetectionHEAD))
	rev3 := cur.Status.Artifact.Revision

	// reconcile.fluxcd.io/forceAt: no HEAD, an unconditional GET.
	before = up.counts()
	token := time.Now().Format(time.RFC3339Nano)
	g.Eventually(func() error {
		o := getSource(g, obj)
		p := client.MergeFrom(o.DeepCopy())
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: token, meta.ForceRequestAnnotation: token}
		return k8sClient.Patch(testCtx, o, p)
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getSource(g, obj).Status.LastHandledForceAt).To(Equal(token))
	}, timeout).Should(Succeed())
	g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 0, gets: 1}))
	g.Expect(up.conditionalGets.Load()).To(Equal(condBefore))
	g.Expect(getSource(g, obj).Status.Artifact.Revision).To(Equal(rev3))

	// The stored artifact disappears (e.g. a memory store restarted): the
	// ETag record goes with it and the data is fetched in full.
	_, err := memoryStore().RemoveAll(testCtx, *getSource(g, obj).Status.Artifact)
	g.Expect(err).ToNot(HaveOccurred())
	before = up.counts()
	cur = requestReconcile(t, obj)
	g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 0, gets: 1}))
	g.Expect(cur.Status.Artifact.Revision).To(Equal(rev3))
	g.Expect(memoryStore().Verify(testCtx, *cur.Status.Artifact)).To(Succeed())
}

// TestRetryWithinOneReconcile: a 503 with a short Retry-After followed by
// a 200 is absorbed by the fetch's own retry; the source never reports a
// failure.
func TestRetryWithinOneReconcile(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok: true\n")
	}))
	t.Cleanup(srv.Close)
	obj := newSource(ns, "retry", srv.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	g.Expect(requests.Load()).To(Equal(int64(2)))
	g.Expect(conditions.Has(ready, exsv1beta1.FetchFailedCondition)).To(BeFalse())
	g.Expect(warningEvents(g, ns, obj.Name, "")).To(BeEmpty())
}

// TestLimitsAndTimeouts: oversized bodies (announced or streamed) fail with
// the limit named, a stalled body fails with spec.timeout named, and the
// last artifact stays published meanwhile.
func TestLimitsAndTimeouts(t *testing.T) {
	big := strings.Repeat("x", 2<<20) // the suite's limit is 1 MiB
	var mode atomic.Value
	mode.Store("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case "announced":
			w.Header().Set("Content-Length", "2097152")
			_, _ = io.WriteString(w, big)
		case "streamed":
			// Flushing first makes the body chunked, without a length.
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, big)
		case "stalled":
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		default:
			_, _ = io.WriteString(w, "small: true\n")
		}
	}))
	t.Cleanup(srv.Close)

	ns := newNamespace(t)
	g := NewWithT(t)
	obj := newSource(ns, "limits", srv.URL)
	obj.Spec.Timeout = &metav1.Duration{Duration: time.Second}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	a := waitReady(t, obj).Status.Artifact

	tests := []struct{ mode, want string }{
		{"announced", "exceeds the maximum size of 1048576 bytes (--max-response-size)"},
		{"streamed", "response exceeds the maximum size of 1048576 bytes (--max-response-size)"},
		{"stalled", "timeout: the fetch did not complete within spec.timeout (1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			g := NewWithT(t)
			mode.Store(tt.mode)
			requestReconcile(t, obj)
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
				g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(tt.want))
				g.Expect(conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition)).To(ContainSubstring(tt.want))
				g.Expect(cur.Status.Artifact).To(Equal(a))
			}, timeout).Should(Succeed())
			// The last good artifact is still published and served.
			g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(a))
			g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))
			g.Eventually(func(g Gomega) {
				g.Expect(warningEvents(g, ns, obj.Name, tt.want)).ToNot(BeEmpty())
			}, timeout).Should(Succeed())
		})
	}
	mode.Store("ok")
}

// warningEvents returns the Warning events of an object whose message
// contains substr.
func warningEvents(g Gomega, ns, name, substr string) []corev1.Event {
	var list corev1.EventList
	g.Expect(k8sClient.List(testCtx, &list, client.InNamespace(ns))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, substr) {
			out = append(out, e)
		}
	}
	return out
}

// normalEvents counts the Normal events of reason about the ExternalSource
// name (an aggregated event counts as many times as it happened).
func normalEvents(g Gomega, ns, name, reason string) int32 {
	var list corev1.EventList
	g.Expect(k8sClient.List(testCtx, &list, client.InNamespace(ns))).To(Succeed())
	var n int32
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == exsv1beta1.ExternalSourceKind && e.InvolvedObject.Name == name &&
			e.Type == corev1.EventTypeNormal && e.Reason == reason {
			n += max(e.Count, 1)
		}
	}
	return n
}

// TestDeletedExternalArtifactIsRestored: the controller's own writes to the
// ExternalArtifact do not trigger reconciles (no refetch after every new
// revision), but its deletion does.
func TestDeletedExternalArtifactIsRestored(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newCountingUpstream(t, "a: 1\n", "", "", true)
	obj := newSource(ns, "restored", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	// Publishing (create and status of the ExternalArtifact) caused no
	// second fetch.
	g.Consistently(up.counts, 2*time.Second, 100*time.Millisecond).Should(Equal(counts{heads: 0, gets: 1}))

	g.Expect(k8sClient.Delete(testCtx, getExternalArtifact(g, obj))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(ready.Status.Artifact))
	}, timeout).Should(Succeed())
}
