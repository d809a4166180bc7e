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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestRecorder(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewPedanticRegistry()
	r := NewRecorder()
	g.Expect(reg.Register(r.fetches)).To(Succeed())
	g.Expect(reg.Register(r.fetchDuration)).To(Succeed())
	g.Expect(reg.Register(r.responseSize)).To(Succeed())
	// Registered once, at init, on the registry the manager serves; every
	// Recorder records into the same series.
	g.Expect(ctrlmetrics.Registry.Register(fetches)).To(BeAssignableToTypeOf(prometheus.AlreadyRegisteredError{}))
	g.Expect(NewRecorder().fetches).To(BeIdenticalTo(r.fetches))

	r.RecordFetch("http", ResultChanged, 20*time.Millisecond)
	r.RecordFetch("http", ResultUnchanged, time.Millisecond)
	r.RecordFetch("http", ResultUnchanged, time.Millisecond)
	r.RecordFetch("http", ResultError, time.Second)
	r.RecordResponseSize("http", 1000)

	g.Expect(testutil.ToFloat64(r.fetches.WithLabelValues("http", ResultChanged))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(r.fetches.WithLabelValues("http", ResultUnchanged))).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(r.fetches.WithLabelValues("http", ResultError))).To(Equal(1.0))
	n, err := testutil.GatherAndCount(reg, FetchDurationName, ResponseSizeName)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(4)) // three duration series (one per result), one size series

	// A nil recorder is a no-op, not a panic.
	var none *Recorder
	none.RecordFetch("http", ResultError, time.Second)
	none.RecordResponseSize("http", 1)
}
