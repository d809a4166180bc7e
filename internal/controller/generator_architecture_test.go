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

// This file is an external test package on purpose: it proves that a new
// generator type needs nothing from the reconciler but its exported API.
package controller_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/controller"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// staticGenerator is a generator type defined in this test alone: it
// returns a fixed document and a version that works as its validator.
type staticGenerator struct {
	mu      sync.Mutex
	data    string
	version string
	calls   int
	// name is the RevisionName and status.release.tag it reports;
	// mismatch makes it fail with a DigestMismatchError.
	name     string
	mismatch bool
}

func (s *staticGenerator) Generate(_ context.Context, req *generator.Request) (*generator.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.mismatch {
		return nil, &generator.DigestMismatchError{Err: errors.New("the bytes are not the declared ones")}
	}
	if req.Previous.ETag == s.version {
		return &generator.Result{NotModified: true, Validators: req.Previous, ChangeDetection: "version"}, nil
	}
	return &generator.Result{
		Body:            io.NopCloser(strings.NewReader(s.data)),
		Validators:      generator.Validators{ETag: s.version},
		ChangeDetection: "version",
		RevisionName:    s.name,
		Record: func(st *exsv1beta1.ExternalSourceStatus) {
			if s.name != "" {
				st.Release = &exsv1beta1.ReleaseStatus{Tag: s.name}
			}
		},
	}, nil
}

func (s *staticGenerator) set(data, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.version = data, version
}

// TestAnotherGeneratorTypeRunsThroughThePipeline registers a generator type
// the controller does not ship and runs the whole reconcile pipeline on it
// (fetch, archive, store, publish) against a fake API client, with no
// change to the reconciler.
func TestAnotherGeneratorTypeRunsThroughThePipeline(t *testing.T) {
	g := NewWithT(t)
	scheme := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))

	static := &staticGenerator{data: "answer: 42\n", version: "1"}
	gens := generator.NewRegistry()
	g.Expect(gens.Register("static", static)).To(Succeed())

	obj := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "static", Namespace: "default", Generation: 1},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 600e9},
			DestinationPath: "answer.yaml",
			Generator:       exsv1beta1.GeneratorSpec{Type: "static"},
		},
	}
	other := obj.DeepCopy()
	other.Name, other.Spec.Generator.Type = "unknown", "ftp"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(obj, other).
		WithStatusSubresource(&exsv1beta1.ExternalSource{}, &sourcev1.ExternalArtifact{}).Build()
	store := memory.New(memory.Options{BaseURL: "http://artifacts.test"})
	r := &controller.ExternalSourceReconciler{
		Client:         c,
		Recorder:       events.NewNopRecorder(),
		APIReader:      c,
		ControllerName: "externalsource-controller",
		Generators:     gens,
		Storage:        store,
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
	}
	reconcile := func(o client.Object) *exsv1beta1.ExternalSource {
		_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		g.Expect(err).ToNot(HaveOccurred())
		out := &exsv1beta1.ExternalSource{}
		g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(o), out)).To(Succeed())
		return out
	}
	// readArtifact returns the file at destinationPath in a stored artifact.
	readArtifact := func(a *meta.Artifact) string {
		rc, _, err := store.Open(context.Background(), a.Path)
		g.Expect(err).ToNot(HaveOccurred())
		defer rc.Close()
		gz, err := gzip.NewReader(rc)
		g.Expect(err).ToNot(HaveOccurred())
		tr := tar.NewReader(gz)
		h, err := tr.Next()
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(h.Name).To(Equal("answer.yaml"))
		b, err := io.ReadAll(tr)
		g.Expect(err).ToNot(HaveOccurred())
		return string(b)
	}

	first := reconcile(obj)
	g.Expect(conditions.IsReady(first)).To(BeTrue(), "%v", first.Status.Conditions)
	g.Expect(first.Status.Artifact).ToNot(BeNil())
	g.Expect(first.Status.LastHandledETag).To(Equal("1"))
	g.Expect(first.Status.ChangeDetection).To(Equal("version"))
	g.Expect(readArtifact(first.Status.Artifact)).To(Equal("answer: 42\n"))
	ea := &sourcev1.ExternalArtifact{}
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), ea)).To(Succeed())
	g.Expect(ea.Status.Artifact).To(Equal(first.Status.Artifact))

	// Unchanged: the generator is asked with its validator and says so.
	again := reconcile(obj)
	g.Expect(again.Status.Artifact).To(Equal(first.Status.Artifact))
	g.Expect(static.calls).To(Equal(2))

	g.Expect(first.Status.Artifact.Revision).To(HavePrefix("latest@sha256:"))
	g.Expect(first.Status.Release).To(BeNil())

	// Changed: a new revision, published, named by the generator, with
	// the status the generator records.
	static.set("answer: 43\n", "2")
	static.name = "v2.0.0"
	changed := reconcile(obj)
	g.Expect(changed.Status.Artifact.Revision).To(Equal("v2.0.0@" + changed.Status.Artifact.Digest))
	g.Expect(changed.Status.Release).To(Equal(&exsv1beta1.ReleaseStatus{Tag: "v2.0.0"}))
	g.Expect(readArtifact(changed.Status.Artifact)).To(Equal("answer: 43\n"))
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), ea)).To(Succeed())
	g.Expect(ea.Status.Artifact).To(Equal(changed.Status.Artifact))

	// A digest mismatch stalls with its reason; the artifact stays.
	static.mismatch = true
	obj.Generation = 2
	latest := &exsv1beta1.ExternalSource{}
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), latest)).To(Succeed())
	latest.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now"}
	g.Expect(c.Update(context.Background(), latest)).To(Succeed())
	mism := reconcile(obj)
	g.Expect(conditions.IsStalled(mism)).To(BeTrue(), "%v", mism.Status.Conditions)
	g.Expect(conditions.GetReason(mism, meta.ReadyCondition)).To(Equal(exsv1beta1.DigestMismatchReason))
	g.Expect(mism.Status.Artifact).To(Equal(changed.Status.Artifact))

	// A type nobody registered is Stalled, naming the field.
	stalled := reconcile(other)
	g.Expect(conditions.IsStalled(stalled)).To(BeTrue())
	g.Expect(conditions.GetReason(stalled, meta.ReadyCondition)).To(Equal(exsv1beta1.UnsupportedGeneratorReason))
	g.Expect(conditions.GetMessage(stalled, meta.ReadyCondition)).To(ContainSubstring(`spec.generator.type: "ftp" has no implementation`))
}

