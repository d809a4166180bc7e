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
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// summarize turns the outcome of the steps into Ready, Reconciling and
// Stalled, and acts on a failure's kind (internal/failure) in this one
// place: the Warning event, the single error log line, and when to retry.
// It is the one owner of the requeue time (st.requeueAfter): the
// interval (or a deferred first check) after a success, the backoff or
// the upstream's Retry-After after a failure, nothing for a stalled or
// suspended object. It also emits the info line of a new artifact and the
// event of a new warning. Every condition message is redacted and bounded
// here, whichever step wrote it.
func (r *ExternalSourceReconciler) summarize(ctx context.Context, obj *exsv1beta1.ExternalSource,
	st *reconcileState, done bool, recErr error) {
	log := ctrl.LoggerFrom(ctx)
	if recErr != nil {
		// A step says how bad its failure is (fetchFailed makes an
		// upstream's Retry-After a Waiting failure).
		kind, reason := failure.Describe(recErr, meta.FailedReason)
		r.FetchMetrics.RecordReconcile(metrics.ReconcileFailure, reason)
		msg := st.message(recErr)
		switch kind {
		case failure.KindStalling:
			conditions.MarkStalled(obj, reason, "%s", msg)
			conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
			conditions.Delete(obj, meta.ReconcilingCondition)
		case failure.KindWaiting:
			// The upstream asked for a pause: honour it (at most the
			// interval), with the backoff as floor.
			wait, _ := failure.RequeueAfter(recErr)
			st.requeueAfter = max(min(wait, obj.GetRequeueAfter()), r.retryAfterFloor(obj))
			conditions.Delete(obj, meta.StalledCondition)
			conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason,
				"retrying in %s as the upstream asked (Retry-After) after: %s", st.requeueAfter, msg)
			conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
		default:
			st.requeueAfter = r.retryAfterFloor(obj)
			conditions.Delete(obj, meta.StalledCondition)
			conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", msg)
			conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
		}
		r.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", msg)
		what := "reconcile failed, retrying"
		if kind == failure.KindStalling {
			what = "reconcile stalled: the spec must change"
		}
		log.Error(errors.New(msg), what, "reason", reason, "revision", revisionOf(obj))
	} else if done {
		r.FetchMetrics.RecordReconcile(metrics.ReconcileSuccess, "")
		r.forgetRetryAfter(client.ObjectKeyFromObject(obj))
		// Every step succeeded: no failure condition can still hold.
		for _, c := range negativePolarity {
			conditions.Delete(obj, c)
		}
		// A deferred check (firstChecks) keeps Ready as the last check
		// left it: its message holds the generator's warnings, which
		// only a fetch knows. It is requeued when the check is due.
		if st.checkAfter == 0 {
			conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "%s", r.readyMessage(obj, st.warnings))
			st.requeueAfter = r.jitteredInterval(obj)
		} else {
			st.requeueAfter = st.checkAfter
		}
		if st.newArtifact {
			a := obj.GetArtifact()
			log.Info("stored artifact", "revision", a.Revision, "size", ptr.Deref(a.Size, 0),
				"duration", time.Since(st.start).Round(time.Millisecond).String())
		}
		// A warning is an event when it appears, not on every interval:
		// a steady state costs no API write.
		for _, w := range st.warnings {
			if !strings.Contains(st.prevReadyMessage, w) {
				r.Eventf(obj, nil, corev1.EventTypeWarning, exsv1beta1.GeneratorWarningReason, "Reconcile", "%s", w)
			}
		}
	}

	if v, ok := meta.ReconcileAnnotationValue(obj.GetAnnotations()); ok {
		obj.Status.SetLastHandledReconcileRequest(v)
	}
	for i := range obj.Status.Conditions {
		c := &obj.Status.Conditions[i]
		c.Message = truncate(st.secrets.String(c.Message), maxMessageLength)
	}
}

// patch writes the summarized object once and returns the requeue
// summarize decided. Failures are requeued by the reconciler's own backoff
// (RetryAfterBackoff, built from the same --min/--max-retry-delay as
// Flux's rate limiter) and not returned to controller-runtime, which would
// log each one a second time; only a failed patch (the status could not
// be written) is returned, and a failure of a reconciler without a backoff
// of its own (not set up by SetupWithManager), for controller-runtime's
// rate limiter to retry.
func (r *ExternalSourceReconciler) patch(ctx context.Context, sp *objectPatcher,
	obj *exsv1beta1.ExternalSource, st *reconcileState, done bool, recErr error) (ctrl.Result, error) {
	kind, _ := failure.Describe(recErr, "")
	stalled := recErr != nil && kind == failure.KindStalling
	// observedGeneration says a generation was fully handled: done, or
	// stalled on it (which is final for that generation).
	if err := sp.Patch(ctx, obj, done || stalled); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		// The failure being reported, if any, is in the message already
		// logged; the patch error is new: redacted, then returned.
		return ctrl.Result{}, redact.FromContext(ctx).Error(fmt.Errorf("patching status: %w", err))
	}
	if recErr != nil && !stalled && st.requeueAfter <= 0 {
		return ctrl.Result{}, redact.FromContext(ctx).Error(recErr)
	}
	return ctrl.Result{RequeueAfter: st.requeueAfter}, nil
}

// revisionOf returns the published revision, for log lines.
func revisionOf(obj *exsv1beta1.ExternalSource) string {
	if a := obj.GetArtifact(); a != nil {
		return a.Revision
	}
	return ""
}

// readyMessage names the published revision, and adds the generator's
// warnings and a note when the store does not survive a restart.
func (r *ExternalSourceReconciler) readyMessage(obj *exsv1beta1.ExternalSource, warnings []string) string {
	a := obj.GetArtifact()
	if a == nil {
		return "no artifact"
	}
	msg := fmt.Sprintf("stored artifact for revision '%s'", a.Revision)
	for _, w := range warnings {
		msg += "; warning: " + w
	}
	if r.Storage.Ephemeral() {
		msg += " (memory storage: artifacts do not survive a controller restart)"
	}
	return msg
}

// recordMetrics records the reconcile's duration after the final patch;
// for an object whose finalizer is gone it deletes the series instead.
//
// As Flux's own controllers since v2.1, it records nothing else per
// object: gotk_reconcile_condition (nine gauges per object) and
// gotk_suspend_status cost most of the controller's heap at scale
// (measured in docs/benchmarks.md), and the object's state is what
// kube-state-metrics exports from the API (gotk_resource_info,
// config/monitoring).
func (r *ExternalSourceReconciler) recordMetrics(ctx context.Context, obj *exsv1beta1.ExternalSource, start time.Time) {
	if r.Metrics != nil {
		r.Metrics.RecordDuration(ctx, obj, start)
	}
}

// retryAfterFloor is the next exponential backoff of a failing object;
// zero without RetryAfterBackoff.
func (r *ExternalSourceReconciler) retryAfterFloor(obj *exsv1beta1.ExternalSource) time.Duration {
	if r.RetryAfterBackoff == nil {
		return 0
	}
	return r.RetryAfterBackoff.When(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
}

// forgetRetryAfter resets the object's backoff after a success, and frees
// it when the object is gone.
func (r *ExternalSourceReconciler) forgetRetryAfter(key client.ObjectKey) {
	if r.RetryAfterBackoff != nil {
		r.RetryAfterBackoff.Forget(reconcile.Request{NamespacedName: key})
	}
}
