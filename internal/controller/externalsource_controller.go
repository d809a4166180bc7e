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

// Package controller holds the ExternalSourceReconciler: one file per step
// of the pipeline (fetch, storage, publish), chained in reconcile.
package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/patch"
	"github.com/fluxcd/pkg/runtime/predicates"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/client-go/util/workqueue"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// DefaultMaxDataSize bounds the data of one fetch when no limit is set.
const DefaultMaxDataSize = 50 << 20

// ExternalSourceReconciler fetches, packages, stores and publishes the data
// of ExternalSource objects. It knows the generator registry, the Storage
// and the hook Runner only through their interfaces.
type ExternalSourceReconciler struct {
	client.Client
	events.Recorder

	// APIReader reads Secrets uncached, so that no Secret is cached
	// cluster-wide.
	APIReader client.Reader

	// ControllerName is the field owner of patches and the event source.
	ControllerName string

	Generators *generator.Registry
	Storage    storage.Storage

	// HookRunner runs hooks; nil means hooks are disabled and objects with
	// hooks are Stalled.
	HookRunner hook.Runner

	// MaxDataSize bounds the data of one fetch, in bytes.
	MaxDataSize int64

	// Retention is the artifact retention policy applied after each new
	// artifact.
	Retention storage.Retention

	// TempDir is where data and archives are spooled, one directory per
	// fetch removed when the reconcile ends; "" is os.TempDir. main passes
	// the process's spool directory (internal/spool), so that what a
	// killed controller spooled is removed at its next start.
	TempDir string

	// Metrics records Flux's per-object metrics (gotk_reconcile_duration_seconds,
	// gotk_reconcile_condition, gotk_suspend_status); the zero value records
	// nothing. Its series are deleted when the object is.
	Metrics runtimectrl.Metrics

	// FetchMetrics records fetches by generator type and result; nil
	// records nothing.
	FetchMetrics *metrics.Recorder

	// RetryAfterBackoff is the floor of a requeue the upstream asked for
	// (Retry-After): the next reconcile comes after the longer of the
	// upstream's wait and this exponential backoff, so that a server
	// asking for a second again and again is still backed off from. It is
	// not the controller's rate limiter, whose count controller-runtime
	// resets on a requeue without error. Nil is SetupWithManager's
	// default (Flux's default rate limiter) or, outside it, no floor.
	RetryAfterBackoff workqueue.TypedRateLimiter[reconcile.Request]
}

// ReconcilerOptions configure the controller that runs the reconciler.
type ReconcilerOptions struct {
	MaxConcurrentReconciles int
	RateLimiter             workqueue.TypedRateLimiter[reconcile.Request]
	// RetryAfterBackoff sets the reconciler's RetryAfterBackoff when it
	// has none; build it with the rate limiter's options.
	RetryAfterBackoff workqueue.TypedRateLimiter[reconcile.Request]
	// HookWhitelistChanged receives an event whenever the hook whitelist
	// changes; the objects with hooks are then requeued.
	HookWhitelistChanged <-chan event.GenericEvent
	// WatchConfigsSelector, when not nil, selects the referenced Secrets
	// whose changes reconcile their ExternalSources at once (watchConfigs).
	WatchConfigsSelector labels.Selector
}

// readyCondition lists the conditions Ready is summarised from, as
// source-controller does: the failure conditions are negative polarity.
var (
	ownedConditions = []string{
		v1.FetchFailedCondition,
		v1.HookFailedCondition,
		v1.StorageOperationFailedCondition,
		v1.ArtifactInStorageCondition,
		meta.ReadyCondition,
		meta.ReconcilingCondition,
		meta.StalledCondition,
	}
	summarizeConditions = []string{
		meta.StalledCondition,
		v1.FetchFailedCondition,
		v1.HookFailedCondition,
		v1.StorageOperationFailedCondition,
		meta.ReconcilingCondition,
		v1.ArtifactInStorageCondition,
	}
	negativePolarity = []string{
		meta.StalledCondition,
		v1.FetchFailedCondition,
		v1.HookFailedCondition,
		v1.StorageOperationFailedCondition,
		meta.ReconcilingCondition,
	}
)

