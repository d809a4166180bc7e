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
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/redact"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// Step-level tests in source-controller's manner: one step, a prepared
// object and state, and the conditions and failure kind it leaves.

// stepReconciler is a reconciler for calling steps directly, on a memory
// store of its own.
func stepReconciler(store storage.Storage) *ExternalSourceReconciler {
	if store == nil {
		store = memory.New(memory.Options{BaseURL: "http://127.0.0.1:1"})
	}
	return &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       events.NewFakeRecorder(32, false),
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     testGenerators,
		Storage:        store,
		MaxDataSize:    1 << 10,
		Retention:      storage.DefaultRetention,
		TempDir:        os.TempDir(),
	}
}

// stepObject is an ExternalSource no manager reconciles (isolated, no shard
// runs), not created in the API unless a test does.
func stepObject(ns, url string) *exsv1beta1.ExternalSource {
	obj := newSource(ns, "step", url)
	obj.Labels = map[string]string{isolatedLabel: "steps-" + ns}
	obj.Generation = 1
	return obj
}

func newStepState() *reconcileState {
	return &reconcileState{secrets: &redact.Set{}, start: time.Now(), deadline: time.Now().Add(time.Minute)}
}

// wantKind is a failure kind a step returns, or none.
type wantKind int

const (
	noError wantKind = iota
	isGeneric
	isWaiting
	isStalling
)

func expectKind(g Gomega, err error, want wantKind) {
	if want == noError {
		g.Expect(err).ToNot(HaveOccurred())
		return
	}
	g.Expect(err).To(HaveOccurred())
	kind, _, _ := failure.Describe(err, "")
	g.Expect(kind).To(Equal(map[wantKind]failure.Kind{isGeneric: failure.KindGeneric,
		isWaiting: failure.KindWaiting, isStalling: failure.KindStalling}[want]), "%v", err)
}

// failingStorage fails Verify and Put; everything else is the embedded store.
type failingStorage struct {
	storage.Storage
}

func (failingStorage) Verify(context.Context, meta.Artifact) error {
	return errors.New("storage unreachable")
}

func (failingStorage) Put(context.Context, *meta.Artifact, io.Reader) error {
	return errors.New("storage unreachable")
}

