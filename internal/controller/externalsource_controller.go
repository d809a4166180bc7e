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

// Package controller holds the ExternalSourceReconciler.
//
// Reconcile (externalsource_controller.go) chains the steps of the
// pipeline, one file each, named after the step, in this order:
//
//	reconcileStorage     externalsource_storage.go     the published artifact is still stored and intact
//	reconcileValidation  externalsource_validation.go  what the API server cannot check; every hook against the whitelist
//	reconcilePin         externalsource_pin.go         a handled digest pin needs no request
//	reconcileFirstCheck  externalsource_firstcheck.go  the first check after a restart is spread over the interval
//	reconcileFetch       externalsource_fetch.go       the generator runs; the data is spooled
//	reconcileHooks       externalsource_hooks.go       the post-request hooks
//	reconcileExtract     externalsource_extract.go     spec.extract
//	reconcileArtifact    externalsource_artifact.go    the deterministic tar.gz, stored
//	reconcileLeaveShare  externalsource_leaveshare.go  the namespace's share is given back before the API writes
//	reconcilePublish     externalsource_publish.go     the ExternalArtifact and the NewArtifact event
//
// The steps hand each other reconcileState (state.go) and share helper
// files, which never call back into a step (TestStepsLiveInTheirOwnFiles):
// summarize.go (Ready, Reconciling, Stalled, the failure policy and the
// requeue), patch.go (the status and finalizer writes), hooks.go and
// hook_limits.go (the hook checks, the pre-request hooks the generator
// calls, the retry policy, the bounds), firstcheck.go (when a first check
// is due), fairshare.go (the per-namespace share of the workers) and
// errors.go. Outside the pipeline: externalsource_finalize.go (deletion),
// externalsource_watch.go (the Secret watch), externalsource_requests.go
// (reconcile requests on the ExternalArtifact), externalsource_notify.go
// (events and notifications) and cachetransform.go (what the informer
// cache keeps).
package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
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
	"github.com/fluxcd/pkg/runtime/predicates"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/extract"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/redact"
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

	// ExtractLimits bound what one spec.extract may unpack
	// (--max-extract-files, --max-extract-size); zero values are the
	// defaults of internal/extract.
	ExtractLimits extract.Limits

	// HookLimits bound the memory and spool bytes of one reconcile's hooks.
	HookLimits HookLimits

	// Retention is the artifact retention policy applied after each new
	// artifact.
	Retention storage.Retention

	// TempDir is where data and archives are spooled, one directory per
	// fetch removed when the reconcile ends; "" is os.TempDir. main passes
	// the process's spool directory (internal/spool), so that what a
	// killed controller spooled is removed at its next start.
	TempDir string

	// Metrics records Flux's per-object reconcile duration
	// (gotk_reconcile_duration_seconds, metrics.ReconcileDurations); nil
	// records nothing. Its series are deleted when the object is.
	Metrics DurationRecorder

	// FetchMetrics records fetches by generator type and result, and
	// reconciles by result and failure reason; nil records nothing.
	FetchMetrics *metrics.Recorder

	// RetryAfterBackoff is the floor of a requeue the upstream asked for
	// (Retry-After): the next reconcile comes after the longer of the
	// upstream's wait and this exponential backoff, so that a server
	// asking for a second again and again is still backed off from. It is
	// not the controller's rate limiter, whose count controller-runtime
	// resets on a requeue without error. Nil is SetupWithManager's
	// default (Flux's default rate limiter) or, outside it, no floor.
	RetryAfterBackoff workqueue.TypedRateLimiter[reconcile.Request]

	// secrets holds, per object being reconciled, the Secret values its
	// reconcile read, for the events it emits (Eventf).
	secrets sync.Map // client.ObjectKey -> *redact.Set

	// MaxTimeout caps spec.timeout (--max-fetch-timeout); zero is
	// exsv1beta1.MaxTimeout.
	MaxTimeout time.Duration

	// namespaceShare bounds the reconciles of one namespace running at
	// once (fairshare.go); nil admits all. SetupWithManager sets it.
	namespaceShare *NamespaceShare

	// jitter replaces Flux's global interval jitter (set by main from
	// --interval-jitter-percentage) in tests; nil is the global one.
	jitter func(time.Duration) time.Duration

	// firstChecks spreads the first upstream check of the Ready objects
	// a process finds at its start (firstcheck.go); nil checks them at
	// once. SetupWithManager sets it.
	firstChecks *firstChecks
}

