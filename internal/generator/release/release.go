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

// Package release is the generator that publishes assets of a repository's
// release on GitHub, GitLab or Gitea/Forgejo: it lists the releases
// conditionally (ETag), selects one by semver range, exact tag or latest,
// downloads the assets matched by glob patterns through the http
// generator's Sender (URL policy on every hop, credentials dropped off
// origin) and verifies them against the provider's digest or a checksums
// asset.
package release

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
)

// DefaultMaxPages bounds the pages of the release list read per fetch.
const DefaultMaxPages = 10

// ChangeDetectionReleaseList is status.changeDetection when the provider
// sends no ETag for its release list (Gitea, Forgejo): the list is read in
// full and the selected release's fingerprint (tag, assets' names, URLs and
// upload identities) decides whether anything is downloaded.
const ChangeDetectionReleaseList = "ReleaseList"

// tokenKey is the key of secretRef's Secret that holds the token.
const tokenKey = "token"

// Options configure the release generator.
type Options struct {
	// Sender sends every request (required): the http generator's, so
	// that the URL policy, the per-host limit and the redaction are the
	// same for both types.
	Sender *httpgen.Sender
	// MaxPages bounds the pages of the release list read per fetch; zero
	// is DefaultMaxPages.
	MaxPages int
	// TempDir holds downloaded assets while they are verified; empty is
	// os.TempDir().
	TempDir string
	// MaxSize bounds an asset's bytes (the controller's
	// --max-response-size), checked while downloading so that an
	// oversized asset never fills TempDir; zero is no bound.
	MaxSize int64
}

// Generator publishes release assets. One instance serves every object.
type Generator struct {
	opts Options
}

var _ generator.Generator = (*Generator)(nil)

// New returns the release generator.
func New(opts Options) *Generator {
	if opts.MaxPages <= 0 {
		opts.MaxPages = DefaultMaxPages
	}
	return &Generator{opts: opts}
}

// Generate implements generator.Generator. Every error is redacted of the
// token (req.Secrets).
func (g *Generator) Generate(ctx context.Context, req *generator.Request) (_ *generator.Result, err error) {
	defer func() { err = req.Secrets.Error(err) }()
	spec := req.Source.Spec.Generator.Release
	if spec == nil {
		return nil, generator.InvalidSpec("spec.generator.release", "must be set when type is release")
	}
	p, err := providerFor(spec)
	if err != nil {
		return nil, err
	}
	sel, err := newSelector(spec)
	if err != nil {
		return nil, err
	}
	if len(spec.Assets) == 0 {
		return nil, generator.InvalidSpec("spec.generator.release.assets", "at least one pattern is required")
	}
	for _, pat := range spec.Assets {
		if _, err := path.Match(pat, ""); err != nil {
			return nil, generator.InvalidSpec("spec.generator.release.assets", "pattern %q: %v", pat, err)
		}
	}
	var token string
	if ref := spec.SecretRef; ref != nil {
		if token, err = readToken(ctx, req, ref.Name); err != nil {
			return nil, err
		}
	}
	c := &client{g: g, req: req, p: p, token: token}

	rel, validators, notModified, err := c.find(ctx, sel)
	if err != nil {
		return nil, err
	}
	detection := generator.ChangeDetectionGET
	switch {
	case isFingerprint(validators.ETag):
		detection = ChangeDetectionReleaseList
	case !req.Previous.IsZero():
		detection = generator.ChangeDetectionConditionalGET
	}
	if notModified {
		return &generator.Result{NotModified: true, Validators: validators, ChangeDetection: detection}, nil
	}
	c.rel = rel
	if strings.ContainsAny(rel.Tag, "@ \t\r\n") || len(rel.Tag) > 256 {
		return nil, fmt.Errorf("release tag %q cannot name a revision (it contains '@' or whitespace, or is over 256 bytes)", rel.Tag)
	}
	assets, err := matchAssets(rel, spec.Assets)
	if err != nil {
		return nil, err
	}
	files := make([]*tempFile, 0, len(assets))
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	var size int64
	for _, a := range assets {
		want := ""
		if spec.Checksums != exsv1beta1.ReleaseChecksumsNone {
			if want, err = c.expectedDigest(ctx, rel, a); err != nil {
				return nil, err
			}
		}
		f, n, err := c.download(ctx, a, want)
		if err != nil {
			return nil, err
		}
		files, size = append(files, f), size+n
	}
	var body io.ReadCloser = files[0]
	archive := ""
	if len(files) > 1 {
		// Several assets: one tar of them, unpacked by the reconciler
		// under spec.destinationPath.
		if body, size, err = c.packTar(assets, files); err != nil {
			return nil, err
		}
		archive = generator.ArchiveTar
	}
	st := &exsv1beta1.ReleaseStatus{Tag: rel.Tag, URL: rel.URL}
	if !rel.PublishedAt.IsZero() {
		st.PublishedAt = &metav1.Time{Time: rel.PublishedAt}
	}
	return &generator.Result{
		Body: body, ContentLength: size, Validators: validators, ChangeDetection: detection,
		RevisionName: rel.Tag, Archive: archive,
		Record: func(s *exsv1beta1.ExternalSourceStatus) { s.Release = st.DeepCopy() },
	}, nil
}

