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

package release

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/redact"
	"github.com/externalsource/externalsource-controller/internal/testutil/releaseapi"
)

const testToken = "tok-3f9a1c77e2b54d08"

// sum is the hex sha256 of a string.
func sum(b string) string { return releaseapi.Sum([]byte(b)) }

// newStandIn starts the release-API stand-in (internal/testutil/releaseapi):
// GitHub's or GitLab's documented endpoints, not the real services.
func newStandIn(t *testing.T, opts releaseapi.Options) *releaseapi.Server {
	t.Helper()
	return releaseapi.New(t, opts)
}

// newGen is the generator as the controller builds it, with loopback
// allowed (the stand-ins listen there).
func newGen() *Generator {
	h := httpgen.New(httpgen.Options{URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	return New(Options{Sender: h.Sender()})
}

func sourceFor(s *releaseapi.Server, mutate func(*exsv1beta1.ReleaseGeneratorSpec)) *exsv1beta1.ExternalSource {
	spec := &exsv1beta1.ReleaseGeneratorSpec{Provider: exsv1beta1.ReleaseProviderGitHub, URL: s.API.URL, Repository: s.Repository(),
		Version: exsv1beta1.ReleaseVersion{SemVer: ">=1.0.0 <2.0.0"}, Assets: []string{"install.yaml"}, Checksums: "auto"}
	if s.GitLab() {
		spec.Provider = exsv1beta1.ReleaseProviderGitLab
	}
	if mutate != nil {
		mutate(spec)
	}
	return &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Spec: exsv1beta1.ExternalSourceSpec{Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeRelease, Release: spec}}}
}

func withToken(spec *exsv1beta1.ReleaseGeneratorSpec) {
	spec.SecretRef = &meta.LocalObjectReference{Name: "tok"}
}

func request(obj *exsv1beta1.ExternalSource, prev generator.Validators) *generator.Request {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tok", Namespace: "ns"}, Data: map[string][]byte{"token": []byte(testToken)}}
	return &generator.Request{Source: obj, Reader: fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(sec).Build(),
		Previous: prev, Secrets: &redact.Set{}}
}

func read(g Gomega, res *generator.Result) string {
	g.Expect(res.Body).ToNot(BeNil())
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	g.Expect(err).ToNot(HaveOccurred())
	return string(b)
}

// fiveReleases: newest first, as the providers list them; 1.3.0-rc.1 is a
// prerelease, 2.0.0 is outside the tests' range.
func fiveReleases(digest string) []releaseapi.Release {
	var out []releaseapi.Release
	for _, tag := range []string{"v2.0.0", "v1.3.0-rc.1", "v1.1.0", "v1.2.0", "v0.9.0"} {
		body := "kind: List # " + tag + "\n"
		out = append(out, releaseapi.Release{Tag: tag, Prerelease: strings.Contains(tag, "-"),
			Assets:  map[string][]byte{"install.yaml": []byte(body), "checksums.txt": []byte(sum(body) + "  install.yaml\n")},
			Digests: map[string]string{"install.yaml": digest}})
	}
	return out
}

func TestSemverSelectionAcrossPages(t *testing.T) {
	for _, gitlab := range []bool{false, true} {
		t.Run(fmt.Sprintf("gitlab=%v", gitlab), func(t *testing.T) {
			g := NewWithT(t)
			// Two per page: v1.2.0 (the highest in range) is on page 2,
			// behind v1.1.0, and the prerelease is skipped.
			s := newStandIn(t, releaseapi.Options{GitLab: gitlab, PerPage: 2, Releases: fiveReleases("right")})
			req := request(sourceFor(s, withToken), generator.Validators{})
			res, err := newGen().Generate(context.Background(), req)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
			g.Expect(res.RevisionName).To(Equal("v1.2.0"))
			g.Expect(res.Validators.ETag).To(Equal(s.ETag()))
			var st exsv1beta1.ExternalSourceStatus
			res.Record(&st)
			g.Expect(st.Release).ToNot(BeNil())
			g.Expect(st.Release.Tag).To(Equal("v1.2.0"))
			g.Expect(st.Release.URL).To(HaveSuffix("v1.2.0"))
			g.Expect(st.Release.PublishedAt.UTC().Format(time.RFC3339)).To(Equal("2026-01-02T03:04:05Z"))
			g.Expect(s.Counts().Lists).To(Equal(3), "all three pages read")

			// With prereleases, the release candidate is the highest.
			req = request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) { spec.Prereleases = true }), generator.Validators{})
			res, err = newGen().Generate(context.Background(), req)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.RevisionName).To(Equal("v1.3.0-rc.1"))
			res.Body.Close()
		})
	}
}