func TestExternalSourceReconciler_reconcileStorage(t *testing.T) {
	ns := "steps-storage"
	tests := []struct {
		name         string
		store        func(*memory.Storage) storage.Storage
		artifact     func(g Gomega, m *memory.Storage) *meta.Artifact
		want         wantKind
		wantArtifact bool
		wantTrue     []string
		wantAbsent   []string
	}{
		{
			name:       "no artifact",
			artifact:   func(Gomega, *memory.Storage) *meta.Artifact { return nil },
			wantAbsent: []string{exsv1beta1.ArtifactInStorageCondition, exsv1beta1.StorageOperationFailedCondition},
		},
		{
			name: "artifact in storage",
			artifact: func(g Gomega, m *memory.Storage) *meta.Artifact {
				a := m.NewArtifactFor(exsv1beta1.ExternalSourceKind, &metav1.ObjectMeta{Namespace: ns, Name: "step"}, "rev", "a.tar.gz")
				g.Expect(m.Put(testCtx, &a, strings.NewReader("data"))).To(Succeed())
				return &a
			},
			wantArtifact: true,
			wantTrue:     []string{exsv1beta1.ArtifactInStorageCondition},
		},
		{
			name: "artifact missing: forgotten, refetched",
			artifact: func(g Gomega, m *memory.Storage) *meta.Artifact {
				a := m.NewArtifactFor(exsv1beta1.ExternalSourceKind, &metav1.ObjectMeta{Namespace: ns, Name: "step"}, "rev", "gone.tar.gz")
				a.Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
				return &a
			},
			wantAbsent: []string{exsv1beta1.ArtifactInStorageCondition},
		},
		{
			name: "artifact corrupt: removed, forgotten",
			artifact: func(g Gomega, m *memory.Storage) *meta.Artifact {
				a := m.NewArtifactFor(exsv1beta1.ExternalSourceKind, &metav1.ObjectMeta{Namespace: ns, Name: "step"}, "rev", "b.tar.gz")
				g.Expect(m.Put(testCtx, &a, strings.NewReader("data"))).To(Succeed())
				a.Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
				return &a
			},
			wantAbsent: []string{exsv1beta1.ArtifactInStorageCondition},
		},
		{
			name:  "storage unreachable",
			store: func(m *memory.Storage) storage.Storage { return failingStorage{m} },
			artifact: func(g Gomega, m *memory.Storage) *meta.Artifact {
				a := m.NewArtifactFor(exsv1beta1.ExternalSourceKind, &metav1.ObjectMeta{Namespace: ns, Name: "step"}, "rev", "c.tar.gz")
				return &a
			},
			want:         isGeneric,
			wantArtifact: true,
			wantTrue:     []string{exsv1beta1.StorageOperationFailedCondition},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			m := memory.New(memory.Options{BaseURL: "http://127.0.0.1:1"})
			var store storage.Storage = m
			if tt.store != nil {
				store = tt.store(m)
			}
			r := stepReconciler(store)
			obj := stepObject(ns, "http://127.0.0.1:1")
			obj.Status.Artifact = tt.artifact(g, m)
			obj.Status.LastHandledETag = `"e"`
			err := r.reconcileStorage(testCtx, nil, obj, newStepState())
			expectKind(g, err, tt.want)
			g.Expect(obj.Status.Artifact != nil).To(Equal(tt.wantArtifact))
			if !tt.wantArtifact && strings.Contains(tt.name, "forgotten") {
				g.Expect(obj.Status.LastHandledETag).To(BeEmpty(), "the conditional-request record is forgotten")
			}
			for _, c := range tt.wantTrue {
				g.Expect(conditions.IsTrue(obj, c)).To(BeTrue(), c)
			}
			for _, c := range tt.wantAbsent {
				g.Expect(conditions.Has(obj, c)).To(BeFalse(), c)
			}
		})
	}
}

func TestExternalSourceReconciler_reconcileSource(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("a: 1\n"))
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 2<<10)))
		case "/wait":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer up.Close()

	tests := []struct {
		name       string
		mutate     func(*exsv1beta1.ExternalSource)
		noHooks    bool
		want       wantKind
		wantReason string
		wantData   string
	}{
		{name: "fetched", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/ok" }, wantData: "a: 1\n"},
		{name: "upstream error is retried", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/fail" },
			want: isGeneric, wantReason: exsv1beta1.FetchFailedReason},
		{name: "Retry-After waits", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/wait" },
			want: isWaiting, wantReason: exsv1beta1.FetchFailedReason},
		{name: "over the size limit", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/big" },
			want: isGeneric, wantReason: exsv1beta1.FetchFailedReason},
		{name: "destination path escapes", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "../x" },
			want: isStalling, wantReason: exsv1beta1.InvalidSpecReason},
		{name: "generator type without implementation", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.Type = "ftp" },
			want: isStalling, wantReason: exsv1beta1.UnsupportedGeneratorReason},
		{name: "hooks on a controller without hooks", noHooks: true, mutate: func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "j", Command: "jq"}}}
		}, want: isStalling, wantReason: exsv1beta1.HooksDisabledReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := stepReconciler(nil)
			if !tt.noHooks {
				r.HookRunner = hook.Checked(testWhitelist.Get, hook.NewClient("/nonexistent.sock"))
			}
			obj := stepObject("steps-source", up.URL)
			tt.mutate(obj)
			st := newStepState()
			defer st.cleanup()
			ctx, cancel := context.WithTimeout(testCtx, 20*time.Second)
			defer cancel()
			err := r.reconcileSource(ctx, nil, obj, st)
			expectKind(g, err, tt.want)
			if tt.want == noError {
				g.Expect(conditions.Has(obj, exsv1beta1.FetchFailedCondition)).To(BeFalse())
				data, rerr := os.ReadFile(st.dataFile)
				g.Expect(rerr).ToNot(HaveOccurred())
				g.Expect(string(data)).To(Equal(tt.wantData))
				return
			}
			_, reason, _ := failure.Describe(err, "")
			g.Expect(reason).To(Equal(tt.wantReason))
			if tt.wantReason == exsv1beta1.FetchFailedReason {
				g.Expect(conditions.IsTrue(obj, exsv1beta1.FetchFailedCondition)).To(BeTrue())
				g.Expect(conditions.GetMessage(obj, exsv1beta1.FetchFailedCondition)).To(ContainSubstring("fetch failed"))
			}
		})
	}
}

