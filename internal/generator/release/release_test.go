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
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
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
)

const testToken = "tok-3f9a1c77e2b54d08"

// standInRelease is one release a stand-in upstream serves.
type standInRelease struct {
	tag        string
	prerelease bool
	draft      bool
	// assets by name; digests: the GitHub digest field to announce
	// ("" none; "right" the bytes' sha256; anything else verbatim).
	assets  map[string]string
	digests map[string]string
}

// standIn is a test upstream implementing the documented release
// endpoints of GitHub (GET /repos/{owner}/{repo}/releases, asset download
// with Accept: application/octet-stream) or GitLab (GET
// /projects/{id}/releases, release links): an ETag answered with 304,
// Link pagination, rate-limit headers, and asset downloads redirected to a
// second server (a stand-in CDN on another origin). It is not GitHub or
// GitLab; the real-server tests (Gitea) come with the next part.
type standIn struct {
	gitlab   bool
	releases []standInRelease
	perPage  int
	// rateLimitReset, when set, answers every list request 403 (GitHub) or
	// 429 (GitLab) with the remaining quota at 0 and this reset.
	rateLimitReset time.Time
	// echoToken makes error answers quote the token they were sent.
	failWith int

	api, cdn *httptest.Server

	mu        sync.Mutex
	listCalls int
	notMod    int
	downloads int
	apiAuth   []string // credentials seen by the API, per request
	cdnAuth   []string // credentials seen by the CDN, per request
}

func (s *standIn) etag() string {
	h := sha256.New()
	for _, r := range s.releases {
		fmt.Fprintln(h, r.tag, len(r.assets))
	}
	return `"` + hex.EncodeToString(h.Sum(nil))[:16] + `"`
}

func sum(b string) string { h := sha256.Sum256([]byte(b)); return hex.EncodeToString(h[:]) }