// TestUnchangedListIsOneConditionalRequest: an unchanged release list
// costs one request and no download, with the provider's ETag (GitHub's
// 304) or without one (Gitea's list: the selected release's fingerprint);
// a replaced asset is downloaded again.
func TestUnchangedListIsOneConditionalRequest(t *testing.T) {
	tests := []struct {
		name      string
		noETag    bool
		detection string
	}{
		{name: "ETag and 304", detection: generator.ChangeDetectionConditionalGET},
		{name: "no ETag: the release's fingerprint", noETag: true, detection: ChangeDetectionReleaseList},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStandIn(t, releaseapi.Options{Releases: fiveReleases("right"), NoETag: tt.noETag})
			gen := newGen()
			res, err := gen.Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
			g.Expect(err).ToNot(HaveOccurred())
			res.Body.Close()
			first := res.Validators
			g.Expect(first.ETag).ToNot(BeEmpty())
			before := s.Counts()

			res, err = gen.Generate(context.Background(), request(sourceFor(s, nil), first))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.NotModified).To(BeTrue())
			g.Expect(res.ChangeDetection).To(Equal(tt.detection))
			g.Expect(res.Validators).To(Equal(first))
			after := s.Counts()
			g.Expect(after.Lists-before.Lists).To(Equal(1), "one request for an unchanged list")
			g.Expect(after.Downloads-before.Downloads).To(Equal(0), "no download for an unchanged list")
			if tt.noETag {
				g.Expect(after.NotModified).To(Equal(0))
				// A fingerprint is ours: never sent as If-None-Match.
				g.Expect(s.IfNoneMatch()).To(HaveEach(BeEmpty()))
			} else {
				g.Expect(after.NotModified).To(Equal(1))
				g.Expect(s.IfNoneMatch()).To(Equal([]string{"", first.ETag}))
			}

			// The selected release's asset is replaced (another upload):
			// downloaded again.
			rels := fiveReleases("right")
			rels[3].Assets["install.yaml"] = []byte("kind: List # v1.2.0 again\n")
			rels[3].Assets["checksums.txt"] = []byte(sum("kind: List # v1.2.0 again\n") + "  install.yaml\n")
			s.SetReleases(rels)
			res, err = gen.Generate(context.Background(), request(sourceFor(s, nil), first))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.NotModified).To(BeFalse())
			g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0 again\n"))
			g.Expect(res.Validators.ETag).ToNot(Equal(first.ETag))
		})
	}
}

func TestRateLimitRequeuesAtReset(t *testing.T) {
	for _, gitlab := range []bool{false, true} {
		t.Run(fmt.Sprintf("gitlab=%v", gitlab), func(t *testing.T) {
			g := NewWithT(t)
			reset := time.Now().Add(90 * time.Second)
			s := newStandIn(t, releaseapi.Options{GitLab: gitlab, Releases: fiveReleases("right"), RateLimitReset: reset})
			_, err := newGen().Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
			g.Expect(err).To(HaveOccurred())
			wait, ok := generator.RetryAfter(err)
			g.Expect(ok).To(BeTrue(), "a rate limit is a wait, not a backoff: %v", err)
			g.Expect(wait).To(BeNumerically("~", time.Until(reset), 3*time.Second))
			g.Expect(err.Error()).To(ContainSubstring("rate limited until"))
		})
	}
}

func TestGitHubDigest(t *testing.T) {
	tests := []struct {
		name     string
		digest   string
		mismatch bool
	}{
		{name: "right digest", digest: "right"},
		{name: "wrong digest", digest: "sha256:" + strings.Repeat("ab", 32), mismatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rels := fiveReleases(tt.digest)
			// The checksums asset agrees with the bytes: the digest field
			// alone decides.
			s := newStandIn(t, releaseapi.Options{Releases: rels})
			res, err := newGen().Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
			if !tt.mismatch {
				g.Expect(err).ToNot(HaveOccurred())
				res.Body.Close()
				return
			}
			var dm *generator.DigestMismatchError
			g.Expect(errors.As(err, &dm)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring("the provider's asset digest"))
			g.Expect(err.Error()).To(ContainSubstring("install.yaml"))
		})
	}
}

