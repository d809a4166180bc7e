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

// Command nullproducer is the floor of the benchmark's "floor" scenario: a
// controller that, per ExternalSource, makes only the API writes a correct
// producer must make (the finalizer, the ExternalArtifact, its status, the
// ExternalSource's status with Ready and the artifact) and nothing else: no
// fetch, no archive, no storage, no events. It is built from
// controller-runtime with Flux's client configuration (--kube-api-qps and
// --kube-api-burst with Flux's defaults) and --concurrent workers, like the
// controller, so that the ratio of the two times to all-Ready is what the
// controller's own work costs on top of what the API server allows.
//
// A new value of reconcile.fluxcd.io/requestedAt stands for a new upstream
// revision: the floor of a new revision (ExternalArtifact status and
// ExternalSource status, one write each) is measured the same way as the
// controller's.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/fluxcd/pkg/apis/meta"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/predicates"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	flag2 "github.com/spf13/pflag"
	"go.uber.org/zap/zapcore"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr string
		concurrent  int
		emitEvents  bool
		clientOpts  runtimeclient.Options
	)
	fs := flag2.CommandLine
	fs.StringVar(&metricsAddr, "metrics-addr", ":8080", "The address the metric endpoint binds to.")
	fs.IntVar(&concurrent, "concurrent", 10, "The number of concurrent reconciles (the controller's default).")
	fs.BoolVar(&emitEvents, "emit-events", false,
		"Emit the controller's two NewArtifact events (ExternalSource and ExternalArtifact) per new revision, with Flux's recorder.")
	clientOpts.BindFlags(fs)
	fs.AddGoFlagSet(flag.CommandLine)
	flag2.Parse()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))

	mgr, err := ctrl.NewManager(runtimeclient.GetConfigOrDie(clientOpts), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "nullproducer:", err)
		os.Exit(1)
	}
	r := &reconciler{Client: mgr.GetClient()}
	if emitEvents {
		if r.events, err = events.NewRecorder(ctrl.Log.WithName("events"), "", "nullproducer", events.WithManager(mgr)); err != nil {
			fmt.Fprintln(os.Stderr, "nullproducer:", err)
			os.Exit(1)
		}
	}
	// Named as the controller so that the harness reads the same
	// controller_runtime_reconcile_total series from both.
	if err := ctrl.NewControllerManagedBy(mgr).Named("externalsource").
		// The controller's predicates: its own status writes do not
		// trigger a reconcile.
		For(&exsv1beta1.ExternalSource{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrent}).
		Complete(r); err != nil {
		fmt.Fprintln(os.Stderr, "nullproducer:", err)
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "nullproducer:", err)
		os.Exit(1)
	}
}

// reconciler makes the writes of a correct producer and nothing else.
type reconciler struct {
	client.Client
	// events, when set, receives the NewArtifact events the controller
	// emits, so the floor can be measured with them too.
	events events.Recorder
}

// Reconcile adds the finalizer, creates the ExternalArtifact, sets its
// status and the ExternalSource's status, each once per revision; an
// object already at its revision costs no write.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := &exsv1beta1.ExternalSource{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		if controllerutil.ContainsFinalizer(obj, exsv1beta1.Finalizer) {
			before := obj.DeepCopy()
			controllerutil.RemoveFinalizer(obj, exsv1beta1.Finalizer)
			return ctrl.Result{}, r.Patch(ctx, obj, client.MergeFrom(before))
		}
		return ctrl.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(obj, exsv1beta1.Finalizer) {
		before := obj.DeepCopy()
		controllerutil.AddFinalizer(obj, exsv1beta1.Finalizer)
		if err := r.Patch(ctx, obj, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
	}
	token := obj.GetAnnotations()[meta.ReconcileRequestAnnotation]
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d/%s", obj.Namespace, obj.Name, obj.Generation, token))
	revision := "null@sha256:" + hex.EncodeToString(sum[:])
	interval := obj.Spec.Interval.Duration
	if a := obj.Status.Artifact; a != nil && a.Revision == revision && conditions.IsReady(obj) &&
		obj.Status.ObservedGeneration == obj.Generation && obj.Status.LastHandledReconcileAt == token {
		return ctrl.Result{RequeueAfter: interval}, nil
	}

	artifact := &meta.Artifact{
		Path:           fmt.Sprintf("externalsource/%s/%s/%s.tar.gz", obj.Namespace, obj.Name, hex.EncodeToString(sum[:8])),
		URL:            fmt.Sprintf("http://null.invalid/externalsource/%s/%s/%s.tar.gz", obj.Namespace, obj.Name, hex.EncodeToString(sum[:8])),
		Revision:       revision,
		Digest:         "sha256:" + hex.EncodeToString(sum[:]),
		LastUpdateTime: metav1.Now(),
	}
	ea := &sourcev1.ExternalArtifact{}
	err := r.Get(ctx, req.NamespacedName, ea)
	if apierrors.IsNotFound(err) {
		ea = &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Name: obj.Name, Namespace: obj.Namespace}}
		ea.Spec.SourceRef = &meta.NamespacedObjectKindReference{APIVersion: exsv1beta1.GroupVersion.String(),
			Kind: exsv1beta1.ExternalSourceKind, Name: obj.Name, Namespace: obj.Namespace}
		if err := controllerutil.SetControllerReference(obj, ea, r.Scheme()); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.Create(ctx, ea); err != nil {
			return ctrl.Result{}, err
		}
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if ea.Status.Artifact == nil || ea.Status.Artifact.Revision != revision {
		before := ea.DeepCopy()
		ea.Status.Artifact = artifact.DeepCopy()
		conditions.MarkTrue(ea, meta.ReadyCondition, meta.SucceededReason, "stored artifact for revision '%s'", revision)
		if err := r.Status().Patch(ctx, ea, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := obj.DeepCopy()
	obj.Status.Artifact = artifact
	obj.Status.ObservedGeneration = obj.Generation
	obj.Status.LastHandledReconcileAt = token
	conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "stored artifact for revision '%s'", revision)
	if err := r.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, err
	}
	if r.events != nil {
		msg := fmt.Sprintf("stored artifact for revision '%s'", revision)
		r.events.AnnotatedEventf(obj, nil, nil, corev1.EventTypeNormal, exsv1beta1.NewArtifactReason, "Reconcile", "%s", msg)
		r.events.AnnotatedEventf(ea, nil, nil, corev1.EventTypeNormal, exsv1beta1.NewArtifactReason, "Reconcile", "%s", msg)
	}
	return ctrl.Result{RequeueAfter: interval}, nil
}