var _ generator.SecretReferencer = (*Generator)(nil)

// SecretRefs implements generator.SecretReferencer: a rotated token is
// used at once.
func (g *Generator) SecretRefs(obj *exsv1beta1.ExternalSource) []string {
	if r := obj.Spec.Generator.Release; r != nil && r.SecretRef != nil && r.SecretRef.Name != "" {
		return []string{r.SecretRef.Name}
	}
	return nil
}

// readToken reads the token key of the Secret name in the object's
// namespace and records it for redaction before anything can fail on it.
func readToken(ctx context.Context, req *generator.Request, name string) (string, error) {
	const field = "spec.generator.release.secretRef"
	var s corev1.Secret
	if err := req.Reader.Get(ctx, types.NamespacedName{Namespace: req.Source.Namespace, Name: name}, &s); err != nil {
		return "", fmt.Errorf("%s: reading Secret %q: %w", field, req.Source.Namespace+"/"+name, err)
	}
	tok := strings.TrimSpace(string(s.Data[tokenKey]))
	req.Secrets.Add(tok)
	if tok == "" {
		return "", fmt.Errorf("%s: Secret %q has no %q key", field, req.Source.Namespace+"/"+name, tokenKey)
	}
	return tok, nil
}

// selector chooses a release.
type selector struct {
	constraint  *semver.Constraints
	tag         string
	prereleases bool
}

func newSelector(spec *exsv1beta1.ReleaseGeneratorSpec) (*selector, error) {
	v := spec.Version
	n := 0
	for _, set := range []bool{v.SemVer != "", v.Tag != "", v.Latest} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, generator.InvalidSpec("spec.generator.release.version", "exactly one of semver, tag or latest must be set")
	}
	s := &selector{tag: v.Tag, prereleases: spec.Prereleases}
	if v.SemVer != "" {
		c, err := semver.NewConstraint(v.SemVer)
		if err != nil {
			return nil, generator.InvalidSpec("spec.generator.release.version.semver", "%q is not a semver range: %v", v.SemVer, err)
		}
		// prereleases decides, not the range's spelling (Masterminds
		// admits a prerelease only to a range that names one).
		c.IncludePrerelease = spec.Prereleases
		s.constraint = c
	}
	return s, nil
}

// candidate reports whether r may be selected at all.
func (s *selector) candidate(r *release) bool {
	if r.Draft {
		return false
	}
	if s.tag != "" {
		return r.Tag == s.tag
	}
	if r.Prerelease && !s.prereleases {
		return false
	}
	if s.constraint == nil {
		return true
	}
	v, err := semver.NewVersion(r.Tag)
	if err != nil {
		return false
	}
	if v.Prerelease() != "" && !s.prereleases {
		return false
	}
	return s.constraint.Check(v)
}

