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

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func TestExternalSourceReconciler_reconcilePublish(t *testing.T) {
	tests := []struct {
		name       string
		artifact   bool
		foreign    bool // an ExternalArtifact of the same name exists, controlled by another
		want       wantKind
		wantReason string
	}{
		{name: "no artifact: nothing to publish"},
		{name: "publishes the artifact", artifact: true},
		{name: "refuses to adopt", artifact: true, foreign: true, want: isGeneric, wantReason: exsv1beta1.ArtifactOwnedByOtherReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			r := stepReconciler(nil)
			obj := stepObject(ns, "http://127.0.0.1:1")
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			if tt.foreign {
				other := &exsv1beta1.ExternalSource{}
				obj.DeepCopyInto(other)
				other.ObjectMeta = metav1.ObjectMeta{Name: "other", Namespace: ns, Labels: obj.Labels}
				g.Expect(k8sClient.Create(testCtx, other)).To(Succeed())
				ea := &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Name: obj.Name, Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: exsv1beta1.GroupVersion.String(), Kind: exsv1beta1.ExternalSourceKind,
						Name: other.Name, UID: other.UID, Controller: ptr.To(true)}}}}
				g.Expect(k8sClient.Create(testCtx, ea)).To(Succeed())
			}
			if tt.artifact {
				obj.Status.Artifact = &meta.Artifact{Path: "p", URL: "http://x/p", Revision: "latest@sha256:ab",
					Digest: "sha256:ab", LastUpdateTime: metav1.Now()}
			}
			st := newStepState()
			st.newArtifact = tt.artifact
			err := r.reconcilePublish(testCtx, obj, st)
			expectKind(g, err, tt.want)
			ea := &sourcev1.ExternalArtifact{}
			getErr := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), ea)
			switch {
			case tt.want != noError:
				g.Expect(conditions.IsTrue(obj, exsv1beta1.PublishFailedCondition)).To(BeTrue())
				g.Expect(conditions.GetReason(obj, exsv1beta1.PublishFailedCondition)).To(Equal(tt.wantReason))
			case tt.artifact:
				g.Expect(getErr).ToNot(HaveOccurred())
				g.Expect(ea.Status.Artifact.Revision).To(Equal(obj.Status.Artifact.Revision))
				g.Expect(metav1.IsControlledBy(ea, obj)).To(BeTrue())
				g.Expect(conditions.Has(obj, exsv1beta1.PublishFailedCondition)).To(BeFalse())
			default:
				g.Expect(getErr).To(HaveOccurred(), "nothing published")
			}
		})
	}
}
