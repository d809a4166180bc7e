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

// Package filesystem is a Storage backend on a local directory (a PVC in a
// cluster), wrapping Flux's own github.com/fluxcd/pkg/artifact/storage: the
// same layout, atomic writes, file locks and garbage collection as
// source-controller.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	godigest "github.com/opencontainers/go-digest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/artifact/config"
	"github.com/fluxcd/pkg/artifact/digest"
	fluxstorage "github.com/fluxcd/pkg/artifact/storage"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// gcTimeout bounds one garbage collection, as source-controller does.
const gcTimeout = 5 * time.Minute

// Options configure the filesystem store.
type Options struct {
	// Path is the root directory; it must exist.
	Path string
	// BaseURL is the advertised base of artifact URLs.
	BaseURL string
}

// Storage stores artifacts under a root directory.
type Storage struct {
	flux    *fluxstorage.Storage
	baseURL string
	// stamps let Verify skip reading files unchanged since they were
	// written or last hashed by this process.
	stamps stamps
	// hashed counts the bytes Verify read, for tests.
	hashed atomic.Int64
}

var _ storage.Storage = (*Storage)(nil)

// New returns a filesystem store rooted at opts.Path, built with Flux's own
// constructor (which checks the directory), so the layout, locks and
// garbage collection are source-controller's.
func New(opts Options) (*Storage, error) {
	root, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, err
	}
	// Flux's Hostname composes URLs in Flux's own SetArtifactURL, which
	// this store does not use (its URLs come from BaseURL, which may be
	// https): it is set for completeness only.
	adv := strings.TrimPrefix(strings.TrimPrefix(opts.BaseURL, "https://"), "http://")
	if adv == "" {
		adv = "localhost"
	}
	fl, err := fluxstorage.New(&config.Options{StoragePath: root, StorageAdvAddress: adv})
	if err != nil {
		return nil, fmt.Errorf("--storage-path %q is not a directory: %w", opts.Path, err)
	}
	return &Storage{flux: fl, baseURL: opts.BaseURL}, nil
}

// NewArtifactFor implements storage.Storage.
func (s *Storage) NewArtifactFor(kind string, obj metav1.Object, revision, fileName string) meta.Artifact {
	return storage.NewArtifact(s.baseURL, kind, obj, revision, fileName)
}

// SetArtifactURL implements storage.Storage.
func (s *Storage) SetArtifactURL(a *meta.Artifact) {
	a.URL = storage.ArtifactURL(s.baseURL, a.Path)
}

// Ephemeral implements storage.Storage: files survive restarts.
func (s *Storage) Ephemeral() bool { return false }

// localPath resolves an artifact path inside the root (securejoin: no
// escape through '..' or symlinks).
func (s *Storage) localPath(p string) (string, error) {
	lp := s.flux.LocalPath(meta.Artifact{Path: p})
	if lp == "" {
		return "", fmt.Errorf("invalid artifact path %q", p)
	}
	return lp, nil
}

// Put implements storage.Storage: a temporary file in the same directory,
// renamed over the target, so a reader sees the old file or the new one.
func (s *Storage) Put(_ context.Context, a *meta.Artifact, r io.Reader) error {
	if err := s.flux.MkdirAll(*a); err != nil {
		return err
	}
	expected := a.Digest
	// Flux's writer hashes with digest.Canonical; an expected digest of
	// another algorithm is checked with a digester of its own kind.
	var other godigest.Digester
	if expected != "" && godigest.Digest(expected).Algorithm() != digest.Canonical {
		h, err := storage.NewDigester(expected)
		if err != nil {
			return err
		}
		other, r = h, io.TeeReader(r, h.Hash())
	}
	if err := s.flux.AtomicWriteFile(a, r, 0o644); err != nil {
		return err
	}
	if other != nil && other.Digest().String() == expected {
		a.Digest = expected
	}
	s.stamps.forget(a.Path)
	if expected != "" && a.Digest != expected {
		got := a.Digest
		if other != nil {
			got = other.Digest().String()
		}
		_ = s.flux.Remove(*a)
		a.Digest = expected
		return fmt.Errorf("storing %s: bytes have digest %s, expected %s: %w", a.Path, got, expected, storage.ErrDigestMismatch)
	}
	// The bytes just written have the digest: their stamp spares the
	// first verification a read.
	if lp, err := s.localPath(a.Path); err == nil {
		if fi, err := os.Stat(lp); err == nil {
			s.stamps.record(a.Path, stampOf(fi, a.Digest))
		}
	}
	s.SetArtifactURL(a)
	return nil
}