// filesGenerator returns several files packed in a tar (Result.Archive), as
// a generator that selects several upstream files does.
type filesGenerator struct{ files map[string]string }

func (f *filesGenerator) Generate(context.Context, *generator.Request) (*generator.Result, error) {
	var buf strings.Builder
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"crds.yaml", "install.yaml"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(f.files[n])), Mode: 0o644}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, f.files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &generator.Result{Body: io.NopCloser(strings.NewReader(buf.String())), Archive: generator.ArchiveTar, RevisionName: "v1.0.0"}, nil
}

// TestGeneratorArchiveOfSeveralFiles: the files of a generator's archive
// are published under spec.destinationPath; spec.extract and a digest pin,
// which take one fetched file, are refused naming the field, and nothing
// is published.
func TestGeneratorArchiveOfSeveralFiles(t *testing.T) {
	files := map[string]string{"crds.yaml": "kind: CustomResourceDefinition\n", "install.yaml": "kind: Deployment\n"}
	tests := []struct {
		name    string
		mutate  func(*exsv1beta1.ExternalSourceSpec)
		wantErr string
	}{
		{name: "files under destinationPath"},
		{name: "extract", mutate: func(s *exsv1beta1.ExternalSourceSpec) { s.Extract = &exsv1beta1.ExtractSpec{Format: "tar"} },
			wantErr: "spec.extract: the files generator returned several files"},
		{name: "digest pin", mutate: func(s *exsv1beta1.ExternalSourceSpec) {
			s.Verify = &exsv1beta1.VerifySpec{Digest: "sha256:" + strings.Repeat("0", 64)}
		}, wantErr: "spec.verify.digest: the files generator returned several files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			scheme := runtime.NewScheme()
			utilruntime.Must(corev1.AddToScheme(scheme))
			utilruntime.Must(sourcev1.AddToScheme(scheme))
			utilruntime.Must(exsv1beta1.AddToScheme(scheme))
			gens := generator.NewRegistry()
			g.Expect(gens.Register("files", &filesGenerator{files: files})).To(Succeed())
			obj := &exsv1beta1.ExternalSource{
				ObjectMeta: metav1.ObjectMeta{Name: "files", Namespace: "default", Generation: 1},
				Spec: exsv1beta1.ExternalSourceSpec{Interval: metav1.Duration{Duration: 600e9}, DestinationPath: "deploy",
					Generator: exsv1beta1.GeneratorSpec{Type: "files"}},
			}
			if tt.mutate != nil {
				tt.mutate(&obj.Spec)
			}
			c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(obj).
				WithStatusSubresource(&exsv1beta1.ExternalSource{}, &sourcev1.ExternalArtifact{}).Build()
			store := memory.New(memory.Options{BaseURL: "http://artifacts.test"})
			r := &controller.ExternalSourceReconciler{Client: c, Recorder: events.NewNopRecorder(), APIReader: c,
				ControllerName: "externalsource-controller", Generators: gens, Storage: store, MaxDataSize: 1 << 20,
				Retention: storage.DefaultRetention, TempDir: t.TempDir()}
			_, _ = r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
			got := &exsv1beta1.ExternalSource{}
			g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), got)).To(Succeed())
			if tt.wantErr != "" {
				g.Expect(conditions.IsStalled(got)).To(BeTrue(), "%v", got.Status.Conditions)
				g.Expect(conditions.GetReason(got, meta.ReadyCondition)).To(Equal(exsv1beta1.InvalidSpecReason))
				g.Expect(conditions.GetMessage(got, meta.ReadyCondition)).To(ContainSubstring(tt.wantErr))
				g.Expect(got.Status.Artifact).To(BeNil())
				return
			}
			g.Expect(conditions.IsReady(got)).To(BeTrue(), "%v", got.Status.Conditions)
			g.Expect(got.Status.Artifact.Revision).To(HavePrefix("v1.0.0@sha256:"))
			rc, _, err := store.Open(context.Background(), got.Status.Artifact.Path)
			g.Expect(err).ToNot(HaveOccurred())
			defer rc.Close()
			gz, err := gzip.NewReader(rc)
			g.Expect(err).ToNot(HaveOccurred())
			tr := tar.NewReader(gz)
			published := map[string]string{}
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				g.Expect(err).ToNot(HaveOccurred())
				if h.Typeflag == tar.TypeReg {
					b, err := io.ReadAll(tr)
					g.Expect(err).ToNot(HaveOccurred())
					published[h.Name] = string(b)
				}
			}
			g.Expect(published).To(Equal(map[string]string{"deploy/crds.yaml": files["crds.yaml"], "deploy/install.yaml": files["install.yaml"]}))
		})
	}
}
