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
	"io"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/fluxcd/pkg/apis/meta"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// series returns the series of a metric family in a registry whose labels
// include want.
func series(g Gomega, reg prometheus.Gatherer, name string, want map[string]string) []*dto.Metric {
	families, err := reg.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	var out []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// value sums counters, gauges, and histogram sample counts of the series.
func value(g Gomega, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range series(g, reg, name, want) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// histogramSum sums the observed values of the histogram series.
func histogramSum(g Gomega, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range series(g, reg, name, want) {
		sum += m.GetHistogram().GetSampleSum()
	}
	return sum
}

// metricsSnapshot is what one step of TestFetchMetrics compares before
// and after: fetches, fetch durations and response sizes by result, and
// the object's reconcile durations.
type metricsSnapshot struct {
	fetches, durations map[string]float64
	sizes, sizeSum     float64
	reconciles         float64
	// results are externalsource_reconcile_total by labels, and
	// resultsTotal their sum.
	results      map[string]float64
	resultsTotal float64
}

// fetchResults are the results a fetch is counted under.
var fetchResults = []string{metrics.ResultChanged, metrics.ResultUnchanged, metrics.ResultError}

func snapshot(g Gomega, reg prometheus.Gatherer, ref map[string]string) metricsSnapshot {
	s := metricsSnapshot{fetches: map[string]float64{}, durations: map[string]float64{}}
	for _, r := range fetchResults {
		byResult := map[string]string{"type": exsv1beta1.GeneratorTypeHTTP, "result": r}
		s.fetches[r] = value(g, reg, metrics.FetchTotalName, byResult)
		s.durations[r] = value(g, reg, metrics.FetchDurationName, byResult)
	}
	s.sizes = value(g, reg, metrics.ResponseSizeName, map[string]string{"type": exsv1beta1.GeneratorTypeHTTP})
	s.sizeSum = histogramSum(g, reg, metrics.ResponseSizeName, map[string]string{"type": exsv1beta1.GeneratorTypeHTTP})
	s.reconciles = value(g, reg, "gotk_reconcile_duration_seconds", ref)
	s.results = map[string]float64{}
	for _, m := range series(g, reg, metrics.ReconcileTotalName, nil) {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		s.results[l["result"]+"/"+l["reason"]] += m.GetCounter().GetValue()
		s.resultsTotal += m.GetCounter().GetValue()
	}
	return s
}

// TestFetchMetrics runs one reconcile per step, with the reconciler's
// metric recorders on a registry of the test's own (no other object
// counts there), and compares each metric before and after the step: each
// reconcile counts exactly the fetch it made, under its result, with its
// duration and response size, and records the reconcile's duration and no
// other per-object series (Flux's convention since v2.1: the object's state
// is kube-state-metrics' to export).
func TestFetchMetrics(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := prometheus.NewRegistry()
	fetches := metrics.NewIsolatedRecorder()
	gotk := metrics.NewReconcileDurations(exsv1beta1.ExternalSourceKind, exsv1beta1.Finalizer)
	reg.MustRegister(append(fetches.Collectors(), gotk)...)
	r := &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       events.NewFakeRecorder(64, false),
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memoryStore(),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
		Metrics:        gotk,
		FetchMetrics:   fetches,
		// As SetupWithManager sets it: failures are requeued by it.
		RetryAfterBackoff: runtimectrl.GetDefaultRateLimiter(),
	}

	const body = "m: 1\n"
	up := newCountingUpstream(t, body, `"m1"`, "", true)
	obj := newSource(ns, "fetch-metrics", up.URL)
	// No suite manager reconciles it: only this test's reconciles count.
	obj.Labels = map[string]string{isolatedLabel: "fetch-metrics"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ref := map[string]string{"kind": exsv1beta1.ExternalSourceKind, "namespace": ns, "name": obj.Name}

	// changed is a new revision of the same size: bodySize is what one
	// full GET downloads.
	const changed = "m: 2\n"
	bodySize := float64(len(body))
	tests := []struct {
		name   string
		change func(g Gomega)
		// fetches is the expected increase of each result's count; sizes
		// the number of response sizes observed.
		fetches map[string]float64
		sizes   float64
		// wantRequeue: a failure, requeued by the reconciler's backoff
		// (not returned as an error).
		wantRequeue bool
		// failed is the reason the reconcile is counted as a failure
		// under; "" is a success.
		failed string
	}{
		{name: "first fetch stores a revision", fetches: map[string]float64{metrics.ResultChanged: 1}, sizes: 1},
		{name: "HEAD confirms the ETag", fetches: map[string]float64{metrics.ResultUnchanged: 1}},
		{name: "new ETag, same bytes", change: func(Gomega) { up.set(body, `"m2"`) },
			fetches: map[string]float64{metrics.ResultUnchanged: 1}, sizes: 1},
		{name: "the fetch fails", change: func(Gomega) { up.setStatus(http.StatusForbidden) },
			fetches: map[string]float64{metrics.ResultError: 1}, wantRequeue: true, failed: exsv1beta1.FetchFailedReason},
		{name: "storage lost the artifact, same bytes again", change: func(g Gomega) {
			up.setStatus(http.StatusOK)
			cur := getSource(g, obj)
			g.Expect(memoryStore().Remove(testCtx, *cur.Status.Artifact)).To(Succeed())
		}, fetches: map[string]float64{metrics.ResultUnchanged: 1}, sizes: 1},
		{name: "a post-request hook fails after the download: an error", change: func(g Gomega) {
			up.set(changed, `"m3"`)
			r.HookRunner = failingRunner{}
			patchSource(g, obj, func(o *exsv1beta1.ExternalSource) { withHooks(o, nil, []exsv1beta1.Hook{jq("identity", ".")}) })
		}, fetches: map[string]float64{metrics.ResultError: 1}, sizes: 1, wantRequeue: true, failed: exsv1beta1.HookFailedReason},
		{name: "the extraction fails after the download: an error", change: func(g Gomega) {
			r.HookRunner = nil
			patchSource(g, obj, func(o *exsv1beta1.ExternalSource) {
				o.Spec.Hooks = nil
				o.Spec.Extract = &exsv1beta1.ExtractSpec{Format: "tar"}
			})
		}, fetches: map[string]float64{metrics.ResultError: 1}, sizes: 1, wantRequeue: true, failed: exsv1beta1.FetchFailedReason},
		{name: "the store fails: an error, not changed", change: func(g Gomega) {
			r.Storage = putFailingStorage{memoryStore()}
			patchSource(g, obj, func(o *exsv1beta1.ExternalSource) { o.Spec.Extract = nil })
		}, fetches: map[string]float64{metrics.ResultError: 1}, sizes: 1, wantRequeue: true, failed: exsv1beta1.WriteOperationFailedReason},
		{name: "the store works again: changed", change: func(Gomega) { r.Storage = memoryStore() },
			fetches: map[string]float64{metrics.ResultChanged: 1}, sizes: 1},
		{name: "a stalled spec fetches nothing", change: func(g Gomega) {
			// This reconciler has no hook runner: hooks stall the object
			// before any fetch.
			cur := getSource(g, obj)
			p := client.MergeFrom(cur.DeepCopy())
			withHooks(cur, nil, []exsv1beta1.Hook{jq("identity", ".")})
			g.Expect(k8sClient.Patch(testCtx, cur, p)).To(Succeed())
		}, fetches: map[string]float64{}, failed: exsv1beta1.HooksDisabledReason},
	}
	for _, tt := range tests {
		if !t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			if tt.change != nil {
				tt.change(g)
			}
			before := snapshot(g, reg, ref)
			res, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
			g.Expect(err).ToNot(HaveOccurred())
			if tt.wantRequeue {
				g.Expect(res.RequeueAfter).To(BeNumerically(">", 0))
			}
			after := snapshot(g, reg, ref)

			for _, res := range fetchResults {
				g.Expect(after.fetches[res]-before.fetches[res]).To(Equal(tt.fetches[res]), "%s fetches", res)
				g.Expect(after.durations[res]-before.durations[res]).To(Equal(tt.fetches[res]), "%s fetch durations", res)
			}
			g.Expect(after.sizes-before.sizes).To(Equal(tt.sizes), "response sizes observed")
			g.Expect(after.sizeSum-before.sizeSum).To(Equal(tt.sizes*bodySize), "bytes downloaded")
			g.Expect(after.reconciles-before.reconciles).To(Equal(1.0), "one reconcile duration")
			want := metrics.ReconcileSuccess + "/"
			if tt.failed != "" {
				want = metrics.ReconcileFailure + "/" + tt.failed
			}
			g.Expect(after.results[want]-before.results[want]).To(Equal(1.0), "the reconcile counted as %v", want)
			g.Expect(after.resultsTotal-before.resultsTotal).To(Equal(1.0), "one reconcile counted")

			// No per-object series but the duration.
			for _, name := range []string{"gotk_reconcile_condition", "gotk_suspend_status"} {
				g.Expect(series(g, reg, name, ref)).To(BeEmpty(), name)
			}
		}) {
			// Later steps build on this one.
			return
		}
	}
}

