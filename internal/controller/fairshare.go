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
	"container/list"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// DefaultMaxConcurrentPerNamespace is the share of concurrent workers one
// namespace may hold when --max-concurrent-per-namespace is not set: half,
// so that one tenant, however hostile, leaves at least half of the workers
// to all the others, while a namespace with many sources (flux-system in a
// single-tenant cluster) still reconciles in parallel. With one worker no
// share can protect anyone: the default is then that worker.
func DefaultMaxConcurrentPerNamespace(concurrent int) int {
	return max(1, concurrent/2)
}

// parkedRetry is the base of the requeue delay of a request over its
// namespace's share when the share has no queue to wake it through; a
// random part of the same length spreads such requests out.
const parkedRetry = time.Second

// NamespaceShare bounds how many reconciles of one namespace run at once.
// A request over its namespace's share does not wait on a worker: it is
// parked, with no API call and no status write, and put back on the
// controller's queue as soon as a reconcile of its namespace ends, with the
// ended reconcile's slot held for it: a request that arrives meanwhile
// parks behind it. Nothing polls, and a namespace below its share is never
// delayed.
//
// Parked requests are woken in the queue's order: those the queue held
// below its default priority (scheduled checks, scheduledCheckLast, and
// the objects of an informer's initial list) after all the others (new
// sources, spec changes, reconcile requests, retries), each class oldest
// first. A ramp
// of thousands of new sources in one namespace parks most of them; a
// scheduled check that comes due meanwhile waits until they are through,
// even when sources are still being created after it came due, and an
// event that queues a parked check again raises it.
//
// The nil share admits everything.
//
// Fair and bounded work: a reconcile holds one of the controller's
// --concurrent workers for as long as its fetch runs, and a tenant (the
// owner of a namespace) decides how long that is: an upstream that never
// answers, answers one byte a second or asks to retry in a day. Two bounds
// keep one tenant from taking the controller from the others:
//
//   - time: a fetch ends at spec.timeout, which the API server caps at
//     exsv1beta1.MaxTimeout and the controller at --max-fetch-timeout;
//   - workers: at most --max-concurrent-per-namespace reconciles of one
//     namespace run the steps its tenant controls at once (fetch, hooks,
//     extraction and storage, whose length the upstream and the data
//     decide), so the other namespaces always keep workers.
//
// The share is left after storage, before the last steps: the
// ExternalArtifact and ExternalSource writes, whose length only the API
// server decides. A request of the same namespace can then start while
// they finish, so a namespace alone on the controller (flux-system in a
// single-tenant cluster) still uses every worker: holding the share
// through those writes idled workers (measured in docs/benchmarks.md).
// A hostile tenant gains nothing from it: what it makes hang is inside
// the share, and what is outside ends as fast as the API server answers.
//
// The tenant boundary is the namespace: a hostile tenant can create many
// objects and point them at many hosts, but only in its own namespace. A
// per-upstream-host limit would add nothing against that tenant (its share
// is already bounded whatever the hosts) and could not be sound anyway: a
// pre-request hook may rewrite the URL and DNS aliases hosts. Sources of
// the hostile namespace itself do wait behind its hanging ones: a tenant
// only ever starves itself. Several namespaces of one tenant count as
// several tenants; an admin who gives a tenant k namespaces keeps the
// others served with a share below --concurrent / k.
//
// A request over the share is parked and woken, not requeued after a fixed
// delay: with a delay, a burst in one namespace (flux-system at start-up)
// would run one share of requests per delay while workers sit idle.
//
// The share is applied by the controller's queue (ShareQueue), where a
// worker takes a request, not in Reconcile: a request parked inside
// Reconcile was a reconcile of its own (controller_runtime_reconcile_total,
// a worker's round trip), so that every new source of a namespace over its
// share, most of them at thousands of sources in one namespace, was
// reconciled twice (issue 27). Parked in the queue, a request is
// reconciled once, when it runs.
type NamespaceShare struct {
	limit int

	mu       sync.Mutex
	inFlight map[string]int
	// waiting holds the parked requests of each namespace, oldest first;
	// parked finds a request's place in it, to park a request once and
	// forget it when it runs before it is woken. Both are O(1): at
	// thousands of sources in one namespace most requests are parked at
	// some point, and a slice scanned under the lock at every wake-up was
	// a tenth of the controller's CPU and serialized its workers.
	waiting map[string]*waitingLists
	parked  map[reconcile.Request]parkedAt
	queue   workqueue.TypedRateLimitingInterface[reconcile.Request]
	// running holds the release of each request ShareQueue admitted,
	// until its reconcile leaves the share (Leave) or ends (Done).
	running map[reconcile.Request]func()
	// reserved holds the woken requests whose slot a release handed over
	// and which have not been admitted yet: the slot stays counted in
	// inFlight for them. Without it, whatever a worker took from the
	// queue between the release and the woken request's admission (the
	// scheduled re-checks coming due during a ramp, at the queue's low
	// priority) took the slot, and the woken request parked again at the
	// back, behind those re-checks.
	reserved map[reconcile.Request]bool
}

