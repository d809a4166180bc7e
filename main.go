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

// Command externalsource-controller is a Flux source controller that turns
// data behind HTTP APIs into versioned ExternalArtifacts.
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

	artifactcfg "github.com/fluxcd/pkg/artifact/config"
	"github.com/fluxcd/pkg/artifact/digest"
	"github.com/fluxcd/pkg/runtime/acl"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	feathelper "github.com/fluxcd/pkg/runtime/features"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/fluxcd/pkg/runtime/pprof"
	"github.com/fluxcd/pkg/runtime/probes"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/cli"
	"github.com/externalsource/externalsource-controller/internal/controller"
	"github.com/externalsource/externalsource-controller/internal/extract"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/hook"
	exsmetrics "github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/server"
	"github.com/externalsource/externalsource-controller/internal/spool"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/filesystem"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/storage/s3"
)

const controllerName = "externalsource-controller"

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
	// version is set at build time.
	version = "dev"
	// processStart is when this process started: start-up recovery
	// removes only what was left before it.
	processStart = time.Now()
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
}

// flags holds everything main binds; kept together so tests can read the
// defaults.
type flags struct {
	metricsAddr, healthAddr, eventsAddr string
	concurrent                          int
	storageBackend                      string
	memoryMaxBytes                      int64
	memoryMaxBytesPerNamespace          int64
	maxFetchTimeout                     time.Duration
	maxConcurrentPerNamespace           int
	maxConcurrentPerHost                int
	s3                                  s3.Options
	maxResponseSize                     int64
	maxExtractFiles                     int
	maxExtractSize                      int64
	hookSocket, hookWhitelist           string
	hookLimits                          controller.HookLimits
	allowedURLs, deniedURLs             []string
	allowLinkLocal                      bool
	allowedAddressRanges                []string

	// artifactOptions are Flux's storage, server, retention and digest
	// options (--storage-path, --storage-addr, --storage-adv-addr,
	// --artifact-retention-ttl, --artifact-retention-records,
	// --artifact-digest-algo), with Flux's env names and defaults, as
	// source-controller and source-watcher bind them.
	artifactOptions       artifactcfg.Options
	aclOptions            acl.Options
	clientOptions         runtimeclient.Options
	featureGates          feathelper.FeatureGates
	intervalJitter        jitter.IntervalOptions
	leaderElectionOptions leaderelection.Options
	logOptions            logger.Options
	rateLimiterOptions    runtimectrl.RateLimiterOptions
	watchOptions          runtimectrl.WatchOptions
}

// features are the feature gates --feature-gates accepts, with their
// defaults: Flux's DisableConfigWatchers turns the Secret watch of
// --watch-configs-label-selector off (and with it the need to list and
// watch Secrets). Flux's helper keeps and changes the map it is given:
// pass it a copy.
var features = map[string]bool{
	runtimectrl.FeatureGateDisableConfigWatchers: false,
}

// noCrossNamespaceRefsUsage replaces the help of Flux's
// --no-cross-namespace-refs, which is bound for compatibility with Flux's
// flags and install overlays but changes nothing here.
const noCrossNamespaceRefsUsage = "Accepted for compatibility with Flux; has no effect: every reference of an ExternalSource " +
	"(headersSecretRef, certSecretRef, proxySecretRef) names an object in its own namespace."

// artifactEnv names the environment variables pkg/artifact/config reads
// the default of a flag from (Flux's names).
var artifactEnv = map[string]string{
	"storage-path":     "STORAGE_PATH",
	"storage-addr":     "STORAGE_ADDRESS",
	"storage-adv-addr": "STORAGE_ADV_ADDR",
}

