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
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"

	"go.uber.org/zap/zapcore"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/events"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/server"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/filesystem"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/storage/s3"
	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// The suite runs one real control plane (etcd + kube-apiserver) and one
// manager per storage backend, each reconciling only the ExternalSources
// labelled with its backend (Flux's label-selector sharding), so every
// end-to-end test can run against every backend.
var (
	testScheme = runtime.NewScheme()
	k8sClient  client.Client
	testCtx    context.Context
	testEnv    *devenv.Env
	testConfig *rest.Config
	backends   = map[string]*backend{}
	s3Server   *s3test.Server
	// testGenerators is the registry every manager's reconciler shares;
	// tests that run reconciles of their own share it (and its clients).
	testGenerators *generator.Registry
	// The metric recorders register on the global registry once.
	fluxMetrics  *metrics.ReconcileDurations
	fetchMetrics *metrics.Recorder
)

// backendLabel selects the manager (and so the backend) of an object:
// each manager watches only its own value (Flux's label-selector sharding).
const backendLabel = "test.externalsource.io/backend"

// isolatedLabel marks objects for tests that run a reconciler of their
// own with other options (e.g. backoff timing): such objects carry no
// backendLabel, so no suite manager reconciles them.
const isolatedLabel = "test.externalsource.io/isolated"

// backendNames lists the backends in the order tests run them.
var backendNames = []string{"memory", "filesystem", "s3"}

// extraManagers are managers for special cases, not backends to test on.
var extraManagers = []string{"s3-wrong-credentials", "no-hooks", "hooks-down"}

// backend is one manager with its store.
type backend struct {
	name  string
	store storage.Storage
	// list returns the stored artifact paths of an object.
	list func(ns, name string) []string
	// remove deletes a stored artifact behind the controller's back.
	remove func(path string)
	// corrupt changes a stored artifact's bytes behind the controller's back.
	corrupt func(path string)
	// hooks runs the manager's hooks; nil disables them.
	hooks hook.Runner
	// stop stops the manager and its artifact server; done is closed when
	// both have returned.
	stop context.CancelFunc
	done chan struct{}
	addr string
}

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(sourcev1.AddToScheme(testScheme))
	utilruntime.Must(exsv1beta1.AddToScheme(testScheme))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	env, err := devenv.Start()
	if err != nil {
		return fail(err)
	}
	defer func() { _ = env.Stop() }()
	testEnv = env
	testConfig = env.Config

	testGenerators = generator.NewRegistry()
	// Retries within a fetch wait milliseconds, not seconds, in tests.
	// The test upstreams are httptest servers on loopback, which the
	// controller denies by default (--allowed-address-ranges).
	httpOpts := httpgen.Options{RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond,
		URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	if err := builtin.Register(testGenerators, builtin.Options{HTTP: httpOpts}); err != nil {
		return fail(err)
	}
	fluxMetrics = metrics.NewReconcileDurations(exsv1beta1.ExternalSourceKind, exsv1beta1.Finalizer)
	ctrlmetrics.Registry.MustRegister(fluxMetrics)
	fetchMetrics = metrics.NewRecorder()

	k8sClient, err = client.New(env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testCtx = ctx

	tmp, err := os.MkdirTemp("", "externalsource-suite-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)

	// Each backend's artifact server listens before its store is built, so
	// the store knows the base URL it advertises.
	listeners := map[string]net.Listener{}
	for _, name := range append(backendNames, extraManagers...) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fail(err)
		}
		listeners[name] = ln
	}
	baseURL := func(name string) string { return storage.BaseURL(listeners[name].Addr().String()) }

	// memory
	// The closures read the current store: a restart replaces it.
	mem := memory.New(memory.Options{BaseURL: baseURL("memory")})
	backends["memory"] = &backend{name: "memory", store: mem,
		list: func(ns, name string) []string { return listMemory(memoryStore(), ns, name) },
		remove: func(p string) {
			_ = memoryStore().Remove(ctx, meta.Artifact{Path: p})
		},
	}

	// filesystem
	fsDir := filepath.Join(tmp, "fs")
	if err := os.MkdirAll(fsDir, 0o755); err != nil {
		return fail(err)
	}
	fsStore, err := filesystem.New(filesystem.Options{Path: fsDir, BaseURL: baseURL("filesystem")})
	if err != nil {
		return fail(err)
	}
	backends["filesystem"] = &backend{name: "filesystem", store: fsStore,
		list: func(ns, name string) []string {
			entries, _ := os.ReadDir(filepath.Join(fsDir, storage.ArtifactDir(exsv1beta1.ExternalSourceKind, ns, name)))
			var out []string
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".tar.gz") {
					out = append(out, storage.ArtifactPath(exsv1beta1.ExternalSourceKind, ns, name, e.Name()))
				}
			}
			return out
		},
		remove:  func(p string) { _ = os.Remove(filepath.Join(fsDir, p)) },
		corrupt: func(p string) { _ = os.WriteFile(filepath.Join(fsDir, p), []byte("corrupt"), 0o644) },
	}

	// s3, on a real S3 server
	s3Server, err = s3test.StartDir(filepath.Join(tmp, "s3"), func(string, ...any) {})
	if err != nil {
		return fail(err)
	}
	defer s3Server.Stop()
	if err := s3Server.MakeBucket(ctx, "artifacts"); err != nil {
		return fail(err)
	}
	raw, err := s3Server.Client()
	if err != nil {
		return fail(err)
	}
	s3Store, err := s3.New(s3.Options{Endpoint: s3Server.Endpoint, Bucket: "artifacts", Insecure: true, BaseURL: baseURL("s3"),
		Prefix: "exs/", Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, "")})
	if err != nil {
		return fail(err)
	}
	backends["s3"] = &backend{name: "s3", store: s3Store,
		list: func(ns, name string) []string {
			var out []string
			prefix := "exs/" + storage.ArtifactDir(exsv1beta1.ExternalSourceKind, ns, name) + "/"
			for o := range raw.ListObjects(ctx, "artifacts", minio.ListObjectsOptions{Prefix: prefix}) {
				if o.Err == nil {
					out = append(out, strings.TrimPrefix(o.Key, "exs/"))
				}
			}
			return out
		},
		remove: func(p string) { _ = raw.RemoveObject(ctx, "artifacts", "exs/"+p, minio.RemoveObjectOptions{}) },
		corrupt: func(p string) {
			_, _ = raw.PutObject(ctx, "artifacts", "exs/"+p, strings.NewReader("corrupt"), 7, minio.PutObjectOptions{})
		},
	}

	// An S3 store whose secret is wrong: every request is refused by
	// SigV4 verification.
	badStore, err := s3.New(s3.Options{Endpoint: s3Server.Endpoint, Bucket: "artifacts", Insecure: true,
		BaseURL: baseURL("s3-wrong-credentials"), Creds: credentials.NewStaticV4(s3test.AccessKey, "wrong", "")})
	if err != nil {
		return fail(err)
	}
	backends["s3-wrong-credentials"] = &backend{name: "s3-wrong-credentials", store: badStore}

	// Hooks: the real hook-executor process on a Unix socket, with the
	// suite's whitelist; the managers check the same whitelist first.
	hookRunner, stopHooks, err := startHookExecutor(ctx, tmp)
	if err != nil {
		return fail(err)
	}
	defer stopHooks()
	for _, name := range append(backendNames, "s3-wrong-credentials") {
		backends[name].hooks = hookRunner
	}
	// A manager without a hook executor, and one whose executor is down.
	backends["no-hooks"] = &backend{name: "no-hooks", store: memory.New(memory.Options{BaseURL: baseURL("no-hooks")})}
	backends["hooks-down"] = &backend{name: "hooks-down", store: memory.New(memory.Options{BaseURL: baseURL("hooks-down")}),
		hooks: hook.Checked(testWhitelist.Get, hook.NewClient(filepath.Join(tmp, "nobody.sock")))}

	for _, name := range append(backendNames, extraManagers...) {
		if err := startManager(ctx, backends[name], listeners[name]); err != nil {
			return fail(fmt.Errorf("%s manager: %w", name, err))
		}
	}
	return m.Run()
}

