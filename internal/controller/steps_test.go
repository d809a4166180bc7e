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
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
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
	kind, _ := failure.Describe(err, "")
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
