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

// Package controller holds the ExternalSourceReconciler: one file per
// concern (the pipeline's steps: _storage, _fetch, _hooks, _publish; spec
// checks in _validation, deletion in _finalize), chained in Reconcile.
package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
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
	"k8s.io/client-go/util/workqueue"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/extract"
	"github.com/externalsource/externalsource-controller/internal/failure"
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
	b := ctrl.NewControllerManagedBy(mgr).
		For(&exsv1beta1.ExternalSource{}, builder.WithPredicates(pred)).
		Owns(&sourcev1.ExternalArtifact{}, builder.WithPredicates(predicate.Or(externalArtifactChanged, artifactReconcileRequested))).
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
	b = r.withNamespaceShare(b, opts)
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

// reconcileState carries what one step hands to the next.
type reconcileState struct {
	// secrets are the Secret values read by this reconcile: every message
	// that leaves it goes through them (internal/redact).
	secrets *redact.Set
	// spoolFile is the response as spooled by the fetch; removed at the
	// end, if a step did not remove it first.
	spoolFile string
	// tmpDir holds the hooks' outputs and the extracted files: made by
	// the first step that needs it (workDir), removed at the end.
	tmpDir string
	// dataFile is the data to publish (the spooled response, then each
	// hook's output) and dataSize its length.
	dataFile string
	dataSize int64
	// deadline ends the fetch and the hooks (spec.timeout from the start).
	deadline time.Time
	// validators of the response the data came from.
	validators generator.Validators
	// extractDir is the directory of files to publish when spec.extract
	// is set (its subPath already selected); "" otherwise.
	extractDir string
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
	// progressPatched says Reconciling was already written in this
	// reconcile, so a later step does not write it again.
	progressPatched bool
	// prevReadyMessage is Ready's message before this reconcile, to emit a
	// warning event only when a warning appears.
	prevReadyMessage string
	// start is when the reconcile began.
	start time.Time
	// requeueAfter is when a failed reconcile is retried (summarize).
	requeueAfter time.Duration
	// firstInProcess says this is the object's first reconcile in this
	// process (firstChecks).
	firstInProcess bool
	// artifactRequested says the ExternalArtifact carried a new reconcile
	// request (externalsource_requests.go): the upstream is checked now.
	artifactRequested bool
	// lost is the published artifact storage had lost, refetched by this
	// reconcile (externalsource_storage.go).
	lost *lostArtifact
	// leaveShare gives the namespace's share slot back (fairshare.go)
	// once the steps its tenant controls are over; idempotent.
	leaveShare func()
	// checkAfter, when set, is when the upstream check this reconcile
	// deferred is due (firstChecks): Ready is kept as it was, and the
	// object is requeued then instead of after its interval.
	checkAfter time.Duration
}

// reconcileFunc is one step of the pipeline.
type reconcileFunc func(ctx context.Context, sp *objectPatcher, obj *exsv1beta1.ExternalSource, st *reconcileState) error

// Reconcile follows source-controller: get, serial patcher, deferred
// summarize and patch, finalizer, suspend, then the steps.
func (r *ExternalSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	// One namespace never holds more than its share of the workers
	// (fairshare.go): over it, the request waits without a worker and
	// without any API call.
	release, retryAfter, admitted := r.namespaceShare.Admit(ctx, req)
	if !admitted {
		return ctrl.Result{RequeueAfter: retryAfter}, nil
	}
	defer release()

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
			r.summarize(ctx, obj, st, done, retErr)
			recordArtifactRequest(obj, artifactReq)
			result, retErr = r.patch(ctx, sp, obj, done, retErr, st.requeueAfter)
			if done && retErr == nil && st.checkAfter > 0 {
				result.RequeueAfter = st.checkAfter
			}
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
		r.reconcileStorage,
		r.reconcileSource,
		r.reconcileHooks,
		r.reconcileExtract,
		r.reconcileArtifact,
		r.leaveNamespaceShare,
		r.reconcileExternalArtifact,
	}
	for _, step := range steps {
		if err := step(ctx, sp, obj, st); err != nil {
			return ctrl.Result{}, err
		}
	}
	done = true
	return ctrl.Result{RequeueAfter: r.jitteredInterval(obj)}, nil
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

// maxMessageLength bounds a condition or event message: what an upstream
// or a hook controls (status texts, stderr) must not fill the object; the
// CRD allows 32768 bytes per condition message.
const maxMessageLength = 4096

// message is the text of a failure as it may leave the reconcile:
// redacted, then bounded.
func (st *reconcileState) message(err error) string {
	return truncate(st.secrets.String(err.Error()), maxMessageLength)
}

