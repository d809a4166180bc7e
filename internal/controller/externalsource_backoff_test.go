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
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
)

// TestFailingSourceBacksOff runs a manager of its own, with the rate limiter
// main.go builds from --min-retry-delay=50ms and --max-retry-delay=2s, on a
// source whose upstream always fails. Retries within a fetch are off, so
// every request the upstream sees is one reconcile attempt. The gaps between
// attempts must follow the exponential backoff (each at least min·2^n): not
// the 10m interval, and not a tight loop.
func TestFailingSourceBacksOff(t *testing.T) {
	g := NewWithT(t)
	const minDelay = 50 * time.Millisecond
	const attempts = 7 // six gaps: 50ms, 100ms, ... 1.6s at least

	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		http.Error(w, "always failing", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)

	selector := labels.SelectorFromSet(labels.Set{isolatedLabel: "backoff"})
	mgr, err := ctrl.NewManager(testConfig, ctrl.Options{
		Scheme:     testScheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptrTo(true)},
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&v1.ExternalSource{}: {Label: selector},
		}},
	})
	g.Expect(err).ToNot(HaveOccurred())
	gens := generator.NewRegistry()
	g.Expect(builtin.Register(gens, builtin.Options{HTTP: httpgen.Options{RetryMax: -1}})).To(Succeed())
	r := &ExternalSourceReconciler{
		Client:         mgr.GetClient(),
		Recorder:       events.NewNopRecorder(),
		APIReader:      mgr.GetAPIReader(),
		ControllerName: "externalsource-controller",
		Generators:     gens,
		Storage:        memoryStore(),
	}
	g.Expect(r.SetupWithManager(mgr, ReconcilerOptions{
		MaxConcurrentReconciles: 1,
		RateLimiter:             runtimectrl.GetRateLimiter(runtimectrl.RateLimiterOptions{MinRetryDelay: minDelay, MaxRetryDelay: 2 * time.Second}),
	})).To(Succeed())
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	ns := newNamespace(t)
	obj := newSource(ns, "failing", srv.URL)
	obj.Labels = map[string]string{isolatedLabel: "backoff"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())

	g.Eventually(func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(at)
	}, timeout, 10*time.Millisecond).Should(BeNumerically(">=", attempts))
	cancel()
	<-done

	mu.Lock()
	var gaps []time.Duration
	for i := 1; i < attempts; i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	mu.Unlock()
	t.Logf("gaps between reconcile attempts of a failing source: %v", gaps)
	for i, gap := range gaps {
		// The rate limiter never requeues sooner than min·2^i; 10% slack
		// for clock granularity.
		g.Expect(gap).To(BeNumerically(">=", minDelay<<i*9/10), "gap %d of %v", i, gaps)
		g.Expect(gap).To(BeNumerically("<", time.Minute), "requeued at the interval, not with backoff: %v", gaps)
	}

	cur := getSource(g, obj)
	g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
	g.Expect(conditions.GetReason(cur, meta.ReconcilingCondition)).To(Equal(meta.ProgressingWithRetryReason))
	g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(`500 Internal Server Error: "always failing"`))
	g.Expect(conditions.IsStalled(cur)).To(BeFalse())
}
