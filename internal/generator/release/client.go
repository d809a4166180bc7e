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
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// maxListPage bounds one page of the release list read into memory.
const maxListPage = 8 << 20

// release is a release as the providers describe it, reduced to what the
// generator uses.
type release struct {
	Tag         string
	Draft       bool
	Prerelease  bool
	URL         string
	PublishedAt time.Time
	Assets      []asset
}

// asset is one downloadable file of a release.
type asset struct {
	Name        string
	DownloadURL string
	// Digest is the provider's "sha256:<hex>", when it gives one.
	Digest string
	// Identity is what the list says of the upload (id, size, ...): it
	// changes when the asset is replaced under the same name.
	Identity string
}

// provider knows one API's URLs, headers and JSON.
type provider interface {
	// firstPage is the URL of the first page of the release list.
	firstPage() string
	// headers authenticate an API request.
	headers(token string) http.Header
	// downloadHeaders authenticate and shape an asset download.
	downloadHeaders(token string) http.Header
	// sameOrigin reports whether u is on the API's origin, the only one
	// the token is sent to.
	sameOrigin(u string) bool
	// parse reads one page.
	parse(data []byte) ([]release, error)
}

// client is one fetch's view of a provider.
type client struct {
	g     *Generator
	req   *generator.Request
	p     provider
	token string
	// rel and source name the release and where its expected digest came
	// from, for the mismatch message.
	rel    *release
	source string
}

// get sends a GET through the http generator's Sender.
func (c *client) get(ctx context.Context, u string, h http.Header) (*http.Response, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", redact.URL(u), err)
	}
	r.Header = h
	return c.g.opts.Sender.Do(ctx, c.req, r)
}

// find lists the releases, newest first, page by page within the page cap,
// and returns the selected one. The first page is requested with the
// recorded ETag: a 304 there means the list, and so the selection, is
// unchanged.
func (c *client) find(ctx context.Context, sel *selector) (*release, generator.Validators, bool, error) {
	prev := c.req.Previous
	next := c.p.firstPage()
	var validators generator.Validators
	var best *release
	for page := 1; next != ""; page++ {
		if page > c.g.opts.MaxPages {
			break
		}
		h := c.p.headers(c.token)
		if page == 1 && prev.ETag != "" && !isFingerprint(prev.ETag) {
			h.Set("If-None-Match", prev.ETag)
		}
		resp, err := c.get(ctx, next, h)
		if err != nil {
			return nil, validators, false, err
		}
		if page == 1 {
			validators.ETag = validator(resp.Header.Get("ETag"))
			if resp.StatusCode == http.StatusNotModified && prev.ETag != "" && !isFingerprint(prev.ETag) {
				resp.Body.Close()
				if validators.ETag == "" {
					validators.ETag = prev.ETag
				}
				return nil, validators, true, nil
			}
		}
		if resp.StatusCode != http.StatusOK {
			err := c.statusError(resp, "listing releases")
			resp.Body.Close()
			return nil, validators, false, err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxListPage+1))
		resp.Body.Close()
		if err != nil {
			return nil, validators, false, fmt.Errorf("listing releases: %s: %w", redact.URL(next), err)
		}
		if len(data) > maxListPage {
			return nil, validators, false, fmt.Errorf("listing releases: %s: a page over %d bytes", redact.URL(next), maxListPage)
		}
		rels, err := c.p.parse(data)
		if err != nil {
			return nil, validators, false, fmt.Errorf("listing releases: %s: %w", redact.URL(next), err)
		}
		for i := range rels {
			r := &rels[i]
			if !sel.candidate(r) {
				continue
			}
			if best == nil || sel.better(r, best) {
				best = r
			}
		}
		if best != nil && sel.final() {
			break
		}
		next = nextLink(resp.Header.Get("Link"))
	}
	if best == nil {
		return nil, validators, false, fmt.Errorf("no release of %s matches %s within the first %d pages of its release list",
			c.req.Source.Spec.Generator.Release.Repository, describe(c.req.Source.Spec.Generator.Release), c.g.opts.MaxPages)
	}
	if validators.ETag == "" {
		// No ETag (Gitea and Forgejo send none for the list): the
		// selected release's own fingerprint tells an unchanged
		// selection, so that it costs the list request alone.
		validators.ETag = fingerprint(best)
		if prev.ETag == validators.ETag {
			return best, validators, true, nil
		}
	}
	return best, validators, false, nil
}