// Open implements storage.Storage.
func (s *Storage) Open(_ context.Context, p string) (io.ReadCloser, int64, error) {
	lp, err := s.localPath(p)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", p, storage.ErrNotFound)
	}
	f, err := os.Open(lp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%s: %w", p, storage.ErrNotFound)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", p, storage.ErrNotFound)
	}
	return f, fi.Size(), nil
}

// Verify implements storage.Storage: it hashes the file that would be
// served with the algorithm of the artifact's digest, so a mismatch is
// storage.ErrDigestMismatch by type. A file this process wrote or hashed
// already, whose inode, size, mtime and change time are the same as then
// (fileStamp), is not read again: verifying costs a stat at every interval
// however large the artifact, and a full read at the first verification
// after a start and after any change to the file.
func (s *Storage) Verify(_ context.Context, a meta.Artifact) error {
	lp, err := s.localPath(a.Path)
	if err != nil {
		return fmt.Errorf("%s: %w", a.Path, storage.ErrNotFound)
	}
	f, err := os.Open(lp)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", a.Path, storage.ErrNotFound)
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w", a.Path, storage.ErrNotFound)
	}
	// The stamp is taken before the read: a file changed while it is
	// hashed gets a new stamp, and is read again next time.
	st := stampOf(fi, a.Digest)
	if s.stamps.verified(a.Path, st) {
		return nil
	}
	s.stamps.forget(a.Path)
	cr := &countingReader{r: f, n: &s.hashed}
	if err := storage.VerifyReader(cr, a.Digest); err != nil {
		return fmt.Errorf("%s: %w", a.Path, err)
	}
	s.stamps.record(a.Path, st)
	return nil
}

// countingReader adds the bytes read to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Remove implements storage.Storage.
func (s *Storage) Remove(_ context.Context, a meta.Artifact) error {
	s.stamps.forget(a.Path)
	if err := s.flux.Remove(a); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll implements storage.Storage.
func (s *Storage) RemoveAll(_ context.Context, a meta.Artifact) (int, error) {
	lp, err := s.localPath(a.Path)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(filepath.Dir(lp))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if _, temp := tempFileArtifact(e.Name()); e.Type().IsRegular() && filepath.Ext(e.Name()) != ".lock" && !temp {
			n++
		}
	}
	s.stamps.forgetDir(path.Dir(a.Path))
	if _, err := s.flux.RemoveAll(a); err != nil {
		return 0, err
	}
	return n, nil
}

// GarbageCollect implements storage.Storage with Flux's garbage collector,
// after removing the temporary files that killed writers left in the
// object's directory: Flux would count them as artifacts (and keep them,
// or drop a real one in their place). The caller holds current's lock (as
// the reconciler does), so a temporary file of current is stale; another
// artifact's temporary file goes only when its lock is free.
func (s *Storage) GarbageCollect(ctx context.Context, current meta.Artifact, policy storage.Retention) ([]string, error) {
	lp, err := s.localPath(current.Path)
	if err != nil {
		return nil, err
	}
	temps, err := removeTempFiles(filepath.Dir(lp), filepath.Base(lp), time.Time{})
	if err != nil {
		return nil, err
	}
	fl := *s.flux
	fl.ArtifactRetentionTTL = policy.TTL
	fl.ArtifactRetentionRecords = policy.Records
	deleted, err := fl.GarbageCollect(ctx, current, gcTimeout)
	if err != nil {
		return nil, err
	}
	deleted = append(temps, deleted...)
	out := make([]string, 0, len(deleted))
	for _, d := range deleted {
		rel, err := filepath.Rel(s.flux.BasePath, d)
		if err != nil {
			return out, err
		}
		out = append(out, filepath.ToSlash(rel))
		s.stamps.forget(filepath.ToSlash(rel))
	}
	return out, nil
}

// Lock implements storage.Storage with Flux's lock file beside the artifact.
func (s *Storage) Lock(_ context.Context, a meta.Artifact) (func(), error) {
	if err := s.flux.MkdirAll(a); err != nil {
		return nil, err
	}
	return s.flux.Lock(a)
}