// +kubebuilder:rbac:groups=source.externalsource.io,resources=externalsources,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=source.externalsource.io,resources=externalsources/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=source.externalsource.io,resources=externalsources/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=externalartifacts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=externalartifacts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="events.k8s.io",resources=events,verbs=create;patch

// SetupWithManager registers the reconciler: it watches ExternalSources
// (spec changes and reconcile requests) and the ExternalArtifacts it owns,
// so a deleted or edited ExternalArtifact is put back.
func (r *ExternalSourceReconciler) SetupWithManager(mgr ctrl.Manager, opts ReconcilerOptions) error {
	if r.MaxDataSize <= 0 {
		r.MaxDataSize = DefaultMaxDataSize
	}
	if r.Retention.Records <= 0 {
		r.Retention = storage.DefaultRetention
	}
	if r.RetryAfterBackoff == nil {
		r.RetryAfterBackoff = opts.RetryAfterBackoff
	}
	if r.RetryAfterBackoff == nil {
		r.RetryAfterBackoff = runtimectrl.GetDefaultRateLimiter()
	}
	pred := predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{})
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1.ExternalSource{}, builder.WithPredicates(pred)).
		Owns(&sourcev1.ExternalArtifact{}, builder.WithPredicates(externalArtifactChanged)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
			RateLimiter:             opts.RateLimiter,
			RecoverPanic:            ptrTo(true),
		})
	if opts.HookWhitelistChanged != nil {
		// A whitelist change can unstall (or stall) objects with hooks:
		// requeue them all, and only them.
		b = b.WatchesRawSource(source.Channel(opts.HookWhitelistChanged,
			handler.EnqueueRequestsFromMapFunc(r.objectsWithHooks)))
	}
	if opts.WatchConfigsSelector != nil {
		var err error
		if b, err = r.watchConfigs(mgr, b, opts.WatchConfigsSelector); err != nil {
			return err
		}
	}
	return b.Complete(r)
}