// fingerprintPrefix marks a validator the generator made itself: unquoted,
// so it is never a provider's ETag and is never sent as If-None-Match.
const fingerprintPrefix = "release-fingerprint:"

// fingerprint sums what the list says of a release that the artifact
// depends on: its tag, flags, URL, publication time and every asset's name,
// download URL, digest and upload identity.
func fingerprint(r *release) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q %v %v %q %s\n", r.Tag, r.Draft, r.Prerelease, r.URL, r.PublishedAt.UTC().Format(time.RFC3339Nano))
	for _, a := range r.Assets {
		fmt.Fprintf(h, "%q %q %q %q\n", a.Name, a.DownloadURL, a.Digest, a.Identity)
	}
	return fingerprintPrefix + hex.EncodeToString(h.Sum(nil))[:32]
}

func isFingerprint(v string) bool { return strings.HasPrefix(v, fingerprintPrefix) }

// describe says what the version selects, for messages.
func describe(spec *exsv1beta1.ReleaseGeneratorSpec) string {
	v := spec.Version
	switch {
	case v.Tag != "":
		return fmt.Sprintf("tag %q", v.Tag)
	case v.SemVer != "":
		return fmt.Sprintf("semver %q", v.SemVer)
	default:
		return "latest (non-draft)"
	}
}

// validator returns an ETag worth recording: bounded, so that the upstream
// cannot grow the status.
func validator(v string) string {
	if len(v) > 256 {
		return ""
	}
	return v
}

// nextLink returns the rel="next" URL of an RFC 8288 Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		segs := strings.Split(part, ";")
		if len(segs) < 2 {
			continue
		}
		target := strings.TrimSpace(segs[0])
		if !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			continue
		}
		for _, p := range segs[1:] {
			p = strings.ReplaceAll(strings.TrimSpace(p), " ", "")
			if p == `rel="next"` || p == "rel=next" {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

// statusError describes a non-2xx answer. A rate limit (GitHub's
// X-RateLimit-Remaining: 0 with X-RateLimit-Reset, GitLab's RateLimit-*,
// or Retry-After) becomes a RetryAfterError, so that the reconciler
// requeues at the reset instead of backing off into a hot loop; 401 is an
// AuthError.
func (c *client) statusError(resp *http.Response, what string) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	err := fmt.Errorf("%s: GET %s: %s: %q", what, redact.URL(resp.Request.URL.String()), resp.Status, strings.ToValidUTF8(string(body), "?"))
	if wait, ok := rateLimitWait(resp.Header, time.Now()); ok && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests) {
		return &generator.RetryAfterError{After: wait, Err: fmt.Errorf("rate limited until %s: %w", time.Now().Add(wait).UTC().Format(time.RFC3339), err)}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return &generator.AuthError{Err: err}
	}
	return err
}

// rateLimitWait reads how long the provider asks to wait.
func rateLimitWait(h http.Header, now time.Time) (time.Duration, bool) {
	if s := h.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return time.Duration(n) * time.Second, true
		}
		if t, err := http.ParseTime(s); err == nil && t.After(now) {
			return t.Sub(now), true
		}
	}
	for _, p := range []string{"X-RateLimit-", "RateLimit-"} {
		if h.Get(p+"Remaining") != "0" {
			continue
		}
		reset, err := strconv.ParseInt(h.Get(p+"Reset"), 10, 64)
		if err != nil {
			continue
		}
		if t := time.Unix(reset, 0); t.After(now) {
			return t.Sub(now).Round(time.Second) + time.Second, true
		}
		return time.Second, true
	}
	return 0, false
}
