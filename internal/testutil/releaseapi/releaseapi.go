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

// Package releaseapi is a STAND-IN release API for tests: it implements the
// documented release endpoints of GitHub (GET /repos/{owner}/{repo}/releases,
// the asset API answered with a redirect) or GitLab (GET
// /projects/{id}/releases, release links), with an ETag answered by 304, Link
// pagination, rate-limit headers and asset downloads served by a second
// server on another origin (a stand-in CDN). It is not GitHub or GitLab, and
// a test that uses it says so; the real-server tests run against Gitea.
package releaseapi

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Release is one release the stand-in serves.
type Release struct {
	Tag        string
	Prerelease bool
	Draft      bool
	// Assets are the release's files by name.
	Assets map[string][]byte
	// Digests are GitHub's asset digest field by asset name: "" announces
	// none, DigestRight the bytes' sha256, anything else is sent verbatim.
	Digests map[string]string
}

// DigestRight in Release.Digests announces the asset's true sha256.
const DigestRight = "right"

// Options shape a stand-in.
type Options struct {
	// GitLab serves GitLab's endpoints; GitHub's otherwise.
	GitLab bool
	// Owner and Repo name the GitHub repository (default "o", "r"); Project
	// is the GitLab project path (default "g/sub/r").
	Owner, Repo, Project string
	// PerPage is the page size of the release list (default 100).
	PerPage int
	// Releases, newest first as the providers list them.
	Releases []Release
	// RateLimitReset, when set, answers every list request 403 (GitHub) or
	// 429 (GitLab) with the remaining quota at 0 and this reset.
	RateLimitReset time.Time
	// FailWith, when not 0, answers every API request with this status and a
	// body that quotes the credentials it was sent (to prove they never
	// reach an error).
	FailWith int
	// NoETag sends no ETag and never answers 304, as Gitea's and
	// Forgejo's release lists do.
	NoETag bool
	// Unstarted leaves API and CDN unstarted, so a test can set their
	// Listener (e.g. on a test bridge's address) before calling Start.
	Unstarted bool
}

// Counts are the requests a stand-in has answered.
type Counts struct {
	// Lists: release-list requests, NotModified of them answered 304.
	Lists, NotModified int
	// Downloads: asset requests, at the API (GitHub's redirect) and at the CDN.
	Downloads int
}

// Server is a running stand-in: API serves the release endpoints, CDN the
// asset bytes.
type Server struct {
	API, CDN *httptest.Server

	opts     Options
	mu       sync.Mutex
	releases []Release
	counts   Counts
	apiAuth  []string
	cdnAuth  []string
	inm      []string
}

// New starts a stand-in (unless opts.Unstarted) and stops it when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.PerPage == 0 {
		opts.PerPage = 100
	}
	if opts.Owner == "" {
		opts.Owner = "o"
	}
	if opts.Repo == "" {
		opts.Repo = "r"
	}
	if opts.Project == "" {
		opts.Project = "g/sub/r"
	}
	s := &Server{opts: opts, releases: opts.Releases}
	s.CDN = httptest.NewUnstartedServer(http.HandlerFunc(s.serveCDN))
	s.API = httptest.NewUnstartedServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.CDN.Close)
	t.Cleanup(s.API.Close)
	if !opts.Unstarted {
		s.Start()
	}
	return s
}

// Start starts API and CDN; only for a stand-in made with Unstarted.
func (s *Server) Start() {
	s.CDN.Start()
	s.API.Start()
}

// Repository is what spec.generator.release.repository names for this
// stand-in.
func (s *Server) Repository() string {
	if s.opts.GitLab {
		return s.opts.Project
	}
	return s.opts.Owner + "/" + s.opts.Repo
}

// GitLab tells whether the stand-in serves GitLab's endpoints.
func (s *Server) GitLab() bool { return s.opts.GitLab }

// Publish adds a release at the head of the list (the newest), as a
// project publishing a new version does.
func (s *Server) Publish(r Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = append([]Release{r}, s.releases...)
}

// SetReleases replaces the whole list, newest first.
func (s *Server) SetReleases(rs []Release) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = rs
}

// SetRateLimitReset turns the rate limit on (a non-zero reset) or off.
func (s *Server) SetRateLimitReset(reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RateLimitReset = reset
}

// Counts are the requests answered so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Auth are the credentials (Authorization or Private-Token) each request
// carried, at the API and at the CDN, in order.
func (s *Server) Auth() (api, cdn []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.apiAuth...), append([]string(nil), s.cdnAuth...)
}

// IfNoneMatch are the If-None-Match headers of the list requests, in
// order ("" for none).
func (s *Server) IfNoneMatch() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.inm...)
}

// ETag is the list's current entity tag: it changes with the tags and
// their assets' names and bytes.
func (s *Server) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag()
}