// TestMetrics checks the wiring of the suite's managers: the registry they
// serve has our fetch metrics and Flux's per-object metrics, each step
// raising them (compared before and after, as other objects of the suite
// also count there), and the per-object series go away with the object.
func TestMetrics(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	reg := ctrlmetrics.Registry
	up := newCountingUpstream(t, "m: 1\n", `"m1"`, "", true)
	obj := newSource(ns, "metrics", up.URL)
	ref := map[string]string{"kind": exsv1beta1.ExternalSourceKind, "namespace": ns, "name": obj.Name}
	// raised waits until every fetch result in want counted more than in
	// before, and the object's reconciles too.
	raised := func(before metricsSnapshot, want ...string) metricsSnapshot {
		var now metricsSnapshot
		g.Eventually(func(g Gomega) {
			now = snapshot(g, reg, ref)
			for _, res := range want {
				g.Expect(now.fetches[res]).To(BeNumerically(">", before.fetches[res]), "%s fetches", res)
				g.Expect(now.durations[res]).To(BeNumerically(">", before.durations[res]), "%s fetch durations", res)
			}
			g.Expect(now.reconciles).To(BeNumerically(">", before.reconciles), "reconciles of the object")
		}, timeout).Should(Succeed())
		return now
	}

	before := snapshot(g, reg, ref)
	g.Expect(before.reconciles).To(BeZero(), "a new object has no series")
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitReady(t, obj)
	created := raised(before, metrics.ResultChanged)
	g.Expect(created.sizes).To(BeNumerically(">", before.sizes), "response size observed")
	// The duration is the only per-object series (Flux's convention since
	// v2.1; the object's state is kube-state-metrics' to export).
	for _, name := range []string{"gotk_reconcile_condition", "gotk_suspend_status"} {
		g.Expect(series(g, reg, name, ref)).To(BeEmpty(), name)
	}

	requestReconcile(t, obj) // HEAD: unchanged
	unchanged := raised(created, metrics.ResultUnchanged)

	up.setStatus(http.StatusForbidden)
	up.set("m: 1\n", `"m2"`) // the HEAD no longer matches, the GET fails
	requestReconcile(t, obj)
	raised(unchanged, metrics.ResultError)
	// Deleting the object deletes its series.
	g.Expect(k8sClient.Delete(testCtx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), &exsv1beta1.ExternalSource{}))
	}, timeout).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		g.Expect(series(g, reg, "gotk_reconcile_duration_seconds", ref)).To(BeEmpty())
	}, timeout).Should(Succeed())
	// Our own metrics have no per-object labels at all: their label sets are
	// bounded by generator types, results, whitelist commands, backends,
	// storage operations, HTTP status codes, failure reasons (the API's
	// constants, never a message) and, for the memory store's usage,
	// namespaces holding artifacts.
	families, err := reg.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "externalsource_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				g.Expect(l.GetName()).To(BeElementOf("type", "result", "command", "backend", "ephemeral", "operation", "code", "namespace", "reason"), f.GetName())
				if l.GetName() == "reason" {
					g.Expect(l.GetValue()).To(MatchRegexp(`^[A-Z][A-Za-z]*$|^$`), "a reason constant, not a message")
				}
			}
		}
	}
}

// patchSource changes obj's spec in the API.
func patchSource(g Gomega, obj *exsv1beta1.ExternalSource, change func(*exsv1beta1.ExternalSource)) {
	cur := getSource(g, obj)
	p := client.MergeFrom(cur.DeepCopy())
	change(cur)
	g.Expect(k8sClient.Patch(testCtx, cur, p)).To(Succeed())
}

// failingRunner is a stand-in for the hook sidecar whose every hook fails
// (the sidecar's own failures are tested against the real sidecar in
// externalsource_hooks_test.go); it checks nothing, so the hooks reach it.
type failingRunner struct{}

func (failingRunner) Run(context.Context, exsv1beta1.Hook, io.Reader, io.Writer) error {
	return &hook.ExecError{Hook: "identity", ExitCode: 1, Reason: "exit status 1"}
}

// putFailingStorage fails every Put; everything else is the embedded
// store, so the published artifact verifies and the fetch runs.
type putFailingStorage struct {
	storage.Storage
}

func (putFailingStorage) Put(context.Context, *meta.Artifact, io.Reader) error {
	return errors.New("storage unreachable")
}
