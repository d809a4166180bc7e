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
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// headerLog records the X-Api-Key header of every request an upstream
// receives, in order.
type headerLog struct {
	mu     sync.Mutex
	values []string
}

func (l *headerLog) handler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.values = append(l.values, r.Header.Get("X-Api-Key"))
		l.mu.Unlock()
		_, _ = w.Write([]byte(`{"price": 42}`))
	}
}

func (l *headerLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.values...)
}

// TestWatchConfigsRotatedSecret runs SetupWithManager's wiring with
// --watch-configs-label-selector's default: rotating a header Secret
// labelled reconcile.fluxcd.io/watch=Enabled reaches the upstream within
// seconds although the interval is an hour, and rotating an unlabelled
// Secret does not reconcile the ExternalSource referencing it.
func TestWatchConfigsRotatedSecret(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	shard := "watch-configs-" + ns
	sources := labels.SelectorFromSet(labels.Set{isolatedLabel: shard})
	configs, err := labels.Parse(meta.LabelKeyWatch + "=" + meta.LabelValueWatchEnabled)
	g.Expect(err).ToNot(HaveOccurred())

	// The manager as main builds it: Secrets never read from a cache, the
	// Secret informer restricted to the selector.
	secretObj, secretCache := WatchConfigsCache(configs)
	mgr, err := ctrl.NewManager(testConfig, ctrl.Options{
		Scheme:     testScheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Client: client.Options{Cache: &client.CacheOptions{
			DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}},
		}},
		Cache: ctrlcache.Options{ByObject: map[client.Object]ctrlcache.ByObject{
			&exsv1beta1.ExternalSource{}: {Label: sources},
			secretObj:                    secretCache,
		}},
	})
	g.Expect(err).ToNot(HaveOccurred())
	recorder, err := events.NewRecorder(ctrl.Log, "", "externalsource-controller", events.WithManager(mgr))
	g.Expect(err).ToNot(HaveOccurred())
	r := &ExternalSourceReconciler{
		Client:         mgr.GetClient(),
		Recorder:       recorder,
		APIReader:      mgr.GetAPIReader(),
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        memory.New(memory.Options{BaseURL: "http://127.0.0.1:1"}),
		MaxDataSize:    1 << 20,
	}
	g.Expect(r.SetupWithManager(mgr, ReconcilerOptions{MaxConcurrentReconciles: 2, WatchConfigsSelector: configs})).To(Succeed())
	ctx, cancel := context.WithCancel(testCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	defer func() { cancel(); <-done }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())

	newSecret := func(name, value string, watched bool) *corev1.Secret {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			StringData: map[string]string{"X-Api-Key": value},
		}
		if watched {
			s.Labels = map[string]string{meta.LabelKeyWatch: meta.LabelValueWatchEnabled}
		}
		g.Expect(k8sClient.Create(testCtx, s)).To(Succeed())
		return s
	}
	newWatchedSource := func(name, url, secret string) *exsv1beta1.ExternalSource {
		obj := newSource(ns, name, url)
		obj.Labels = map[string]string{isolatedLabel: shard}
		obj.Spec.Interval = metav1.Duration{Duration: time.Hour}
		obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: secret}
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
		waitReady(t, obj)
		return obj
	}
	rotate := func(s *corev1.Secret, value string) {
		s.StringData = map[string]string{"X-Api-Key": value}
		g.Expect(k8sClient.Update(testCtx, s)).To(Succeed())
	}

	var watched, unwatched headerLog
	watchedUp := httptest.NewServer(watched.handler())
	defer watchedUp.Close()
	unwatchedUp := httptest.NewServer(unwatched.handler())
	defer unwatchedUp.Close()

	watchedSecret := newSecret("watched-key", "old", true)
	unwatchedSecret := newSecret("unwatched-key", "old", false)
	newWatchedSource("watched", watchedUp.URL, watchedSecret.Name)
	newWatchedSource("unwatched", unwatchedUp.URL, unwatchedSecret.Name)
	g.Expect(watched.all()).ToNot(BeEmpty())
	g.Expect(watched.all()).To(HaveEach("old"))
	unwatchedBefore := unwatched.all()
	g.Expect(unwatchedBefore).ToNot(BeEmpty())

	// The unlabelled Secret first: by the time the labelled one's change
	// has been handled, a reconcile caused by the first would have run.
	rotate(unwatchedSecret, "new")
	start := time.Now()
	rotate(watchedSecret, "new")
	g.Eventually(watched.all, 10*time.Second, 20*time.Millisecond).Should(ContainElement("new"))
	t.Logf("rotated header reached the upstream after %s", time.Since(start).Round(time.Millisecond))
	g.Consistently(unwatched.all, 2*time.Second, 100*time.Millisecond).Should(Equal(unwatchedBefore),
		"an unlabelled Secret's change reconciles nothing")

	// What the manager holds of Secrets: the labelled one's metadata, no
	// other Secret and no data.
	cached := &metav1.PartialObjectMetadataList{}
	cached.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	g.Expect(mgr.GetCache().List(ctx, cached, client.InNamespace(ns))).To(Succeed())
	var names []string
	for _, o := range cached.Items {
		names = append(names, o.Name)
	}
	g.Expect(names).To(ConsistOf(watchedSecret.Name))
}

// TestReferencedSecretsCoversTheAPI sets every *SecretRef field of the
// ExternalSource spec, found by reflection, to a name of its own: the
// index of watchConfigs must list them all (the generators report them,
// generator.SecretReferencer), so a Secret reference added to the API
// without being reported by its generator fails here.
func TestReferencedSecretsCoversTheAPI(t *testing.T) {
	g := NewWithT(t)
	obj := &exsv1beta1.ExternalSource{}
	// want holds the names set under spec.generator.<type> by type ("" for
	// a reference outside spec.generator, which every type must report).
	want := map[string][]string{}
	var fill func(v reflect.Value, path, typ string)
	refType := reflect.TypeFor[*meta.LocalObjectReference]()
	fill = func(v reflect.Value, path, typ string) {
		for i := range v.NumField() {
			f, ft := v.Field(i), v.Type().Field(i)
			if !ft.IsExported() {
				continue
			}
			p := path + "." + ft.Name
			if path == ".Generator" {
				typ, _, _ = strings.Cut(ft.Tag.Get("json"), ",")
			}
			switch {
			case strings.HasSuffix(ft.Name, "SecretRef") && ft.Type != refType:
				t.Errorf("%s is a %s: teach its generator's SecretRefs and this test its type", p, ft.Type)
			case strings.HasSuffix(ft.Name, "SecretRef"):
				name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(p, "."), ".", "-"))
				f.Set(reflect.ValueOf(&meta.LocalObjectReference{Name: name}))
				want[typ] = append(want[typ], name)
			case ft.Type.Kind() == reflect.Pointer && ft.Type.Elem().Kind() == reflect.Struct:
				f.Set(reflect.New(ft.Type.Elem()))
				fill(f.Elem(), p, typ)
			case ft.Type.Kind() == reflect.Struct:
				fill(f, p, typ)
			}
		}
	}
	fill(reflect.ValueOf(&obj.Spec).Elem(), "", "")
	g.Expect(want).ToNot(BeEmpty())
	r := &ExternalSourceReconciler{Generators: testGenerators}
	for _, typ := range exsv1beta1.GeneratorTypes {
		obj.Spec.Generator.Type = typ
		g.Expect(r.indexSecretRefs(obj)).To(ConsistOf(append(want[typ], want[""]...)), "type %s", typ)
	}
	g.Expect(r.indexSecretRefs(&corev1.Secret{})).To(BeEmpty())
}
