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
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestDefaultMaxConcurrentPerNamespace(t *testing.T) {
	tests := []struct{ concurrent, want int }{
		{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 2}, {10, 5}, {11, 5}, {100, 50},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.concurrent), func(t *testing.T) {
			g := NewWithT(t)
			got := DefaultMaxConcurrentPerNamespace(tt.concurrent)
			g.Expect(got).To(Equal(tt.want))
			if tt.concurrent > 1 {
				g.Expect(got).To(BeNumerically("<", tt.concurrent), "one namespace never holds every worker")
			}
		})
	}
}

// request parses "ns/name".
func request(s string) reconcile.Request {
	ns, name, _ := strings.Cut(s, "/")
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}

// drain returns what the queue holds, in order, without waiting.
func drain(q workqueue.TypedRateLimitingInterface[reconcile.Request]) []string {
	var out []string
	for q.Len() > 0 {
		r, _ := q.Get()
		q.Done(r)
		out = append(out, r.String())
	}
	return out
}

// TestNamespaceShareAdmit plays sequences of reconciles starting and
// ending against a share started on a real workqueue, and checks after
// each step whether the request ran or was parked and what was put back
// on the queue.
func TestNamespaceShareAdmit(t *testing.T) {
	type step struct {
		op   string // "admit" or "release"
		req  string
		low  bool     // admit: handed out at the queue's low priority (a scheduled check)
		want string   // admit: "run" or "park"
		woke []string // what the queue holds after the step
	}
	tests := []struct {
		name  string
		limit int
		steps []step
	}{
		{"below-the-share-runs", 2, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/1"},
			{op: "release", req: "a/2"},
		}},
		{"over-the-share-parks-and-is-woken-by-a-release", 1, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "a/2", want: "park"},
			{op: "release", req: "a/1", woke: []string{"a/2"}},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/2"},
		}},
		{"other-namespaces-are-not-limited-by-a-full-one", 1, []step{
			{op: "admit", req: "hostile/1", want: "run"},
			{op: "admit", req: "hostile/2", want: "park"},
			{op: "admit", req: "b/1", want: "run"},
			{op: "admit", req: "c/1", want: "run"},
			{op: "release", req: "b/1"},
			{op: "release", req: "c/1"},
			{op: "release", req: "hostile/1", woke: []string{"hostile/2"}},
			{op: "admit", req: "hostile/2", want: "run"},
			{op: "release", req: "hostile/2"},
		}},
		{"woken-oldest-first-one-per-release", 1, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "a/3", want: "park"},
			{op: "admit", req: "a/2", want: "park"},
			{op: "admit", req: "a/3", want: "park"}, // parked once
			{op: "release", req: "a/1", woke: []string{"a/3"}},
			{op: "admit", req: "a/3", want: "run"},
			{op: "release", req: "a/3", woke: []string{"a/2"}},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/2"},
		}},
		{"a-woken-request-keeps-its-slot", 2, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "a/2", want: "run"},
			{op: "admit", req: "a/3", want: "park"},
			{op: "release", req: "a/1", woke: []string{"a/3"}},
			// a/4 (a re-check come due, an event) arrives before a/3 is
			// taken from the queue: the slot is a/3's, a/4 parks behind.
			{op: "admit", req: "a/4", want: "park"},
			{op: "admit", req: "a/3", want: "run"},
			{op: "release", req: "a/3", woke: []string{"a/4"}},
			{op: "admit", req: "a/4", want: "run"},
			{op: "release", req: "a/2"},
			{op: "release", req: "a/4"},
		}},
		{"first-fetches-wake-before-a-scheduled-check-parked-earlier", 1, []step{
			{op: "admit", req: "a/1", want: "run"},
			// A check came due while a/1 ran; a/2 and a/3 were created
			// after it: new sources first.
			{op: "admit", req: "a/check", low: true, want: "park"},
			{op: "admit", req: "a/2", want: "park"},
			{op: "admit", req: "a/3", want: "park"},
			{op: "release", req: "a/1", woke: []string{"a/2"}},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/2", woke: []string{"a/3"}},
			{op: "admit", req: "a/3", want: "run"},
			{op: "release", req: "a/3", woke: []string{"a/check"}},
			{op: "admit", req: "a/check", want: "run"},
			{op: "release", req: "a/check"},
		}},
		{"an-event-raises-a-parked-scheduled-check", 1, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "a/check1", low: true, want: "park"},
			{op: "admit", req: "a/check2", low: true, want: "park"},
			{op: "admit", req: "a/2", want: "park"},
			// A reconcile request on check2's object queues it again at
			// the default priority: it moves up, behind a/2.
			{op: "admit", req: "a/check2", want: "park"},
			// Queued again at the low priority, a raised one stays up.
			{op: "admit", req: "a/check2", low: true, want: "park"},
			{op: "release", req: "a/1", woke: []string{"a/2"}},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/2", woke: []string{"a/check2"}},
			{op: "admit", req: "a/check2", want: "run"},
			{op: "release", req: "a/check2", woke: []string{"a/check1"}},
			{op: "admit", req: "a/check1", low: true, want: "run"},
			{op: "release", req: "a/check1"},
		}},
		{"a-release-wakes-only-its-namespace", 1, []step{
			{op: "admit", req: "a/1", want: "run"},
			{op: "admit", req: "b/1", want: "run"},
			{op: "admit", req: "a/2", want: "park"},
			{op: "release", req: "b/1"},
			{op: "release", req: "a/1", woke: []string{"a/2"}},
			{op: "admit", req: "a/2", want: "run"},
			{op: "release", req: "a/2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			s := NewNamespaceShare(tt.limit)
			g.Expect(s.Source().Start(context.Background(), q)).To(Succeed())
			releases := map[string]func(){}
			for i, st := range tt.steps {
				switch st.op {
				case "admit":
					prio := 0
					if st.low {
						prio = handler.LowPriority
					}
					release, retry, ok := s.admit(context.Background(), request(st.req), prio)
					g.Expect(retry).To(BeZero(), "step %d: a started share never polls", i)
					g.Expect(ok).To(Equal(st.want == "run"), "step %d: %s %s", i, st.op, st.req)
					if ok {
						releases[st.req] = release
					}
				case "release":
					releases[st.req]()
					releases[st.req]() // twice: counted once
					delete(releases, st.req)
				}
				g.Expect(drain(q)).To(Equal(st.woke), "step %d: %s %s", i, st.op, st.req)
			}
			g.Expect(s.inFlight).To(BeEmpty(), "every slot is free again")
			g.Expect(s.reserved).To(BeEmpty())
			g.Expect(s.parked).To(BeEmpty())
			g.Expect(s.waiting).To(BeEmpty())
		})
	}
}

