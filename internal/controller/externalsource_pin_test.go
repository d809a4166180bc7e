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
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestDigestPinMatchIsNotFetchedAgain: a pinned source is fetched once;
// later reconciles (interval requeues and reconcile requests) send no
// request at all while the spec is unchanged and the artifact is stored,
// even when the upstream would now answer other bytes.
func TestDigestPinMatchIsNotFetchedAgain(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const body = `{"price": 1}`
	up := newCountingUpstream(t, body, "", "", true)
	obj := newSource(ns, "pinned", up.URL)
	pin := sha256Digest([]byte(body))
	obj.Spec.Verify = &exsv1beta1.VerifySpec{Digest: pin}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	g.Expect(up.counts()).To(Equal(counts{heads: 0, gets: 1}))
	g.Expect(ready.Status.LastHandledDigest).To(Equal(pin))
	rev := ready.Status.Artifact.Revision

	// The upstream changes: a pinned source must not even look.
	up.set(`{"price": 2}`, "")
	before := up.counts()
	for i := range 3 {
		_, rec := reconcileOnce(t, obj)
		g.Expect(rec.Events).To(BeEmpty(), "reconcile %d", i+1)
	}
	for range 2 {
		cur := requestReconcile(t, obj)
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(cur.Status.Artifact.Revision).To(Equal(rev))
	}
	g.Expect(up.counts().minus(before)).To(Equal(counts{}), "no upstream request for an unchanged pinned source")

	// A new pin is a new spec: fetched, and the new bytes are published.
	cur := getSource(g, obj)
	cur.Spec.Verify.Digest = sha256Digest([]byte(`{"price": 2}`))
	g.Expect(k8sClient.Update(testCtx, cur)).To(Succeed())
	g.Eventually(func(g Gomega) {
		out := getSource(g, obj)
		g.Expect(conditions.IsReady(out)).To(BeTrue())
		g.Expect(out.Status.ObservedGeneration).To(Equal(out.Generation))
		g.Expect(out.Status.Artifact.Revision).ToNot(Equal(rev))
		g.Expect(out.Status.LastHandledDigest).To(Equal(cur.Spec.Verify.Digest))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 0, gets: 1}))
}

// TestDigestPinMismatchStalls: bytes that do not match the pin publish
// nothing, keep the last artifact, and stall with DigestMismatch naming
// both digests and a Warning event; retrying does not help, so no requeue.
func TestDigestPinMismatchStalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const body = `{"price": 1}`
	up := newCountingUpstream(t, body, "", "", true)
	obj := newSource(ns, "mismatch", up.URL)
	obj.Spec.Verify = &exsv1beta1.VerifySpec{Digest: sha256Digest([]byte(body))}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	published := *ready.Status.Artifact

	wrong := "sha256:" + strings.Repeat("0", 64)
	cur := getSource(g, obj)
	cur.Spec.Verify.Digest = wrong
	g.Expect(k8sClient.Update(testCtx, cur)).To(Succeed())
	var stalled *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		stalled = getSource(g, obj)
		g.Expect(conditions.IsStalled(stalled)).To(BeTrue())
		g.Expect(conditions.GetReason(stalled, meta.ReadyCondition)).To(Equal(exsv1beta1.DigestMismatchReason))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(conditions.GetReason(stalled, exsv1beta1.FetchFailedCondition)).To(Equal(exsv1beta1.DigestMismatchReason))
	msg := conditions.GetMessage(stalled, exsv1beta1.FetchFailedCondition)
	g.Expect(msg).To(ContainSubstring(wrong))
	g.Expect(msg).To(ContainSubstring(sha256Digest([]byte(body))))
	g.Expect(conditions.IsFalse(stalled, meta.ReadyCondition)).To(BeTrue())
	// The last artifact stays published and stored.
	g.Expect(stalled.Status.Artifact).ToNot(BeNil())
	g.Expect(stalled.Status.Artifact.Revision).To(Equal(published.Revision))
	g.Expect(stalled.Status.LastHandledDigest).To(Equal(sha256Digest([]byte(body))))
	g.Expect(untar(g, download(g, stalled.Status.Artifact.URL))).To(HaveKeyWithValue("data/pricing.json", body))
	ea := getExternalArtifact(g, obj)
	g.Expect(ea.Status.Artifact.Revision).To(Equal(published.Revision))

	// A direct reconcile: the Warning event names both digests, and a
	// stalled object is not requeued.
	res, rec := reconcileOnce(t, obj)
	g.Expect(res.RequeueAfter).To(BeZero())
	g.Expect(rec.Events).ToNot(BeEmpty())
	e := <-rec.Events
	g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(e.Reason).To(Equal(exsv1beta1.DigestMismatchReason))
	g.Expect(e.Message).To(And(ContainSubstring(wrong), ContainSubstring(sha256Digest([]byte(body)))))
	g.Expect(getSource(g, obj).Status.Artifact.Revision).To(Equal(published.Revision))
}

// TestDigestPinValidation: the CRD refuses a digest that is not sha256 hex.
func TestDigestPinValidation(t *testing.T) {
	ns := newNamespace(t)
	for i, d := range []string{"sha256:abc", "sha512:" + strings.Repeat("a", 64), "sha256:" + strings.Repeat("A", 64), ""} {
		g := NewWithT(t)
		obj := newSource(ns, "bad-pin-"+string(rune('a'+i)), "https://example.com")
		obj.Spec.Verify = &exsv1beta1.VerifySpec{Digest: d}
		err := k8sClient.Create(testCtx, obj)
		g.Expect(err).To(HaveOccurred(), "digest %q", d)
		g.Expect(err.Error()).To(ContainSubstring("spec.verify.digest"))
		_ = client.IgnoreNotFound(k8sClient.Delete(testCtx, obj))
	}
}
