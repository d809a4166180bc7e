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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
)

// reconciles counts the Reconcile calls of the object ns/name in the
// captured log: controller-runtime logs "Reconciling" at V(5) before every
// call, whatever it then does (a request parked inside Reconcile included,
// which returned before anything the reconciler records).
func (im *isolatedManager) reconciles(ns, name string) int {
	n := 0
	for _, e := range im.logs.entries(ns, name) {
		if e["msg"] == "Reconciling" {
			n++
		}
	}
	return n
}

// TestOneReconcilePerNewSource: sources created at once in one namespace,
// more than its share of the workers, are each reconciled exactly once
// until Ready and after (issue 27: those over the share were reconciled
// twice, the first time only to be parked). The watch on the owned
// ExternalArtifacts still does its work: one deleted, or whose spec
// someone else changed, is put back by one reconcile of its owner, and
// the other sources are not reconciled again.
func TestOneReconcilePerNewSource(t *testing.T) {
	g := NewWithT(t)
	const n = 12
	up := newCountingUpstream(t, `{"ok": true}`, `"v1"`, "", true)
	ns := newNamespace(t)
	// Four workers, two per namespace: ten of the twelve wait for the
	// share at first.
	im := startIsolatedManager(t, "once-"+ns, zapcore.Level(-5), ReconcilerOptions{MaxConcurrentReconciles: 4}, nil)
	g.Expect(im.r.namespaceShare).NotTo(BeNil())
	g.Expect(im.r.namespaceShare.Limit()).To(Equal(2))

	keys := make([]client.ObjectKey, n)
	for i := range n {
		obj := im.source(ns, fmt.Sprintf("src-%d", i), fmt.Sprintf("%s/%d", up.URL, i))
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		keys[i] = client.ObjectKeyFromObject(obj)
	}
	g.Eventually(func(g Gomega) int { return readyIn(g, im.shard, ns) }, timeout, 50*time.Millisecond).Should(Equal(n))
	// A reconcile its own writes would trigger comes within moments.
	time.Sleep(2 * time.Second)
	for _, k := range keys {
		g.Expect(im.reconciles(ns, k.Name)).To(Equal(1), "%s reconciles until Ready", k.Name)
	}

	// Deleted by someone else: put back, by one reconcile.
	ea := &sourcev1.ExternalArtifact{}
	g.Expect(k8sClient.Get(testCtx, keys[0], ea)).To(Succeed())
	rev := ea.Status.Artifact.Revision
	uid := ea.UID
	g.Expect(k8sClient.Delete(testCtx, ea)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &sourcev1.ExternalArtifact{}
		g.Expect(k8sClient.Get(testCtx, keys[0], got)).To(Succeed())
		g.Expect(got.UID).NotTo(Equal(uid))
		g.Expect(got.Status.Artifact).NotTo(BeNil())
		g.Expect(got.Status.Artifact.Revision).To(Equal(rev))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	// Its spec changed by someone else: put back.
	ea = &sourcev1.ExternalArtifact{}
	g.Expect(k8sClient.Get(testCtx, keys[1], ea)).To(Succeed())
	patch := client.MergeFrom(ea.DeepCopy())
	ea.Spec.SourceRef = &meta.NamespacedObjectKindReference{APIVersion: "v1", Kind: "ConfigMap", Name: "someone-else"}
	g.Expect(k8sClient.Patch(testCtx, ea, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &sourcev1.ExternalArtifact{}
		g.Expect(k8sClient.Get(testCtx, keys[1], got)).To(Succeed())
		g.Expect(got.Spec.SourceRef).NotTo(BeNil())
		g.Expect(got.Spec.SourceRef.Kind).To(Equal("ExternalSource"))
		g.Expect(got.Spec.SourceRef.Name).To(Equal(keys[1].Name))
	}, timeout, 50*time.Millisecond).Should(Succeed())

	time.Sleep(2 * time.Second)
	// The deletion: one reconcile, whose create the watch lets pass. The
	// edit: one reconcile, and one more for the repair, which changes the
	// spec (the generation) again; it finds nothing to do, and ends there.
	g.Expect(im.reconciles(ns, keys[0].Name)).To(Equal(2))
	g.Expect(im.reconciles(ns, keys[1].Name)).To(Equal(3))
	for _, k := range keys[2:] {
		g.Expect(im.reconciles(ns, k.Name)).To(Equal(1), "%s was not touched", k.Name)
	}
}

// TestScheduledChecksComeLast: the interval's requeue of a Ready object
// has the queue's low priority, so that new sources go first during a
// ramp (issue 27); a failed reconcile's retry keeps its priority.
func TestScheduledChecksComeLast(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, `{"ok": true}`)
	r, rec := isolatedReconciler(nil, HookLimits{})
	// Its events are not what this test is about: drained, so that the
	// recorder never blocks a reconcile.
	go func() {
		for range rec.Events {
		}
	}()
	obj := newSource(ns, "checked", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)}
	var res ctrl.Result
	g.Eventually(func(g Gomega) {
		var err error
		res, err = r.Reconcile(testCtx, req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(conditions.IsReady(getSource(g, obj))).To(BeTrue())
	}, timeout).Should(Succeed())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0))
	g.Expect(res.Priority).To(Equal(ptr.To(handler.LowPriority)))

	up.set(http.StatusInternalServerError, "down")
	// Without a RetryAfterBackoff (no SetupWithManager) the failure is
	// returned for controller-runtime's rate limiter to retry, which keeps
	// the request's priority; either way no low priority is asked for.
	g.Eventually(func(g Gomega) {
		res, _ = r.Reconcile(testCtx, req)
		g.Expect(conditions.IsReady(getSource(g, obj))).To(BeFalse())
	}, timeout).Should(Succeed())
	g.Expect(res.Priority).To(BeNil())
	g.Expect(scheduledCheckLast(getSource(g, obj), ctrl.Result{RequeueAfter: time.Second}, nil).Priority).To(BeNil(),
		"a retry after a failure")
}
