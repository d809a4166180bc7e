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
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestLogsAtTheDefaultLevel reads the controller's log as an operator
// would, at the default (info) level, across a source's life: one info
// line per new artifact (with revision, size and duration), one error line
// per failure, one line naming the field of a stalled spec, and nothing
// for an unchanged upstream or a recovery to the same revision.
func TestLogsAtTheDefaultLevel(t *testing.T) {
	g := NewWithT(t)
	// A backoff of minutes: each failure below is exactly one reconcile.
	im := startIsolated(t, zapcore.InfoLevel, func(r *ExternalSourceReconciler) {
		r.RetryAfterBackoff = runtimectrl.GetRateLimiter(runtimectrl.RateLimiterOptions{
			MinRetryDelay: 10 * time.Minute, MaxRetryDelay: 20 * time.Minute})
	})
	ns := newNamespace(t)
	up := newUpstream(t, "a: 1\n")
	obj := im.source(ns, "logged", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)

	type counts struct{ info, errs, stalled int }
	count := func() counts {
		var c counts
		for _, e := range im.logs.entries(ns, obj.Name) {
			switch {
			case strings.HasPrefix(fmt.Sprint(e["msg"]), "metadata.finalizers"):
				// The API server's warning about Flux's finalizer name
				// (finalizers.fluxcd.io has no path), relayed once by
				// controller-runtime when the finalizer is added; Flux's
				// controllers log the same.
			case e["level"] == "error" && strings.Contains(fmt.Sprint(e["msg"]), "stalled"):
				c.stalled++
			case e["level"] == "error":
				c.errs++
			case e["level"] == "info":
				c.info++
			}
		}
		return c
	}
	// Publish: exactly one info line, naming revision, size and duration.
	g.Eventually(count, timeout).Should(Equal(counts{info: 1}), im.logs.String())
	var stored map[string]any
	for _, e := range im.logs.entries(ns, obj.Name) {
		stored = e
	}
	g.Expect(stored["msg"]).To(Equal("stored artifact"))
	g.Expect(stored["revision"]).To(Equal(ready.Status.Artifact.Revision))
	g.Expect(stored["size"]).To(BeNumerically("==", *ready.Status.Artifact.Size))
	g.Expect(stored).To(HaveKey("duration"))

	// Unchanged upstream: nothing.
	requestReconcile(t, obj)
	g.Consistently(count, time.Second).Should(Equal(counts{info: 1}))

	// Failure: one error line, with the reason and the revision still
	// published.
	up.set(http.StatusInternalServerError, "boom")
	requestReconcile(t, obj)
	g.Eventually(count, timeout).Should(Equal(counts{info: 1, errs: 1}), im.logs.String())
	g.Consistently(count, time.Second).Should(Equal(counts{info: 1, errs: 1}))
	for _, e := range im.logs.entries(ns, obj.Name) {
		if e["level"] == "error" {
			g.Expect(e["reason"]).To(Equal(exsv1beta1.FetchFailedReason))
			g.Expect(e["revision"]).To(Equal(ready.Status.Artifact.Revision))
			g.Expect(e["error"]).To(ContainSubstring("500"))
		}
	}

	// Recovery to the same revision: no new line.
	up.set(http.StatusOK, "a: 1\n")
	requestReconcile(t, obj)
	g.Eventually(func(g Gomega) { g.Expect(conditions.IsReady(getSource(g, obj))).To(BeTrue()) }, timeout).Should(Succeed())
	g.Consistently(count, time.Second).Should(Equal(counts{info: 1, errs: 1}))

	// A new revision: one more info line.
	up.set(http.StatusOK, "a: 2\n")
	requestReconcile(t, obj)
	g.Eventually(count, timeout).Should(Equal(counts{info: 2, errs: 1}), im.logs.String())

	// A stalled spec: one line naming the field.
	cur := getSource(g, obj)
	patch := client.MergeFrom(cur.DeepCopy())
	cur.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "x", Command: "jq", Args: []string{"."}}}}
	g.Expect(k8sClient.Patch(testCtx, cur, patch)).To(Succeed())
	g.Eventually(count, timeout).Should(Equal(counts{info: 2, errs: 1, stalled: 1}), im.logs.String())
	g.Consistently(count, time.Second).Should(Equal(counts{info: 2, errs: 1, stalled: 1}))
	for _, e := range im.logs.entries(ns, obj.Name) {
		if strings.Contains(fmt.Sprint(e["msg"]), "stalled") {
			g.Expect(e["error"]).To(ContainSubstring("spec.hooks"))
			g.Expect(e["reason"]).To(Equal(exsv1beta1.HooksDisabledReason))
		}
	}
}