// better reports whether a is a better choice than b (both candidates).
// Semver: the higher version. Otherwise: the list order (newest first)
// decides, so the first candidate is kept.
func (s *selector) better(a, b *release) bool {
	if s.constraint == nil {
		return false
	}
	va, _ := semver.NewVersion(a.Tag)
	vb, _ := semver.NewVersion(b.Tag)
	return va.GreaterThan(vb)
}

// final reports whether the first candidate found ends the search: an
// exact tag, or latest (the lists are newest first).
func (s *selector) final() bool { return s.constraint == nil }

// matchAssets returns the one asset each pattern matches, in the
// patterns' order; two patterns may not select the same asset.
func matchAssets(r *release, patterns []string) ([]*asset, error) {
	out := make([]*asset, 0, len(patterns))
	by := map[string]string{}
	for _, p := range patterns {
		a, err := matchAsset(r, p)
		if err != nil {
			return nil, err
		}
		if other, ok := by[a.Name]; ok {
			return nil, generator.InvalidSpec("spec.generator.release.assets", "patterns %q and %q both match asset %q of release %s",
				other, p, a.Name, r.Tag)
		}
		by[a.Name] = p
		out = append(out, a)
	}
	return out, nil
}

// packTar packs the downloaded assets, named by their asset names, into
// one tar in TempDir and closes (removes) their files. The metadata is
// fixed: the reconciler re-packs the files deterministically anyway.
func (c *client) packTar(assets []*asset, files []*tempFile) (io.ReadCloser, int64, error) {
	f, err := os.CreateTemp(c.g.opts.TempDir, "release-assets-*.tar")
	if err != nil {
		return nil, 0, err
	}
	out := &tempFile{File: f}
	tw := tar.NewWriter(f)
	for i, a := range assets {
		src := files[i]
		fi, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: a.Name, Size: fi.Size(), Mode: 0o644, Format: tar.FormatPAX})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		if err != nil {
			out.Close()
			return nil, 0, fmt.Errorf("packing asset %s: %w", a.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		out.Close()
		return nil, 0, err
	}
	for _, src := range files {
		src.Close()
	}
	n, err := f.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		out.Close()
		return nil, 0, err
	}
	return out, n, nil
}

