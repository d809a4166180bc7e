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
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/server"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/storage/s3"
	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// The fault matrix's backoff: what the controller program (internal/cmd/controller) builds from --min-retry-delay
// and --max-retry-delay, scaled down so that a test sees the cap.
const (
	faultMinDelay = 100 * time.Millisecond
	faultMaxDelay = 1600 * time.Millisecond
	// faultAttempts failed reconciles are observed per fault: the delays
	// handed out after them are 100, 200, 400, 800, 1600, 1600, 1600 ms.
	faultAttempts = 7
)

// handout is one delay a rate limiter handed out: when, and how long.
type handout struct {
	at    time.Time
	delay time.Duration
}

// recordingLimiter is a real rate limiter that records every delay it
// hands out, per object. The delays are the limiter's own decisions, so
// the backoff is checked against them rather than against wall time,
// which a loaded machine stretches; its When is called once per failed
// reconcile, so its calls also count and delimit the failed reconciles.
type recordingLimiter struct {
	workqueue.TypedRateLimiter[reconcile.Request]
	mu       sync.Mutex
	handouts map[string][]handout
}

func newRecordingLimiter(l workqueue.TypedRateLimiter[reconcile.Request]) *recordingLimiter {
	return &recordingLimiter{TypedRateLimiter: l, handouts: map[string][]handout{}}
}

// When implements workqueue.TypedRateLimiter.
func (l *recordingLimiter) When(item reconcile.Request) time.Duration {
	d := l.TypedRateLimiter.When(item)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handouts[item.String()] = append(l.handouts[item.String()], handout{at: time.Now(), delay: d})
	return d
}

// since returns the delays handed out for an object (namespace/name)
// after t.
func (l *recordingLimiter) since(name string, t time.Time) []handout {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []handout
	for _, h := range l.handouts[name] {
		if h.at.After(t) {
			out = append(out, h)
		}
	}
	return out
}

// faultyUpstream is an HTTP(S) upstream whose fault can be switched on and
// off while it keeps its address.
type faultyUpstream struct {
	t       *testing.T
	tls     bool
	addr    string
	mode    atomic.Value // fault name; "" serves the data
	garbage atomic.Bool  // answer the TLS handshake with plain text
	data    atomic.Value // what it serves when not faulty: upstreamData, or other data
	mu      sync.Mutex
	srv     *httptest.Server
	reqs    []time.Time // GETs while faulty
}

const upstreamData = "price: 42\n"

func newFaultyUpstream(t *testing.T, useTLS bool) *faultyUpstream {
	u := &faultyUpstream{t: t, tls: useTLS}
	u.mode.Store("")
	u.data.Store(upstreamData)
	u.start("127.0.0.1:0")
	t.Cleanup(func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.srv != nil {
			u.srv.Close()
		}
	})
	return u
}

// start serves on addr (the same address again after a refusal).
func (u *faultyUpstream) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		u.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	srv.Listener = &garbageListener{Listener: ln, on: &u.garbage}
	if u.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	u.mu.Lock()
	u.srv, u.addr = srv, ln.Addr().String()
	u.mu.Unlock()
}

// URL is stable across refusals.
func (u *faultyUpstream) URL() string {
	if u.tls {
		return "https://" + u.addr
	}
	return "http://" + u.addr
}

func (u *faultyUpstream) serve(w http.ResponseWriter, r *http.Request) {
	mode := u.mode.Load().(string)
	if mode != "" && r.Method == http.MethodGet {
		u.mu.Lock()
		u.reqs = append(u.reqs, time.Now())
		u.mu.Unlock()
	}
	switch mode {
	case "hang":
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	case "500":
		http.Error(w, "internal error", http.StatusInternalServerError)
	case "503":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	case "429":
		w.Header().Set("Retry-After", "2")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case "cut":
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "price: 4")
		http.NewResponseController(w).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	default:
		_, _ = io.WriteString(w, u.data.Load().(string))
	}
}

// requestsBetween returns the GETs the faulty upstream saw after from and
// up to to.
func (u *faultyUpstream) requestsBetween(from, to time.Time) []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []time.Time
	for _, r := range u.reqs {
		if r.After(from) && !r.After(to) {
			out = append(out, r)
		}
	}
	return out
}

// refuse closes the listener: connections are refused until recover.
func (u *faultyUpstream) refuse() {
	u.mu.Lock()
	srv := u.srv
	u.srv = nil
	u.mu.Unlock()
	srv.Close()
}

func (u *faultyUpstream) recover() { u.start(u.addr) }

