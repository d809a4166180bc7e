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

// Package controller is the controller program of the binary: its flags
// (Flux's runtime options bound as source-controller binds them, and
// this controller's own) and the wiring of the manager, the store, the
// generators, the hook client and the artifact server.
package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	flag "github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fluxcd/pkg/artifact/digest"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	feathelper "github.com/fluxcd/pkg/runtime/features"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/fluxcd/pkg/runtime/pprof"
	"github.com/fluxcd/pkg/runtime/probes"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/cmd"
	"github.com/externalsource/externalsource-controller/internal/controller"
	"github.com/externalsource/externalsource-controller/internal/extract"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/generator/release"
	"github.com/externalsource/externalsource-controller/internal/hook"
	exsmetrics "github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/server"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/filesystem"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/storage/s3"
)

// controllerName names the controller in events, its user agent and its
// leader-election lease.
const controllerName = "externalsource-controller"

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
	// processStart is when this process started: start-up recovery
	// removes only what was left before it.
	processStart = time.Now()
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
}

// FlagSet returns the controller's flags with their defaults, as --help
// prints them: the flag reference test reads it.
func FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(controllerName, flag.ContinueOnError)
	new(flags).bind(fs)
	return fs
}

// Main is the controller program: it parses the command line (the
// process's flag set, so that --help prints it and exits), and runs the
// manager until a signal. version is the build's, set in main.
func Main(version string) {
	var f flags
	f.bind(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(logger.NewLogger(f.logOptions))
	if err := run(ctrl.SetupSignalHandler(), &f, version); err != nil {
		setupLog.Error(err, "exiting")
		os.Exit(1)
	}
}

// run wires the controller's parts and runs the manager until ctx ends.
func run(ctx context.Context, f *flags, version string) error {
	setupLog.Info("starting", "version", version)
	if err := f.featureGates.WithLogger(setupLog).SupportedFeatures(maps.Clone(features)); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	if err := f.intervalJitter.SetGlobalJitter(nil); err != nil {
		return fmt.Errorf("interval jitter: %w", err)
	}
	// Every digest (archives, stored objects) is of this algorithm, as in
	// source-watcher; verification uses each digest's own algorithm, so
	// changing the flag keeps existing artifacts valid.
	algo, err := digest.AlgorithmForName(f.artifactOptions.ArtifactDigestAlgo)
	if err != nil {
		return fmt.Errorf("--artifact-digest-algo: %w", err)
	}
	digest.Canonical = algo

	// Flux's rule: --storage-adv-addr as given, otherwise --storage-addr
	// with an empty host read as localhost and 0.0.0.0 as the hostname; an
	// explicit host is kept.
	advAddr, err := f.artifactOptions.GetAdvertisedAddress()
	if err != nil {
		return fmt.Errorf("--storage-addr: %w", err)
	}
	store, err := newStorage(ctx, f, storage.BaseURL(advAddr))
	if err != nil {
		return err
	}
	storage.RecordBackend(f.storageBackend, store)
	// In the background: listing a large bucket must not hold the health
	// endpoints back past the liveness probe. Only what is older than this
	// process is touched, so it can run beside the reconciles.
	go recoverStorage(ctx, store, processStart)

	// Fetched data and archives are spooled in a directory of this
	// process that the next start removes if this one is killed.
	sp, err := cmd.NewSpool(setupLog)
	if err != nil {
		return err
	}
	defer cmd.CloseSpool(setupLog, sp)

	urlPolicy, err := httpgen.ParseURLPolicy(f.allowedURLs, f.deniedURLs, f.allowLinkLocal)
	if err != nil {
		return err
	}
	if urlPolicy.AllowedRanges, err = httpgen.ParseAddressRanges(f.allowedAddressRanges); err != nil {
		return err
	}
	generators, err := newGenerators(exsv1beta1.GeneratorTypes, builtin.Register,
		builtin.Options{HTTP: httpgen.Options{UserAgent: controllerName + "/" + version, URLPolicy: urlPolicy,
			MaxConcurrentPerHost: f.perHostLimit()},
			// An asset is spooled (and verified) by the generator before
			// the reconciler reads it: the same bound and directory.
			Release: release.Options{MaxSize: f.maxResponseSize, TempDir: sp.Path()}})
	if err != nil {
		return err
	}

	watchSelector, err := runtimectrl.GetWatchSelector(f.watchOptions)
	if err != nil {
		return fmt.Errorf("watch label selector: %w", err)
	}
	configsSelector, err := watchConfigsSelector(f.watchOptions)
	if err != nil {
		return err
	}
	leaderElectionID := controllerName + "-leader-election"
	if f.watchOptions.LabelSelector != "" {
		leaderElectionID = leaderelection.GenerateID(leaderElectionID, f.watchOptions.LabelSelector)
	}

	mgrOpts := ctrl.Options{
		Scheme: scheme,
		Metrics: metricsserver.Options{
			BindAddress:   f.metricsAddr,
			ExtraHandlers: pprof.GetHandlers(),
		},
		HealthProbeBindAddress:        f.healthAddr,
		LeaderElection:                f.leaderElectionOptions.Enable,
		LeaderElectionReleaseOnCancel: f.leaderElectionOptions.ReleaseOnCancel,
		LeaseDuration:                 &f.leaderElectionOptions.LeaseDuration,
		RenewDeadline:                 &f.leaderElectionOptions.RenewDeadline,
		RetryPeriod:                   &f.leaderElectionOptions.RetryPeriod,
		LeaderElectionID:              leaderElectionID,
		// The lease is released only once the reconciles have stopped: a
		// wait longer than the pod's termination grace period ends in
		// SIGKILL with the lease held, and the other replica then waits
		// the whole lease duration (tests/cluster TestLeaderHandover).
		GracefulShutdownTimeout: &f.gracefulShutdown,
		// In a pod the namespace is found from the service account; out of
		// a cluster (development, tests) RUNTIME_NAMESPACE names it.
		LeaderElectionNamespace: os.Getenv(runtimectrl.EnvRuntimeNamespace),
		Logger:                  ctrl.Log,
		Client: ctrlclient.Options{
			Cache: &ctrlclient.CacheOptions{
				// Secrets and ConfigMaps are read through the API reader:
				// caching them cluster-wide costs memory and RBAC.
				DisableFor: []ctrlclient.Object{&corev1.Secret{}, &corev1.ConfigMap{}},
			},
		},
		Cache: ctrlcache.Options{
			// managedFields are never read by the controller, and the
			// strings that repeat between sources are interned: the cache
			// is most of the memory per source (docs/benchmarks.md).
			DefaultTransform: controller.CacheTransform(),
			ByObject: map[ctrlclient.Object]ctrlcache.ByObject{
				&exsv1beta1.ExternalSource{}: {Label: watchSelector},
			},
		},
	}
	if configsSelector != nil {
		obj, byObject := controller.WatchConfigsCache(configsSelector)
		mgrOpts.Cache.ByObject[obj] = byObject
	}
	if !f.watchOptions.AllNamespaces {
		mgrOpts.Cache.DefaultNamespaces = map[string]ctrlcache.Config{
			os.Getenv(runtimectrl.EnvRuntimeNamespace): {},
		}
	}

	restConfig := runtimeclient.GetConfigOrDie(f.clientOptions)
	mgr, err := ctrl.NewManager(restConfig, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	probes.SetupChecks(mgr, setupLog)

	// Kubernetes Events, and notifications for the ExternalSource and its
	// ExternalArtifact, which notification-controller's Alerts can select.
	recorder, err := controller.NewNotificationRecorder(mgr, ctrl.Log.WithName("events"), f.eventsAddr, controllerName)
	if err != nil {
		return fmt.Errorf("event recorder: %w", err)
	}

	hookRunner, whitelistChanged, err := setupHooks(ctx, f)
	if err != nil {
		return err
	}

	// Flux's gotk_reconcile_duration_seconds, in our compact collector
	// (internal/metrics: the same series in a seventh of the memory).
	reconcileDurations := exsmetrics.NewReconcileDurations(exsv1beta1.ExternalSourceKind, exsv1beta1.Finalizer)
	if err := ctrlmetrics.Registry.Register(reconcileDurations); err != nil {
		// A second run in one process (tests) records into the first's.
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			return fmt.Errorf("registering %s: %w", exsmetrics.ReconcileDurationName, err)
		}
		reconcileDurations = are.ExistingCollector.(*exsmetrics.ReconcileDurations)
	}
	r := &controller.ExternalSourceReconciler{
		HookRunner:     hookRunner,
		Metrics:        reconcileDurations,
		FetchMetrics:   exsmetrics.NewRecorder(),
		Client:         mgr.GetClient(),
		Recorder:       recorder,
		APIReader:      mgr.GetAPIReader(),
		ControllerName: controllerName,
		Generators:     generators,
		Storage:        store,
		MaxDataSize:    f.maxResponseSize,
		ExtractLimits:  extract.Limits{MaxFiles: f.maxExtractFiles, MaxSize: f.maxExtractSize},
		HookLimits:     f.hookLimits,
		MaxTimeout:     f.maxFetchTimeout,
		TempDir:        sp.Path(),
		Retention: storage.Retention{
			TTL:     f.artifactOptions.ArtifactRetentionTTL,
			Records: f.artifactOptions.ArtifactRetentionRecords,
		},
	}
	if err := r.SetupWithManager(mgr, controller.ReconcilerOptions{
		MaxConcurrentReconciles: f.concurrent,
		RateLimiter:             runtimectrl.GetRateLimiter(f.rateLimiterOptions),
		RetryAfterBackoff:       runtimectrl.GetRateLimiter(f.rateLimiterOptions),
		HookWhitelistChanged:    whitelistChanged,
		WatchConfigsSelector:    configsSelector,
		// One namespace never holds every worker (fairshare.go).
		MaxConcurrentPerNamespace: f.maxConcurrentPerNamespace,
	}); err != nil {
		return fmt.Errorf("setting up controller: %w", err)
	}

	// With the memory and filesystem backends only the leader has the
	// artifacts: the server starts once elected, and readiness (which
	// waits for the election) routes the Service to the leader, as with
	// source-controller. With s3 every replica serves every artifact.
	srv := &server.Server{Addr: f.artifactOptions.StorageAddress, Storage: store, Log: ctrl.Log.WithName("artifact-server")}
	if err := mgr.AddReadyzCheck("artifact-server", srv.ReadyCheck); err != nil {
		return err
	}
	go func() {
		if f.storageBackend != "s3" {
			<-mgr.Elected()
		}
		setupLog.Info("starting artifact server", "addr", f.artifactOptions.StorageAddress, "advertised", advAddr)
		if err := srv.Start(ctx); err != nil {
			setupLog.Error(err, "artifact server failed")
			os.Exit(1)
		}
	}()

	setupLog.Info("starting manager")
	return mgr.Start(ctx)
}

// newGenerators returns the generator registry. Start-up fails unless every
// type the CRD accepts (accepted) has an implementation: a type the API
// server admits must never reach a controller that cannot run it.
func newGenerators(accepted []string, register func(*generator.Registry, builtin.Options) error,
	opts builtin.Options) (*generator.Registry, error) {
	r := generator.NewRegistry()
	if err := register(r, opts); err != nil {
		return nil, err
	}
	if err := r.CheckImplements(accepted); err != nil {
		return nil, err
	}
	return r, nil
}

// recoverStorage removes, once at start-up, what writers killed in the
// middle of a write left in the store (storage.Recoverer), older than
// this process. A failure costs space, not correctness: logged, not fatal.
func recoverStorage(ctx context.Context, store storage.Storage, before time.Time) {
	rec, ok := store.(storage.Recoverer)
	if !ok {
		return
	}
	removed, err := rec.Recover(ctx, before)
	if err != nil {
		setupLog.Error(err, "removing what interrupted storage writes left", "removed", removed)
		return
	}
	setupLog.Info("removed what interrupted storage writes left", "count", len(removed), "paths", removed)
}

// newStorage returns the backend named by --storage-backend.
func newStorage(ctx context.Context, f *flags, baseURL string) (storage.Storage, error) {
	switch f.storageBackend {
	case "memory":
		setupLog.Info("WARNING: using the memory storage backend: artifacts do not survive a restart " +
			"and are fetched again after one; use it for development and tests only")
		st := memory.New(memory.Options{BaseURL: baseURL, MaxBytes: f.memoryMaxBytes,
			MaxBytesPerNamespace: f.memoryMaxBytesPerNamespace})
		st.ExportMetrics()
		return st, nil
	case "filesystem":
		setupLog.Info("using the filesystem storage backend", "path", f.artifactOptions.StoragePath)
		return filesystem.New(filesystem.Options{Path: f.artifactOptions.StoragePath, BaseURL: baseURL})
	case "s3":
		opts := f.s3
		opts.BaseURL = baseURL
		st, err := s3.New(opts)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := st.Check(cctx); err != nil {
			return nil, err
		}
		setupLog.Info("using the s3 storage backend", "endpoint", opts.Endpoint, "bucket", opts.Bucket, "prefix", opts.Prefix)
		return st, nil
	default:
		return nil, fmt.Errorf("--storage-backend: unknown backend %q (supported: filesystem, s3, memory)", f.storageBackend)
	}
}

// watchConfigsSelector returns the selector of the Secrets whose changes
// reconcile the ExternalSources referencing them
// (--watch-configs-label-selector, Flux's default
// reconcile.fluxcd.io/watch=Enabled; empty selects every referenced
// Secret, as in Flux), or nil when the DisableConfigWatchers feature gate
// turns the watch off.
func watchConfigsSelector(opts runtimectrl.WatchOptions) (labels.Selector, error) {
	disabled, err := feathelper.Enabled(runtimectrl.FeatureGateDisableConfigWatchers)
	if err != nil {
		return nil, fmt.Errorf("feature gates: %w", err)
	}
	if disabled {
		setupLog.Info("the watch of referenced Secrets is disabled (DisableConfigWatchers): " +
			"a changed Secret is used at the next interval")
		return nil, nil
	}
	sel, err := labels.Parse(opts.ConfigsLabelSelector)
	if err != nil {
		return nil, fmt.Errorf("--watch-configs-label-selector: %w", err)
	}
	return sel, nil
}

// setupHooks returns the hook runner (nil when hooks are disabled) and the
// channel that says the whitelist changed. The controller checks hooks
// against its own copy of the whitelist before sending them to the sidecar.
func setupHooks(ctx context.Context, f *flags) (hook.Runner, chan event.GenericEvent, error) {
	if f.hookSocket == "" {
		setupLog.Info("hooks are disabled: no --hook-executor-socket; ExternalSources with hooks will be Stalled")
		return nil, nil, nil
	}
	if f.hookWhitelist == "" {
		return nil, nil, errors.New("--hook-whitelist is required with --hook-executor-socket")
	}
	wl, err := hook.NewStore(f.hookWhitelist, ctrl.Log.WithName("hook-whitelist"))
	if err != nil {
		return nil, nil, fmt.Errorf("--hook-whitelist: %w", err)
	}
	changed := make(chan event.GenericEvent, 1)
	wl.OnChange(func() {
		select {
		case changed <- event.GenericEvent{Object: &exsv1beta1.ExternalSource{}}:
		default: // a requeue is already pending
		}
	})
	go func() {
		if err := wl.Watch(ctx); err != nil {
			setupLog.Error(err, "watching the hook whitelist")
		}
	}()
	return hook.Instrumented(hook.Checked(wl.Get, hook.NewClient(f.hookSocket))), changed, nil
}

// runHookExecutor is the `hook-executor` subcommand: the sidecar that runs
