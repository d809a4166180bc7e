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
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics: the exported store's bytes overall and per namespace, and
// its caps, as the ExternalSourceMemoryStore* alerts read them; a store
// made later (a second manager in one process) replaces the first.
func TestMetrics(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{MaxBytes: 1000, MaxBytesPerNamespace: 400})
	s.ExportMetrics()
	_, err := putIn(s, "team-a", "x", "a.tar.gz", strings.Repeat("a", 300))
	g.Expect(err).ToNot(HaveOccurred())
	_, err = putIn(s, "team-b", "y", "b.tar.gz", strings.Repeat("b", 50))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(testutil.CollectAndCompare(collector{}, strings.NewReader(`
# HELP externalsource_memory_store_bytes Bytes of artifacts the memory store holds; a Put beyond externalsource_memory_store_max_bytes fails.
# TYPE externalsource_memory_store_bytes gauge
externalsource_memory_store_bytes 350
# HELP externalsource_memory_store_max_bytes The memory store's cap (--memory-store-max-bytes).
# TYPE externalsource_memory_store_max_bytes gauge
externalsource_memory_store_max_bytes 1000
# HELP externalsource_memory_store_namespace_bytes Bytes of artifacts the memory store holds for the objects of one namespace; a Put beyond externalsource_memory_store_namespace_max_bytes fails.
# TYPE externalsource_memory_store_namespace_bytes gauge
externalsource_memory_store_namespace_bytes{namespace="team-a"} 300
externalsource_memory_store_namespace_bytes{namespace="team-b"} 50
# HELP externalsource_memory_store_namespace_max_bytes The memory store's cap per namespace (--memory-store-max-bytes-per-namespace).
# TYPE externalsource_memory_store_namespace_max_bytes gauge
externalsource_memory_store_namespace_max_bytes 400
`))).To(Succeed())

	// Removing team-b's artifact removes its series.
	b, err := putIn(s, "team-b", "y", "b.tar.gz", strings.Repeat("b", 50))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(s.Remove(context.Background(), b)).To(Succeed())
	g.Expect(testutil.CollectAndCompare(collector{}, strings.NewReader(`
# HELP externalsource_memory_store_namespace_bytes Bytes of artifacts the memory store holds for the objects of one namespace; a Put beyond externalsource_memory_store_namespace_max_bytes fails.
# TYPE externalsource_memory_store_namespace_bytes gauge
externalsource_memory_store_namespace_bytes{namespace="team-a"} 300
`), NamespaceBytesName)).To(Succeed())

	New(Options{MaxBytes: 2000}).ExportMetrics()
	g.Expect(testutil.CollectAndCompare(collector{}, strings.NewReader(`
# HELP externalsource_memory_store_bytes Bytes of artifacts the memory store holds; a Put beyond externalsource_memory_store_max_bytes fails.
# TYPE externalsource_memory_store_bytes gauge
externalsource_memory_store_bytes 0
# HELP externalsource_memory_store_max_bytes The memory store's cap (--memory-store-max-bytes).
# TYPE externalsource_memory_store_max_bytes gauge
externalsource_memory_store_max_bytes 2000
`), BytesName, MaxBytesName)).To(Succeed())
}
