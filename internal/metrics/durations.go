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
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// ReconcileDurationName is Flux's per-object reconcile duration histogram.
const ReconcileDurationName = "gotk_reconcile_duration_seconds"

// reconcileDurationBuckets are Flux's (fluxcd/pkg/runtime/metrics): 10
// buckets from 10 ms to 30 min.
var reconcileDurationBuckets = prometheus.ExponentialBucketsRange(10e-3, 1800, len(durationCounts{}.buckets))

// ReconcileDurations is gotk_reconcile_duration_seconds as Flux's
// controllers export it (same name, help, type, labels kind, name and
// namespace, and buckets: dashboards and alerts see no difference,
// TestReconcileDurationsAsFlux), kept as bare bucket counts per object.
// Flux's recorder keeps one client_golang histogram per object with its
// label pairs, several times larger, which at thousands of sources was a
// large share of the controller's heap (measured in docs/benchmarks.md).
// The counts are turned into Prometheus histograms when scraped.
type ReconcileDurations struct {
	kind       string
	finalizers []string
	desc       *prometheus.Desc

	mu     sync.Mutex
	series map[durationKey]*durationCounts
}

type durationKey struct{ namespace, name string }

// durationCounts are one object's observations: per bucket (not yet
// cumulative), their number and their sum.
type durationCounts struct {
	buckets [10]uint64
	count   uint64
	sum     float64
}

// NewReconcileDurations returns the histogram of objects of kind; an object
// being deleted that holds none of finalizers any more has its series
// deleted, as Flux's runtime/controller.Metrics does.
func NewReconcileDurations(kind string, finalizers ...string) *ReconcileDurations {
	return &ReconcileDurations{
		kind:       kind,
		finalizers: finalizers,
		desc: prometheus.NewDesc(ReconcileDurationName,
			"The duration in seconds of a GitOps Toolkit resource reconciliation.",
			[]string{"kind", "name", "namespace"}, nil),
		series: map[durationKey]*durationCounts{},
	}
}

// RecordDuration records the time since start for obj, or deletes obj's
// series when obj is going away.
func (d *ReconcileDurations) RecordDuration(_ context.Context, obj client.Object, start time.Time) {
	key := durationKey{namespace: obj.GetNamespace(), name: obj.GetName()}
	if !obj.GetDeletionTimestamp().IsZero() && !d.holdsFinalizer(obj) {
		d.mu.Lock()
		delete(d.series, key)
		d.mu.Unlock()
		return
	}
	d.observe(key, time.Since(start).Seconds())
}

func (d *ReconcileDurations) holdsFinalizer(obj client.Object) bool {
	for _, f := range d.finalizers {
		if controllerutil.ContainsFinalizer(obj, f) {
			return true
		}
	}
	return false
}

// observe adds one observation of v seconds to key's series; like
// client_golang, a value on a bucket's upper bound counts in that bucket,
// and one above every bound only in the count (the +Inf bucket).
func (d *ReconcileDurations) observe(key durationKey, v float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.series[key]
	if c == nil {
		c = &durationCounts{}
		d.series[key] = c
	}
	for i, ub := range reconcileDurationBuckets {
		if v <= ub {
			c.buckets[i]++
			break
		}
	}
	c.count++
	c.sum += v
}

// Describe implements prometheus.Collector.
func (d *ReconcileDurations) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

// Collect implements prometheus.Collector: a copy of the counts is taken
// under the lock, and the histograms are built from it outside.
func (d *ReconcileDurations) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	keys := make([]durationKey, 0, len(d.series))
	counts := make([]durationCounts, 0, len(d.series))
	for k, c := range d.series {
		keys = append(keys, k)
		counts = append(counts, *c)
	}
	d.mu.Unlock()
	for i, c := range counts {
		cumulative := make(map[float64]uint64, len(reconcileDurationBuckets))
		var n uint64
		for j, ub := range reconcileDurationBuckets {
			n += c.buckets[j]
			cumulative[ub] = n
		}
		ch <- prometheus.MustNewConstHistogram(d.desc, c.count, c.sum, cumulative, d.kind, keys[i].name, keys[i].namespace)
	}
}

// Len is the number of objects with a series; for tests.
func (d *ReconcileDurations) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.series)
}