// TestReconcilingBeforeReady watches an object while its spec is edited:
// Reconciling=True for the new generation (and Ready not True) is written
// before Ready reports the new generation, so `kubectl wait
// --for=condition=Ready` after an edit never returns on the old result;
// then a new upstream revision is published in one write, without
// Reconciling, with Ready=True naming it.
func TestReconcilingBeforeReady(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "a: 1\n")
	up2 := newUpstream(t, "b: 2\n")
	obj := newSource(ns, "progress", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)

	wc, err := client.NewWithWatch(testConfig, client.Options{Scheme: testScheme})
	g.Expect(err).ToNot(HaveOccurred())
	ctx, cancel := context.WithTimeout(testCtx, timeout)
	defer cancel()
	w, err := wc.Watch(ctx, &exsv1beta1.ExternalSourceList{}, client.InNamespace(ns))
	g.Expect(err).ToNot(HaveOccurred())
	defer w.Stop()

	patch := client.MergeFrom(ready.DeepCopy())
	ready.Spec.Generator.HTTP.URL = up2.URL
	g.Expect(k8sClient.Patch(testCtx, ready, patch)).To(Succeed())
	gen := ready.Generation

	var sawProgress bool
	for ev := range w.ResultChan() {
		if ev.Type != watch.Modified {
			continue
		}
		cur := ev.Object.(*exsv1beta1.ExternalSource)
		if cur.Generation != gen {
			continue
		}
		rc := conditions.Get(cur, meta.ReconcilingCondition)
		rd := conditions.Get(cur, meta.ReadyCondition)
		if rc != nil && rc.Status == "True" && rc.ObservedGeneration == gen {
			g.Expect(rd).ToNot(BeNil())
			g.Expect(string(rd.Status)).To(Equal("Unknown"), "Ready while reconciling: %v", rd)
			sawProgress = true
		}
		if rd != nil && rd.Status == "True" && cur.Status.ObservedGeneration == gen {
			g.Expect(sawProgress).To(BeTrue(), "Ready for generation %d before Reconciling was seen", gen)
			g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(waitReadyRevision(ready)))
			break
		}
	}
	g.Expect(sawProgress).To(BeTrue(), "the watch ended before Ready reported the new generation")

	// A new upstream revision, picked up by a reconcile request, is
	// published in one status write: no Reconciling is shown (the work
	// ends in the same pass), and the write that changes the revision
	// says Ready=True for it and handles the request.
	prev := waitReady(t, obj).Status.Artifact.Revision
	up2.set(http.StatusOK, "b: 3\n")
	requestReconcileAsync(g, obj)
	for ev := range w.ResultChan() {
		if ev.Type != watch.Modified {
			continue
		}
		cur := ev.Object.(*exsv1beta1.ExternalSource)
		if cur.Annotations[meta.ReconcileRequestAnnotation] == "" {
			continue
		}
		g.Expect(conditions.Get(cur, meta.ReconcilingCondition)).To(BeNil(), "no Reconciling for a new revision")
		if cur.Status.Artifact != nil && cur.Status.Artifact.Revision != prev {
			g.Expect(conditions.IsReady(cur)).To(BeTrue())
			g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(cur.Status.Artifact.Revision))
			g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(cur.Annotations[meta.ReconcileRequestAnnotation]))
			return
		}
	}
	t.Fatal("the watch ended before the new revision was published")
}

// requestReconcileAsync sets reconcile.fluxcd.io/requestedAt without
// waiting for it to be handled.
func requestReconcileAsync(g Gomega, obj *exsv1beta1.ExternalSource) {
	g.Eventually(func() error {
		cur := &exsv1beta1.ExternalSource{}
		if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return err
		}
		p := client.MergeFrom(cur.DeepCopy())
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[meta.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
		return k8sClient.Patch(testCtx, cur, p)
	}, timeout).Should(Succeed())
}

func waitReadyRevision(obj *exsv1beta1.ExternalSource) string {
	if obj.Status.Artifact == nil {
		return ""
	}
	return obj.Status.Artifact.Revision
}
