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
	"encoding/json"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/fluxcd/pkg/apis/meta"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// ArtifactRequestHandledAnnotation records, on an ExternalArtifact, the
// last value of its reconcile.fluxcd.io/requestedAt that the controller
// handled. The ExternalArtifact API has no status.lastHandledReconcileAt
// of its own, and the value notification-controller writes is not a
// timestamp one could order against the ExternalSource's own request: only
// this record tells a new request from one already handled.
const ArtifactRequestHandledAnnotation = "source.externalsource.io/lastHandledReconcileAt"

// SourceRequestSeenAnnotation records, next to
// ArtifactRequestHandledAnnotation, the ExternalSource's own requestedAt
// at the time: while the ExternalSource's status shows the
// ExternalArtifact's request, it tells whether the ExternalSource's own
// request is newer (it differs) or was handled before (it is the same).
const SourceRequestSeenAnnotation = "source.externalsource.io/sourceRequestedAt"

// artifactReconcileRequested lets through a new reconcile request on an
// owned ExternalArtifact: a notification-controller Receiver whose
// resources name `kind: ExternalArtifact` sets requestedAt on it, because
// the Receiver API does not accept the ExternalSource kind. Only a new,
// non-empty value counts; creations and the controller's own writes do
// not, so they cost no fetch.
var artifactReconcileRequested = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return false
		}
		v, ok := meta.ReconcileAnnotationValue(e.ObjectNew.GetAnnotations())
		if !ok || v == "" {
			return false
		}
		old, _ := meta.ReconcileAnnotationValue(e.ObjectOld.GetAnnotations())
		return v != old
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// artifactRequest returns the reconcile request of obj's ExternalArtifact
// to show in status.lastHandledReconcileAt at the end of this reconcile,
// or "" to leave it to the ExternalSource's own request. It is called
// before the steps: the reconcile a request triggered is its handling,
// whatever the outcome, as for the ExternalSource's own requestedAt.
//
// A new request of the ExternalArtifact is recorded as handled on the
// ExternalArtifact at once (ArtifactRequestHandledAnnotation,
// SourceRequestSeenAnnotation), so a later reconcile does not take it for
// new. The ExternalSource's own request, when new, wins the status: it is
// what a client of the ExternalSource waits for (`kubectl externalsource
// reconcile`), while nothing waits on a Receiver's request. An
// ExternalArtifact request shown in the status stays shown until the
// ExternalSource gets a new request of its own, so the status never goes
// back to an older one.
//
// isNew says the ExternalArtifact carried a request not handled before:
// the upstream is checked now, even by a process's first reconcile of a
// Ready object (firstChecks).
func (r *ExternalSourceReconciler) artifactRequest(ctx context.Context, obj *exsv1beta1.ExternalSource) (show string, isNew bool) {
	ea := &sourcev1.ExternalArtifact{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(obj), ea); err != nil {
		if !apierrors.IsNotFound(err) {
			ctrl.LoggerFrom(ctx).Error(err, "reading the ExternalArtifact for its reconcile request")
		}
		return "", false
	}
	// A request on an ExternalArtifact this source does not publish is
	// not its.
	if !metav1.IsControlledBy(ea, obj) {
		return "", false
	}
	ann := ea.GetAnnotations()
	handled, seen := ann[ArtifactRequestHandledAnnotation], ann[SourceRequestSeenAnnotation]
	lastHandled := obj.Status.LastHandledReconcileAt
	// The ExternalSource's own request handled last: the status shows it,
	// or the ExternalArtifact's request shows and it was seen then.
	lastOwn := lastHandled
	if handled != "" && lastHandled == handled {
		lastOwn = seen
	}
	own, hasOwn := meta.ReconcileAnnotationValue(obj.GetAnnotations())
	ownNew := hasOwn && own != lastOwn

	v, ok := meta.ReconcileAnnotationValue(ann)
	if !ok || v == "" || v == handled {
		if !ownNew && handled != "" && lastHandled == handled {
			return handled, false
		}
		return "", false
	}
	// A merge patch of these keys only: it neither reads nor overwrites
	// anything else, and a newer request written meanwhile stays new.
	p, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{ArtifactRequestHandledAnnotation: v, SourceRequestSeenAnnotation: own}}})
	if err := r.Patch(ctx, ea, client.RawPatch(types.MergePatchType, p), client.FieldOwner(r.ControllerName)); err != nil {
		// Not recorded: the next reconcile handles it again, which
		// costs one more conditional fetch and nothing else.
		ctrl.LoggerFrom(ctx).Error(err, "recording the ExternalArtifact's reconcile request as handled")
		return "", true
	}
	ctrl.LoggerFrom(ctx).V(1).Info("handling the ExternalArtifact's reconcile request", "requestedAt", v)
	if ownNew {
		return "", true
	}
	return v, true
}

// recordArtifactRequest shows the ExternalArtifact request artifactRequest
// chose in status.lastHandledReconcileAt, after summarize has written the
// ExternalSource's own there.
func recordArtifactRequest(obj *exsv1beta1.ExternalSource, request string) {
	if request != "" {
		obj.Status.SetLastHandledReconcileRequest(request)
	}
}