// TestShareQueueRunsScheduledChecksAfterNewSources: through the
// controller's queue (controller-runtime's priority queue, wrapped as
// withNamespaceShare builds it), a scheduled check that came due while
// its namespace was at its share, and was parked before new sources of
// the namespace were created, runs after them: the ramp of hooks5000,
// longer than the interval, made no scheduled check before every source
// was Ready.
func TestShareQueueRunsScheduledChecksAfterNewSources(t *testing.T) {
	g := NewWithT(t)
	share := NewNamespaceShare(1)
	q := NewShareQueue(priorityqueue.New[reconcile.Request]("share-order"), share, logr.Discard())
	defer q.ShutDown()
	q.Add(request("a/1"))
	running, _ := q.Get()
	g.Expect(running).To(Equal(request("a/1")))
	// A second worker: it parks what its namespace's share does not admit
	// and hands out what it does.
	got := make(chan reconcile.Request)
	go func() {
		defer close(got)
		for {
			req, shutdown := q.Get()
			if shutdown {
				return
			}
			got <- req
		}
	}()
	parked := func() int {
		share.mu.Lock()
		defer share.mu.Unlock()
		return len(share.parked)
	}
	q.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, request("a/check"))
	g.Eventually(parked, 10*time.Second, time.Millisecond).Should(Equal(1))
	q.Add(request("a/2"))
	q.Add(request("a/3"))
	g.Eventually(parked, 10*time.Second, time.Millisecond).Should(Equal(3))
	var order []string
	for range 3 {
		q.Done(running)
		g.Eventually(got, 10*time.Second).Should(Receive(&running))
		order = append(order, running.Name)
	}
	q.Done(running)
	g.Expect(order).To(Equal([]string{"2", "3", "check"}))
}

// TestNamespaceShareWithoutQueue: a nil share admits everything; a share
// no controller started cannot wake anyone and asks for a short, jittered
// requeue instead of parking.
func TestNamespaceShareWithoutQueue(t *testing.T) {
	g := NewWithT(t)
	var none *NamespaceShare
	for range 3 {
		release, _, ok := none.Admit(context.Background(), request("a/1"))
		g.Expect(ok).To(BeTrue())
		release()
	}

	s := NewNamespaceShare(0)
	g.Expect(s.Limit()).To(Equal(1), "a limit below one is one")
	release, _, ok := s.Admit(context.Background(), request("a/1"))
	g.Expect(ok).To(BeTrue())
	seen := map[time.Duration]bool{}
	for range 20 {
		_, retry, ok := s.Admit(context.Background(), request("a/2"))
		g.Expect(ok).To(BeFalse())
		g.Expect(retry).To(BeNumerically(">=", parkedRetry))
		g.Expect(retry).To(BeNumerically("<", 2*parkedRetry))
		seen[retry] = true
	}
	g.Expect(len(seen)).To(BeNumerically(">", 1), "the delay is jittered")
	g.Expect(s.parked).To(BeEmpty())
	release()
	_, _, ok = s.Admit(context.Background(), request("a/2"))
	g.Expect(ok).To(BeTrue())
}

