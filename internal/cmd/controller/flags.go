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
	"os"
	"time"

	flag "github.com/spf13/pflag"

	artifactcfg "github.com/fluxcd/pkg/artifact/config"
	"github.com/fluxcd/pkg/runtime/acl"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	feathelper "github.com/fluxcd/pkg/runtime/features"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/controller"
	"github.com/externalsource/externalsource-controller/internal/extract"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/storage/s3"
)

// flags holds everything the controller binds; kept together so tests
// and the flag reference (docs/flags.md) read the defaults.
type flags struct {
	metricsAddr, healthAddr, eventsAddr string
	// gracefulShutdown bounds the wait for running reconciles at shutdown,
	// before the lease is released.
	gracefulShutdown           time.Duration
	concurrent                 int
	storageBackend             string
	memoryMaxBytes             int64
	memoryMaxBytesPerNamespace int64
	maxFetchTimeout            time.Duration
	maxConcurrentPerNamespace  int
	maxConcurrentPerHost       int
	s3                         s3.Options
	maxResponseSize            int64
	maxExtractFiles            int
	maxExtractSize             int64
	hookSocket, hookWhitelist  string
	hookLimits                 controller.HookLimits
	allowedURLs, deniedURLs    []string
	allowLinkLocal             bool
	allowedAddressRanges       []string

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
	fs.DurationVar(&f.gracefulShutdown, "graceful-shutdown-timeout", 3*time.Second,
		"How long a stopping controller waits for running reconciles (whose context is cancelled) before it releases "+
			"its leader-election lease and exits; keep it under the pod's terminationGracePeriodSeconds.")
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

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
