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
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/conditions"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// stampedUpstream answers 200 until told otherwise, and records when each
// request came.
type stampedUpstream struct {
	*httptest.Server
	mu         sync.Mutex
	status     int
	retryAfter string
	at         []time.Time
}

func newStampedUpstream(t *testing.T) *stampedUpstream {
	u := &stampedUpstream{status: http.StatusOK}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.at = append(u.at, time.Now())
		status, retryAfter := u.status, u.retryAfter
		u.mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if status != http.StatusOK {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "failing")
			return
		}
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, "a: 1\n")
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// since returns the times of the requests after n.
func (u *stampedUpstream) since(n int) []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]time.Time(nil), u.at[n:]...)
}

// TestFailingUpstreamBudget: a source whose upstream keeps failing sends
// it at most 4 requests in any minute after the first, and the rate keeps
// halving up to --max-retry-delay: the retries within a fetch and the
// reconciler's backoff spend one budget.
//
// The real reconciler runs against the real API server and a counting
// upstream, with Flux's default backoff (750ms doubling up to 15m); the
// clock between reconciles is simulated: each reconcile starts when the
// previous one asked to be requeued (RequeueAfter, the earliest a real
// controller would run it), so ten minutes pass in seconds. Requests are
// placed on that clock at their real offset within their reconcile (the
// waits within a fetch are real). Only counts are asserted.
func TestFailingUpstreamBudget(t *testing.T) {
	tests := []struct {
		name       string
		published  bool
		status     int
		retryAfter string
		// perReconcile is how many requests one failed reconcile sends.
		perReconcile int
	}{
		{name: "new source, 500", status: http.StatusInternalServerError, perReconcile: 1},
		// HEAD (change detection) then the GET it falls back to.
		{name: "published source, 500", published: true, status: http.StatusInternalServerError, perReconcile: 2},
		{name: "published source, 503 with Retry-After: 1", published: true, status: http.StatusServiceUnavailable,
			retryAfter: "1", perReconcile: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			up := newStampedUpstream(t)
			obj := newSource(ns, "failing", up.URL)
			obj.Labels = map[string]string{isolatedLabel: "nobody-" + ns} // no manager reconciles it
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			r := &ExternalSourceReconciler{
				Client:            k8sClient,
				Recorder:          events.NewFakeRecorder(100, false),
				APIReader:         k8sClient,
				ControllerName:    "externalsource-controller",
				Generators:        testGenerators,
				Storage:           memoryStore(),
				MaxDataSize:       1 << 20,
				Retention:         storage.DefaultRetention,
				RetryAfterBackoff: runtimectrl.GetDefaultRateLimiter(),
			}
			req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)}
			if tt.published {
				res, err := r.Reconcile(testCtx, req)
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(res.RequeueAfter).To(BeNumerically(">", time.Minute))
				g.Expect(conditions.IsReady(getSource(g, obj))).To(BeTrue())
			}
			up.mu.Lock()
			up.status, up.retryAfter = tt.status, tt.retryAfter
			seen := len(up.at)
			up.mu.Unlock()

			// Ten simulated minutes of failed reconciles.
			const span = 10 * time.Minute
			var (
				clock    time.Duration // simulated time of the reconcile
				requests []time.Duration
				gaps     []time.Duration
				perRec   []int
			)
			for clock < span {
				start := time.Now()
				res, err := r.Reconcile(testCtx, req)
				g.Expect(err).ToNot(HaveOccurred())
				took := time.Since(start)
				reqs := up.since(seen)
				seen += len(reqs)
				for _, at := range reqs {
					requests = append(requests, clock+at.Sub(start))
				}
				perRec = append(perRec, len(reqs))
				g.Expect(conditions.IsReady(getSource(g, obj))).To(BeFalse())
				g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "a failure is requeued")
				gaps = append(gaps, res.RequeueAfter)
				clock += took + res.RequeueAfter
			}

			perMinute := make([]int, int(span/time.Minute))
			for _, at := range requests {
				if m := int(at / time.Minute); m < len(perMinute) {
					perMinute[m]++
				}
			}
			// The busiest minute after the first: every window of a
			// minute that starts at a request after the first minute.
			busiest := 0
			for i, from := range requests {
				if from < time.Minute {
					continue
				}
				n := 0
				for _, at := range requests[i:] {
					if at-from < time.Minute {
						n++
					}
				}
				busiest = max(busiest, n)
			}
			t.Logf("requests per minute over %s: %v; busiest minute after the first: %d; requests per reconcile %v; requeues %v",
				span, perMinute, busiest, perRec, gaps)

			g.Expect(busiest).To(BeNumerically("<=", 4))
			for i, n := range perRec {
				// The first failure of a published source may spend one
				// retry within the fetch (503 with a short Retry-After).
				want := tt.perReconcile
				if i == 0 && tt.retryAfter != "" {
					want++
				}
				g.Expect(n).To(Equal(want), "requests of reconcile %d", i)
			}
			// The rate halves: each requeue is twice the previous one
			// (the cap, 15m, is beyond the simulated span).
			for i := 1; i < len(gaps); i++ {
				g.Expect(gaps[i]).To(Equal(2*gaps[i-1]), "requeues %v", gaps)
			}
		})
	}
}