// TestNamespaceShareUnderLoad runs the share as the controller does:
// workers take requests from the controller's queue (ShareQueue over
// controller-runtime's priority queue), work a random short time and end
// them. Every request of every namespace must be handed to a worker
// exactly once (a parked request is no reconcile of its own, issue 27; none
// is lost while parked), and no namespace may ever run more than its share
// at once.
func TestNamespaceShareUnderLoad(t *testing.T) {
	g := NewWithT(t)
	const (
		workers    = 8
		limit      = 3
		namespaces = 5
		perNS      = 40
	)
	s := NewNamespaceShare(limit)
	q := NewShareQueue(priorityqueue.New[reconcile.Request]("share-under-load"), s, logr.Discard())
	var once sync.Once
	shutdown := func() { once.Do(q.ShutDown) } // the priority queue panics on a second ShutDown
	defer shutdown()

	var (
		mu      sync.Mutex
		running = map[string]int{}
		peak    = map[string]int{}
		handed  = map[reconcile.Request]int{}
	)
	// Namespace after namespace, as a tenant creating many objects at
	// once queues them: the first workers all take the same namespace.
	for i := range namespaces * perNS {
		q.Add(request(fmt.Sprintf("ns%d/obj%d", i/perNS, i)))
	}
	// Wait for the priority queue to hand them out in order.
	g.Eventually(q.Len, 5*time.Second, time.Millisecond).Should(Equal(namespaces * perNS))
	// Taken by hand: three of ns0 run, then the next Get parks the rest of
	// ns0 inside the queue and hands out the first of ns1.
	var first []reconcile.Request
	for range limit {
		req, _ := q.Get()
		g.Expect(req.Namespace).To(Equal("ns0"))
		first = append(first, req)
	}
	next, _ := q.Get()
	g.Expect(next.Namespace).To(Equal("ns1"), "ns0 over its share is skipped, not handed to a worker")
	s.mu.Lock()
	g.Expect(s.parked).To(HaveLen(perNS - limit))
	s.mu.Unlock()
	for _, req := range append(first, next) {
		handed[req]++
		q.Done(req)
	}

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				req, shutdown := q.Get()
				if shutdown {
					return
				}
				mu.Lock()
				handed[req]++
				running[req.Namespace]++
				peak[req.Namespace] = max(peak[req.Namespace], running[req.Namespace])
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				mu.Lock()
				running[req.Namespace]--
				mu.Unlock()
				if rand.IntN(2) == 0 {
					s.Leave(req) // as reconcileLeaveShare: before the end
				}
				q.Done(req)
			}
		}()
	}
	g.Eventually(func() int { mu.Lock(); defer mu.Unlock(); return len(handed) }, 30*time.Second, 10*time.Millisecond).
		Should(Equal(namespaces*perNS), "every request is reconciled, parked ones included")
	shutdown()
	wg.Wait()
	for req, n := range handed {
		g.Expect(n).To(Equal(1), "%s was handed to a worker %d times", req, n)
	}
	for ns, p := range peak {
		g.Expect(p).To(BeNumerically("<=", limit), "namespace %s ran %d at once", ns, p)
	}
	g.Expect(s.inFlight).To(BeEmpty())
	g.Expect(s.parked).To(BeEmpty())
	g.Expect(s.running).To(BeEmpty())
}

func TestNamespaceShareFor(t *testing.T) {
	tests := []struct {
		name                    string
		concurrent, perNS, want int // want 0: no share
	}{
		{"default-is-half", 10, 0, 5},
		{"flag", 10, 3, 3},
		{"as-large-as-the-workers-is-off", 10, 10, 0},
		{"larger-than-the-workers-is-off", 4, 9, 0},
		{"one-worker-cannot-be-shared", 1, 0, 0},
		{"unset-concurrency-is-one-worker", 0, 0, 0},
		{"two-workers", 2, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := namespaceShareFor(ReconcilerOptions{MaxConcurrentReconciles: tt.concurrent, MaxConcurrentPerNamespace: tt.perNS})
			if tt.want == 0 {
				g.Expect(s).To(BeNil())
				return
			}
			g.Expect(s).ToNot(BeNil())
			g.Expect(s.Limit()).To(Equal(tt.want))
		})
	}
}

// BenchmarkNamespaceShareParked is one wake-up and one admission with
// 5,000 requests of the namespace parked, what a burst of new sources in
// one namespace looks like: O(1), where a slice scanned under the share's
// lock made it O(parked) (docs/benchmarks.md has the figures before and
// after).
func BenchmarkNamespaceShareParked(b *testing.B) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	s := NewNamespaceShare(1)
	if err := s.Source().Start(context.Background(), q); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	release, _, _ := s.Admit(ctx, request("ns/running"))
	for i := range 5000 {
		s.Admit(ctx, request(fmt.Sprintf("ns/parked-%d", i)))
	}
	b.ReportAllocs()
	for b.Loop() {
		release() // wakes the oldest parked request
		next, _ := q.Get()
		q.Done(next)
		var ok bool
		if release, _, ok = s.Admit(ctx, next); !ok {
			b.Fatal("the woken request was not admitted")
		}
		s.Admit(ctx, request("ns/parked-again-"+next.Name)) // one more parked: the backlog stays
	}
}
