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

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// api serves JSON whose price the test changes, or fails.
type api struct {
	mu     sync.Mutex
	price  string
	status int
}

func (a *api) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.status != http.StatusOK {
		http.Error(w, "upstream is broken", a.status)
		return
	}
	fmt.Fprintf(w, `{"plan": "standard", "price": %s}`, a.price)
}

func (a *api) set(status int, price string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status, a.price = status, price
}

var kustomizationGVK = metav1.GroupVersionKind{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Kind: "Kustomization"}

func kustomization(ns, name, source string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"interval": "10m",
			"path":     "./",
			"prune":    true,
			"sourceRef": map[string]any{
				"kind": "ExternalArtifact",
				"name": source,
			},
		},
	}}
	u.SetAPIVersion(kustomizationGVK.Group + "/" + kustomizationGVK.Version)
	u.SetKind(kustomizationGVK.Kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func getKustomization(g Gomega, ns, name string) *unstructured.Unstructured {
	u := kustomization(ns, name, "")
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
	return u
}

func readyCondition(u *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == meta.ReadyCondition {
			return m
		}
	}
	return nil
}

// annotate sets reconcile.fluxcd.io/requestedAt, as `flux reconcile` does.
func annotate(g Gomega, obj client.Object) string {
	token := time.Now().Format(time.RFC3339Nano)
	g.Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		a := obj.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[meta.ReconcileRequestAnnotation] = token
		obj.SetAnnotations(a)
		return k8sClient.Update(ctx, obj)
	}, timeout).Should(Succeed())
	return token
}

func configMapPrice(g Gomega) string {
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "pricing"}, &cm)).To(Succeed())
	return cm.Data["price"]
}

// TestKustomizationDeploysExternalArtifact is the Flux end-to-end scenario.
func TestKustomizationDeploysExternalArtifact(t *testing.T) {
	g := NewWithT(t)
	upstream := &api{price: "42", status: http.StatusOK}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})).To(Succeed())

	// A post-request jq hook (allowed by the shipped example whitelist)
	// turns the JSON answer into a ConfigMap manifest.
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: runtimeNamespace},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "pricing.yaml", // JSON is YAML; kustomize-controller reads *.yaml
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL + "/v1/pricing"}},
			Hooks: &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{
				Name:    "to-configmap",
				Command: "jq",
				Args: []string{"-c", `{"apiVersion": "v1", "kind": "ConfigMap", ` +
					`"metadata": {"name": "pricing", "namespace": "apps"}, ` +
					`"data": {"plan": .plan, "price": (.price | tostring)}}`},
			}}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	ks := kustomization(runtimeNamespace, "pricing", "pricing")
	g.Expect(k8sClient.Create(ctx, ks)).To(Succeed())

	// kustomize-controller applies the ConfigMap from our artifact.
	g.Eventually(func(g Gomega) { g.Expect(configMapPrice(g)).To(Equal("42")) }, timeout).Should(Succeed())
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "pricing"}, &cm)).To(Succeed())
	g.Expect(cm.Data).To(Equal(map[string]string{"plan": "standard", "price": "42"}))
	var first string
	g.Eventually(func(g Gomega) {
		k := getKustomization(g, runtimeNamespace, "pricing")
		rev, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(cur.Status.Artifact).ToNot(BeNil())
		g.Expect(rev).To(Equal(cur.Status.Artifact.Revision))
		first = rev
	}, timeout).Should(Succeed())

	// Our ExternalArtifact reads as a Flux source: sourceRef and Ready.
	ea := &sourcev1.ExternalArtifact{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
	g.Expect(ea.Spec.SourceRef.Kind).To(Equal(exsv1beta1.ExternalSourceKind))
	g.Expect(conditions.IsReady(ea)).To(BeTrue())

	// The upstream changes: a reconcile request is enough, no interval wait.
	upstream.set(http.StatusOK, "43")
	token := annotate(g, &exsv1beta1.ExternalSource{ObjectMeta: src.ObjectMeta})
	g.Eventually(func(g Gomega) { g.Expect(configMapPrice(g)).To(Equal("43")) }, timeout).Should(Succeed())
	// The ExternalArtifact is written before the source's status: wait for
	// the status too.
	cur := &exsv1beta1.ExternalSource{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(token))
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
	}, timeout).Should(Succeed())
	second := cur.Status.Artifact.Revision
	g.Expect(second).ToNot(Equal(first))

	// The NewArtifact event reached the notification endpoint, for the
	// ExternalArtifact too, with Flux's revision annotation.
	g.Eventually(func() bool {
		for _, e := range events.All() {
			if e.InvolvedObject.Kind == sourcev1.ExternalArtifactKind && e.Reason == exsv1beta1.NewArtifactReason &&
				e.Metadata[sourcev1.GroupVersion.Group+"/revision"] == second {
				return true
			}
		}
		return false
	}, timeout).Should(BeTrue())

	// The upstream breaks: the source fails, the deployment keeps the last
	// applied revision.
	upstream.set(http.StatusInternalServerError, "")
	annotate(g, &exsv1beta1.ExternalSource{ObjectMeta: src.ObjectMeta})
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring("500"))
	}, timeout).Should(Succeed())
	g.Eventually(func() bool {
		for _, e := range events.All() {
			if e.InvolvedObject.Kind == exsv1beta1.ExternalSourceKind && e.Severity == "error" && strings.Contains(e.Message, "500") {
				return true
			}
		}
		return false
	}, timeout).Should(BeTrue(), "the failure reached the notification endpoint")
	// A reconcile request to kustomize-controller: once it has handled it
	// (status.lastHandledReconcileAt, as `flux reconcile` waits for), it
	// has looked at the source and still applies the last good revision.
	ksToken := annotate(g, kustomization(runtimeNamespace, "pricing", "pricing"))
	g.Eventually(func(g Gomega) {
		k := getKustomization(g, runtimeNamespace, "pricing")
		handled, _, _ := unstructured.NestedString(k.Object, "status", "lastHandledReconcileAt")
		g.Expect(handled).To(Equal(ksToken))
		attempted, _, _ := unstructured.NestedString(k.Object, "status", "lastAttemptedRevision")
		g.Expect(attempted).To(Equal(second))
	}, timeout).Should(Succeed())
	g.Consistently(func(g Gomega) {
		k := getKustomization(g, runtimeNamespace, "pricing")
		rev, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
		g.Expect(rev).To(Equal(second))
		g.Expect(configMapPrice(g)).To(Equal("43"))
	}, 3*time.Second, 500*time.Millisecond).Should(Succeed())

	// The source goes: so does its ExternalArtifact, and kustomize-controller
	// reports the source missing.
	g.Expect(k8sClient.Delete(ctx, &exsv1beta1.ExternalSource{ObjectMeta: src.ObjectMeta})).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), &sourcev1.ExternalArtifact{}))
	}, timeout).Should(BeTrue())
	annotate(g, kustomization(runtimeNamespace, "pricing", "pricing"))
	g.Eventually(func(g Gomega) {
		c := readyCondition(getKustomization(g, runtimeNamespace, "pricing"))
		g.Expect(c).ToNot(BeNil())
		g.Expect(c["status"]).To(Equal("False"))
		g.Expect(c["message"]).To(ContainSubstring("not found"))
	}, timeout).Should(Succeed())
}