func (f *flags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.metricsAddr, "metrics-addr", envOr("METRICS_ADDR", ":8080"),
		"The address the metric endpoint binds to. Defaults to $METRICS_ADDR when set.")
	fs.StringVar(&f.healthAddr, "health-addr", ":9440", "The address the health endpoint binds to.")
	fs.StringVar(&f.eventsAddr, "events-addr", "", "The address of the events receiver (notification-controller).")
	fs.IntVar(&f.concurrent, "concurrent", 10, "The number of concurrent ExternalSource reconciles.")
	fs.StringVar(&f.storageBackend, "storage-backend", "memory",
		"Where artifacts are stored: filesystem (under --storage-path), s3 or memory.")
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "The S3 endpoint, host[:port] (e.g. s3.amazonaws.com).")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", "", "The S3 bucket of the s3 backend.")
	fs.StringVar(&f.s3.Region, "s3-region", "", "The S3 region.")
	fs.StringVar(&f.s3.Prefix, "s3-prefix", "", "A prefix for every object key, e.g. 'externalsource/'.")
	fs.BoolVar(&f.s3.Insecure, "s3-insecure", false, "Talk to the S3 endpoint over plain HTTP.")
	fs.Int64Var(&f.memoryMaxBytes, "memory-store-max-bytes", memory.DefaultMaxBytes, "The most bytes the memory store holds.")
	fs.Int64Var(&f.memoryMaxBytesPerNamespace, "memory-store-max-bytes-per-namespace", 0,
		"The most bytes the memory store holds for the objects of one namespace; 0 is a quarter of --memory-store-max-bytes.")
	fs.DurationVar(&f.maxFetchTimeout, "max-fetch-timeout", exsv1beta1.MaxTimeout,
		"The longest one fetch, hooks included, may take whatever spec.timeout says (the API server admits at most 10m).")
	fs.IntVar(&f.maxConcurrentPerNamespace, "max-concurrent-per-namespace", 0,
		"The most reconciles of one namespace in the steps its tenant controls (fetch, hooks, extraction, storage) at once, "+
			"so that one namespace never holds every worker; its API writes run outside the share. 0 is half of --concurrent.")
	fs.IntVar(&f.maxConcurrentPerHost, "max-concurrent-per-host", 0,
		"The most requests in flight to one upstream host (scheme, host and port) across all sources, so that many sources of "+
			"one API (e.g. due at once after a restart) reach it a few at a time; one namespace holds at most half of them. "+
			"0 is half of --concurrent, a negative value is no limit.")
	fs.Int64Var(&f.maxResponseSize, "max-response-size", controller.DefaultMaxDataSize, "The largest data one fetch may produce, in bytes.")
	fs.IntVar(&f.maxExtractFiles, "max-extract-files", extract.DefaultMaxFiles,
		"The most entries an archive of spec.extract may hold.")
	fs.Int64Var(&f.maxExtractSize, "max-extract-size", extract.DefaultMaxSize,
		"The most bytes an archive of spec.extract may unpack to, in total.")
	fs.StringVar(&f.hookSocket, "hook-executor-socket", "",
		"The Unix socket of the hook-executor sidecar; without it, objects with hooks are Stalled.")
	fs.StringVar(&f.hookWhitelist, "hook-whitelist", "", "The hook whitelist file (from a ConfigMap); reloaded on change.")
	f.hookLimits.BindFlags(fs)
	fs.StringSliceVar(&f.allowedURLs, "allowed-url-patterns", nil,
		"Regular expressions (anchored) one of which every fetched URL must match; empty allows all.")
	fs.StringSliceVar(&f.deniedURLs, "denied-url-patterns", nil, "Regular expressions (anchored) no fetched URL may match.")
	fs.BoolVar(&f.allowLinkLocal, "allow-link-local-addresses", false,
		"Allow fetching from link-local and cloud metadata addresses (denied by default, checked after DNS resolution).")
	fs.StringSliceVar(&f.allowedAddressRanges, "allowed-address-ranges", nil,
		"CIDRs (or addresses) exempt from the default address denial (loopback, unspecified, link-local, cloud platform "+
			"addresses and their IPv4-compatible/NAT64 forms), e.g. 127.0.0.0/8 for a development cluster.")

	f.artifactOptions.BindFlags(fs)
	// Flux reads these from the environment too; the help says so.
	for name, env := range artifactEnv {
		fs.Lookup(name).Usage += " Defaults to $" + env + " when set."
	}
	f.aclOptions.BindFlags(fs)
	fs.Lookup("no-cross-namespace-refs").Usage = noCrossNamespaceRefsUsage
	f.clientOptions.BindFlags(fs)
	f.featureGates.BindFlags(fs)
	fs.Lookup("feature-gates").Usage += " Supported: " + runtimectrl.FeatureGateDisableConfigWatchers +
		" (default false: referenced Secrets are watched, see --watch-configs-label-selector)."
	f.intervalJitter.BindFlags(fs)
	f.leaderElectionOptions.BindFlags(fs)
	f.logOptions.BindFlags(fs)
	f.rateLimiterOptions.BindFlags(fs)
	f.watchOptions.BindFlags(fs)
	fs.Lookup("watch-configs-label-selector").Usage = "Reconcile at once the ExternalSources that reference a changed " +
		"Secret with matching labels (an empty selector matches every Secret). No ExternalSource references a ConfigMap."
}