// matchAsset returns the one asset pattern matches.
func matchAsset(r *release, pattern string) (*asset, error) {
	var found []*asset
	names := make([]string, 0, len(r.Assets))
	for i := range r.Assets {
		a := &r.Assets[i]
		names = append(names, a.Name)
		if ok, _ := path.Match(pattern, a.Name); ok {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, generator.InvalidSpec("spec.generator.release.assets", "pattern %q matches no asset of release %s; its assets: %s",
			pattern, r.Tag, quoteList(names))
	default:
		var m []string
		for _, a := range found {
			m = append(m, a.Name)
		}
		return nil, generator.InvalidSpec("spec.generator.release.assets", "pattern %q matches %d assets of release %s (%s): it must match exactly one",
			pattern, len(found), r.Tag, quoteList(m))
	}
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// download fetches the asset into a temporary file, checking the sha256
// when want is set, and returns the file as the body (removed on Close).
// The bytes are verified before anything is handed on, so that a mismatch
// is reported as such and never packaged.
func (c *client) download(ctx context.Context, a *asset, want string) (*tempFile, int64, error) {
	resp, err := c.get(ctx, a.DownloadURL, c.p.downloadHeaders(c.tokenFor(a.DownloadURL)))
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, c.statusError(resp, "downloading asset "+a.Name)
	}
	f, err := os.CreateTemp(c.g.opts.TempDir, "release-asset-*")
	if err != nil {
		return nil, 0, err
	}
	body := &tempFile{File: f}
	h := sha256.New()
	src := io.Reader(resp.Body)
	if limit := c.g.opts.MaxSize; limit > 0 {
		if resp.ContentLength > limit {
			body.Close()
			return nil, 0, fmt.Errorf("asset %s of release %s has %d bytes, over the maximum of %d bytes (--max-response-size)",
				a.Name, c.rel.Tag, resp.ContentLength, limit)
		}
		// One byte past the limit tells "at the limit" from "over it".
		src = io.LimitReader(resp.Body, limit+1)
	}
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err != nil {
		body.Close()
		return nil, 0, fmt.Errorf("downloading asset %s: %w", a.Name, err)
	}
	if limit := c.g.opts.MaxSize; limit > 0 && n > limit {
		body.Close()
		return nil, 0, fmt.Errorf("asset %s of release %s is over the maximum of %d bytes (--max-response-size)", a.Name, c.rel.Tag, limit)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want != "" && got != want {
		body.Close()
		return nil, 0, &generator.DigestMismatchError{Err: fmt.Errorf("asset %s of release %s has sha256:%s, %s declares sha256:%s",
			a.Name, c.rel.Tag, got, c.source, want)}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		body.Close()
		return nil, 0, err
	}
	return body, n, nil
}

// tokenFor returns the token for a request to u: none off the API's
// origin (a redirect off it drops it too, in the Sender).
func (c *client) tokenFor(u string) string {
	if c.p.sameOrigin(u) {
		return c.token
	}
	return ""
}

// tempFile removes itself when closed.
type tempFile struct{ *os.File }

func (t *tempFile) Close() error {
	err := t.File.Close()
	if rerr := os.Remove(t.Name()); err == nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}

// expectedDigest returns the sha256 hex the asset must have: the
// provider's asset digest, else its line in a checksums asset of the
// release. Neither is an error: checksums: auto promises verification.
func (c *client) expectedDigest(ctx context.Context, r *release, a *asset) (string, error) {
	if d, ok := strings.CutPrefix(a.Digest, "sha256:"); ok && d != "" {
		c.source = "the provider's asset digest"
		return strings.ToLower(d), nil
	}
	sums := checksumAssets(r, a)
	if len(sums) == 0 {
		return "", generator.InvalidSpec("spec.generator.release.checksums",
			"release %s gives no digest for asset %s and has no checksums asset (checksums.txt, SHA256SUMS, %s.sha256); set checksums: none to publish it unverified",
			r.Tag, a.Name, a.Name)
	}
	for _, s := range sums {
		resp, err := c.get(ctx, s.DownloadURL, c.p.downloadHeaders(c.tokenFor(s.DownloadURL)))
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			err := c.statusError(resp, "downloading checksums asset "+s.Name)
			resp.Body.Close()
			return "", err
		}
		text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return "", fmt.Errorf("downloading checksums asset %s: %w", s.Name, err)
		}
		if d, ok := lookupChecksum(string(text), a.Name); ok {
			c.source = "its checksums asset " + s.Name
			return d, nil
		}
	}
	return "", &generator.DigestMismatchError{Err: fmt.Errorf("release %s: no line for asset %s in its checksums asset(s) %s",
		r.Tag, a.Name, quoteList(assetNames(sums)))}
}

func assetNames(as []*asset) []string {
	var n []string
	for _, a := range as {
		n = append(n, a.Name)
	}
	return n
}

// checksumAssets lists the release's checksums assets, the asset's own
// .sha256 first.
func checksumAssets(r *release, a *asset) []*asset {
	var own, shared []*asset
	for i := range r.Assets {
		x := &r.Assets[i]
		lower := strings.ToLower(x.Name)
		switch {
		case x.Name == a.Name+".sha256" || x.Name == a.Name+".sha256sum":
			own = append(own, x)
		case lower == "sha256sums" || lower == "sha256sums.txt" || lower == "checksums.txt" || strings.HasSuffix(lower, "_checksums.txt") || strings.HasSuffix(lower, "-checksums.txt"):
			shared = append(shared, x)
		}
	}
	return append(own, shared...)
}

// lookupChecksum finds name in sha256sum/goreleaser output ("<hex>  name"
// or "<hex> *name"), or a lone hex digest (a <asset>.sha256 file).
func lookupChecksum(text, name string) (string, bool) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 1 && len(lines) == 1 && isHex64(f[0]) {
			return strings.ToLower(f[0]), true
		}
		if len(f) == 2 && isHex64(f[0]) && strings.TrimPrefix(f[1], "*") == name {
			return strings.ToLower(f[0]), true
		}
	}
	return "", false
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
