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
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// storageFault is a change made to a stored artifact behind the
// controller's back.
type storageFault struct {
	name  string
	apply func(path string)
	// want is what the backend's own Verify reports afterwards.
	want error
}

// TestStorageRecovery: an artifact deleted or corrupted behind the
// controller's back is fetched and published again at the next reconcile,
// on every backend, even though the upstream says nothing changed.
//
// The upstream answers with an ETag and allows HEAD, so a reconcile of an
// intact artifact costs one HEAD and no GET (checked first, on the same
// object): the GET after the fault can only come from the recovery. The
// fault is checked to have taken effect in the backend itself before the
// reconcile is requested.
func TestStorageRecovery(t *testing.T) {
	for _, name := range backendNames {
		b := backends[name]
		faults := []storageFault{{name: "deleted", apply: b.remove, want: storage.ErrNotFound}}
		if b.corrupt != nil {
			faults = append(faults, storageFault{name: "corrupt", apply: b.corrupt, want: storage.ErrDigestMismatch})
		}
		for _, f := range faults {
			t.Run(name+"/"+f.name, func(t *testing.T) {
				g := NewWithT(t)
				ns := newNamespace(t)
				up := newCountingUpstream(t, "recover: me\n", `"r1"`, "", true)
				obj := newSourceOn(name, ns, "recover", up.URL)
				g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
				a := waitReady(t, obj).Status.Artifact

				// Without a fault, a reconcile asks HEAD and does not GET.
				before := up.counts()
				intact := requestReconcile(t, obj)
				g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 1, gets: 0}), "an intact artifact is not fetched again")
				g.Expect(intact.Status.Artifact).To(Equal(a))

				// The fault is real before the controller is asked to look.
				f.apply(a.Path)
				g.Expect(b.store.Verify(testCtx, *a)).To(MatchError(f.want), "the fault took effect in the backend")
				if f.name == "deleted" {
					g.Expect(b.list(ns, obj.Name)).ToNot(ContainElement(a.Path))
				}

				before = up.counts()
				got := requestReconcile(t, obj)
				g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 0, gets: 1}),
					"the recovery forgets the ETag and fetches in full")
				g.Expect(conditions.IsReady(got)).To(BeTrue())
				g.Expect(got.Status.Artifact.Revision).To(Equal(a.Revision))
				g.Expect(got.Status.Artifact.URL).To(Equal(a.URL))
				g.Expect(got.Status.Artifact).To(Equal(a), "the same artifact, stored again: not a new one")
				g.Expect(got.Status.LastHandledETag).To(Equal(`"r1"`))
				g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest), "the artifact is served again")
				g.Expect(b.store.Verify(testCtx, *got.Status.Artifact)).To(Succeed())
				if f.name == "corrupt" {
					g.Eventually(func(g Gomega) {
						g.Expect(warningEvents(g, ns, obj.Name, "stored artifact is corrupt")).To(HaveLen(1))
					}, timeout).Should(Succeed())
				}
			})
		}
	}
}