func newStandIn(t *testing.T, s *standIn) *standIn {
	t.Helper()
	if s.perPage == 0 {
		s.perPage = 100
	}
	s.cdn = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.cdnAuth = append(s.cdnAuth, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
		s.downloads++
		s.mu.Unlock()
		tag, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/dl/"), "/")
		for _, rel := range s.releases {
			if rel.tag == tag {
				if body, ok := rel.assets[name]; ok {
					_, _ = io.WriteString(w, body)
					return
				}
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.cdn.Close)
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.api.Close)
	return s
}

func (s *standIn) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiAuth = append(s.apiAuth, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
	if s.failWith != 0 {
		w.WriteHeader(s.failWith)
		fmt.Fprintf(w, `{"message":"bad credentials %s"}`, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
		return
	}
	// GitHub's asset API URL: redirects to the CDN.
	if rest, ok := strings.CutPrefix(r.URL.Path, "/repos/o/r/releases/assets/"); ok {
		s.downloads++
		http.Redirect(w, r, s.cdn.URL+"/dl/"+rest, http.StatusFound)
		return
	}
	listPath := "/repos/o/r/releases"
	if s.gitlab {
		listPath = "/projects/g/sub/r/releases" // %2F decoded by net/http
	}
	if r.URL.Path != listPath {
		http.NotFound(w, r)
		return
	}
	s.listCalls++
	if !s.rateLimitReset.IsZero() {
		p := "X-RateLimit-"
		code := http.StatusForbidden
		if s.gitlab {
			p, code = "RateLimit-", http.StatusTooManyRequests
		}
		w.Header().Set(p+"Remaining", "0")
		w.Header().Set(p+"Reset", strconv.FormatInt(s.rateLimitReset.Unix(), 10))
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"message":"API rate limit exceeded"}`)
		return
	}
	etag := s.etag()
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		s.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	from, to := (page-1)*s.perPage, min(page*s.perPage, len(s.releases))
	if to < len(s.releases) {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.api.URL, r.URL.Path, q.Encode()))
	}
	var out []any
	for _, rel := range s.releases[from:max(from, to)] {
		out = append(out, s.render(rel))
	}
	_ = json.NewEncoder(w).Encode(out)
}

// render writes a release as the provider's JSON.
func (s *standIn) render(rel standInRelease) map[string]any {
	var assets []map[string]any
	for name, body := range rel.assets {
		if s.gitlab {
			// A release link pointing straight at another origin.
			assets = append(assets, map[string]any{"name": name, "url": s.cdn.URL + "/dl/" + rel.tag + "/" + name})
			continue
		}
		a := map[string]any{"name": name, "url": s.api.URL + "/repos/o/r/releases/assets/" + rel.tag + "/" + name,
			"browser_download_url": "https://github.invalid/o/r/releases/download/" + rel.tag + "/" + name}
		switch d := rel.digests[name]; d {
		case "":
		case "right":
			a["digest"] = "sha256:" + sum(body)
		default:
			a["digest"] = d
		}
		assets = append(assets, a)
	}
	if s.gitlab {
		return map[string]any{"tag_name": rel.tag, "released_at": "2026-01-02T03:04:05Z",
			"_links": map[string]any{"self": s.api.URL + "/g/sub/r/-/releases/" + rel.tag}, "assets": map[string]any{"links": assets}}
	}
	return map[string]any{"tag_name": rel.tag, "draft": rel.draft, "prerelease": rel.prerelease, "published_at": "2026-01-02T03:04:05Z",
		"html_url": s.api.URL + "/o/r/releases/tag/" + rel.tag, "assets": assets}
}

func (s *standIn) counts() (lists, notMod, downloads int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listCalls, s.notMod, s.downloads
}

// newGen is the generator as the controller builds it, with loopback
// allowed (the stand-ins listen there).
func newGen() *Generator {
	h := httpgen.New(httpgen.Options{URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	return New(Options{Sender: h.Sender()})
}

func sourceFor(s *standIn, mutate func(*exsv1beta1.ReleaseGeneratorSpec)) *exsv1beta1.ExternalSource {
	spec := &exsv1beta1.ReleaseGeneratorSpec{Provider: exsv1beta1.ReleaseProviderGitHub, URL: s.api.URL, Repository: "o/r",
		Version: exsv1beta1.ReleaseVersion{SemVer: ">=1.0.0 <2.0.0"}, Assets: []string{"install.yaml"}, Checksums: "auto"}
	if s.gitlab {
		spec.Provider, spec.Repository = exsv1beta1.ReleaseProviderGitLab, "g/sub/r"
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
func fiveReleases(digest string) []standInRelease {
	var out []standInRelease
	for _, tag := range []string{"v2.0.0", "v1.3.0-rc.1", "v1.1.0", "v1.2.0", "v0.9.0"} {
		body := "kind: List # " + tag + "\n"
		out = append(out, standInRelease{tag: tag, prerelease: strings.Contains(tag, "-"),
			assets:  map[string]string{"install.yaml": body, "checksums.txt": sum(body) + "  install.yaml\n"},
			digests: map[string]string{"install.yaml": digest}})
	}
	return out
}

func TestSemverSelectionAcrossPages(t *testing.T) {
	for _, gitlab := range []bool{false, true} {
		t.Run(fmt.Sprintf("gitlab=%v", gitlab), func(t *testing.T) {
			g := NewWithT(t)
			// Two per page: v1.2.0 (the highest in range) is on page 2,
			// behind v1.1.0, and the prerelease is skipped.
			s := newStandIn(t, &standIn{gitlab: gitlab, perPage: 2, releases: fiveReleases("right")})
			req := request(sourceFor(s, withToken), generator.Validators{})
			res, err := newGen().Generate(context.Background(), req)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
			g.Expect(res.RevisionName).To(Equal("v1.2.0"))
			g.Expect(res.Validators.ETag).To(Equal(s.etag()))
			var st exsv1beta1.ExternalSourceStatus
			res.Record(&st)
			g.Expect(st.Release).ToNot(BeNil())
			g.Expect(st.Release.Tag).To(Equal("v1.2.0"))
			g.Expect(st.Release.URL).To(HaveSuffix("v1.2.0"))
			g.Expect(st.Release.PublishedAt.UTC().Format(time.RFC3339)).To(Equal("2026-01-02T03:04:05Z"))
			lists, _, _ := s.counts()
			g.Expect(lists).To(Equal(3), "all three pages read")

			// With prereleases, the release candidate is the highest.
			req = request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) { spec.Prereleases = true }), generator.Validators{})
			res, err = newGen().Generate(context.Background(), req)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.RevisionName).To(Equal("v1.3.0-rc.1"))
			res.Body.Close()
		})
	}
}

func TestUnchangedListIsOneConditionalRequest(t *testing.T) {
	g := NewWithT(t)
	s := newStandIn(t, &standIn{releases: fiveReleases("right")})
	gen := newGen()
	res, err := gen.Generate(context.Background(), request(sourceFor(s, nil), generator.Validators{}))
	g.Expect(err).ToNot(HaveOccurred())
	res.Body.Close()
	lists, _, downloads := s.counts()

	res, err = gen.Generate(context.Background(), request(sourceFor(s, nil), res.Validators))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(res.NotModified).To(BeTrue())
	g.Expect(res.ChangeDetection).To(Equal(generator.ChangeDetectionConditionalGET))
	g.Expect(res.Validators.ETag).To(Equal(s.etag()))
	lists2, notMod, downloads2 := s.counts()
	g.Expect(lists2-lists).To(Equal(1), "one request for an unchanged list")
	g.Expect(notMod).To(Equal(1))
	g.Expect(downloads2-downloads).To(Equal(0), "no download for an unchanged list")
}

func TestRateLimitRequeuesAtReset(t *testing.T) {
	for _, gitlab := range []bool{false, true} {
		t.Run(fmt.Sprintf("gitlab=%v", gitlab), func(t *testing.T) {
			g := NewWithT(t)
			reset := time.Now().Add(90 * time.Second)
			s := newStandIn(t, &standIn{gitlab: gitlab, releases: fiveReleases("right"), rateLimitReset: reset})
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
			s := newStandIn(t, &standIn{releases: rels})
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
					rels[i].assets["checksums.txt"] = tt.checksums
				}
			}
			s := newStandIn(t, &standIn{gitlab: true, releases: rels})
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
			s := newStandIn(t, &standIn{gitlab: gitlab, releases: fiveReleases("right")})
			res, err := newGen().Generate(context.Background(), request(sourceFor(s, withToken), generator.Validators{}))
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(read(g, res)).To(Equal("kind: List # v1.2.0\n"))
			s.mu.Lock()
			defer s.mu.Unlock()
			g.Expect(s.apiAuth).ToNot(BeEmpty())
			for _, a := range s.apiAuth {
				g.Expect(a).To(ContainSubstring(testToken), "the API gets the token")
			}
			g.Expect(s.cdnAuth).ToNot(BeEmpty())
			for _, a := range s.cdnAuth {
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
			s := newStandIn(t, &standIn{releases: fiveReleases("right"), failWith: code})
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
			s := newStandIn(t, &standIn{releases: fiveReleases("right")})
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
	s := newStandIn(t, &standIn{perPage: 2, releases: fiveReleases("right")})
	res, err := newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
		spec.Version = exsv1beta1.ReleaseVersion{Tag: "v0.9.0"}
	}), generator.Validators{}))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(res.RevisionName).To(Equal("v0.9.0"))
	res.Body.Close()

	lists, _, _ := s.counts()
	res, err = newGen().Generate(context.Background(), request(sourceFor(s, func(spec *exsv1beta1.ReleaseGeneratorSpec) {
		spec.Version = exsv1beta1.ReleaseVersion{Latest: true}
	}), generator.Validators{}))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(res.RevisionName).To(Equal("v2.0.0"))
	res.Body.Close()
	lists2, _, _ := s.counts()
	g.Expect(lists2-lists).To(Equal(1), "latest is on the first page")
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
			s := newStandIn(t, &standIn{releases: fiveReleases("right")})
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