// perHostLimit is --max-concurrent-per-host with its default (half of
// --concurrent, at least 1) applied; 0 is no limit.
func (f *flags) perHostLimit() int {
	switch {
	case f.maxConcurrentPerHost > 0:
		return f.maxConcurrentPerHost
	case f.maxConcurrentPerHost < 0:
		return 0
	}
	return max(1, f.concurrent/2)
}

func main() {
	// The hook sidecar starts this binary again to confine each hook
	// before exec'ing it (internal/hook, sandbox.go); that mode never
	// returns.
	hook.RunSandboxExecIfAsked()
	// The same binary is the command line for ExternalSources: the kubectl
	// plugin kubectl-externalsource (a symlink) or `ctl` (internal/cli).
	if args, name, ok := cli.Invoked(os.Args); ok {
		os.Exit(cli.Run(name, args, os.Stdout, os.Stderr))
	}
	// The same binary runs the hook sidecar.
	if len(os.Args) > 1 && os.Args[1] == "hook-executor" {
		if err := runHookExecutor(os.Args[2:]); err != nil {
			setupLog.Error(err, "hook executor exiting")
			os.Exit(1)
		}
		return
	}
	var f flags
	f.bind(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(logger.NewLogger(f.logOptions))
	gcPercent := setGCPercent()
	setupLog.Info("garbage collector", "gcPercent", gcPercent)
	if err := run(ctrl.SetupSignalHandler(), &f); err != nil {
		setupLog.Error(err, "exiting")
		os.Exit(1)
	}
}

// defaultGCPercent is the controller's GOGC when the environment sets
// none. Most of its heap is the informer cache, which lives as long as the
// process, and little else stays: Go's default (100) lets the heap grow to
// twice the cache before collecting, and that headroom was a third of the
// resident memory at 10,000 sources. At 50 the controller holds 11.2 KiB
// per source instead of 16.0; the price is CPU while thousands of sources
// get their first artifact (a third more for 10,000), not in steady state,
// and the floor ratio at 1,000 is unchanged (docs/benchmarks.md). GOGC in
// the environment wins, GOMEMLIMIT applies as usual.
const defaultGCPercent = 50

// setGCPercent applies defaultGCPercent unless GOGC is set, and returns
// the percentage in effect (-1: off).
func setGCPercent() int {
	if _, ok := os.LookupEnv("GOGC"); ok {
		p := debug.SetGCPercent(100) // read it back...
		debug.SetGCPercent(p)        // ...and leave it as GOGC set it
		return p
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

func run(ctx context.Context, f *flags) error {
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
	sp, err := newSpool()
	if err != nil {
		return err
	}
	defer closeSpool(sp)

	urlPolicy, err := httpgen.ParseURLPolicy(f.allowedURLs, f.deniedURLs, f.allowLinkLocal)
	if err != nil {
		return err
	}
	if urlPolicy.AllowedRanges, err = httpgen.ParseAddressRanges(f.allowedAddressRanges); err != nil {
		return err
	}
	generators, err := newGenerators(exsv1beta1.GeneratorTypes, builtin.Register,
		builtin.Options{HTTP: httpgen.Options{UserAgent: controllerName + "/" + version, URLPolicy: urlPolicy,
			MaxConcurrentPerHost: f.perHostLimit()}})
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

// newSpool creates this process's spool directory under TMPDIR, removing
// those of dead processes (internal/spool), and logs how many went.
func newSpool() (*spool.Dir, error) {
	sp, err := spool.New("")
	if err != nil {
		return nil, err
	}
	setupLog.Info("spool directory ready", "path", sp.Path(), "staleRemoved", len(sp.Removed()), "stale", sp.Removed())
	return sp, nil
}

// closeSpool removes the spool directory at shutdown.
func closeSpool(sp *spool.Dir) {
	if err := sp.Close(); err != nil {
		setupLog.Error(err, "removing the spool directory", "path", sp.Path())
	}
}

// newStorage returns the backend named by --storage-backend.
func newStorage(ctx context.Context, f *flags, baseURL string) (storage.Storage, error) {
	switch f.storageBackend {
	case "memory":
		setupLog.Info("WARNING: using the memory storage backend: artifacts do not survive a restart " +
			"and are fetched again after one; use it for development and tests only")
		return memory.New(memory.Options{BaseURL: baseURL, MaxBytes: f.memoryMaxBytes,
			MaxBytesPerNamespace: f.memoryMaxBytesPerNamespace}), nil
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

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
// hook commands for the controller over a Unix socket.
func runHookExecutor(args []string) error {
	fs := flag.NewFlagSet("hook-executor", flag.ContinueOnError)
	socket := fs.String("socket", "/var/run/hooks/hook.sock", "The Unix socket to listen on.")
	whitelist := fs.String("hook-whitelist", "", "The hook whitelist file (from a ConfigMap); reloaded on change.")
	maxOutput := fs.Int64("hook-max-output", hook.DefaultMaxOutput, "The most bytes a hook may write on stdout.")
	sandbox := fs.String("hook-sandbox", string(hook.SandboxLandlock),
		"How hook runs are confined: landlock (every protection docs/hooks.md promises, by Landlock and a seccomp filter; "+
			"runs this node cannot confine so are refused with a message naming the missing protection) or none "+
			"(rlimits and the watchdog only: hooks can read what the sidecar can read; logged and exported as 0 protections).")
	maxABI := fs.Int("hook-sandbox-max-landlock-abi", -1,
		"Confine hook runs as on a kernel whose Landlock ABI is at most this (0: no Landlock); -1 is the kernel's own. "+
			"For tests, and to see what an older node would give.")
	metricsAddr := fs.String("metrics-addr", "0",
		"The address the sidecar serves its metrics on (/metrics: externalsource_hook_sandbox_protection, whitelist reloads); 0 disables.")
	trampoline := fs.String("hook-sandbox-trampoline", "",
		"The binary that confines each hook run before exec'ing it (hook-sandbox in the image: it starts in a millisecond); "+
			"empty is this binary, whose start-up costs tens of milliseconds per run.")
	var logOptions logger.Options
	logOptions.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help printed the usage: not a failure
		}
		return err
	}
	ctrl.SetLogger(logger.NewLogger(logOptions))
	if *whitelist == "" {
		return errors.New("--hook-whitelist is required")
	}
	log := ctrl.Log.WithName("hook-executor")
	mode := hook.SandboxMode(*sandbox)
	node, err := hook.CheckSandbox(mode, *maxABI)
	if err != nil {
		return fmt.Errorf("--hook-sandbox: %w", err)
	}
	// One line, whatever the kernel: the sidecar serves in any case.
	switch {
	case mode == hook.SandboxNone:
		log.Info("WARNING: --hook-sandbox=none: hook runs are not confined by Landlock nor seccomp; a hook can read every file "+
			"and open every connection the sidecar can (only the rlimits and the watchdog apply)", "protections", node.Protections)
	case node.Refusal() != "":
		log.Info("WARNING: hook sandbox: "+node.Refusal(), "landlockABI", node.LandlockABI, "kernelLandlockABI", node.KernelLandlockABI,
			"seccomp", node.Seccomp, "protections", node.Protections)
	default:
		log.Info("hook sandbox enabled", "sandbox", mode, "landlockABI", node.LandlockABI, "kernelLandlockABI", node.KernelLandlockABI,
			"seccomp", node.Seccomp, "protections", node.Protections)
	}
	wl, err := hook.NewStore(*whitelist, log)
	if err != nil {
		return fmt.Errorf("--hook-whitelist: %w", err)
	}
	// Hooks run in directories of this process's spool, which the next
	// start removes if this one is killed.
	sp, err := newSpool()
	if err != nil {
		return err
	}
	defer closeSpool(sp)
	ctx := ctrl.SetupSignalHandler()
	if *metricsAddr != "0" && *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		msrv := &http.Server{Handler: promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(ln) }()
		defer msrv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	go func() {
		if err := wl.Watch(ctx); err != nil {
			log.Error(err, "watching the hook whitelist")
		}
	}()
	srv := &hook.Server{Socket: *socket, Log: log,
		Executor: &hook.Executor{Whitelist: wl.Get, MaxOutput: *maxOutput, TempDir: sp.Path(), Sandbox: mode, Trampoline: *trampoline,
			Protected: []string{*whitelist}, Node: &node}}
	return srv.Serve(ctx)
}