func TestChecksumsAsset(t *testing.T) {
	tests := []struct {
		name      string
		checksums string
		mismatch  bool
	}{
		{name: "matching line", checksums: ""},
		{name: "disagreeing line", checksums: strings.Repeat("cd", 32) + "  install.yaml\n", mismatch: true},
		{name: "no line for the asset", checksums: strings.Repeat("cd", 32) + "  other.yaml\n", mismatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rels := fiveReleases("")
			if tt.checksums != "" {
				for i := range rels {
					rels[i].Assets["checksums.txt"] = []byte(tt.checksums)
				}
			}
			s := newStandIn(t, releaseapi.Options{GitLab: true, Releases: rels})
			res, err := newGen().Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
			if !tt.mismatch {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
				return
			}
			var dm *generator.DigestMismatchError
			g.Expect(errors.As(err, &dm)).To(BeTrue(), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring("checksums.txt"))

			// checksums: none publishes it unverified, explicitly.
			res, err = newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
				spec.Checksums = exsv1beta1.ReleaseChecksumsNone
			}), generator.Validators{}))
			g.Expect(err).ToNot(HaveOccurred())
			res.Body.Close()
		})
	}
}

func TestCredentialsStayOnTheAPIOrigin(t *testing.T) {
	for _, gitlab := range []bool{false, true} {
		t.Run(fmt.Sprintf("gitlab=%v", gitlab), func(t *testing.T) {
			g := NewWithT(t)
			s := newStandIn(t, releaseapi.Options{GitLab: gitlab, Releases: fiveReleases("right")})
			res, err := newGen().Generate(context.Background(), request(sourceFor(s, withToken), generator.Validators{}))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
			apiAuth, cdnAuth := s.Auth()
			g.Expect(apiAuth).ToNot(BeEmpty())
			for _, a := range apiAuth {
				g.Expect(a).To(ContainSubstring(testToken), "the API gets the token")
			}
			g.Expect(cdnAuth).ToNot(BeEmpty())
			for _, a := range cdnAuth {
				g.Expect(a).To(BeEmpty(), "the other origin never gets the token")
			}
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusNotFound} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			g := NewWithT(t)
			// The stand-in quotes the credentials it got in its error body.
			s := newStandIn(t, releaseapi.Options{Releases: fiveReleases("right"), FailWith: code})
			_, err := newGen().Generate(context.Background(), request(sourceFor(s, withToken), generator.Validators{}))
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring("bad credentials"))
			g.Expect(err.Error()).ToNot(ContainSubstring(testToken))
			g.Expect(generator.IsAuthError(err)).To(Equal(code == http.StatusUnauthorized))
		})
	}
}

func TestAssetPatterns(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		wantErr string
	}{
		{name: "one match", pattern: "install.*"},
		{name: "no match", pattern: "*.tgz", wantErr: `pattern "*.tgz" matches no asset of release v1.2.0; its assets: `},
		{name: "two matches", pattern: "*.*", wantErr: `pattern "*.*" matches 2 assets of release v1.2.0`},
		{name: "bad pattern", pattern: "[", wantErr: `pattern "["`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStandIn(t, releaseapi.Options{Releases: fiveReleases("right")})
			res, err := newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
				spec.Assets = []string{tt.pattern}
			}), generator.Validators{}))
			if tt.wantErr == "" {
				g.Expect(err).ToNot(HaveOccurred())
				res.Body.Close()
				return
			}
			var inv *generator.InvalidSpecError
			g.Expect(errors.As(err, &inv)).To(BeTrue(), "%v", err)
			g.Expect(inv.Field).To(Equal("spec.generator.release.assets"))
			g.Expect(err.Error()).To(ContainSubstring(tt.wantErr))
			if tt.name == "no match" {
				g.Expect(err.Error()).To(And(ContainSubstring(`"install.yaml"`), ContainSubstring(`"checksums.txt"`)))
			}
		})
	}
}

func TestExactTagAndLatest(t *testing.T) {
	g := NewWithT(t)
	s := newStandIn(t, releaseapi.Options{PerPage: 2, Releases: fiveReleases("right")})
	res, err := newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
		spec.Version = exsv1beta1.ReleaseVersion{Tag: "v0.9.0"}
	}), generator.Validators{}))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(res.RevisionName).To(Equal("v0.9.0"))
	res.Body.Close()

	lists := s.Counts().Lists
	res, err = newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
		spec.Version = exsv1beta1.ReleaseVersion{Latest: true}
	}), generator.Validators{}))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(res.RevisionName).To(Equal("v2.0.0"))
	res.Body.Close()
	g.Expect(s.Counts().Lists-lists).To(Equal(1), "latest is on the first page")
}