// garbageListener answers connections with plain text while on is set:
// for a TLS client, garbage instead of a server hello.
type garbageListener struct {
	net.Listener
	on *atomic.Bool
}

func (l *garbageListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.on.Load() {
			return c, err
		}
		_, _ = io.WriteString(c, "HTTP/1.1 400 this is not TLS\r\n\r\n")
		c.Close()
	}
}

// fault is one row of the matrix: how to break things and mend them, and
// what the status must say meanwhile.
type fault struct {
	name string
	// store is "memory" or "s3"; tls and hooks shape the source.
	store string
	tls   bool
	hooks bool
	// timeout is spec.timeout.
	timeout   time.Duration
	inject    func(*faultEnv)
	heal      func(*faultEnv)
	condition string
	message   string
	// check inspects the upstream's requests during each failed reconcile.
	check func(g Gomega, reqs []time.Time)
	// downloadable says the last artifact can be downloaded during the
	// fault (not when the fault is the storage itself).
	downloadable bool
	// attempts is how many failed reconciles to observe (faultAttempts
	// when zero). delay, for a fault whose upstream sets the delay
	// (Retry-After), is the expected delay after failed reconcile i; nil
	// means the rate limiter's exponential backoff.
	attempts int
	delay    func(i int) time.Duration
	// reconciling is a part of the Reconciling message, if set.
	reconciling string
}

// faultEnv is what a fault can act on.
type faultEnv struct {
	up      *faultyUpstream
	s3      *s3test.Server
	sidecar *sidecarControl
}

// sidecarControl starts and kills a hook-executor sidecar.
type sidecarControl struct {
	mu    sync.Mutex
	start func() (stop func(), err error)
	stop  func()
}

func (s *sidecarControl) up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stop, err := s.start()
	s.stop = stop
	return err
}