// DurationRecorder records how long a reconcile of obj took, and forgets
// obj when it is deleted: metrics.ReconcileDurations, which exports the
// series of Flux's runtime/controller.Metrics in a fraction of its memory.
type DurationRecorder interface {
	RecordDuration(ctx context.Context, obj client.Object, start time.Time)
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
	// MaxConcurrentPerNamespace bounds the reconciles of one namespace
	// running at once (fairshare.go); 0 is DefaultMaxConcurrentPerNamespace.
	MaxConcurrentPerNamespace int
}

// negativePolarity are the conditions that say something is wrong (or
// in progress); they are removed when every step succeeds.
var (
	negativePolarity = []string{
		meta.StalledCondition,
		exsv1beta1.FetchFailedCondition,
		exsv1beta1.HookFailedCondition,
		exsv1beta1.StorageOperationFailedCondition,
		exsv1beta1.PublishFailedCondition,
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
// so a deleted or edited ExternalArtifact is put back, and a reconcile
// request on one (a notification-controller Receiver) reconciles its
// ExternalSource (externalsource_requests.go).
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
	if r.firstChecks == nil {
		r.firstChecks = &firstChecks{}
	}
	pred := predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{})
	copts := controller.Options{
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
		RateLimiter:             opts.RateLimiter,
		RecoverPanic:            ptr.To(true),
	}
	r.withNamespaceShare(&copts, opts, mgr.GetLogger())
	b := ctrl.NewControllerManagedBy(mgr).
		For(&exsv1beta1.ExternalSource{}, builder.WithPredicates(pred)).
		Owns(&sourcev1.ExternalArtifact{}, builder.WithPredicates(predicate.Or(externalArtifactChanged, artifactReconcileRequested))).
		WithOptions(copts)
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
	var list exsv1beta1.ExternalSourceList
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

// scheduledCheckLast gives the next scheduled check of a Ready object (its
// interval's requeue) the queue's low priority, the one controller-runtime
// gives the objects of its initial list: anything else queued first. While
// new sources wait for their first artifact (a ramp: thousands created at
// once, which their create events queue at the default priority), the
// re-checks that come due meanwhile wait for them, as the first checks
// after a restart are spread (firstChecks), and are made when the backlog
// is through: each at most as late as it waited, each only once. A check
// already queued is raised to a higher priority when an event (a spec
// change, a reconcile request) queues the object again, so nothing asked
// for waits. A failure's retry keeps its priority.
func scheduledCheckLast(obj *exsv1beta1.ExternalSource, result ctrl.Result, err error) ctrl.Result {
	if err == nil && result.RequeueAfter > 0 && conditions.IsReady(obj) {
		result.Priority = ptr.To(handler.LowPriority)
	}
	return result
}

// reconcileFunc is one step of the pipeline.
type reconcileFunc func(ctx context.Context, obj *exsv1beta1.ExternalSource, st *reconcileState) error

// Reconcile follows source-controller: get, serial patcher, deferred
// summarize and patch, finalizer, suspend, then the steps.
func (r *ExternalSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// One namespace never holds more than its share of the workers
	// (fairshare.go): the controller's queue (ShareQueue) admitted req
	// into it; the share is left after storage (reconcileLeaveShare) or,
	// at the latest, when the queue is told req is done.
	release := func() { r.namespaceShare.Leave(req) }

	start := time.Now()

	obj := &exsv1beta1.ExternalSource{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forgetRetryAfter(req.NamespacedName)
			r.firstChecks.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	// Every Secret value read from here on is kept out of what this
	// reconcile writes: the logger of ctx, the events (by object key),
	// the conditions and the returned error.
	secrets := &redact.Set{}
	ctx = redact.NewContext(ctrl.LoggerInto(ctx, redact.Logger(ctrl.LoggerFrom(ctx), secrets)), secrets)
	r.secrets.Store(req.NamespacedName, secrets)
	defer r.secrets.Delete(req.NamespacedName)

	sp := newObjectPatcher(obj, r.Client, r.ControllerName)
	st := &reconcileState{secrets: secrets, start: start,
		prevReadyMessage: conditions.GetMessage(obj, meta.ReadyCondition),
		firstInProcess:   r.firstChecks.first(req.NamespacedName), leaveShare: release}
	defer st.cleanup()

	// done says the steps ran to the end (as opposed to: stopped early for
	// deletion, suspension or a failure).
	var done bool
	// artifactReq is a reconcile request of the ExternalArtifact handled
	// by this reconcile (externalsource_requests.go).
	var artifactReq string
	defer func() {
		if !obj.DeletionTimestamp.IsZero() && retErr == nil {
			// Persist the finalizer's removal; the object then goes.
			retErr = client.IgnoreNotFound(sp.Patch(ctx, obj, false))
			result = ctrl.Result{}
		} else {
			r.recordFetch(obj, st)
			r.summarize(ctx, obj, st, done, retErr)
			recordArtifactRequest(obj, artifactReq)
			result, retErr = r.patch(ctx, sp, obj, st, done, retErr)
			result = scheduledCheckLast(obj, result, retErr)
		}
		r.recordMetrics(ctx, obj, start)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, obj)
	}
	artifactReq, st.artifactRequested = r.artifactRequest(ctx, obj)

	// Add the finalizer first and persist it at once, so that nothing is
	// stored for an object that could then be deleted without cleanup. A
	// new generation is shown as Reconciling in the same write, so
	// `kubectl wait --for=condition=Ready` after an edit never returns on
	// the previous result.
	needFinalizer := !controllerutil.ContainsFinalizer(obj, exsv1beta1.Finalizer)
	if needFinalizer {
		controllerutil.AddFinalizer(obj, exsv1beta1.Finalizer)
	}
	if msg := requestedWork(obj); msg != "" && !obj.Spec.Suspend {
		if err := r.patchProgress(ctx, sp, obj, st, "%s", msg); err != nil {
			return ctrl.Result{}, err
		}
	} else if needFinalizer {
		if err := sp.Patch(ctx, obj, false); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	if obj.Spec.Suspend {
		ctrl.LoggerFrom(ctx).Info("reconciliation is suspended for this object")
		return ctrl.Result{}, nil
	}

	steps := []reconcileFunc{
		r.reconcileStorage,    // externalsource_storage.go
		r.reconcileValidation, // externalsource_validation.go
		r.reconcilePin,        // externalsource_pin.go
		r.reconcileFirstCheck, // externalsource_firstcheck.go
		r.reconcileFetch,      // externalsource_fetch.go
		r.reconcileHooks,      // externalsource_hooks.go
		r.reconcileExtract,    // externalsource_extract.go
		r.reconcileArtifact,   // externalsource_artifact.go
		r.reconcileLeaveShare, // externalsource_leaveshare.go
		r.reconcilePublish,    // externalsource_publish.go
	}
	for _, step := range steps {
		if err := step(ctx, obj, st); err != nil {
			return ctrl.Result{}, err
		}
	}
	done = true
	// The requeue is summarize's to decide (deferred above).
	return ctrl.Result{}, nil
}

// jitteredInterval is the object's interval with the process's jitter
// (--interval-jitter-percentage): sources created together drift apart
// instead of calling their upstream together at every interval.
func (r *ExternalSourceReconciler) jitteredInterval(obj *exsv1beta1.ExternalSource) time.Duration {
	if r.jitter != nil {
		return r.jitter(obj.GetRequeueAfter())
	}
	return jitter.JitteredIntervalDuration(obj.GetRequeueAfter())
}

// requestedWork says why this reconcile must show progress before doing
// its work: a generation not handled yet. Empty otherwise. A reconcile
// request alone is not shown: `flux reconcile` waits for
// lastHandledReconcileAt, and when the upstream did change, the new
// revision is shown as progress before it is stored (reconcileArtifact),
// as source-controller does; showing every request would cost three more
// status writes for an unchanged upstream.
//
// A new object (no Ready condition yet) shows nothing either: there is no
// previous result a watcher could mistake for the new one, and at
// thousands of new objects the write would cost the API server dearly.
//
// A generation whose attempt failed already says Reconciling for it
// (ProgressingWithRetry): its retries show nothing new, so Ready does not
// flap between Unknown and False, and a retry costs no extra write.
func requestedWork(obj *exsv1beta1.ExternalSource) string {
	if rc := conditions.Get(obj, meta.ReconcilingCondition); rc != nil && rc.ObservedGeneration == obj.Generation {
		return ""
	}
	if obj.Generation != obj.Status.ObservedGeneration && conditions.Has(obj, meta.ReadyCondition) {
		return fmt.Sprintf("processing object: new generation %d -> %d", obj.Status.ObservedGeneration, obj.Generation)
	}
	return ""
}

// patchProgress marks the object Reconciling with Ready Unknown and writes
// it at once (with the finalizer, if just added), so watchers see the work
// before its result. A reconcile writes progress at most once.
func (r *ExternalSourceReconciler) patchProgress(ctx context.Context, sp *objectPatcher,
	obj *exsv1beta1.ExternalSource, st *reconcileState, format string, args ...any) error {
	if st.progressPatched {
		return nil
	}
	conditions.MarkReconciling(obj, meta.ProgressingReason, format, args...)
	conditions.MarkUnknown(obj, meta.ReadyCondition, meta.ProgressingReason, format, args...)
	if err := sp.Patch(ctx, obj, false); err != nil {
		return client.IgnoreNotFound(err)
	}
	st.progressPatched = true
	return nil
}
