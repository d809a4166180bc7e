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
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/metrics"
)

// series returns the series of a metric family in controller-runtime's
// registry (the one the manager serves) whose labels include want.
func series(g Gomega, name string, want map[string]string) []*dto.Metric {
	families, err := ctrlmetrics.Registry.Gather()
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
func value(g Gomega, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range series(g, name, want) {
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

// TestMetrics gathers the registry the manager serves: fetches by type and
// result, their duration and size, and Flux's per-object metrics, which go
// away with the object.
func TestMetrics(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	byResult := func(result string) map[string]string {
		return map[string]string{"type": v1.GeneratorTypeHTTP, "result": result}
	}
	before := map[string]float64{}
	for _, r := range []string{metrics.ResultChanged, metrics.ResultUnchanged, metrics.ResultError} {
		before[r] = value(g, metrics.FetchTotalName, byResult(r))
	}
	sizesBefore := value(g, metrics.ResponseSizeName, map[string]string{"type": v1.GeneratorTypeHTTP})

	up := newCountingUpstream(t, "m: 1\n", `"m1"`, "", true)
	obj := newSource(ns, "metrics", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	waitReady(t, obj)
	requestReconcile(t, obj) // HEAD: unchanged
	up.setStatus(http.StatusForbidden)
	up.set("m: 1\n", `"m2"`) // the HEAD no longer matches, the GET fails
	requestReconcile(t, obj)

	g.Eventually(func(g Gomega) {
		g.Expect(value(g, metrics.FetchTotalName, byResult(metrics.ResultChanged)) - before[metrics.ResultChanged]).To(BeNumerically(">=", 1))
		g.Expect(value(g, metrics.FetchTotalName, byResult(metrics.ResultUnchanged)) - before[metrics.ResultUnchanged]).To(BeNumerically(">=", 1))
		g.Expect(value(g, metrics.FetchTotalName, byResult(metrics.ResultError)) - before[metrics.ResultError]).To(BeNumerically(">=", 1))
		g.Expect(value(g, metrics.FetchDurationName, byResult(metrics.ResultChanged))).To(BeNumerically(">=", 1))
		g.Expect(value(g, metrics.ResponseSizeName, map[string]string{"type": v1.GeneratorTypeHTTP}) - sizesBefore).To(BeNumerically(">=", 1))
	}, timeout).Should(Succeed())

	ref := map[string]string{"kind": v1.ExternalSourceKind, "namespace": ns, "name": obj.Name}
	withType := func(typ, status string) map[string]string {
		m := map[string]string{"type": typ, "status": status}
		for k, v := range ref {
			m[k] = v
		}
		return m
	}
	g.Eventually(func(g Gomega) {
		g.Expect(value(g, "gotk_reconcile_condition", withType("Ready", "False"))).To(Equal(1.0))
		g.Expect(value(g, "gotk_reconcile_condition", withType("Ready", "True"))).To(Equal(0.0))
		g.Expect(value(g, "gotk_reconcile_condition", withType("Reconciling", "True"))).To(Equal(1.0))
		g.Expect(value(g, "gotk_reconcile_duration_seconds", ref)).To(BeNumerically(">=", 3))
		g.Expect(series(g, "gotk_suspend_status", ref)).To(HaveLen(1))
		g.Expect(value(g, "gotk_suspend_status", ref)).To(Equal(0.0))
	}, timeout).Should(Succeed())

	// Deleting the object deletes its series.
	g.Expect(k8sClient.Delete(testCtx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), &v1.ExternalSource{}))
	}, timeout).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"gotk_reconcile_condition", "gotk_reconcile_duration_seconds", "gotk_suspend_status"} {
			g.Expect(series(g, name, ref)).To(BeEmpty(), name)
		}
	}, timeout).Should(Succeed())
	// Our own metrics have no per-object labels at all: their label sets are
	// bounded by generator types, results, whitelist commands, backends.
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "externalsource_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				g.Expect(l.GetName()).To(BeElementOf("type", "result", "command", "backend", "ephemeral"), f.GetName())
			}
		}
	}
}
