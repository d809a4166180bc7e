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

package memory

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Names of the memory store's metrics.
const (
	BytesName             = "externalsource_memory_store_bytes"
	MaxBytesName          = "externalsource_memory_store_max_bytes"
	NamespaceBytesName    = "externalsource_memory_store_namespace_bytes"
	NamespaceMaxBytesName = "externalsource_memory_store_namespace_max_bytes"
)

var (
	bytesDesc = prometheus.NewDesc(BytesName,
		"Bytes of artifacts the memory store holds; a Put beyond externalsource_memory_store_max_bytes fails.", nil, nil)
	maxBytesDesc = prometheus.NewDesc(MaxBytesName,
		"The memory store's cap (--memory-store-max-bytes).", nil, nil)
	nsBytesDesc = prometheus.NewDesc(NamespaceBytesName,
		"Bytes of artifacts the memory store holds for the objects of one namespace; a Put beyond externalsource_memory_store_namespace_max_bytes fails.",
		[]string{"namespace"}, nil)
	nsMaxBytesDesc = prometheus.NewDesc(NamespaceMaxBytesName,
		"The memory store's cap per namespace (--memory-store-max-bytes-per-namespace).", nil, nil)
)

// ExportMetrics makes s the memory store whose usage the controller's
// metrics report. One collector is registered once and reads the store
// last given here: a process that builds a new store (a test running the
// manager twice) reports the new one instead of failing to register.
func (s *Storage) ExportMetrics() {
	exported.Store(s)
	registerOnce.Do(func() { metrics.Registry.MustRegister(collector{}) })
}

var (
	exported     atomic.Pointer[Storage]
	registerOnce sync.Once
)

// collector reports the exported store.
type collector struct{}

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- bytesDesc
	ch <- maxBytesDesc
	ch <- nsBytesDesc
	ch <- nsMaxBytesDesc
}

// Collect implements prometheus.Collector. The usage is read at scrape
// time from the counts Put keeps anyway, so that a full store (every Put
// failing) shows before it happens; a namespace holding nothing has no
// series, which bounds them by the namespaces with artifacts.
func (collector) Collect(ch chan<- prometheus.Metric) {
	s := exported.Load()
	if s == nil {
		return
	}
	s.mu.RLock()
	total := s.total
	byNamespace := make(map[string]int64, len(s.byNamespace))
	for ns, n := range s.byNamespace {
		byNamespace[ns] = n
	}
	s.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(maxBytesDesc, prometheus.GaugeValue, float64(s.opts.MaxBytes))
	ch <- prometheus.MustNewConstMetric(nsMaxBytesDesc, prometheus.GaugeValue, float64(s.opts.MaxBytesPerNamespace))
	for ns, n := range byNamespace {
		ch <- prometheus.MustNewConstMetric(nsBytesDesc, prometheus.GaugeValue, float64(n), ns)
	}
}
