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

package storage

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// backendInfo exposes the backend in use, so that a dashboard or an alert
// can see that artifacts would not survive a restart (ephemeral="true").
var backendInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "externalsource_storage_backend_info",
	Help: "The artifact storage backend in use (value 1); ephemeral=\"true\" means artifacts do not survive a controller restart.",
}, []string{"backend", "ephemeral"})

// operationErrors counts failed storage operations by operation, so that an
// alert sees a failing backend (a full disk, an unreachable bucket) across
// every source at once, not one object's condition at a time.
var operationErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "externalsource_storage_operation_errors_total",
	Help: "Failed storage operations by operation: verify, write, remove, garbage_collect.",
}, []string{"operation"})

// artifactSize is the size of each artifact published: its count is the
// artifacts published, its buckets what a dashboard shows as artifact
// sizes. By no object label, so that 10,000 sources cost one histogram.
var artifactSize = prometheus.NewHistogram(prometheus.HistogramOpts{
	Name:    "externalsource_artifact_size_bytes",
	Help:    "Size of each new artifact published (the .tar.gz); its count is the artifacts published.",
	Buckets: prometheus.ExponentialBuckets(1024, 4, 10), // 1 KiB to 256 MiB
})

// Storage operations counted by RecordError.
const (
	OperationVerify         = "verify"
	OperationWrite          = "write"
	OperationRemove         = "remove"
	OperationGarbageCollect = "garbage_collect"
)

func init() {
	metrics.Registry.MustRegister(backendInfo, operationErrors, artifactSize)
	// Zero series from the start: an alert on rate() sees the first error.
	for _, op := range []string{OperationVerify, OperationWrite, OperationRemove, OperationGarbageCollect} {
		operationErrors.WithLabelValues(op)
	}
}

// RecordError counts a failed storage operation (one of the Operation
// constants).
func RecordError(operation string) {
	operationErrors.WithLabelValues(operation).Inc()
}

// RecordArtifact records the size of a newly published artifact.
func RecordArtifact(size int64) {
	artifactSize.Observe(float64(size))
}

// RecordBackend sets the backend info metric.
func RecordBackend(name string, s Storage) {
	backendInfo.Reset()
	backendInfo.WithLabelValues(name, strconv.FormatBool(s.Ephemeral())).Set(1)
}