func (s *Server) etag() string {
	h := sha256.New()
	for _, r := range s.releases {
		fmt.Fprintln(h, r.Tag, r.Draft, r.Prerelease)
		for _, n := range slices.Sorted(maps.Keys(r.Assets)) {
			fmt.Fprintln(h, n, Sum(r.Assets[n]), r.Digests[n])
		}
	}
	return `"` + hex.EncodeToString(h.Sum(nil))[:16] + `"`
}

// assetID is an upload's id: another upload (other bytes) has another.
func assetID(tag, name string, body []byte) int64 {
	h := sha256.Sum256([]byte(tag + "\x00" + name + "\x00" + string(body)))
	return int64(binary.BigEndian.Uint32(h[:4]))
}

// Sum is the hex sha256 of b, as checksums files write it.
func Sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func (s *Server) serveCDN(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.cdnAuth = append(s.cdnAuth, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
	s.counts.Downloads++
	var body []byte
	ok := false
	tag, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/dl/"), "/")
	for _, rel := range s.releases {
		if rel.Tag == tag {
			body, ok = rel.Assets[name]
		}
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(body)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiAuth = append(s.apiAuth, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
	if s.opts.FailWith != 0 {
		w.WriteHeader(s.opts.FailWith)
		fmt.Fprintf(w, `{"message":"bad credentials %s"}`, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
		return
	}
	repoPath := "/repos/" + s.opts.Owner + "/" + s.opts.Repo
	// GitHub's asset API URL: redirects to the CDN.
	if rest, ok := strings.CutPrefix(r.URL.Path, repoPath+"/releases/assets/"); ok && !s.opts.GitLab {
		s.counts.Downloads++
		http.Redirect(w, r, s.CDN.URL+"/dl/"+rest, http.StatusFound)
		return
	}
	listPath := repoPath + "/releases"
	if s.opts.GitLab {
		listPath = "/projects/" + s.opts.Project + "/releases" // %2F decoded by net/http
	}
	if r.URL.Path != listPath {
		http.NotFound(w, r)
		return
	}
	s.counts.Lists++
	s.inm = append(s.inm, r.Header.Get("If-None-Match"))
	if !s.opts.RateLimitReset.IsZero() {
		p := "X-RateLimit-"
		code := http.StatusForbidden
		if s.opts.GitLab {
			p, code = "RateLimit-", http.StatusTooManyRequests
		}
		w.Header().Set(p+"Remaining", "0")
		w.Header().Set(p+"Reset", strconv.FormatInt(s.opts.RateLimitReset.Unix(), 10))
		w.WriteHeader(code)
		_, _ = fmt.Fprint(w, `{"message":"API rate limit exceeded"}`)
		return
	}
	etag := s.etag()
	if !s.opts.NoETag {
		w.Header().Set("ETag", etag)
	}
	if !s.opts.NoETag && r.Header.Get("If-None-Match") == etag {
		s.counts.NotModified++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	per := s.opts.PerPage
	from, to := min((page-1)*per, len(s.releases)), min(page*per, len(s.releases))
	if to < len(s.releases) {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page+1))
		w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.API.URL, r.URL.Path, q.Encode()))
	}
	out := []any{}
	for _, rel := range s.releases[from:to] {
		out = append(out, s.render(rel))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// render writes a release as the provider's JSON.
func (s *Server) render(rel Release) map[string]any {
	assets := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(rel.Assets)) {
		body := rel.Assets[name]
		if s.opts.GitLab {
			// A release link pointing straight at another origin.
			assets = append(assets, map[string]any{"id": assetID(rel.Tag, name, body), "name": name, "url": s.CDN.URL + "/dl/" + rel.Tag + "/" + name})
			continue
		}
		a := map[string]any{"id": assetID(rel.Tag, name, body), "size": len(body), "name": name,
			"url":                  s.API.URL + "/repos/" + s.opts.Owner + "/" + s.opts.Repo + "/releases/assets/" + rel.Tag + "/" + name,
			"browser_download_url": "https://github.invalid/" + s.opts.Owner + "/" + s.opts.Repo + "/releases/download/" + rel.Tag + "/" + name}
		switch d := rel.Digests[name]; d {
		case "":
		case DigestRight:
			a["digest"] = "sha256:" + Sum(body)
		default:
			a["digest"] = d
		}
		assets = append(assets, a)
	}
	if s.opts.GitLab {
		return map[string]any{"tag_name": rel.Tag, "released_at": "2026-01-02T03:04:05Z",
			"_links": map[string]any{"self": s.API.URL + "/" + s.opts.Project + "/-/releases/" + rel.Tag}, "assets": map[string]any{"links": assets}}
	}
	return map[string]any{"tag_name": rel.Tag, "draft": rel.Draft, "prerelease": rel.Prerelease, "published_at": "2026-01-02T03:04:05Z",
		"html_url": s.API.URL + "/" + s.opts.Owner + "/" + s.opts.Repo + "/releases/tag/" + rel.Tag, "assets": assets}
}