// objectsWithHooks lists, from the cache, every ExternalSource with hooks.
func (r *ExternalSourceReconciler) objectsWithHooks(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1.ExternalSourceList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ExternalSources after a hook whitelist change")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].HasHooks() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// externalArtifactChanged lets through the events of an owned
// ExternalArtifact that need the owner reconciled at once: its deletion and
// a change of its spec by someone else. The controller's own writes (create,
// status) do not: reconciling on them would fetch the upstream again right
// after every new revision.
var externalArtifactChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	UpdateFunc:  func(e event.UpdateEvent) bool { return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() },
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// reconcileState carries what one step hands to the next.
type reconcileState struct {
	// tmpDir holds the spooled data and the archive; removed at the end.
	tmpDir string
	// dataFile is the spooled data and dataSize its length.
	dataFile string
	dataSize int64
	// deadline ends the fetch and the hooks (spec.timeout from the start).
	deadline time.Time
	// validators of the response the data came from.
	validators generator.Validators
	// notModified says the upstream confirmed the published data.
	notModified bool
	// changeDetection says how the generator detected the change.
	changeDetection string
	// warnings of the generator, for Ready's message.
	warnings []string
	// fetchDuration is how long the fetch took (request and download).
	fetchDuration time.Duration
	// newArtifact says this reconcile stored a new revision.
	newArtifact bool
	// prevReadyMessage is Ready's message before this reconcile, to emit a
	// warning event only when a warning appears.
	prevReadyMessage string
}

// reconcileFunc is one step of the pipeline.
type reconcileFunc func(ctx context.Context, sp *patch.SerialPatcher, obj *v1.ExternalSource, st *reconcileState) error

// Reconcile follows source-controller: get, serial patcher, deferred
// summarize-and-patch, finalizer, suspend, then the steps.
func (r *ExternalSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)

	start := time.Now()

	obj := &v1.ExternalSource{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetRetryAfter(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	sp := patch.NewSerialPatcher(obj, r.Client)
	st := &reconcileState{prevReadyMessage: conditions.GetMessage(obj, meta.ReadyCondition)}
	defer st.cleanup()

	// done says the steps ran to the end (as opposed to: stopped early for
	// deletion, suspension or the finalizer).
	var done bool
	defer func() {
		result, retErr = r.summarizeAndPatch(ctx, sp, obj, st, done, retErr)
		r.recordMetrics(ctx, obj, start)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, obj)
	}

	// Add the finalizer first and persist it at once, so that nothing is
	// stored for an object that could then be deleted without cleanup.
	if !controllerutil.ContainsFinalizer(obj, v1.Finalizer) {
		controllerutil.AddFinalizer(obj, v1.Finalizer)
		if err := sp.Patch(ctx, obj, patch.WithFieldOwner(r.ControllerName)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	if obj.Spec.Suspend {
		log.V(1).Info("reconciliation is suspended for this object")
		return ctrl.Result{}, nil
	}

	steps := []reconcileFunc{
		r.reconcileStorage,
		r.reconcileSource,
		r.reconcileHooks,
		r.reconcileArtifact,
		r.reconcileExternalArtifact,
	}
	for _, step := range steps {
		if err := step(ctx, sp, obj, st); err != nil {
			return ctrl.Result{}, err
		}
	}
	done = true
	return ctrl.Result{RequeueAfter: jitter.JitteredIntervalDuration(obj.GetRequeueAfter())}, nil
}

// summarizeAndPatch turns the outcome of the steps into Ready, Reconciling
// and Stalled, records the handled reconcile request, emits a Warning for a
// failure and patches the object once. A stalling error is not returned to
// controller-runtime (retrying cannot fix it); any other error is, so the
// rate limiter backs off exponentially while the last artifact stays
// published.
func (r *ExternalSourceReconciler) summarizeAndPatch(ctx context.Context, sp *patch.SerialPatcher,
	obj *v1.ExternalSource, st *reconcileState, done bool, recErr error) (ctrl.Result, error) {
	result := ctrl.Result{}
	if done {
		result.RequeueAfter = jitter.JitteredIntervalDuration(obj.GetRequeueAfter())
	}

	if !obj.DeletionTimestamp.IsZero() && recErr == nil {
		// Persist the finalizer's removal; the object then goes.
		err := sp.Patch(ctx, obj, patch.WithFieldOwner(r.ControllerName))
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	var stall *stallingError
	// retryAfter is the requeue the upstream asked for, if it did.
	var retryAfter time.Duration
	switch {
	case errors.As(recErr, &stall):
		conditions.MarkStalled(obj, stall.reason, "%s", recErr.Error())
		conditions.MarkFalse(obj, meta.ReadyCondition, stall.reason, "%s", recErr.Error())
		conditions.Delete(obj, meta.ReconcilingCondition)
		r.Eventf(obj, nil, corev1.EventTypeWarning, stall.reason, "Reconcile", "%s", recErr.Error())
	case recErr != nil:
		conditions.Delete(obj, meta.StalledCondition)
		reason := reasonOf(recErr, meta.FailedReason)
		if wait, ok := generator.RetryAfter(recErr); ok {
			// The upstream asked for a pause longer than the fetch could
			// wait: honour it (at most the interval) instead of backing
			// off sooner.
			retryAfter = max(min(wait, obj.GetRequeueAfter()), r.retryAfterFloor(obj))
			conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason,
				"retrying in %s as the upstream asked (Retry-After) after: %s", retryAfter, recErr.Error())
		} else {
			conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "retrying after: %s", recErr.Error())
		}
		conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", recErr.Error())
		r.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", recErr.Error())
	case done:
		r.forgetRetryAfter(client.ObjectKeyFromObject(obj))
		// Every step succeeded: no failure condition can still hold.
		for _, c := range negativePolarity {
			conditions.Delete(obj, c)
		}
		conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "%s", r.readyMessage(obj, st.warnings))
		// A warning is an event when it appears, not on every interval:
		// a steady state costs no API write.
		for _, w := range st.warnings {
			if !strings.Contains(st.prevReadyMessage, w) {
				r.Eventf(obj, nil, corev1.EventTypeWarning, v1.GeneratorWarningReason, "Reconcile", "%s", w)
			}
		}
	}

	if v, ok := meta.ReconcileAnnotationValue(obj.GetAnnotations()); ok {
		obj.Status.SetLastHandledReconcileRequest(v)
	}

	opts := []patch.Option{
		patch.WithOwnedConditions{Conditions: ownedConditions},
		patch.WithFieldOwner(r.ControllerName),
	}
	// observedGeneration says a generation was fully handled: done, or
	// stalled on it (which is final for that generation).
	if done || stall != nil {
		opts = append(opts, patch.WithStatusObservedGeneration{})
	}
	if err := sp.Patch(ctx, obj, opts...); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		recErr = kerrors.NewAggregate([]error{recErr, err})
		retryAfter = 0 // a failed patch is retried with backoff
	}

	if stall != nil {
		return ctrl.Result{}, nil
	}
	if retryAfter > 0 {
		// Not an error for controller-runtime: an error would requeue with
		// the rate limiter's (shorter) backoff, ignoring RequeueAfter.
		ctrl.LoggerFrom(ctx).Info("upstream asked to retry later", "after", retryAfter, "error", recErr.Error())
		return ctrl.Result{RequeueAfter: retryAfter}, nil
	}
	if recErr != nil {
		return ctrl.Result{}, recErr
	}
	return result, nil
}

