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
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// hangingUpstream accepts every request and never answers it, as a hostile
// tenant's endpoint (or a 1 byte/s one) does: each request holds the
// reconcile that sent it until its deadline. It counts the requests it is
// holding, and the most it ever held at once.
type hangingUpstream struct {
	*httptest.Server
	open, peak atomic.Int32
	release    chan struct{}
}

func newHangingUpstream(t *testing.T) *hangingUpstream {
	u := &hangingUpstream{release: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		n := u.open.Add(1)
		defer u.open.Add(-1)
		for {
			p := u.peak.Load()
			if n <= p || u.peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-r.Context().Done():
		case <-u.release:
		}
	}))
	// Registered before the managers' cleanups, so it runs after them:
	// the held requests end with the reconciles that sent them, then
	// whatever is left is let go and the server closed.
	t.Cleanup(func() {
		close(u.release)
		u.Close()
	})
	return u
}

// startShardManager starts an isolated manager (SetupWithManager's
// wiring) for shard with opts, on store (a memory store of its own when
// nil), logging at the suite's level.
func startShardManager(t *testing.T, shard string, opts ReconcilerOptions, store *memory.Storage) {
	t.Helper()
	startIsolatedManager(t, shard, zapLevel(), opts, func(r *ExternalSourceReconciler) {
		if store != nil {
			r.Storage = store
		}
	})
}

