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
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// logCapture is a zap sink in JSON: each line one entry, parsed on read.
type logCapture struct {
	testutil.SyncBuffer
}

// entries returns the parsed lines about the object name in namespace ns
// (controller-runtime's per-reconcile logger names them).
func (l *logCapture) entries(ns, name string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["namespace"] == ns && e["name"] == name {
			out = append(out, e)
		}
	}
	return out
}

// isolatedManager is a manager of a test's own, with SetupWithManager's
// wiring, reconciling only the objects labelled isolatedLabel=shard, with
// its log captured at level.
type isolatedManager struct {
	shard string
	logs  *logCapture
	r     *ExternalSourceReconciler
}

// startIsolated starts an isolated manager of two workers on a shard of
// its own; configure adjusts the reconciler before it is set up. It stops
// with the test.
func startIsolated(t *testing.T, level zapcore.Level, configure func(*ExternalSourceReconciler)) *isolatedManager {
	return startIsolatedManager(t, "iso-"+newNamespace(t), level, ReconcilerOptions{MaxConcurrentReconciles: 2}, configure)
}

// startIsolatedManager starts an isolated manager for shard with opts;
// it returns once the manager's cache is in sync.
func startIsolatedManager(t *testing.T, shard string, level zapcore.Level, opts ReconcilerOptions,
	configure func(*ExternalSourceReconciler)) *isolatedManager {
	t.Helper()
	return startIsolatedManagerOn(t, testConfig, shard, level, opts, configure)
}

// startIsolatedManagerOn is startIsolatedManager with the manager's
// client configuration cfg (e.g. a transport that counts requests).
func startIsolatedManagerOn(t *testing.T, cfg *rest.Config, shard string, level zapcore.Level, opts ReconcilerOptions,
	configure func(*ExternalSourceReconciler)) *isolatedManager {
	t.Helper()
	g := NewWithT(t)
	im := &isolatedManager{shard: shard, logs: &logCapture{}}
	log := zap.New(zap.WriteTo(im.logs), zap.Level(level), zap.JSONEncoder())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     testScheme,
		Logger:     log,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&exsv1beta1.ExternalSource{}: {Label: labels.SelectorFromSet(labels.Set{isolatedLabel: im.shard})},
		}},
	})
	g.Expect(err).ToNot(HaveOccurred())
	recorder, err := events.NewRecorder(log.WithName("events"), "", "externalsource-controller", events.WithManager(mgr))
	g.Expect(err).ToNot(HaveOccurred())
	im.r = &ExternalSourceReconciler{
		Client:         mgr.GetClient(),
		Recorder:       recorder,
		APIReader:      mgr.GetAPIReader(),
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memory.New(memory.Options{BaseURL: "http://127.0.0.1:1"}),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
	}
	if configure != nil {
		configure(im.r)
	}
	g.Expect(im.r.SetupWithManager(mgr, opts)).To(Succeed())
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(timeout):
			t.Error("isolated manager did not stop")
		}
	})
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	return im
}

// source returns an ExternalSource reconciled by this manager only.
func (im *isolatedManager) source(ns, name, url string) *exsv1beta1.ExternalSource {
	obj := newSource(ns, name, url)
	obj.Labels = map[string]string{isolatedLabel: im.shard}
	return obj
}
