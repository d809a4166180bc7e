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
	"io"
	mathrand "math/rand"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/jitter"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// readyObject is a Ready object of generation 2, handled, with an artifact
// stored at stored.
func readyObject(stored time.Time) *exsv1beta1.ExternalSource {
	obj := newSource("ns", "ready", "http://127.0.0.1:1")
	obj.Generation = 2
	obj.Status.ObservedGeneration = 2
	obj.Status.Artifact = &meta.Artifact{Revision: "latest@sha256:00", LastUpdateTime: metav1.NewTime(stored)}
	conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "stored")
	return obj
}

// TestFirstCheckDelay: the first check of a Ready object in a process is
// deferred to a uniformly spread point of what is left of its interval,
// counted from the artifact's time; an object with anything pending is
// checked at once.
func TestFirstCheckDelay(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	latest := &firstChecks{rand: func(n int64) int64 { return n - 1 }} // the latest point allowed
	tests := []struct {
		name   string
		obj    func() *exsv1beta1.ExternalSource
		wantAt time.Duration // the latest delay; 0 is no deferral
	}{
		{name: "stored 3m ago, 10m interval", obj: func() *exsv1beta1.ExternalSource { return readyObject(now.Add(-3 * time.Minute)) },
			wantAt: 7*time.Minute - 1},
		{name: "stored 25m ago: 5m left of the third interval", obj: func() *exsv1beta1.ExternalSource { return readyObject(now.Add(-25 * time.Minute)) },
			wantAt: 5*time.Minute - 1},
		{name: "a clock behind the artifact's: a whole interval", obj: func() *exsv1beta1.ExternalSource { return readyObject(now.Add(time.Hour)) },
			wantAt: 10*time.Minute - 1},
		{name: "due in less than a second: at once", obj: func() *exsv1beta1.ExternalSource {
			return readyObject(now.Add(-10*time.Minute + 500*time.Millisecond))
		}},
		{name: "no artifact", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now)
			o.Status.Artifact = nil
			return o
		}},
		{name: "new generation", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now)
			o.Generation = 3
			return o
		}},
		{name: "not Ready", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now)
			conditions.MarkFalse(o, meta.ReadyCondition, "FetchFailed", "down")
			return o
		}},
		{name: "reconcile requested", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now)
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now"}
			return o
		}},
		{name: "reconcile request handled", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now.Add(-3 * time.Minute))
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "then"}
			o.Status.LastHandledReconcileAt = "then"
			return o
		}, wantAt: 7*time.Minute - 1},
		{name: "forced fetch", obj: func() *exsv1beta1.ExternalSource {
			o := readyObject(now)
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now", meta.ForceRequestAnnotation: "now"}
			return o
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(latest.delay(tt.obj(), now)).To(Equal(tt.wantAt))
			var none *firstChecks
			g.Expect(none.delay(tt.obj(), now)).To(BeZero(), "a reconciler without SetupWithManager defers nothing")
		})
	}

	// Spread: 1000 objects stored together 3m ago land uniformly over the
	// 7m left, not in one burst.
	g := NewWithT(t)
	spread := &firstChecks{}
	var quarters [4]int
	for range 1000 {
		d := spread.delay(readyObject(now.Add(-3*time.Minute)), now)
		if d == 0 {
			continue // due within a second: checked at once
		}
		g.Expect(d).To(BeNumerically(">=", minFirstCheckDelay))
		g.Expect(d).To(BeNumerically("<", 7*time.Minute))
		quarters[int(d/(7*time.Minute/4))]++
	}
	t.Logf("first checks per quarter of the 7m left: %v", quarters)
	for i, n := range quarters {
		g.Expect(n).To(BeNumerically(">", 150), "quarter %d of %v", i, quarters)
	}
}

// TestRequeuesAreJittered: the requeue after a successful check goes
// through the interval jitter (--interval-jitter-percentage), so sources
// created together drift apart.
func TestRequeuesAreJittered(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newCountingUpstream(t, "a: 1\n", `"v1"`, "", true)
	obj := newSource(ns, "jittered", up.URL)
	obj.Labels = map[string]string{isolatedLabel: "nobody-" + ns}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	r := &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       events.NewFakeRecorder(100, false),
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memoryStore(),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
		jitter:         jitter.Percent(0.1, mathrand.New(mathrand.NewSource(1))), //nolint:gosec // test jitter
	}
	var requeues []time.Duration
	for range 20 {
		res, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(res.RequeueAfter).To(BeNumerically(">=", 9*time.Minute))
		g.Expect(res.RequeueAfter).To(BeNumerically("<=", 11*time.Minute))
		requeues = append(requeues, res.RequeueAfter)
	}
	slices.Sort(requeues)
	t.Logf("requeues: %v", requeues)
	g.Expect(slices.Compact(requeues)).To(HaveLen(20))
	g.Expect(requeues[19] - requeues[0]).To(BeNumerically(">", 30*time.Second))
}

// TestMaxConcurrentPerHostThroughTheController: many sources of one
// upstream in two namespaces, reconciled by six workers, reach it at most
// --max-concurrent-per-host at a time, and all become Ready.
func TestMaxConcurrentPerHostThroughTheController(t *testing.T) {
	g := NewWithT(t)
	const limit, sources = 2, 8
	var (
		mu             sync.Mutex
		inFlight, peak int
		arrived        = make(chan struct{}, 100)
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		arrived <- struct{}{}
		// Hold the request until the limit is reached (or a while), so
		// that requests overlap whenever the controller lets them.
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			full := inFlight >= limit
			mu.Unlock()
			if full {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		_, _ = io.WriteString(w, "a: 1\n")
	}))
	t.Cleanup(srv.Close)

	gens := generator.NewRegistry()
	g.Expect(builtin.Register(gens, builtin.Options{HTTP: httpgen.Options{MaxConcurrentPerHost: limit,
		URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})).To(Succeed())
	ns := newNamespace(t)
	im := startIsolatedManager(t, "iso-"+ns, 3, ReconcilerOptions{MaxConcurrentReconciles: 6, MaxConcurrentPerNamespace: 6},
		func(r *ExternalSourceReconciler) { r.Generators = gens })
	// Two namespaces: one namespace holds at most half of a host's slots
	// (internal/generator/http, hostlimit.go).
	namespaces := []string{ns, newNamespace(t)}
	var objs []*exsv1beta1.ExternalSource
	for i := range sources {
		obj := im.source(namespaces[i%2], fmt.Sprintf("s%d", i), srv.URL)
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		objs = append(objs, obj)
	}
	for _, obj := range objs {
		waitReady(t, obj)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests, at most %d in flight (limit %d)", len(arrived), peak, limit)
	g.Expect(len(arrived)).To(Equal(sources))
	g.Expect(peak).To(Equal(limit))
}