func TestAssetOverTheSizeLimit(t *testing.T) {
	tests := []struct {
		name    string
		max     int64
		wantErr bool
	}{
		{name: "at the limit", max: int64(len("kind: List # v1.2.0\n"))},
		{name: "one byte over", max: int64(len("kind: List # v1.2.0\n")) - 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := newStandIn(t, releaseapi.Options{Releases: fiveReleases("right")})
			h := httpgen.New(httpgen.Options{URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
			dir := t.TempDir()
			gen := New(Options{Sender: h.Sender(), MaxSize: tt.max, TempDir: dir})
			res, err := gen.Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
			if tt.wantErr {
				g.Expect(err).To(MatchError(ContainSubstring("over the maximum of")))
			} else {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
			}
			// Nothing is left in the spool directory either way.
			left, err := os.ReadDir(dir)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(left).To(BeEmpty())
		})
	}
}

// TestSeveralAssets: several patterns, each matching one asset, are
// verified one by one and packed into one tar (Result.Archive) that the
// reconciler unpacks; patterns selecting the same asset are refused, and
// one asset that disagrees with the checksums fails the whole fetch.
func TestSeveralAssets(t *testing.T) {
	files := map[string]string{"install.yaml": "kind: List # install\n", "crds.yaml": "kind: List # crds\n"}
	sums := sum(files["install.yaml"]) + "  install.yaml\n" + sum(files["crds.yaml"]) + "  crds.yaml\n"
	tests := []struct {
		name      string
		patterns  []string
		checksums string
		wantErr   string
		mismatch  bool
	}{
		{name: "two patterns", patterns: []string{"install.yaml", "crds.*"}, checksums: sums},
		{name: "same asset twice", patterns: []string{"install.yaml", "install.*"}, checksums: sums,
			wantErr: `patterns "install.yaml" and "install.*" both match asset "install.yaml"`},
		{name: "one pattern matches nothing", patterns: []string{"install.yaml", "*.tgz"}, checksums: sums,
			wantErr: `pattern "*.tgz" matches no asset`},
		{name: "one asset disagrees", patterns: []string{"install.yaml", "crds.yaml"},
			checksums: sum(files["install.yaml"]) + "  install.yaml\n" + strings.Repeat("ab", 32) + "  crds.yaml\n", mismatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rel := releaseapi.Release{Tag: "v1.2.0", Assets: map[string][]byte{"checksums.txt": []byte(tt.checksums)}}
			for n, b := range files {
				rel.Assets[n] = []byte(b)
			}
			s := newStandIn(t, releaseapi.Options{GitLab: true, Releases: []releaseapi.Release{rel}})
			dir := t.TempDir()
			h := httpgen.New(httpgen.Options{URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
			gen := New(Options{Sender: h.Sender(), TempDir: dir})
			res, err := gen.Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
				spec.Assets = tt.patterns
			}), generator.Validators{}))
			defer func() {
				left, err := os.ReadDir(dir)
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(left).To(BeEmpty(), "nothing left in the spool directory")
			}()
			switch {
			case tt.mismatch:
				var dm *generator.DigestMismatchError
				g.Expect(errors.As(err, &dm)).To(BeTrue(), "%v", err)
				g.Expect(err.Error()).To(ContainSubstring("crds.yaml"))
				return
			case tt.wantErr != "":
				var inv *generator.InvalidSpecError
				g.Expect(errors.As(err, &inv)).To(BeTrue(), "%v", err)
				g.Expect(inv.Field).To(Equal("spec.generator.release.assets"))
				g.Expect(err.Error()).To(ContainSubstring(tt.wantErr))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.Archive).To(Equal(generator.ArchiveTar))
			g.Expect(res.RevisionName).To(Equal("v1.2.0"))
			got := map[string]string{}
			tr := tar.NewReader(res.Body)
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				g.Expect(err).ToNot(HaveOccurred())
				b, err := io.ReadAll(tr)
				g.Expect(err).ToNot(HaveOccurred())
				got[hdr.Name] = string(b)
			}
			g.Expect(got).To(Equal(files))
			g.Expect(res.Body.Close()).To(Succeed())
		})
	}
}