// TestControllerRestart: a restarted controller with the memory backend
// republishes the artifact within one reconcile; with filesystem and S3 the
// artifact, its revision and URL stay, nothing new is stored, and the
// upstream (which supports ETags) is not called at start, then sees a HEAD
// and no GET.
func TestControllerRestart(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			b := backends[name]
			ns := newNamespace(t)
			up := newCountingUpstream(t, "restart: 1\n", `"v1"`, "", true)
			obj := newSourceOn(name, ns, "restart", up.URL)
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			ready := waitReady(t, obj)
			a := ready.Status.Artifact
			stored := b.list(ns, obj.Name)
			before := up.counts()

			var fresh *memory.Storage
			if b.store.Ephemeral() {
				fresh = memory.New(memory.Options{BaseURL: "http://" + b.addr})
				restart(t, b, fresh)
			} else {
				restart(t, b, nil)
			}

			// Same URL, same bytes, served by the new process's server.
			g.Eventually(func(g Gomega) {
				resp, err := http.Get(a.URL)
				g.Expect(err).ToNot(HaveOccurred())
				resp.Body.Close()
				g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
			}, timeout).Should(Succeed())
			g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))

			cur := waitReady(t, obj)
			g.Expect(cur.Status.Artifact.Revision).To(Equal(a.Revision))
			g.Expect(cur.Status.Artifact.URL).To(Equal(a.URL))
			g.Expect(b.list(ns, obj.Name)).To(Equal(stored))
			ea := getExternalArtifact(g, obj)
			g.Expect(ea.Status.Artifact.Digest).To(Equal(a.Digest))
			if !b.store.Ephemeral() {
				// The new process verifies the stored artifact and defers
				// the upstream check to a spread point of the interval
				// (firstChecks, TestRestartSpreadsFirstChecks): no request
				// at start. A reconcile request is handled at once: a
				// HEAD, whose ETag says nothing changed.
				g.Consistently(func() counts { return up.counts().minus(before) }, 2*time.Second).Should(Equal(counts{}))
				cur = requestReconcile(t, obj)
				g.Expect(up.counts().minus(before)).To(Equal(counts{heads: 1}))
				g.Expect(cur.Status.Artifact).To(Equal(a), "nothing republished")
			} else {
				g.Expect(up.counts().minus(before).gets).To(BeNumerically(">=", 1), "the memory store refetches")
				// The same bytes are stored again under the artifact that
				// is published: not a new revision, so no write to either
				// object and no NewArtifact event (at thousands of
				// sources, every restart republished them all).
				g.Consistently(func(g Gomega) {
					g.Expect(getSource(g, obj).ResourceVersion).To(Equal(ready.ResourceVersion), "no ExternalSource write")
					g.Expect(getExternalArtifact(g, obj).ResourceVersion).To(Equal(ea.ResourceVersion), "no ExternalArtifact write")
					g.Expect(normalEvents(g, ns, obj.Name, "NewArtifact")).To(BeEquivalentTo(1), "one NewArtifact event, from the first store")
				}, 2*time.Second, 100*time.Millisecond).Should(Succeed())
				g.Expect(getSource(g, obj).Status.Artifact).To(Equal(a), "restored, not republished")
			}
		})
	}
}

// TestS3ServerDown: with the S3 server stopped, the source reports a
// storage failure while its ExternalArtifact keeps the last artifact; when
// the server is back it recovers by itself and publishes the change.
func TestS3ServerDown(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "v: 1\n")
	obj := newSourceOn("s3", ns, "s3-down", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	a := waitReady(t, obj).Status.Artifact

	s3Server.Stop()
	restarted := false
	defer func() {
		if !restarted {
			_ = s3Server.Restart()
		}
	}()
	up.set(http.StatusOK, "v: 2\n")
	requestReconcile(t, obj)
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.IsTrue(cur, exsv1beta1.StorageOperationFailedCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(cur, exsv1beta1.StorageOperationFailedCondition)).To(ContainSubstring("connection refused"))
	}, timeout).Should(Succeed())
	g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(a), "the last artifact stays published")

	g.Expect(s3Server.Restart()).To(Succeed())
	restarted = true
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(conditions.Has(cur, exsv1beta1.StorageOperationFailedCondition)).To(BeFalse())
		g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(a.Revision))
	}, 2*timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		ea := getExternalArtifact(g, obj)
		g.Expect(ea.Status.Artifact.Revision).ToNot(Equal(a.Revision))
	}, timeout).Should(Succeed())
}

// TestS3WrongCredentials: a store the S3 server refuses gives a clear
// StorageOperationFailed condition naming the S3 error.
func TestS3WrongCredentials(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "v: 1\n")
	obj := newSourceOn("s3-wrong-credentials", ns, "denied", up.URL)
	writeErrors := storageErrors(g, storage.OperationWrite)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(cur, meta.ReadyCondition)).To(Equal(exsv1beta1.WriteOperationFailedReason))
		g.Expect(conditions.IsTrue(cur, exsv1beta1.StorageOperationFailedCondition)).To(BeTrue())
		g.Expect(conditions.GetMessage(cur, exsv1beta1.StorageOperationFailedCondition)).To(ContainSubstring("SignatureDoesNotMatch"))
		g.Expect(cur.Status.Artifact).To(BeNil())
	}, timeout).Should(Succeed())
	// What ExternalSourceStorageErrors alerts on.
	g.Expect(storageErrors(g, storage.OperationWrite)).To(BeNumerically(">", writeErrors))
}

// storageErrors reads externalsource_storage_operation_errors_total of an
// operation from the registry the controller's metrics are served from.
func storageErrors(g Gomega, operation string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "externalsource_storage_operation_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == operation {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	g.Expect(false).To(BeTrue(), "no externalsource_storage_operation_errors_total{operation=%q}", operation)
	return 0
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
			err := r.reconcileStorage(testCtx, obj, newStepState())
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
