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
	"os"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	fluxmetrics "github.com/fluxcd/pkg/runtime/metrics"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/server"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// The suite runs one real control plane (etcd + kube-apiserver) and one
// manager with the reconciler for every test in this package.
var (
	testScheme = runtime.NewScheme()
	k8sClient  client.Client
	testStore  *memory.Storage
	testCtx    context.Context
	testConfig *rest.Config
	// testGenerators is the registry of the suite's reconciler; tests that
	// run reconciles of their own share it (and its HTTP clients).
	testGenerators *generator.Registry
)

// isolatedLabel marks objects the suite's manager ignores, for tests that
// run a reconciler of their own with other options (e.g. backoff timing).
const isolatedLabel = "test.externalsource.io/isolated"

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(sourcev1.AddToScheme(testScheme))
	utilruntime.Must(v1.AddToScheme(testScheme))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))

	env, err := devenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	k8sClient, err = client.New(env.Config, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testCtx = ctx

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testStore = memory.New(memory.Options{BaseURL: storage.BaseURL(ln.Addr().String())})
	go func() { _ = (&server.Server{Storage: testStore, Log: ctrl.Log}).Serve(ctx, ln) }()

	testConfig = env.Config
	notIsolated, err := labels.Parse("!" + isolatedLabel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  testScheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&v1.ExternalSource{}: {Label: notIsolated},
		}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	recorder, err := events.NewRecorder(ctrl.Log, "", "externalsource-controller", events.WithManager(mgr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	gens := generator.NewRegistry()
	// Retries within a fetch wait milliseconds, not seconds, in tests.
	httpOpts := httpgen.Options{RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond}
	if err := builtin.Register(gens, builtin.Options{HTTP: httpOpts}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testGenerators = gens
	r := &ExternalSourceReconciler{
		Metrics:        runtimectrl.NewMetrics(mgr, fluxmetrics.MustMakeRecorder(), v1.Finalizer),
		FetchMetrics:   metrics.MustMakeRecorder(),
		Client:         mgr.GetClient(),
		Recorder:       recorder,
		APIReader:      mgr.GetAPIReader(),
		ControllerName: "externalsource-controller",
		Generators:     gens,
		Storage:        testStore,
		MaxDataSize:    1 << 20,
	}
	if err := r.SetupWithManager(mgr, ReconcilerOptions{MaxConcurrentReconciles: 4}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}
	return m.Run()
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
