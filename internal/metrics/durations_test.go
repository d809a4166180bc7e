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

package metrics

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fluxmetrics "github.com/fluxcd/pkg/runtime/metrics"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// gatherText renders what reg exports in the text exposition format.
func gatherText(g Gomega, reg *prometheus.Registry) string {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var b bytes.Buffer
	for _, mf := range families {
		_, err := expfmt.MetricFamilyToText(&b, mf)
		g.Expect(err).NotTo(HaveOccurred())
	}
	return b.String()
}

// TestReconcileDurationsAsFlux: what ReconcileDurations exports is what
// Flux's recorder exports. First the metadata, against Flux's recorder
// itself: name, help, type, label names and bucket bounds. Then the
// values, against a client_golang histogram of the same options (Flux's
// recorder cannot be fed exact durations) for values on, between, below
// and above the bounds, of two objects, one of them then deleted.
func TestReconcileDurationsAsFlux(t *testing.T) {
	g := NewWithT(t)

	flux := fluxmetrics.NewRecorder()
	fluxReg := prometheus.NewPedanticRegistry()
	fluxReg.MustRegister(flux.Collectors()...)
	flux.RecordDuration(corev1.ObjectReference{Kind: exsv1beta1.ExternalSourceKind, Name: "a", Namespace: "ns"}, time.Now())
	ours := NewReconcileDurations(exsv1beta1.ExternalSourceKind, exsv1beta1.Finalizer)
	ourReg := prometheus.NewPedanticRegistry()
	ourReg.MustRegister(ours)
	obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}
	ours.RecordDuration(context.Background(), obj, time.Now())

	family := func(reg *prometheus.Registry) *dto.MetricFamily {
		families, err := reg.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, mf := range families {
			if mf.GetName() == ReconcileDurationName {
				return mf
			}
		}
		t.Fatalf("no %s", ReconcileDurationName)
		return nil
	}
	f, o := family(fluxReg), family(ourReg)
	g.Expect(o.GetHelp()).To(Equal(f.GetHelp()))
	g.Expect(o.GetType()).To(Equal(f.GetType()))
	g.Expect(o.GetMetric()).To(HaveLen(1))
	labels := func(m *dto.Metric) map[string]string {
		out := map[string]string{}
		for _, l := range m.GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	g.Expect(labels(o.GetMetric()[0])).To(Equal(labels(f.GetMetric()[0])))
	bounds := func(m *dto.Metric) []float64 {
		var out []float64
		for _, b := range m.GetHistogram().GetBucket() {
			out = append(out, b.GetUpperBound())
		}
		return out
	}
	g.Expect(bounds(o.GetMetric()[0])).To(Equal(bounds(f.GetMetric()[0])))

	// The values, against a client_golang histogram with Flux's options.
	ref := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    ReconcileDurationName,
		Help:    "The duration in seconds of a GitOps Toolkit resource reconciliation.",
		Buckets: prometheus.ExponentialBucketsRange(10e-3, 1800, 10),
	}, []string{"kind", "name", "namespace"})
	refReg := prometheus.NewPedanticRegistry()
	refReg.MustRegister(ref)
	ours = NewReconcileDurations(exsv1beta1.ExternalSourceKind, exsv1beta1.Finalizer)
	ourReg = prometheus.NewPedanticRegistry()
	ourReg.MustRegister(ours)
	values := []float64{0, 0.001, 0.01, 0.0100001, 0.5, reconcileDurationBuckets[3], 42, 1800, 1800.5, 1e6}
	for i, v := range values {
		name := []string{"a", "b"}[i%2]
		ref.WithLabelValues(exsv1beta1.ExternalSourceKind, name, "ns").Observe(v)
		ours.observe(durationKey{namespace: "ns", name: name}, v)
	}
	g.Expect(gatherText(g, ourReg)).To(Equal(gatherText(g, refReg)))

	// A deleted object's series goes, as Flux's does; one that still
	// holds the finalizer keeps it.
	b := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns",
		DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{exsv1beta1.Finalizer}}}
	ours.RecordDuration(context.Background(), b, time.Now())
	g.Expect(ours.Len()).To(Equal(2))
	b.Finalizers = nil
	ours.RecordDuration(context.Background(), b, time.Now())
	g.Expect(ours.Len()).To(Equal(1))
	ref.DeleteLabelValues(exsv1beta1.ExternalSourceKind, "b", "ns")
	g.Expect(gatherText(g, ourReg)).To(Equal(gatherText(g, refReg)))
}

// TestReconcileDurationsMemory: the series of 10,000 objects take a
// fraction of what client_golang histograms (Flux's recorder) take.
func TestReconcileDurationsMemory(t *testing.T) {
	g := NewWithT(t)
	const n = 10000
	heap := func(fill func()) uint64 {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fill()
		runtime.GC()
		runtime.ReadMemStats(&after)
		return (after.HeapAlloc - before.HeapAlloc) / n
	}
	flux := fluxmetrics.NewRecorder()
	fluxBytes := heap(func() {
		for i := range n {
			flux.RecordDuration(corev1.ObjectReference{Kind: exsv1beta1.ExternalSourceKind, Name: fmt.Sprintf("s%d", i), Namespace: "ns"}, time.Now())
		}
	})
	ours := NewReconcileDurations(exsv1beta1.ExternalSourceKind)
	ourBytes := heap(func() {
		for i := range n {
			ours.RecordDuration(context.Background(),
				&exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i), Namespace: "ns"}}, time.Now())
		}
	})
	t.Logf("bytes per object: Flux's recorder %d, ReconcileDurations %d", fluxBytes, ourBytes)
	g.Expect(ourBytes).To(BeNumerically("<", fluxBytes/3))
	runtime.KeepAlive(flux)
	runtime.KeepAlive(ours)
}
