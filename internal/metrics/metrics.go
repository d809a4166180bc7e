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

// Package metrics defines the controller's own Prometheus metrics: fetches
// by generator type and result, whose labels are bounded (no per-object
// series to clean up), and Flux's per-object reconcile duration
// (gotk_reconcile_duration_seconds, durations.go), exported as Flux's
// recorder exports it but kept compactly.
//
// The fetch metrics are registered the same way as every metric of this
// controller: the package that owns them declares its collectors at package
// level and registers them with controller-runtime's registry (served on
// --metrics-addr) in its init function, as here, in internal/storage and in
// internal/hook. The duration collector is built and registered by main, as
// Flux's recorder was.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Fetch results.
const (
	// ResultChanged: the fetch produced a new revision.
	ResultChanged = "changed"
	// ResultUnchanged: the upstream confirmed the published data (HEAD,
	// 304) or returned data with the published digest.
	ResultUnchanged = "unchanged"
	// ResultError: the fetch failed.
	ResultError = "error"
)

// Reconcile results.
const (
	// ReconcileSuccess: every step succeeded (a deferred first check
	// included).
	ReconcileSuccess = "success"
	// ReconcileFailure: a step failed; the reason label is the failure's
	// (Ready's) reason, one of the API's reason constants.
	ReconcileFailure = "failure"
)

// Metric names.
const (
	FetchDurationName  = "externalsource_fetch_duration_seconds"
	FetchTotalName     = "externalsource_fetch_total"
	ResponseSizeName   = "externalsource_fetch_response_size_bytes"
	ReconcileTotalName = "externalsource_reconcile_total"
)

// newReconciles builds the reconcile counter. Failures return a requeue,
// not an error, to controller-runtime (which would log them twice), so
// its controller_runtime_reconcile_total counts them as successes: this
// counter is the one that tells them apart. Both labels are bounded: two
// results, and reasons from the API's constants.
func newReconciles() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: ReconcileTotalName,
		Help: "ExternalSource reconciles by result (success, failure) and the failure's reason (empty on success).",
	}, []string{"result", "reason"})
}

// newVecs builds the fetch metrics' collectors.
func newVecs() (*prometheus.HistogramVec, *prometheus.CounterVec, *prometheus.HistogramVec) {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    FetchDurationName,
			Help:    "Duration of a fetch (request, retries and download) by generator type and result.",
			Buckets: prometheus.ExponentialBucketsRange(0.005, 300, 12),
		}, []string{"type", "result"}),
		prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: FetchTotalName,
			Help: "Fetches by generator type and result (changed, unchanged, error).",
		}, []string{"type", "result"}),
		prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    ResponseSizeName,
			Help:    "Size of the data downloaded by a fetch, by generator type.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10), // 256 B .. 64 MiB
		}, []string{"type"})
}

var (
	fetchDuration, fetches, responseSize = newVecs()
	reconciles                           = newReconciles()
)

func init() {
	ctrlmetrics.Registry.MustRegister(fetchDuration, fetches, responseSize, reconciles)
}

// Recorder records the controller's own metrics: fetches and reconcile
// results. A nil *Recorder records nothing, so the reconciler needs no
// checks and a test can turn recording off.
type Recorder struct {
	fetchDuration *prometheus.HistogramVec
	fetches       *prometheus.CounterVec
	responseSize  *prometheus.HistogramVec
	reconciles    *prometheus.CounterVec
}

// NewRecorder returns a Recorder of the registered fetch metrics; every
// Recorder of the process records into the same series.
func NewRecorder() *Recorder {
	return &Recorder{fetchDuration: fetchDuration, fetches: fetches, responseSize: responseSize, reconciles: reconciles}
}

// NewIsolatedRecorder returns a Recorder with series of its own,
// registered nowhere: for a test that counts only its own fetches, on a
// registry of its own (Collectors).
func NewIsolatedRecorder() *Recorder {
	d, f, s := newVecs()
	return &Recorder{fetchDuration: d, fetches: f, responseSize: s, reconciles: newReconciles()}
}

// Collectors returns the recorder's collectors.
func (r *Recorder) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.fetchDuration, r.fetches, r.responseSize, r.reconciles}
}

// RecordFetch counts one fetch of a generator type and observes its duration.
func (r *Recorder) RecordFetch(generatorType, result string, d time.Duration) {
	if r == nil {
		return
	}
	r.fetches.WithLabelValues(generatorType, result).Inc()
	r.fetchDuration.WithLabelValues(generatorType, result).Observe(d.Seconds())
}

// RecordResponseSize observes the size of downloaded data.
func (r *Recorder) RecordResponseSize(generatorType string, bytes int64) {
	if r == nil {
		return
	}
	r.responseSize.WithLabelValues(generatorType).Observe(float64(bytes))
}

// RecordReconcile counts one reconcile of a result; reason is the
// failure's, "" for a success.
func (r *Recorder) RecordReconcile(result, reason string) {
	if r == nil {
		return
	}
	r.reconciles.WithLabelValues(result, reason).Inc()
}