// NewNamespaceShare returns a share of limit reconciles per namespace; a
// limit below one is one.
func NewNamespaceShare(limit int) *NamespaceShare {
	return &NamespaceShare{
		limit:    max(1, limit),
		inFlight: map[string]int{},
		waiting:  map[string]*waitingLists{},
		parked:   map[reconcile.Request]parkedAt{},
		running:  map[reconcile.Request]func(){},
		reserved: map[reconcile.Request]bool{},
	}
}

// Limit is the number of reconciles of one namespace that may run at once.
func (s *NamespaceShare) Limit() int { return s.limit }

// Source hands the share the controller's queue when the controller
// starts, so that parked requests can be woken; it watches nothing.
func (s *NamespaceShare) Source() source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.queue = q
		return nil
	})
}

// Admit is called first in Reconcile. When the request's namespace is below
// its share it counts the request as running and returns ok with the
// release to defer. Otherwise the request is parked: retryAfter is zero and
// the caller returns at once without requeueing, the share puts the
// request back when a slot of the namespace frees. Without a queue (a
// share not started by a controller) it cannot wake anyone, and asks for a
// jittered requeue instead.
func (s *NamespaceShare) Admit(ctx context.Context, req reconcile.Request) (release func(), retryAfter time.Duration, ok bool) {
	return s.admit(ctx, req, 0)
}

// waitingLists are the parked requests of one namespace: those taken from
// the queue at its low priority apart, woken only when no other waits.
type waitingLists struct {
	normal, low list.List // of reconcile.Request
}

// parkedAt is a parked request's place: its element and which list holds
// it.
type parkedAt struct {
	e   *list.Element
	low bool
}

// admit is Admit for a request the queue handed out at priority prio:
// parked, a request below the default priority waits behind all the
// others.
func (s *NamespaceShare) admit(ctx context.Context, req reconcile.Request, prio int) (release func(), retryAfter time.Duration, ok bool) {
	if s == nil {
		return func() {}, 0, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := req.Namespace
	if s.reserved[req] || s.inFlight[ns] < s.limit {
		if s.reserved[req] {
			// Its slot was handed over by the release that woke it.
			delete(s.reserved, req)
		} else {
			s.inFlight[ns]++
		}
		s.unpark(req)
		var once sync.Once
		return func() { once.Do(func() { s.release(ns) }) }, 0, true
	}
	if s.queue == nil {
		return nil, parkedRetry + rand.N(parkedRetry), false
	}
	low := prio < 0
	if p, ok := s.parked[req]; !ok || (p.low && !low) {
		// Parked once; parked again at a higher priority (an event
		// queued a parked scheduled check again), it moves up.
		s.unpark(req)
		w := s.waiting[ns]
		if w == nil {
			w = &waitingLists{}
			s.waiting[ns] = w
		}
		l := &w.normal
		if low {
			l = &w.low
		}
		s.parked[req] = parkedAt{e: l.PushBack(req), low: low}
	}
	ctrl.LoggerFrom(ctx).V(1).Info("namespace at its share of the workers: waiting for one of its reconciles to end",
		"maxConcurrentPerNamespace", s.limit)
	return nil, 0, false
}

// release ends a running reconcile of ns and wakes the parked request of
// ns that comes first (the oldest, low priority last), handing it the
// freed slot. Parking and waking happen under one lock, so no request is
// parked after the last wake-up of its namespace: a parked request always
// has a running reconcile of its namespace whose end will wake it.
func (s *NamespaceShare) release(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.waiting[ns]
	if w == nil {
		if s.inFlight[ns]--; s.inFlight[ns] <= 0 {
			delete(s.inFlight, ns)
		}
		return
	}
	// The slot passes to the oldest parked request (it stays counted),
	// which only that request's admission takes.
	front := w.normal.Front()
	if front == nil {
		front = w.low.Front()
	}
	next := front.Value.(reconcile.Request)
	s.unpark(next)
	s.reserved[next] = true
	s.queue.Add(next)
}

// unpark forgets a parked request: it is running or about to.
func (s *NamespaceShare) unpark(req reconcile.Request) {
	p, ok := s.parked[req]
	if !ok {
		return
	}
	delete(s.parked, req)
	if len(s.parked) == 0 {
		// A map keeps the room of its largest size: the backlog of a
		// burst (thousands of new sources) is not kept for good.
		s.parked = map[reconcile.Request]parkedAt{}
	}
	w := s.waiting[req.Namespace]
	l := &w.normal
	if p.low {
		l = &w.low
	}
	l.Remove(p.e)
	if w.normal.Len()+w.low.Len() == 0 {
		delete(s.waiting, req.Namespace)
	}
}

// withNamespaceShare gives the reconciler its per-namespace share of the
// workers, applied by the controller's queue (ShareQueue): copts gets the
// NewQueue that builds it, controller-runtime's default priority queue
// wrapped.
func (r *ExternalSourceReconciler) withNamespaceShare(copts *controller.Options, opts ReconcilerOptions, log logr.Logger) {
	r.namespaceShare = namespaceShareFor(opts)
	share := r.namespaceShare
	if share == nil {
		return
	}
	copts.NewQueue = func(name string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		l := log.WithValues("controller", name)
		q := priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log, o.RateLimiter = l, rl
		})
		return NewShareQueue(q, share, l)
	}
}

