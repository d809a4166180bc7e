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
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestEveryReconcileRequestIsHandledUnderContention sends rounds of
// reconcile requests to every source of one namespace, back to back, while
// goroutines spinning on every CPU compete with the controller, through a
// manager whose namespace share (one reconcile at a time for four workers)
// parks most requests: every source must acknowledge the last request
// (status.lastHandledReconcileAt), however long the machine makes it take.
// A request the controller left unhandled (a parked request never woken, a
// first check deferred for good) fails it, naming the sources. The bound
// is on completion, generous in time: a loaded machine is slow, not wrong.
func TestEveryReconcileRequestIsHandledUnderContention(t *testing.T) {
	const (
		sources = 24
		rounds  = 4
	)
	g := NewWithT(t)
	ns := newNamespace(t)
	// No ETag, no Last-Modified: every request is a full GET, as in the
	// benchmark's "five sources without ETags".
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("a: 1\n"))
	}))
	t.Cleanup(up.Close)
	im := startIsolatedManager(t, "stress-"+ns, zapcore.ErrorLevel,
		ReconcilerOptions{MaxConcurrentReconciles: 4, MaxConcurrentPerNamespace: 1}, nil)

	names := make([]string, sources)
	for i := range names {
		names[i] = fmt.Sprintf("s%02d", i)
		g.Expect(k8sClient.Create(testCtx, im.source(ns, names[i], up.URL+"/"+names[i]))).To(Succeed())
	}
	// pending returns the sources whose status does not satisfy done.
	pending := func(g Gomega, done func(*exsv1beta1.ExternalSource) bool) []string {
		var out []string
		for _, n := range names {
			obj := &exsv1beta1.ExternalSource{}
			g.Expect(k8sClient.Get(testCtx, types.NamespacedName{Namespace: ns, Name: n}, obj)).To(Succeed())
			if !done(obj) {
				out = append(out, fmt.Sprintf("%s (handled %q, Ready %q)", n, obj.Status.LastHandledReconcileAt,
					conditions.GetMessage(obj, meta.ReadyCondition)))
			}
		}
		return out
	}
	g.Eventually(func(g Gomega) {
		g.Expect(pending(g, func(o *exsv1beta1.ExternalSource) bool {
			return conditions.IsReady(o) && o.Status.Artifact != nil
		})).To(BeEmpty())
	}, 3*time.Minute, 200*time.Millisecond).Should(Succeed(), "every source Ready")

	// CPU contention: as many spinning goroutines as CPUs, twice over,
	// until the requests are handled.
	stop := make(chan struct{})
	var spinning sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		spinning.Add(1)
		go func() {
			defer spinning.Done()
			for {
				select {
				case <-stop:
					return
				default:
					for i := 0; i < 1<<16; i++ {
						_ = i * i
					}
				}
			}
		}()
	}
	defer func() { close(stop); spinning.Wait() }()

	var token string
	for round := range rounds {
		token = strconv.Itoa(round) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
		var wg sync.WaitGroup
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				obj := &exsv1beta1.ExternalSource{}
				obj.Name, obj.Namespace = n, ns
				patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, meta.ReconcileRequestAnnotation, token))
				g.Expect(k8sClient.Patch(testCtx, obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
			}()
		}
		wg.Wait()
	}
	g.Eventually(func(g Gomega) {
		g.Expect(pending(g, func(o *exsv1beta1.ExternalSource) bool {
			return o.Status.LastHandledReconcileAt == token && conditions.IsReady(o)
		})).To(BeEmpty(), "sources that did not handle the last request")
	}, 5*time.Minute, 500*time.Millisecond).Should(Succeed())
}