func TestExternalSourceReconciler_reconcileArtifact(t *testing.T) {
	tests := []struct {
		name        string
		data        string
		notModified bool
		store       func(*memory.Storage) storage.Storage
		published   bool // the same data is published already
		want        wantKind
		wantNew     bool
		wantTrue    []string
	}{
		{name: "new data is stored", data: "a: 1\n", wantNew: true, wantTrue: []string{exsv1beta1.ArtifactInStorageCondition}},
		{name: "same data stores nothing", data: "a: 1\n", published: true},
		{name: "not modified stores nothing", notModified: true, published: true},
		{name: "write failure", data: "a: 1\n", store: func(m *memory.Storage) storage.Storage { return failingStorage{m} },
			want: isGeneric, wantTrue: []string{exsv1beta1.StorageOperationFailedCondition}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			m := memory.New(memory.Options{BaseURL: "http://127.0.0.1:1"})
			var store storage.Storage = m
			if tt.store != nil {
				store = tt.store(m)
			}
			r := stepReconciler(store)
			obj := stepObject("steps-artifact", "http://127.0.0.1:1")
			write := func(data string, notModified bool) *reconcileState {
				st := newStepState()
				st.notModified = notModified
				st.tmpDir = t.TempDir()
				st.dataFile = st.tmpDir + "/data"
				g.Expect(os.WriteFile(st.dataFile, []byte(data), 0o600)).To(Succeed())
				st.dataSize = int64(len(data))
				st.validators.ETag = `"v2"`
				return st
			}
			sp := newObjectPatcher(obj, k8sClient, "test") // the object is not in the API: progress writes are no-ops
			if tt.published {
				g.Expect(stepReconciler(m).reconcileArtifact(testCtx, sp, obj, write("a: 1\n", false))).To(Succeed())
				g.Expect(obj.Status.Artifact).ToNot(BeNil())
			}
			before := obj.Status.Artifact.DeepCopy()
			st := write(tt.data, tt.notModified)
			err := r.reconcileArtifact(testCtx, sp, obj, st)
			expectKind(g, err, tt.want)
			g.Expect(st.newArtifact).To(Equal(tt.wantNew))
			if !tt.wantNew {
				g.Expect(obj.Status.Artifact).To(Equal(before))
			}
			if tt.want == noError {
				g.Expect(obj.Status.LastHandledETag).To(Equal(`"v2"`), "the validators are recorded")
			}
			for _, c := range tt.wantTrue {
				g.Expect(conditions.IsTrue(obj, c)).To(BeTrue(), c)
			}
		})
	}
}

