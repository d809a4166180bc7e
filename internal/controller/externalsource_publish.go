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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
)

// reconcilePublish makes the child ExternalArtifact (same name and
// namespace) point at the published artifact. It writes only what differs,
// so a steady state costs no API write. An ExternalArtifact controlled by
// another owner is never adopted.
func (r *ExternalSourceReconciler) reconcilePublish(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	a := obj.GetArtifact()
	if a == nil {
		return nil
	}
	ea, err := r.publish(ctx, obj, a)
	if err != nil {
		conditions.MarkTrue(obj, exsv1beta1.PublishFailedCondition, reasonOf(err), "%s", err)
		return err
	}
	conditions.Delete(obj, exsv1beta1.PublishFailedCondition)
	if st.newArtifact {
		r.notifyNewArtifact(obj, ea)
	}
	return nil
}

// reasonOf returns the reason a failure carries.
func reasonOf(err error) string {
	_, reason := failure.Describe(err, meta.FailedReason)
	return reason
}

// publish creates or updates the ExternalArtifact and returns it.
func (r *ExternalSourceReconciler) publish(ctx context.Context, obj *exsv1beta1.ExternalSource, a *meta.Artifact) (*sourcev1.ExternalArtifact, error) {

	ea := &sourcev1.ExternalArtifact{}
	key := client.ObjectKeyFromObject(obj)
	err := r.Get(ctx, key, ea)
	switch {
	case apierrors.IsNotFound(err):
		ea = &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Name: obj.Name, Namespace: obj.Namespace}}
		r.setExternalArtifactSpec(obj, ea)
		if err := controllerutil.SetControllerReference(obj, ea, r.Scheme()); err != nil {
			return nil, transient(exsv1beta1.PublishFailedReason, err)
		}
		if err := r.Create(ctx, ea, client.FieldOwner(r.ControllerName)); err != nil {
			return nil, transient(exsv1beta1.PublishFailedReason, fmt.Errorf("creating ExternalArtifact: %w", err))
		}
	case err != nil:
		return nil, transient(exsv1beta1.PublishFailedReason, fmt.Errorf("reading ExternalArtifact: %w", err))
	default:
		if owner := metav1.GetControllerOf(ea); owner != nil && owner.UID != obj.UID {
			return nil, transient(exsv1beta1.ArtifactOwnedByOtherReason, fmt.Errorf(
				"ExternalArtifact %s is controlled by %s %s, refusing to adopt it", key, owner.Kind, owner.Name))
		}
		before := ea.DeepCopy()
		r.setExternalArtifactSpec(obj, ea)
		if err := controllerutil.SetControllerReference(obj, ea, r.Scheme()); err != nil {
			return nil, transient(exsv1beta1.PublishFailedReason, err)
		}
		if !equality.Semantic.DeepEqual(before.Spec, ea.Spec) || !equality.Semantic.DeepEqual(before.OwnerReferences, ea.OwnerReferences) {
			if err := r.Patch(ctx, ea, client.MergeFrom(before), client.FieldOwner(r.ControllerName)); err != nil {
				return nil, transient(exsv1beta1.PublishFailedReason, fmt.Errorf("updating ExternalArtifact: %w", err))
			}
		}
	}

	before := ea.DeepCopy()
	ea.Status.Artifact = a.DeepCopy()
	conditions.MarkTrue(ea, meta.ReadyCondition, meta.SucceededReason, "stored artifact for revision '%s'", a.Revision)
	if c := conditions.Get(ea, meta.ReadyCondition); c != nil {
		c.ObservedGeneration = ea.Generation
		conditions.Set(ea, c)
	}
	if !equality.Semantic.DeepEqual(before.Status, ea.Status) {
		if err := r.Status().Patch(ctx, ea, client.MergeFrom(before), client.FieldOwner(r.ControllerName)); err != nil {
			return nil, transient(exsv1beta1.PublishFailedReason, fmt.Errorf("updating ExternalArtifact status: %w", err))
		}
	}

	return ea, nil
}

func (r *ExternalSourceReconciler) setExternalArtifactSpec(obj *exsv1beta1.ExternalSource, ea *sourcev1.ExternalArtifact) {
	ea.Spec.SourceRef = &meta.NamespacedObjectKindReference{
		APIVersion: exsv1beta1.GroupVersion.String(),
		Kind:       exsv1beta1.ExternalSourceKind,
		Name:       obj.Name,
		Namespace:  obj.Namespace,
	}
}

// notifyNewArtifact emits NewArtifact for the ExternalSource and for the
// ExternalArtifact (notification-controller Alerts select the latter), with
// the revision and digest annotations Flux writes.
func (r *ExternalSourceReconciler) notifyNewArtifact(obj *exsv1beta1.ExternalSource, ea *sourcev1.ExternalArtifact) {
	a := obj.GetArtifact()
	annotations := map[string]string{
		sourcev1.GroupVersion.Group + "/" + eventv1.MetaRevisionKey: a.Revision,
		sourcev1.GroupVersion.Group + "/" + eventv1.MetaDigestKey:   a.Digest,
	}
	msg := fmt.Sprintf("stored artifact for revision '%s'", a.Revision)
	r.AnnotatedEventf(obj, nil, annotations, corev1.EventTypeNormal, exsv1beta1.NewArtifactReason, "Reconcile", "%s", msg)
	r.AnnotatedEventf(ea, nil, annotations, corev1.EventTypeNormal, exsv1beta1.NewArtifactReason, "Reconcile", "%s", msg)
}