// truncate cuts s to at most n bytes on a rune boundary, saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " ... (truncated)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// summarize turns the outcome of the steps into Ready, Reconciling and
// Stalled, and applies the failure's policy (internal/failure) in this one
// place: the Warning event and the single error log line. It also emits
// the info line of a new artifact and the event of a new warning. Every
// condition message is redacted and bounded here, whichever step wrote it.
func (r *ExternalSourceReconciler) summarize(ctx context.Context, obj *exsv1beta1.ExternalSource,
	st *reconcileState, done bool, recErr error) {
	log := ctrl.LoggerFrom(ctx)
	if recErr != nil {
		// A step says how bad its failure is (fetchFailed makes an
		// upstream's Retry-After a Waiting failure).
		kind, reason, cfg := failure.Describe(recErr, meta.FailedReason)
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
		if cfg.Event != "" {
			r.Eventf(obj, nil, cfg.Event, reason, "Reconcile", "%s", msg)
		}
		if cfg.Log {
			what := "reconcile failed, retrying"
			if kind == failure.KindStalling {
				what = "reconcile stalled: the spec must change"
			}
			log.Error(errors.New(msg), what, "reason", reason, "revision", revisionOf(obj))
		}
	} else if done {
		r.forgetRetryAfter(client.ObjectKeyFromObject(obj))
		// Every step succeeded: no failure condition can still hold.
		for _, c := range negativePolarity {
			conditions.Delete(obj, c)
		}
		// A deferred check (firstChecks) keeps Ready as the last check
		// left it: its message holds the generator's warnings, which
		// only a fetch knows.
		if st.checkAfter == 0 {
			conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "%s", r.readyMessage(obj, st.warnings))
		}
		if st.newArtifact {
			a := obj.GetArtifact()
			log.Info("stored artifact", "revision", a.Revision, "size", ptrValue(a.Size),
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

// patch writes the summarized object once and says when to come back.
// Failures are requeued by the reconciler's own backoff (RetryAfterBackoff,
// built from the same --min/--max-retry-delay as Flux's rate limiter) and
// not returned to controller-runtime, which would log each one a second
// time; only a failed patch (the status could not be written) is returned.
func (r *ExternalSourceReconciler) patch(ctx context.Context, sp *objectPatcher,
	obj *exsv1beta1.ExternalSource, done bool, recErr error, requeueAfter time.Duration) (ctrl.Result, error) {
	kind, _, _ := failure.Describe(recErr, "")
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
	switch {
	case recErr == nil && done:
		return ctrl.Result{RequeueAfter: r.jitteredInterval(obj)}, nil
	case recErr == nil, stalled:
		return ctrl.Result{}, nil
	}
	if requeueAfter <= 0 {
		// Without a backoff of its own (a reconciler not set up by
		// SetupWithManager), controller-runtime's rate limiter retries.
		return ctrl.Result{}, redact.FromContext(ctx).Error(recErr)
	}
	return ctrl.Result{RequeueAfter: requeueAfter}, nil
}

// revisionOf returns the published revision, for log lines.
func revisionOf(obj *exsv1beta1.ExternalSource) string {
	if a := obj.GetArtifact(); a != nil {
		return a.Revision
	}
	return ""
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
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
// gotk_suspend_status were two thirds of the controller's heap at 10,000
// sources (docs/benchmarks.md), and the object's state is what
// kube-state-metrics exports from the API (gotk_resource_info,
// config/monitoring).
func (r *ExternalSourceReconciler) recordMetrics(ctx context.Context, obj *exsv1beta1.ExternalSource, start time.Time) {
	if r.Metrics != nil {
		r.Metrics.RecordDuration(ctx, obj, start)
	}
}

func (st *reconcileState) cleanup() {
	if st.spoolFile != "" {
		_ = os.Remove(st.spoolFile)
	}
	if st.tmpDir != "" {
		_ = os.RemoveAll(st.tmpDir)
	}
}

// workDir returns the reconcile's temporary directory under base ("" is
// the system's), made on first use: most reconciles publish a response
// as it came and never need one, and a directory made and removed at
// every new revision cost more system calls than the rest of the
// pipeline.
func (st *reconcileState) workDir(base string) (string, error) {
	if st.tmpDir == "" {
		dir, err := os.MkdirTemp(base, "externalsource-")
		if err != nil {
			return "", err
		}
		st.tmpDir = dir
	}
	return st.tmpDir, nil
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

// Eventf shadows the embedded Recorder's: every event message of an object
// being reconciled (the ExternalSource, or its ExternalArtifact of the same
// name) goes through that reconcile's Secret values, whichever step emits
// it.
func (r *ExternalSourceReconciler) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.Recorder.Eventf(regarding, related, eventtype, reason, action, "%s", r.redactEvent(regarding, fmt.Sprintf(note, args...)))
}

// AnnotatedEventf shadows the embedded Recorder's, as Eventf does.
func (r *ExternalSourceReconciler) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) {
	r.Recorder.AnnotatedEventf(regarding, related, annotations, eventtype, reason, action, "%s",
		r.redactEvent(regarding, fmt.Sprintf(note, args...)))
}

func (r *ExternalSourceReconciler) redactEvent(regarding runtime.Object, msg string) string {
	var set *redact.Set
	if o, ok := regarding.(client.Object); ok {
		if v, ok := r.secrets.Load(client.ObjectKeyFromObject(o)); ok {
			set = v.(*redact.Set)
		}
	}
	return truncate(set.String(msg), maxMessageLength)
}

func ptrTo[T any](v T) *T { return &v }