// readyMessage names the published revision, and adds the generator's
// warnings and a note when the store does not survive a restart.
func (r *ExternalSourceReconciler) readyMessage(obj *v1.ExternalSource, warnings []string) string {
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

// recordMetrics records Flux's per-object metrics after the final patch;
// for an object whose finalizer is gone they delete its series instead.
func (r *ExternalSourceReconciler) recordMetrics(ctx context.Context, obj *v1.ExternalSource, start time.Time) {
	r.Metrics.RecordDuration(ctx, obj, start)
	r.Metrics.RecordSuspend(ctx, obj, obj.Spec.Suspend)
	r.Metrics.RecordReadiness(ctx, obj)
	r.Metrics.RecordReconciling(ctx, obj)
	r.Metrics.RecordStalled(ctx, obj)
}

// progressing marks the object Reconciling with Ready Unknown when a new
// generation is being handled, so `kubectl wait` does not see the old Ready.
func progressing(obj *v1.ExternalSource, format string, args ...any) {
	conditions.MarkReconciling(obj, meta.ProgressingReason, format, args...)
	if obj.Generation != obj.Status.ObservedGeneration || !conditions.Has(obj, meta.ReadyCondition) {
		conditions.MarkUnknown(obj, meta.ReadyCondition, meta.ProgressingReason, format, args...)
	}
}

func (st *reconcileState) cleanup() {
	if st.tmpDir != "" {
		_ = os.RemoveAll(st.tmpDir)
	}
}

// retryAfterFloor is the next exponential backoff of an object whose
// upstream asked for a pause; zero without RetryAfterBackoff.
func (r *ExternalSourceReconciler) retryAfterFloor(obj *v1.ExternalSource) time.Duration {
	if r.RetryAfterBackoff == nil {
		return 0
	}
	return r.RetryAfterBackoff.When(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
}

// forgetRetryAfter resets the object's Retry-After backoff after a
// success, and frees it when the object is gone.
func (r *ExternalSourceReconciler) forgetRetryAfter(key client.ObjectKey) {
	if r.RetryAfterBackoff != nil {
		r.RetryAfterBackoff.Forget(reconcile.Request{NamespacedName: key})
	}
}

func ptrTo[T any](v T) *T { return &v }
