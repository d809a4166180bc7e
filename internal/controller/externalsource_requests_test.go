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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// setAnnotations merges annotations into obj on the API server; an empty
// value removes the key.
func setAnnotations(g Gomega, obj client.Object, annotations map[string]string) {
	g.Eventually(func() error {
		if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		p := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		a := obj.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		for k, v := range annotations {
			if v == "" {
				delete(a, k)
			} else {
				a[k] = v
			}
		}
		obj.SetAnnotations(a)
		return k8sClient.Patch(testCtx, obj, p)
	}, timeout).Should(Succeed())
}

// receiverToken is a value as notification-controller's Receiver writes
// it (metav1.Now().String()): not RFC 3339, so not comparable in time
// with a `flux reconcile` token.
func receiverToken(i int) string {
	return metav1.NewTime(time.Date(2026, 11, 29, 22, 0, i, 0, time.UTC)).String()
}

// TestArtifactRequestStatus: which reconcile request a reconcile shows in
// status.lastHandledReconcileAt when the ExternalArtifact (a Receiver) and
// the ExternalSource (a CLI) both carry one, and that a request shown stays
// shown: no reconcile moves the status back to an older request.
func TestArtifactRequestStatus(t *testing.T) {
	a1, a2 := receiverToken(1), receiverToken(2)
	tests := []struct {
		name string
		// before the reconcile
		own, lastHandled, artifact, handled, seen string
		// after it
		wantLastHandled, wantHandled, wantSeen string
	}{
		{name: "receiver request", artifact: a1,
			wantLastHandled: a1, wantHandled: a1},
		{name: "receiver request, own request handled before", own: "e1", lastHandled: "e1", artifact: a1,
			wantLastHandled: a1, wantHandled: a1, wantSeen: "e1"},
		{name: "both new: the own request wins the status", own: "e1", lastHandled: "e0", artifact: a1,
			wantLastHandled: "e1", wantHandled: a1, wantSeen: "e1"},
		{name: "receiver request shown stays shown", own: "e1", lastHandled: a1, artifact: a1, handled: a1, seen: "e1",
			wantLastHandled: a1, wantHandled: a1, wantSeen: "e1"},
		{name: "own request after the receiver's", own: "e2", lastHandled: a1, artifact: a1, handled: a1, seen: "e1",
			wantLastHandled: "e2", wantHandled: a1, wantSeen: "e1"},
		{name: "second receiver request", own: "e1", lastHandled: a1, artifact: a2, handled: a1, seen: "e1",
			wantLastHandled: a2, wantHandled: a2, wantSeen: "e1"},
		{name: "handled receiver request, own shown since", own: "e2", lastHandled: "e2", artifact: a1, handled: a1, seen: "e1",
			wantLastHandled: "e2", wantHandled: a1, wantSeen: "e1"},
	}
	ns := newNamespace(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newCountingUpstream(t, `{"price": 1}`, "", "", true)
			r, _ := isolatedReconciler(nil, HookLimits{})
			obj := newSource(ns, "req-"+string(rune('a'+i)), up.URL)
			obj.Labels = map[string]string{isolatedLabel: "requests-" + ns}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			g.Expect(reconcileErr(r, obj)).To(Succeed()) // publishes the ExternalArtifact

			setAnnotations(g, obj, map[string]string{meta.ReconcileRequestAnnotation: tt.own})
			if tt.lastHandled != "" {
				cur := getSource(g, obj)
				p := client.MergeFrom(cur.DeepCopy())
				cur.Status.LastHandledReconcileAt = tt.lastHandled
				g.Expect(k8sClient.Status().Patch(testCtx, cur, p)).To(Succeed())
			}
			ea := &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.Name}}
			setAnnotations(g, ea, map[string]string{meta.ReconcileRequestAnnotation: tt.artifact,
				ArtifactRequestHandledAnnotation: tt.handled, SourceRequestSeenAnnotation: tt.seen})
			before := up.counts()

			g.Expect(reconcileErr(r, obj)).To(Succeed())
			cur := getSource(g, obj)
			g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(tt.wantLastHandled))
			g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(ea), ea)).To(Succeed())
			g.Expect(ea.Annotations[ArtifactRequestHandledAnnotation]).To(Equal(tt.wantHandled))
			g.Expect(ea.Annotations[SourceRequestSeenAnnotation]).To(Equal(tt.wantSeen))
			// Every reconcile fetches (this upstream has no validators).
			g.Expect(up.counts().minus(before).gets).To(Equal(int64(1)))

			// A reconcile with nothing new changes nothing: no status write.
			rv := cur.ResourceVersion
			g.Expect(reconcileErr(r, obj)).To(Succeed())
			cur = getSource(g, obj)
			g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(tt.wantLastHandled))
			g.Expect(cur.ResourceVersion).To(Equal(rv))
		})
	}
}

// TestExternalArtifactRequestFetches: a reconcile request written on the
// ExternalArtifact, as a notification-controller Receiver writes it,
// reconciles the owning ExternalSource at once through the manager's
// watch: the new upstream data is published long before the interval
// (10m), the request shows in status.lastHandledReconcileAt and is recorded
// as handled on the ExternalArtifact. The controller's own writes to the
// ExternalArtifact (the record) trigger no further fetch.
func TestExternalArtifactRequestFetches(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newCountingUpstream(t, `{"price": 1}`, "", "", true)
	obj := newSource(ns, "receiver", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	first := waitReady(t, obj).Status.Artifact.Revision

	up.set(`{"price": 2}`, "")
	token := receiverToken(3)
	start := time.Now()
	ea := &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.Name}}
	setAnnotations(g, ea, map[string]string{meta.ReconcileRequestAnnotation: token})
	var cur *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		cur = getSource(g, obj)
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(token))
		g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(first))
	}, timeout, 50*time.Millisecond).Should(Succeed())
	t.Logf("new revision published %s after the ExternalArtifact's request", time.Since(start).Round(time.Millisecond))
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(ea), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact.Revision).To(Equal(cur.Status.Artifact.Revision))
		g.Expect(ea.Annotations[ArtifactRequestHandledAnnotation]).To(Equal(token))
	}, timeout).Should(Succeed())

	// No more fetches: the record on the ExternalArtifact and the new
	// status are the controller's own writes.
	gets := up.counts().gets
	g.Consistently(func() int64 { return up.counts().gets }, 2*time.Second, 100*time.Millisecond).Should(Equal(gets))

	// The ExternalSource's own request still works, and takes the status.
	own := requestReconcile(t, obj)
	g.Expect(own.Status.LastHandledReconcileAt).ToNot(Equal(token))
}