// namespaceShareFor returns the share the options ask for; nil when it
// would be as large as the workers, as it then limits nothing.
func namespaceShareFor(opts ReconcilerOptions) *NamespaceShare {
	workers := max(1, opts.MaxConcurrentReconciles)
	limit := opts.MaxConcurrentPerNamespace
	if limit <= 0 {
		limit = DefaultMaxConcurrentPerNamespace(workers)
	}
	if limit >= workers {
		return nil
	}
	return NewNamespaceShare(limit)
}

// ShareQueue is the controller's queue with the namespace share applied
// where a worker takes a request: GetWithPriority hands out only requests
// their namespace's share admits, parks the others (the queue forgets
// them until the share wakes them) without a reconcile, and Done leaves
// the share if the reconcile did not already (Leave).
type ShareQueue struct {
	priorityqueue.PriorityQueue[reconcile.Request]
	share *NamespaceShare
	log   logr.Logger
}

// NewShareQueue wraps q with share, and gives the share q to wake parked
// requests through.
func NewShareQueue(q priorityqueue.PriorityQueue[reconcile.Request], share *NamespaceShare, log logr.Logger) *ShareQueue {
	share.mu.Lock()
	share.queue = q
	share.mu.Unlock()
	return &ShareQueue{PriorityQueue: q, share: share, log: log}
}

// Get is GetWithPriority without the priority.
func (q *ShareQueue) Get() (reconcile.Request, bool) {
	req, _, shutdown := q.GetWithPriority()
	return req, shutdown
}

// GetWithPriority returns the next request its namespace's share admits;
// a request over its share is parked and the next one taken.
func (q *ShareQueue) GetWithPriority() (reconcile.Request, int, bool) {
	ctx := ctrl.LoggerInto(context.Background(), q.log)
	for {
		req, prio, shutdown := q.PriorityQueue.GetWithPriority()
		if shutdown {
			return req, prio, shutdown
		}
		release, retryAfter, ok := q.share.admit(ctx, req, prio)
		if ok {
			q.share.mu.Lock()
			q.share.running[req] = release
			q.share.mu.Unlock()
			return req, prio, false
		}
		// Parked (or, with no queue to wake it, to retry later): the
		// queue forgets it until then.
		if retryAfter > 0 {
			q.PriorityQueue.AddAfter(req, retryAfter)
		}
		q.PriorityQueue.Done(req)
	}
}

// Done leaves the share of req, if its reconcile did not, and tells the
// queue req is done.
func (q *ShareQueue) Done(req reconcile.Request) {
	q.share.Leave(req)
	q.PriorityQueue.Done(req)
}

// Leave gives back the share slot of a request ShareQueue admitted and
// wakes the oldest parked request of its namespace; it does nothing for a
// request not admitted, or already left. Nil-safe.
func (s *NamespaceShare) Leave(req reconcile.Request) {
	if s == nil {
		return
	}
	s.mu.Lock()
	release := s.running[req]
	delete(s.running, req)
	s.mu.Unlock()
	if release != nil {
		release()
	}
}