func (s *sidecarControl) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// TestFaultMatrix breaks one thing at a time, for a source that has
// published an artifact, and checks the same promises for each fault: the
// controller keeps running, the last artifact stays published (and
// downloadable unless the store itself is down), the status names the
// fault, failed reconciles are retried with delays that double from
// --min-retry-delay up to --max-retry-delay (never the interval, never a
// tight loop), nothing half-done is stored, and the source recovers by
// itself once the fault is gone, republishing nothing.
//
// It runs, per store, a manager of its own with the reconciler wired by
// SetupWithManager and the rate limiters the controller program builds, scaled down; each
// limiter is wrapped to record the delays it hands out. The backoff is
// checked twice: the delays the limiters handed out are exactly the
// expected ones (the upper bound, independent of the machine's load), and
// the wall time between two failed reconciles is at least that delay (a
// lower bound, which load cannot break).
func TestFaultMatrix(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(testCtx)

	// Stores, each behind its own artifact server.
	mem := faultStore(t, ctx, func(base string) storage.Storage { return memory.New(memory.Options{BaseURL: base}) })
	s3srv := s3test.Start(t)
	g.Expect(s3srv.MakeBucket(ctx, "faults")).To(Succeed())
	s3Store := faultStore(t, ctx, func(base string) storage.Storage {
		st, err := s3.New(s3.Options{Endpoint: s3srv.Endpoint, Bucket: "faults", Insecure: true, BaseURL: base,
			Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, "")})
		g.Expect(err).ToNot(HaveOccurred())
		return st
	})

	// listStore lists an object's stored artifacts behind the store's
	// back: the memory store's keys, the bucket's objects.
	rawS3, err := s3srv.Client()
	g.Expect(err).ToNot(HaveOccurred())
	listStore := func(g Gomega, store string, obj *exsv1beta1.ExternalSource) []string {
		dir := storage.ArtifactDir(exsv1beta1.ExternalSourceKind, obj.Namespace, obj.Name)
		if store == "memory" {
			return mem.(*memory.Storage).List(dir)
		}
		var keys []string
		for o := range rawS3.ListObjects(testCtx, "faults", minio.ListObjectsOptions{Prefix: dir + "/", Recursive: true}) {
			g.Expect(o.Err).ToNot(HaveOccurred())
			keys = append(keys, o.Key)
		}
		return keys
	}

	// A hook-executor sidecar of its own, to kill and start again.
	socket := filepath.Join(t.TempDir(), "hook.sock")
	logPath := filepath.Join(t.TempDir(), "hook-executor.log")
	sc := &sidecarControl{start: func() (func(), error) { return startSidecar(socket, logPath) }}
	g.Expect(sc.up()).To(Succeed())
	t.Cleanup(sc.down)

	// One retry within a fetch, so each reconcile shows whether the
	// upstream's Retry-After was honoured.
	gens := generator.NewRegistry()
	g.Expect(builtin.Register(gens, builtin.Options{HTTP: httpgen.Options{
		RetryMax: 1, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond,
		// The upstreams listen on loopback, denied by default.
		URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})).To(Succeed())

	// Shards of this run's own: objects of an earlier run (go test
	// -count) are left alone. One manager per store, as the controller program runs one
	// store per process.
	ns := newNamespace(t)
	shard := func(store string) string { return "faults-" + store + "-" + ns }
	// The limiters of each store's controller: controller-runtime's (for
	// errors returned: none is) and the reconciler's own backoff.
	type limiters struct{ failures, retryAfter *recordingLimiter }
	byStore := map[string]limiters{}
	var done []chan struct{}
	for store, st := range map[string]storage.Storage{"memory": mem, "s3": s3Store} {
		mgr, err := ctrl.NewManager(testConfig, ctrl.Options{
			Scheme:     testScheme,
			Metrics:    metricsserver.Options{BindAddress: "0"},
			Controller: config.Controller{SkipNameValidation: ptr.To(true)},
			Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
				&exsv1beta1.ExternalSource{}: {Label: labels.SelectorFromSet(labels.Set{isolatedLabel: shard(store)})},
			}},
		})
		g.Expect(err).ToNot(HaveOccurred())
		recorder, err := events.NewRecorder(ctrl.Log, "", "externalsource-controller", events.WithManager(mgr))
		g.Expect(err).ToNot(HaveOccurred())
		// As the controller program does: two limiters with the same options.
		opts := runtimectrl.RateLimiterOptions{MinRetryDelay: faultMinDelay, MaxRetryDelay: faultMaxDelay}
		l := limiters{
			failures:   newRecordingLimiter(runtimectrl.GetRateLimiter(opts)),
			retryAfter: newRecordingLimiter(runtimectrl.GetRateLimiter(opts)),
		}
		byStore[store] = l
		r := &ExternalSourceReconciler{
			Client:         mgr.GetClient(),
			Recorder:       recorder,
			APIReader:      mgr.GetAPIReader(),
			ControllerName: "externalsource-controller",
			Generators:     gens,
			Storage:        st,
			HookRunner:     hook.Checked(testWhitelist.Get, hook.NewClient(socket)),
			MaxDataSize:    1 << 20,
		}
		g.Expect(r.SetupWithManager(mgr, ReconcilerOptions{
			MaxConcurrentReconciles: 10,
			RateLimiter:             l.failures,
			RetryAfterBackoff:       l.retryAfter,
		})).To(Succeed())
		stopped := make(chan struct{})
		done = append(done, stopped)
		go func() {
			defer close(stopped)
			_ = mgr.Start(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for _, d := range done {
			<-d
		}
	})

	tests := []fault{
		{name: "connection-refused", store: "memory",
			inject: func(e *faultEnv) { e.up.refuse() }, heal: func(e *faultEnv) { e.up.recover() },
			condition: exsv1beta1.FetchFailedCondition, message: "connection refused", downloadable: true},
		{name: "hanging-past-timeout", store: "memory", timeout: time.Second,
			inject: func(e *faultEnv) { e.up.mode.Store("hang") }, heal: func(e *faultEnv) { e.up.mode.Store("") },
			condition: exsv1beta1.FetchFailedCondition, message: "spec.timeout (1s)", downloadable: true},
		{name: "500-without-retry-after", store: "memory",
			inject: func(e *faultEnv) { e.up.mode.Store("500") }, heal: func(e *faultEnv) { e.up.mode.Store("") },
			condition: exsv1beta1.FetchFailedCondition, message: `500 Internal Server Error: "internal error`, downloadable: true,
			check: func(g Gomega, reqs []time.Time) {
				// Not retried within the fetch: one request per failed
				// reconcile, which the backoff spaces.
				g.Expect(reqs).To(HaveLen(1))
			}},
		{name: "503-with-retry-after", store: "memory", timeout: 5 * time.Second,
			inject: func(e *faultEnv) { e.up.mode.Store("503") }, heal: func(e *faultEnv) { e.up.mode.Store("") },
			condition: exsv1beta1.FetchFailedCondition, message: `503 Service Unavailable: "down for maintenance`, downloadable: true,
			check: func(g Gomega, reqs []time.Time) {
				// The first failure is retried once within the fetch,
				// after the Retry-After, and that retry is one step of
				// the backoff (a handout of its own): one request
				// between two handouts, always.
				g.Expect(reqs).To(HaveLen(1))
			},
			// The last answer's Retry-After (1s) is honoured across
			// reconciles too, with the backoff as a floor: 1s while the
			// backoff is shorter, then the backoff.
			delay:       func(i int) time.Duration { return max(time.Second, min(faultMinDelay<<i, faultMaxDelay)) },
			reconciling: "as the upstream asked (Retry-After)"},
		{name: "429-with-retry-after-beyond-timeout", store: "memory", timeout: time.Second,
			inject: func(e *faultEnv) { e.up.mode.Store("429") }, heal: func(e *faultEnv) { e.up.mode.Store("") },
			condition: exsv1beta1.FetchFailedCondition, message: `429 Too Many Requests: "slow down`, downloadable: true,
			// The upstream's Retry-After (2s) did not fit in spec.timeout,
			// and is longer than the backoff (at most 1.6s here): the next
			// reconcile comes after it.
			attempts: 4, delay: func(int) time.Duration { return 2 * time.Second },
			reconciling: "retrying in 2s as the upstream asked (Retry-After)",
			check:       func(g Gomega, reqs []time.Time) { g.Expect(reqs).To(HaveLen(1)) }},
		{name: "body-cut-mid-transfer", store: "memory",
			inject: func(e *faultEnv) { e.up.mode.Store("cut") }, heal: func(e *faultEnv) { e.up.mode.Store("") },
			condition: exsv1beta1.FetchFailedCondition, message: "unexpected EOF", downloadable: true},
		{name: "garbage-tls", store: "memory", tls: true,
			inject: func(e *faultEnv) { e.up.garbage.Store(true); e.up.srv.CloseClientConnections() }, heal: func(e *faultEnv) { e.up.garbage.Store(false) },
			condition: exsv1beta1.FetchFailedCondition, message: "TLS error", downloadable: true},
		{name: "s3-down", store: "s3",
			inject: func(e *faultEnv) { e.s3.Stop() }, heal: func(e *faultEnv) { NewWithT(t).Expect(e.s3.Restart()).To(Succeed()) },
			condition: exsv1beta1.StorageOperationFailedCondition, message: "connection refused"},
		{name: "hook-sidecar-down", store: "memory", hooks: true,
			// New data while the sidecar is down: for the data the
			// artifact was built from, no hook needs to run (issue 27).
			// The data is back to it when the sidecar is: nothing new is
			// published.
			inject: func(e *faultEnv) { e.sidecar.down(); e.up.data.Store("price: 43\n") },
			heal: func(e *faultEnv) {
				e.up.data.Store(upstreamData)
				NewWithT(t).Expect(e.sidecar.up()).To(Succeed())
			},
			condition: exsv1beta1.HookFailedCondition, message: "hook executor unreachable", downloadable: true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The faults are independent: each has its own upstream and
			// object, and only one uses the S3 server or the sidecar.
			t.Parallel()
			g := NewWithT(t)
			up := newFaultyUpstream(t, tt.tls)
			obj := newSource(ns, tt.name, up.URL())
			obj.Labels = map[string]string{isolatedLabel: shard(tt.store)}
			key := client.ObjectKeyFromObject(obj).String()
			if tt.timeout > 0 {
				obj.Spec.Timeout = &metav1.Duration{Duration: tt.timeout}
			}
			if tt.tls {
				secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tt.name + "-ca", Namespace: ns},
					Data: map[string][]byte{"ca.crt": testutil.ServerCAPEM(up.srv)}}
				g.Expect(k8sClient.Create(testCtx, secret)).To(Succeed())
				obj.Spec.Generator.HTTP.CertSecretRef = &meta.LocalObjectReference{Name: secret.Name}
			}
			if tt.hooks {
				withHooks(obj, nil, []exsv1beta1.Hook{sh("copy", "cat")})
			}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			a := waitReady(t, obj).Status.Artifact
			stored := listStore(g, tt.store, obj)
			g.Expect(stored).To(HaveLen(1))

			// Break it; a reconcile request starts the failures at once.
			e := &faultEnv{up: up, s3: s3srv, sidecar: sc}
			tt.inject(e)
			broken := time.Now()
			requestReconcile(t, obj)
			n := faultAttempts
			if tt.attempts > 0 {
				n = tt.attempts
			}
			// A failed reconcile is never an error for controller-runtime
			// (which would log it a second time): the reconciler asks its
			// own backoff (RetryAfterBackoff) for the delay, the floor of
			// the upstream's Retry-After when there is one. The
			// controller's rate limiter is never asked.
			counting, idle := byStore[tt.store].retryAfter, byStore[tt.store].failures
			g.Eventually(func() int { return len(counting.since(key, broken)) }, 2*timeout, 50*time.Millisecond).
				Should(BeNumerically(">=", n))

			// The status names the fault; the artifact stays published.
			cur := getSource(g, obj)
			g.Expect(conditions.IsTrue(cur, tt.condition)).To(BeTrue(), "%s: %v", tt.condition, cur.Status.Conditions)
			g.Expect(conditions.GetMessage(cur, tt.condition)).To(ContainSubstring(tt.message))
			g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
			g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(tt.message))
			g.Expect(conditions.GetReason(cur, meta.ReconcilingCondition)).To(Equal(meta.ProgressingWithRetryReason))
			g.Expect(conditions.GetMessage(cur, meta.ReconcilingCondition)).To(ContainSubstring(tt.reconciling))
			g.Expect(conditions.IsStalled(cur)).To(BeFalse())
			g.Expect(cur.Status.Artifact).To(Equal(a))
			g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(a))
			if tt.downloadable {
				g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))
			}
			g.Eventually(func(g Gomega) {
				g.Expect(warningEvents(g, ns, obj.Name, tt.message)).ToNot(BeEmpty())
			}, timeout).Should(Succeed())

			// Failed reconciles are retried with exponential backoff, up to
			// the cap: min·2^i, at most max. The limiter handed out exactly
			// that (or, when the upstream set the delay, that floor), and
			// the next failure came no sooner.
			handouts := counting.since(key, broken)[:n]
			g.Expect(idle.since(key, broken)).To(BeEmpty(), "the other limiter was not asked")
			var delays, gaps []time.Duration
			for i, h := range handouts {
				delays = append(delays, h.delay)
				if i > 0 {
					gaps = append(gaps, h.at.Sub(handouts[i-1].at))
				}
			}
			t.Logf("%s: delays handed out %v; wall time between failed reconciles %v", tt.name, delays, gaps)
			for i, h := range handouts {
				g.Expect(h.delay).To(Equal(min(faultMinDelay<<i, faultMaxDelay)), "delay %d of %v", i, delays)
			}
			for i, gap := range gaps {
				want := delays[i]
				if tt.delay != nil {
					want = tt.delay(i)
				}
				// The handout precedes the requeue, which precedes the
				// next failure's handout: no tolerance is needed.
				g.Expect(gap).To(BeNumerically(">=", want), "wall time after failure %d of %v", i, gaps)
			}
			if tt.delay != nil {
				// The requeue the last failure asked for, as its status says.
				g.Eventually(func(g Gomega) {
					msg := conditions.GetMessage(getSource(g, obj), meta.ReconcilingCondition)
					last := len(counting.since(key, broken)) - 1
					g.Expect(msg).To(ContainSubstring("retrying in %s as the upstream asked", tt.delay(last)))
				}, timeout).Should(Succeed())
			}
			// Each failed reconcile's requests: those after the previous
			// failure's handout, up to its own.
			from := broken
			for _, h := range handouts {
				if tt.check != nil {
					tt.check(g, up.requestsBetween(from, h.at))
				}
				from = h.at
			}
			if tt.store != "s3" { // the S3 server is down
				g.Expect(listStore(g, tt.store, obj)).To(Equal(stored), "nothing half-done is stored")
			}

			// Mend it: the next retry recovers, without a request, and
			// republishes nothing (the data did not change).
			tt.heal(e)
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsReady(cur)).To(BeTrue())
				for _, c := range []string{exsv1beta1.FetchFailedCondition, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.HookFailedCondition} {
					g.Expect(conditions.Has(cur, c)).To(BeFalse())
				}
				g.Expect(cur.Status.Artifact).To(Equal(a))
			}, 2*timeout).Should(Succeed())
			g.Expect(listStore(g, tt.store, obj)).To(Equal(stored))
			g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))

			for _, d := range done {
				select {
				case <-d:
					t.Fatal("a manager stopped")
				default:
				}
			}
		})
	}
}

// faultStore builds a store behind an artifact server of its own.
func faultStore(t *testing.T, ctx context.Context, build func(baseURL string) storage.Storage) storage.Storage {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := storage.BaseURL(ln.Addr().String())
	st := build(base)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = (&server.Server{Storage: st, Log: ctrl.Log}).Serve(ctx, ln)
	}()
	t.Cleanup(func() { <-served })
	return st
}