// createShardSources creates n sources in ns for the shard's manager.
func createShardSources(t *testing.T, shard, ns, prefix, url string, n int, timeout time.Duration) {
	t.Helper()
	g := NewWithT(t)
	for i := range n {
		obj := newSource(ns, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s/%s/%d", url, prefix, i))
		obj.Labels = map[string]string{isolatedLabel: shard}
		obj.Spec.Timeout = &metav1.Duration{Duration: timeout}
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	}
}

// readyIn counts the shard's sources of the namespaces that are Ready.
func readyIn(g Gomega, shard string, namespaces ...string) int {
	n := 0
	for _, ns := range namespaces {
		var list exsv1beta1.ExternalSourceList
		g.Expect(k8sClient.List(testCtx, &list, client.InNamespace(ns), client.MatchingLabels{isolatedLabel: shard})).To(Succeed())
		for i := range list.Items {
			if conditions.IsReady(&list.Items[i]) && list.Items[i].Status.Artifact != nil {
				n++
			}
		}
	}
	return n
}

// TestOneNamespaceStarvesAllWithoutShare is the attack, and the control of
// TestOneNamespaceCannotStarveTheOthers: with the per-namespace share
// switched off (as large as --concurrent), ten sources of one namespace
// pointed at an upstream that never answers, with the maximum timeout,
// hold all ten workers, and no source of any other namespace is reconciled
// while they hang.
func TestOneNamespaceStarvesAllWithoutShare(t *testing.T) {
	g := NewWithT(t)
	const concurrent = 10
	hang := newHangingUpstream(t)
	healthy := newCountingUpstream(t, `{"ok": true}`, `"v1"`, "", true)
	hostile, other := newNamespace(t), newNamespace(t)
	shard := "starve-" + hostile
	startShardManager(t, shard, ReconcilerOptions{MaxConcurrentReconciles: concurrent,
		MaxConcurrentPerNamespace: concurrent}, nil)

	createShardSources(t, shard, hostile, "hang", hang.URL, 10, exsv1beta1.MaxTimeout)
	g.Eventually(hang.open.Load, timeout, 20*time.Millisecond).Should(BeEquivalentTo(concurrent),
		"the hostile namespace holds every worker")
	createShardSources(t, shard, other, "healthy", healthy.URL, 5, exsv1beta1.DefaultTimeout)
	g.Consistently(func(g Gomega) int { return readyIn(g, shard, other) }, 3*time.Second, 100*time.Millisecond).
		Should(BeZero(), "no other namespace is served while the workers hang")
	g.Expect(healthy.gets.Load()).To(BeZero())
}

// TestOneNamespaceCannotStarveTheOthers is the acceptance test of the
// per-namespace share, with the real controller and its defaults
// (--concurrent 10, so a share of 5): ten sources of one namespace pointed
// at an upstream that never answers, with the maximum timeout, and 50
// healthy sources in two other namespaces. Every healthy source becomes
// Ready while the hostile ones are still hanging: the upstream holds the
// hostile namespace's share of requests, never more, all along.
func TestOneNamespaceCannotStarveTheOthers(t *testing.T) {
	g := NewWithT(t)
	const concurrent = 10
	share := int32(DefaultMaxConcurrentPerNamespace(concurrent))
	hang := newHangingUpstream(t)
	healthy := newCountingUpstream(t, `{"ok": true}`, `"v1"`, "", true)
	hostile, tenantA, tenantB := newNamespace(t), newNamespace(t), newNamespace(t)
	shard := "fair-" + hostile
	startShardManager(t, shard, ReconcilerOptions{MaxConcurrentReconciles: concurrent}, nil)

	// For comparison: the same 50 sources with no hostile load.
	baseline := newNamespace(t)
	start := time.Now()
	createShardSources(t, shard, baseline, "healthy", healthy.URL, 50, exsv1beta1.DefaultTimeout)
	g.Eventually(func(g Gomega) int { return readyIn(g, shard, baseline) }, timeout, 50*time.Millisecond).
		Should(Equal(50))
	t.Logf("without hostile load: 50 healthy sources Ready in %s (creation included)", time.Since(start).Round(time.Millisecond))

	createShardSources(t, shard, hostile, "hang", hang.URL, 10, exsv1beta1.MaxTimeout)
	g.Eventually(hang.open.Load, timeout, 20*time.Millisecond).Should(Equal(share),
		"the hostile namespace holds its share of the workers")

	start = time.Now()
	createShardSources(t, shard, tenantA, "healthy", healthy.URL, 25, exsv1beta1.DefaultTimeout)
	createShardSources(t, shard, tenantB, "healthy", healthy.URL, 25, exsv1beta1.DefaultTimeout)
	g.Eventually(func(g Gomega) int { return readyIn(g, shard, tenantA, tenantB) }, timeout, 50*time.Millisecond).
		Should(Equal(50))
	elapsed := time.Since(start)
	t.Logf("50 healthy sources Ready in %s (creation included) while %d of 10 hostile fetches hang (timeout %s)",
		elapsed.Round(time.Millisecond), hang.open.Load(), exsv1beta1.MaxTimeout)

	// Still hanging: the healthy ones did not wait for them.
	g.Expect(hang.open.Load()).To(Equal(share))
	g.Expect(hang.peak.Load()).To(Equal(share), "one namespace never ran more than its share")
	g.Expect(readyIn(g, shard, hostile)).To(BeZero())
	// No wall-clock bound: the hostile fetches still hanging while all 50
	// healthy sources are Ready is what says the healthy ones did not wait
	// for them, however slow the machine.
}

// TestMemoryStoreNamespaceShare: with the real controller on a memory
// store, a namespace that stores more than its share gets
// StorageOperationFailed naming --memory-store-max-bytes-per-namespace,
// and another namespace still stores.
func TestMemoryStoreNamespaceShare(t *testing.T) {
	g := NewWithT(t)
	const perNS = 16 << 10
	// Incompressible data, the same for a path on every request: 10 KiB
	// archives, of which one fits in a namespace's share and two do not.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rng := rand.New(rand.NewPCG(uint64(len(r.URL.Path)), uint64(r.URL.Path[len(r.URL.Path)-1])))
		b := make([]byte, 10<<10)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(up.Close)
	hostile, other := newNamespace(t), newNamespace(t)
	shard := "memshare-" + hostile
	startShardManager(t, shard, ReconcilerOptions{MaxConcurrentReconciles: 2},
		memory.New(memory.Options{MaxBytes: 1 << 20, MaxBytesPerNamespace: perNS}))

	first := newSource(hostile, "first", up.URL+"/first")
	first.Labels = map[string]string{isolatedLabel: shard}
	g.Expect(k8sClient.Create(testCtx, first)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(conditions.IsReady(getSource(g, first))).To(BeTrue()) }, timeout, 50*time.Millisecond).Should(Succeed())

	second := newSource(hostile, "second", up.URL+"/second")
	second.Labels = map[string]string{isolatedLabel: shard}
	g.Expect(k8sClient.Create(testCtx, second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		c := conditions.Get(getSource(g, second), exsv1beta1.StorageOperationFailedCondition)
		g.Expect(c).ToNot(BeNil())
		g.Expect(c.Message).To(ContainSubstring(fmt.Sprintf("namespace %q is at its share", hostile)))
		g.Expect(c.Message).To(ContainSubstring(fmt.Sprintf("--memory-store-max-bytes-per-namespace=%d", perNS)))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	elsewhere := newSource(other, "elsewhere", up.URL+"/elsewhere")
	elsewhere.Labels = map[string]string{isolatedLabel: shard}
	g.Expect(k8sClient.Create(testCtx, elsewhere)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(conditions.IsReady(getSource(g, elsewhere))).To(BeTrue()) }, timeout, 50*time.Millisecond).Should(Succeed())
	g.Expect(conditions.IsReady(getSource(g, second))).To(BeFalse())
}

// slowArtifactWrites delays every ExternalArtifact status write by delay and
// records how many were in flight at once: it stands for a busy API server,
// the only thing that decides how long the steps after the share take.
type slowArtifactWrites struct {
	client.Client
	delay          time.Duration
	inFlight, peak atomic.Int32
}

func (c *slowArtifactWrites) Status() client.SubResourceWriter {
	return slowStatusWriter{SubResourceWriter: c.Client.Status(), c: c}
}

type slowStatusWriter struct {
	client.SubResourceWriter
	c *slowArtifactWrites
}

func (w slowStatusWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if _, ok := obj.(*sourcev1.ExternalArtifact); ok {
		defer enter(&w.c.inFlight, &w.c.peak)()
		time.Sleep(w.c.delay)
	}
	return w.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// enter counts one more in flight, raises peak to it, and returns the
// leave.
func enter(inFlight, peak *atomic.Int32) (leave func()) {
	n := inFlight.Add(1)
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
	return func() { inFlight.Add(-1) }
}

// peakUpstream answers every GET after delay and records the most requests
// it held at once.
type peakUpstream struct {
	*httptest.Server
	inFlight, peak atomic.Int32
}

func newPeakUpstream(t *testing.T, delay time.Duration) *peakUpstream {
	u := &peakUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer enter(&u.inFlight, &u.peak)()
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}))
	t.Cleanup(u.Close)
	return u
}
