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
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/testutil/releaseapi"
)

// TestReleaseUnchangedCostsOneRequest counts what the release type costs
// the provider per check while the selected release is unchanged, through
// the whole reconciler: one request for the list (a 304 where the provider
// gives an ETag; the release's fingerprint where it gives none, as Gitea)
// and no download, from the first check after a new revision on. The
// provider is the release-API stand-in (internal/testutil/releaseapi).
func TestReleaseUnchangedCostsOneRequest(t *testing.T) {
	for _, noETag := range []bool{false, true} {
		t.Run(map[bool]string{false: "etag", true: "no-etag"}[noETag], func(t *testing.T) {
			g := NewWithT(t)
			body := []byte("kind: List # v1.2.0\n")
			s := releaseapi.New(t, releaseapi.Options{NoETag: noETag, Releases: []releaseapi.Release{{Tag: "v1.2.0",
				Assets: map[string][]byte{"install.yaml": body, "checksums.txt": []byte(releaseapi.Sum(body) + "  install.yaml\n")}}}})
			ns := newNamespace(t)
			src := newSource(ns, "rel", "")
			src.Spec.Interval = metav1.Duration{Duration: time.Hour}
			src.Spec.DestinationPath = "install.yaml"
			src.Spec.Generator = exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeRelease, Release: &exsv1beta1.ReleaseGeneratorSpec{
				Provider: exsv1beta1.ReleaseProviderGitHub, URL: s.API.URL, Repository: s.Repository(),
				Version: exsv1beta1.ReleaseVersion{SemVer: ">=1.0.0 <2.0.0"}, Assets: []string{"install.yaml"}}}
			g.Expect(k8sClient.Create(testCtx, src)).To(Succeed())
			first := waitReady(t, src)
			g.Expect(first.Status.Artifact.Revision).To(HavePrefix("v1.2.0@sha256:"))
			before := s.Counts()
			g.Expect(before.Lists).To(Equal(1))

			const checks = 3
			for range checks {
				cur := requestReconcile(t, src)
				g.Expect(cur.Status.Artifact).To(Equal(first.Status.Artifact))
			}
			after := s.Counts()
			g.Expect(after.Lists-before.Lists).To(Equal(checks), "one list request per check")
			g.Expect(after.Downloads-before.Downloads).To(Equal(0), "no download while the release is unchanged")
		})
	}
}

// TestUpdateOfAnUnchangedObjectKeepsItsGeneration: a Go client that reads
// an object and writes it back unchanged but for an annotation (as a
// reconcile request by Update does) makes no new generation, whatever the
// API server defaulted. A default spelled otherwise than Go writes it
// (spec.timeout "60s" read back as "1m0s") did, and the next check was a
// full fetch.
func TestUpdateOfAnUnchangedObjectKeepsItsGeneration(t *testing.T) {
	tests := []struct {
		name string
		gen  exsv1beta1.GeneratorSpec
	}{
		{name: "http", gen: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP,
			HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: "http://127.0.0.1:1/"}}},
		{name: "release", gen: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeRelease, Release: &exsv1beta1.ReleaseGeneratorSpec{
			Provider: exsv1beta1.ReleaseProviderGitea, URL: "http://127.0.0.1:1/api/v1", Repository: "o/r",
			Version: exsv1beta1.ReleaseVersion{SemVer: ">=1.0.0"}, Assets: []string{"install.yaml"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			src := newSource(newNamespace(t), "keep", "")
			src.Labels = map[string]string{backendLabel: "none"} // no manager reconciles it
			src.Spec.Generator = tt.gen
			g.Expect(k8sClient.Create(testCtx, src)).To(Succeed())
			obj := &exsv1beta1.ExternalSource{}
			g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(src), obj)).To(Succeed())
			g.Expect(obj.Generation).To(Equal(int64(1)))
			obj.Annotations = map[string]string{"example.com/touched": "yes"}
			g.Expect(k8sClient.Update(testCtx, obj)).To(Succeed())
			g.Expect(obj.Generation).To(Equal(int64(1)), "spec: %+v", obj.Spec)
		})
	}
}
