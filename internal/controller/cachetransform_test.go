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
	"encoding/json"
	"testing"
	"unsafe"

	. "github.com/onsi/gomega"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestCacheTransform: two ExternalSources and their ExternalArtifacts
// decoded from JSON, as the informer does, keep every value through the
// transform but lose their managedFields, and the strings that repeat
// between them end up sharing one copy.
func TestCacheTransform(t *testing.T) {
	g := NewWithT(t)
	const msg = "stored artifact for revision 'latest@sha256:0123'"
	source := func(name string) *exsv1beta1.ExternalSource {
		raw := `{"metadata": {"name": "` + name + `", "namespace": "team-a", "finalizers": ["` + exsv1beta1.Finalizer + `"],
			"managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
		  "spec": {"interval": "1m", "generator": {"type": "http", "http": {"url": "https://example.com/` + name + `"}}},
		  "status": {"changeDetection": "HEAD", "conditions": [
		    {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "` + msg + `", "lastTransitionTime": "2026-11-30T00:00:00Z"},
		    {"type": "ArtifactInStorage", "status": "True", "reason": "Succeeded", "message": "` + msg + `", "lastTransitionTime": "2026-11-30T00:00:00Z"}]}}`
		obj := &exsv1beta1.ExternalSource{}
		g.Expect(json.Unmarshal([]byte(raw), obj)).To(Succeed())
		return obj
	}
	artifact := func(name string) *sourcev1.ExternalArtifact {
		raw := `{"metadata": {"name": "` + name + `", "namespace": "team-a",
			"ownerReferences": [{"apiVersion": "source.externalsource.io/v1beta1", "kind": "ExternalSource", "name": "` + name + `", "uid": "u"}]},
		  "spec": {"sourceRef": {"apiVersion": "source.externalsource.io/v1beta1", "kind": "ExternalSource", "name": "` + name + `", "namespace": "team-a"}},
		  "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "` + msg + `", "lastTransitionTime": "2026-11-30T00:00:00Z"}]}}`
		obj := &sourcev1.ExternalArtifact{}
		g.Expect(json.Unmarshal([]byte(raw), obj)).To(Succeed())
		return obj
	}
	transform := CacheTransform()
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

	a, b := source("source-a"), source("source-b")
	wantA := a.DeepCopy()
	wantA.ManagedFields = nil
	ea, eb := artifact("source-a"), artifact("source-b")
	wantEA := ea.DeepCopy()
	g.Expect(same(a.Namespace, b.Namespace)).To(BeFalse(), "decoded apart")
	for _, o := range []any{a, b, ea, eb} {
		_, err := transform(o)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(a).To(Equal(wantA), "every value kept, managedFields gone")
	g.Expect(ea).To(Equal(wantEA))

	g.Expect(same(a.Namespace, b.Namespace)).To(BeTrue())
	g.Expect(same(a.Namespace, eb.Spec.SourceRef.Namespace)).To(BeTrue())
	g.Expect(same(a.Finalizers[0], b.Finalizers[0])).To(BeTrue())
	g.Expect(same(a.Spec.Generator.Type, b.Spec.Generator.Type)).To(BeTrue())
	g.Expect(same(a.Status.ChangeDetection, b.Status.ChangeDetection)).To(BeTrue())
	g.Expect(same(ea.OwnerReferences[0].APIVersion, eb.Spec.SourceRef.APIVersion)).To(BeTrue())
	g.Expect(same(ea.OwnerReferences[0].Kind, eb.OwnerReferences[0].Kind)).To(BeTrue())
	ready, inStorage, eaReady := a.Status.Conditions[0], b.Status.Conditions[1], eb.Status.Conditions[0]
	g.Expect(same(ready.Message, inStorage.Message)).To(BeTrue(), "one message for the conditions of both kinds")
	g.Expect(same(ready.Message, eaReady.Message)).To(BeTrue())
	g.Expect(same(ready.Reason, eaReady.Reason)).To(BeTrue())
	g.Expect(same(string(ready.Status), string(eaReady.Status))).To(BeTrue())
	g.Expect(same(a.Name, ea.Name)).To(BeFalse(), "names are not interned: one per object")
}
