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
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// reconcileStorage checks that the published artifact is still stored and
// intact. A missing one (memory store after a restart, a deleted object) or
// a corrupt one is forgotten together with the conditional-request record,
// so the next steps fetch and publish it again even if the upstream says
// nothing changed.
func (r *ExternalSourceReconciler) reconcileStorage(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	a := obj.GetArtifact()
	if a == nil {
		conditions.Delete(obj, exsv1beta1.ArtifactInStorageCondition)
		return nil
	}
	err := r.Storage.Verify(ctx, *a)
	switch {
	case err == nil:
		// The advertised address may have changed since the artifact was stored.
		r.Storage.SetArtifactURL(a)
		conditions.MarkTrue(obj, exsv1beta1.ArtifactInStorageCondition, meta.SucceededReason, "stored artifact for revision '%s'", a.Revision)
		return nil
	case errors.Is(err, storage.ErrDigestMismatch):
		r.Eventf(obj, nil, corev1.EventTypeWarning, exsv1beta1.ArtifactVerificationFailedReason, "Reconcile",
			"stored artifact is corrupt, fetching again: %s", err.Error())
		if rerr := r.Storage.Remove(ctx, *a); rerr != nil {
			storage.RecordError(storage.OperationRemove)
			conditions.MarkTrue(obj, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.StatOperationFailedReason, "removing corrupt artifact: %s", rerr)
			return transient(exsv1beta1.StatOperationFailedReason, fmt.Errorf("removing corrupt artifact: %w", rerr))
		}
		fallthrough
	case errors.Is(err, storage.ErrNotFound):
		ctrl.LoggerFrom(ctx).Info("published artifact is not in storage, fetching again", "path", a.Path)
		st.lost = &lostArtifact{artifact: a.DeepCopy(), inStorage: conditions.Get(obj, exsv1beta1.ArtifactInStorageCondition)}
		obj.Status.Artifact = nil
		obj.Status.LastHandledETag = ""
		obj.Status.LastModified = ""
		obj.Status.LastHandledDigest = ""
		obj.Status.LastHandledInputDigest = ""
		conditions.Delete(obj, exsv1beta1.ArtifactInStorageCondition)
		return nil
	default:
		storage.RecordError(storage.OperationVerify)
		conditions.MarkTrue(obj, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.StatOperationFailedReason, "verifying artifact: %s", err)
		return transient(exsv1beta1.StatOperationFailedReason, fmt.Errorf("verifying artifact: %w", err))
	}
}