// startManager runs a manager for one backend with its artifact server on ln.
func startManager(parent context.Context, b *backend, ln net.Listener) error {
	sel, err := labels.Parse(backendLabel + "=" + b.name)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme:  testScheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&exsv1beta1.ExternalSource{}: {Label: sel},
		}},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	recorder, err := events.NewRecorder(ctrl.Log, "", "externalsource-controller", events.WithManager(mgr))
	if err != nil {
		return err
	}
	r := &ExternalSourceReconciler{
		Metrics:        fluxMetrics,
		FetchMetrics:   fetchMetrics,
		Client:         mgr.GetClient(),
		Recorder:       recorder,
		APIReader:      mgr.GetAPIReader(),
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        b.store,
		HookRunner:     b.hooks,
		MaxDataSize:    1 << 20,
	}
	if err := r.SetupWithManager(mgr, ReconcilerOptions{MaxConcurrentReconciles: 4, HookWhitelistChanged: b.whitelistChanged()}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	b.stop = cancel
	b.done = make(chan struct{})
	b.addr = ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = (&server.Server{Storage: b.store, Log: ctrl.Log}).Serve(ctx, ln)
	}()
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	go func() { wg.Wait(); close(b.done) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("cache did not sync")
	}
	return nil
}

// restart stops the backend's manager and starts a new one on the same
// address, as a controller restart does; store replaces the store when not
// nil (a memory store does not survive a restart).
func restart(t *testing.T, b *backend, store storage.Storage) {
	t.Helper()
	b.stop()
	<-b.done
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if store != nil {
		b.store = store
	}
	if err := startManager(testCtx, b, ln); err != nil {
		t.Fatal(err)
	}
}

// memoryStore is the memory backend's current store, for tests that run
// reconciles of their own.
func memoryStore() *memory.Storage {
	return backends["memory"].store.(*memory.Storage)
}

func listMemory(m *memory.Storage, ns, name string) []string {
	return m.List(storage.ArtifactDir(exsv1beta1.ExternalSourceKind, ns, name))
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 3 // quiet: reconcile errors are asserted through status, not logs
}

// timeout bounds every Eventually of the suite: generous for a loaded CI
// machine, and never a performance assertion.
const timeout = 30 * time.Second
