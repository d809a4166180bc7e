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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// reconcileDelete removes every stored artifact of the object and its
// ExternalArtifact, then the finalizer. Owner references make Kubernetes
// garbage collection a second safety net for the ExternalArtifact.
func (r *ExternalSourceReconciler) reconcileDelete(ctx context.Context, obj *exsv1beta1.ExternalSource) error {
	if !controllerutil.ContainsFinalizer(obj, exsv1beta1.Finalizer) {
		return nil
	}
	// RemoveAll removes the directory of the artifact it is given.
	anyArtifact := meta.Artifact{Path: storage.ArtifactPath(exsv1beta1.ExternalSourceKind, obj.Namespace, obj.Name, "any")}
	n, err := r.Storage.RemoveAll(ctx, anyArtifact)
	if err != nil {
		storage.RecordError(storage.OperationRemove)
		conditions.MarkTrue(obj, exsv1beta1.StorageOperationFailedCondition, exsv1beta1.GarbageCollectionFailedReason, "removing artifacts: %s", err)
		return transient(exsv1beta1.GarbageCollectionFailedReason, fmt.Errorf("removing artifacts: %w", err))
	}

	ea := &sourcev1.ExternalArtifact{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), ea); err == nil {
		if metav1.IsControlledBy(ea, obj) {
			if err := r.Delete(ctx, ea); client.IgnoreNotFound(err) != nil {
				err = fmt.Errorf("deleting ExternalArtifact: %w", err)
				conditions.MarkTrue(obj, exsv1beta1.PublishFailedCondition, exsv1beta1.PublishFailedReason, "%s", err)
				return transient(exsv1beta1.PublishFailedReason, err)
			}
		}
	} else if !apierrors.IsNotFound(err) {
		err = fmt.Errorf("reading ExternalArtifact: %w", err)
		conditions.MarkTrue(obj, exsv1beta1.PublishFailedCondition, exsv1beta1.PublishFailedReason, "%s", err)
		return transient(exsv1beta1.PublishFailedReason, err)
	}

	// State a generator keeps for the object (cached tokens) goes with it.
	if r.Generators != nil {
		if gen, ok := r.Generators.Get(obj.Spec.Generator.Type); ok {
			if f, ok := gen.(generator.Forgetter); ok {
				f.Forget(obj.Namespace, obj.Name)
			}
		}
	}
	ctrl.LoggerFrom(ctx).Info("removed artifacts and ExternalArtifact", "artifacts", n)
	controllerutil.RemoveFinalizer(obj, exsv1beta1.Finalizer)
	return nil
}
