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
	"testing"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

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
			if tt.published {
				g.Expect(stepReconciler(m).reconcileArtifact(testCtx, obj, write("a: 1\n", false))).To(Succeed())
				g.Expect(obj.Status.Artifact).ToNot(BeNil())
			}
			before := obj.Status.Artifact.DeepCopy()
			st := write(tt.data, tt.notModified)
			err := r.reconcileArtifact(testCtx, obj, st)
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