func TestExternalSourceReconciler_reconcileExternalArtifact(t *testing.T) {
	tests := []struct {
		name       string
		artifact   bool
		foreign    bool // an ExternalArtifact of the same name exists, controlled by another
		want       wantKind
		wantReason string
	}{
		{name: "no artifact: nothing to publish"},
		{name: "publishes the artifact", artifact: true},
		{name: "refuses to adopt", artifact: true, foreign: true, want: isGeneric, wantReason: exsv1beta1.ArtifactOwnedByOtherReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			r := stepReconciler(nil)
			obj := stepObject(ns, "http://127.0.0.1:1")
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			if tt.foreign {
				other := &exsv1beta1.ExternalSource{}
				obj.DeepCopyInto(other)
				other.ObjectMeta = metav1.ObjectMeta{Name: "other", Namespace: ns, Labels: obj.Labels}
				g.Expect(k8sClient.Create(testCtx, other)).To(Succeed())
				ea := &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{Name: obj.Name, Namespace: ns,
					OwnerReferences: []metav1.OwnerReference{{APIVersion: exsv1beta1.GroupVersion.String(), Kind: exsv1beta1.ExternalSourceKind,
						Name: other.Name, UID: other.UID, Controller: ptrTo(true)}}}}
				g.Expect(k8sClient.Create(testCtx, ea)).To(Succeed())
			}
			if tt.artifact {
				obj.Status.Artifact = &meta.Artifact{Path: "p", URL: "http://x/p", Revision: "latest@sha256:ab",
					Digest: "sha256:ab", LastUpdateTime: metav1.Now()}
			}
			st := newStepState()
			st.newArtifact = tt.artifact
			err := r.reconcileExternalArtifact(testCtx, nil, obj, st)
			expectKind(g, err, tt.want)
			ea := &sourcev1.ExternalArtifact{}
			getErr := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), ea)
			switch {
			case tt.want != noError:
				g.Expect(conditions.IsTrue(obj, exsv1beta1.PublishFailedCondition)).To(BeTrue())
				g.Expect(conditions.GetReason(obj, exsv1beta1.PublishFailedCondition)).To(Equal(tt.wantReason))
			case tt.artifact:
				g.Expect(getErr).ToNot(HaveOccurred())
				g.Expect(ea.Status.Artifact.Revision).To(Equal(obj.Status.Artifact.Revision))
				g.Expect(metav1.IsControlledBy(ea, obj)).To(BeTrue())
				g.Expect(conditions.Has(obj, exsv1beta1.PublishFailedCondition)).To(BeFalse())
			default:
				g.Expect(getErr).To(HaveOccurred(), "nothing published")
			}
		})
	}
}

func TestRequestedWork(t *testing.T) {
	reconciling := func(gen int64, reason string) metav1.Condition {
		return metav1.Condition{Type: meta.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: reason, ObservedGeneration: gen}
	}
	ready := metav1.Condition{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: meta.SucceededReason, ObservedGeneration: 1}
	tests := []struct {
		name       string
		generation int64
		observed   int64
		conds      []metav1.Condition
		want       bool
	}{
		{name: "a new object has no previous result", generation: 1, observed: 0},
		{name: "an edited object with a result", generation: 2, observed: 1, conds: []metav1.Condition{ready}, want: true},
		{name: "a handled generation", generation: 2, observed: 2, conds: []metav1.Condition{ready}},
		{name: "a failed attempt of this generation already says so", generation: 2, observed: 1,
			conds: []metav1.Condition{ready, reconciling(2, meta.ProgressingWithRetryReason)}},
		{name: "a retry of an older generation's failure", generation: 3, observed: 1,
			conds: []metav1.Condition{ready, reconciling(2, meta.ProgressingWithRetryReason)}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := stepObject("steps-work", "http://127.0.0.1:1")
			obj.Generation, obj.Status.ObservedGeneration, obj.Status.Conditions = tt.generation, tt.observed, tt.conds
			g.Expect(requestedWork(obj) != "").To(Equal(tt.want))
		})
	}
}

func TestExtractLimitsStayWithinTheSpoolBudget(t *testing.T) {
	tests := []struct {
		name     string
		flag     int64
		dataSize int64
		want     int64
	}{
		{name: "the flag is below the budget", flag: 1 << 20, dataSize: 1 << 10, want: 1 << 20},
		{name: "the budget bounds the flag", flag: 512 << 20, dataSize: 10 << 20, want: 2*(50<<20) - 10<<20},
		{name: "an archive that fills the budget", flag: 512 << 20, dataSize: 100 << 20, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := stepReconciler(nil)
			r.MaxDataSize = 50 << 20
			r.ExtractLimits.MaxSize = tt.flag
			st := newStepState()
			st.dataSize = tt.dataSize
			g.Expect(r.extractLimits(st).MaxSize).To(Equal(tt.want))
		})
	}
}
