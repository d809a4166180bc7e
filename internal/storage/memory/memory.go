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

// Package memory is a Storage backend that keeps artifacts in the
// controller's memory: for development and tests. Artifacts do not survive a
// restart; the controller says so at start-up, in Ready messages and in a
// metric, and republishes them on the next reconcile. Every artifact is
// held whole in the heap, so unlike the filesystem and s3 backends its
// memory grows with the artifacts it keeps (bounded only by
// --memory-store-max-bytes).
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/externalsource/externalsource-controller/internal/iobuf"
	"github.com/externalsource/externalsource-controller/internal/storage"
)

// DefaultMaxBytes bounds the memory store when no limit is given.
const DefaultMaxBytes = 512 << 20

// DefaultNamespaceShare is the part of MaxBytes one namespace's artifacts
// may hold when no per-namespace limit is given: a quarter. The store is
// shared by every tenant, and a tenant controls how much it stores (large
// responses, many objects, a new revision on every fetch); without a share
// one namespace could fill the store and make every other namespace's Put
// fail. A quarter leaves three quarters to the others whatever one tenant
// does, and still lets a single namespace hold 128 MiB with the default
// MaxBytes, which is plenty for a store meant for development and tests.
const DefaultNamespaceShare = 4

// Options configure the memory store.
type Options struct {
	// BaseURL is the advertised base of artifact URLs, e.g. http://host:9090.
	BaseURL string
	// MaxBytes bounds the bytes held; a Put that would exceed it fails.
	MaxBytes int64
	// MaxBytesPerNamespace bounds the bytes held for the objects of one
	// namespace (--memory-store-max-bytes-per-namespace): a Put that would
	// exceed it fails, and the other namespaces still store. Zero is
	// MaxBytes / DefaultNamespaceShare; a value of MaxBytes or more turns
	// the share off.
	MaxBytesPerNamespace int64
}

// Storage keeps artifacts in a map guarded by a mutex. Objects are
// immutable once stored, so readers get a view of the bytes without copying.
type Storage struct {
	opts Options

	mu   sync.RWMutex
	objs map[string]*object
	// dirs indexes objs by directory (one object's artifacts, dirOf), so
	// that garbage collection, which runs at every new revision under the
	// write lock, reads the object's few artifacts and not the whole
	// store: scanning every path made it O(sources) per revision, which
	// was quadratic work and held up every download at thousands of
	// sources (docs/benchmarks.md).
	dirs  map[string]map[string]struct{}
	total int64
	// byNamespace is the bytes held per namespace (namespaceOf).
	byNamespace map[string]int64

	locks storage.PathLocks

	now func() time.Time
}

type object struct {
	data    []byte
	digest  string
	modTime time.Time
}

var _ storage.Storage = (*Storage)(nil)

// New returns an empty memory store.
func New(opts Options) *Storage {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxBytesPerNamespace <= 0 {
		opts.MaxBytesPerNamespace = opts.MaxBytes / DefaultNamespaceShare
	}
	opts.MaxBytesPerNamespace = min(opts.MaxBytesPerNamespace, opts.MaxBytes)
	return &Storage{opts: opts, objs: map[string]*object{}, dirs: map[string]map[string]struct{}{},
		byNamespace: map[string]int64{}, now: time.Now}
}

// NewArtifactFor implements storage.Storage.
func (s *Storage) NewArtifactFor(kind string, obj metav1.Object, revision, fileName string) meta.Artifact {
	return storage.NewArtifact(s.opts.BaseURL, kind, obj, revision, fileName)
}

// SetArtifactURL implements storage.Storage.
func (s *Storage) SetArtifactURL(a *meta.Artifact) {
	a.URL = storage.ArtifactURL(s.opts.BaseURL, a.Path)
}

var _ storage.Recoverer = (*Storage)(nil)

// Recover implements storage.Recoverer: a Put is all or nothing in memory,
// and a crash loses everything anyway, so there is never anything to
// recover.
func (s *Storage) Recover(context.Context, time.Time) ([]string, error) { return nil, nil }

// Ephemeral implements storage.Storage: memory does not survive a restart.
func (s *Storage) Ephemeral() bool { return true }

// Put implements storage.Storage. It reads at most the free room plus one
// byte, so a full store (or namespace share) fails fast without holding an
// unbounded body.
func (s *Storage) Put(ctx context.Context, a *meta.Artifact, r io.Reader) error {
	ns := namespaceOf(a.Path)
	s.mu.RLock()
	room := s.roomLocked(a.Path, ns)
	s.mu.RUnlock()

	h, err := storage.NewDigester(a.Digest)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	n, err := iobuf.Copy(io.MultiWriter(&buf, h.Hash()), io.LimitReader(r, room+1))
	if err != nil {
		return fmt.Errorf("reading artifact: %w", err)
	}
	if n > room {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.fullLocked(a.Path, ns, n)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o := &object{data: buf.Bytes(), digest: h.Digest().String(), modTime: s.now()}
	if a.Digest != "" && a.Digest != o.digest {
		return fmt.Errorf("storing %s: bytes have digest %s, expected %s: %w", a.Path, o.digest, a.Digest, storage.ErrDigestMismatch)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked again: other Puts may have stored since the room was read.
	if int64(len(o.data)) > s.roomLocked(a.Path, ns) {
		return s.fullLocked(a.Path, ns, int64(len(o.data)))
	}
	s.removeLocked(a.Path)
	s.objs[a.Path] = o
	dir := dirOf(a.Path)
	if s.dirs[dir] == nil {
		s.dirs[dir] = map[string]struct{}{}
	}
	s.dirs[dir][a.Path] = struct{}{}
	s.total += int64(len(o.data))
	s.byNamespace[ns] += int64(len(o.data))

	a.Digest = o.digest
	a.Size = ptrInt64(int64(len(o.data)))
	a.LastUpdateTime = metav1.NewTime(o.modTime)
	s.SetArtifactURL(a)
	return nil
}

// Open implements storage.Storage.
func (s *Storage) Open(_ context.Context, p string) (io.ReadCloser, int64, error) {
	s.mu.RLock()
	o, ok := s.objs[p]
	s.mu.RUnlock()
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", p, storage.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(o.data)), int64(len(o.data)), nil
}

// Verify implements storage.Storage.
func (s *Storage) Verify(_ context.Context, a meta.Artifact) error {
	s.mu.RLock()
	o, ok := s.objs[a.Path]
	s.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%s: %w", a.Path, storage.ErrNotFound)
	}
	// Hash the bytes themselves, not the digest recorded at Put: verifying
	// means checking what would be served.
	if err := storage.VerifyReader(bytes.NewReader(o.data), a.Digest); err != nil {
		return fmt.Errorf("%s: %w", a.Path, err)
	}
	return nil
}

// Lock implements storage.Storage in process (storage.PathLocks).
func (s *Storage) Lock(_ context.Context, a meta.Artifact) (func(), error) {
	return s.locks.Lock(a.Path), nil
}

// Remove implements storage.Storage.
func (s *Storage) Remove(_ context.Context, a meta.Artifact) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(a.Path)
	return nil
}

// RemoveAll implements storage.Storage.
func (s *Storage) RemoveAll(_ context.Context, a meta.Artifact) (int, error) {
	dir := dirOf(a.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p := range s.dirs[dir] {
		s.removeLocked(p)
		n++
	}
	return n, nil
}

// GarbageCollect implements storage.Storage.
func (s *Storage) GarbageCollect(_ context.Context, current meta.Artifact, policy storage.Retention) ([]string, error) {
	dir := dirOf(current.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	var infos []storage.ObjectInfo
	for p := range s.dirs[dir] {
		o := s.objs[p]
		infos = append(infos, storage.ObjectInfo{Path: p, ModTime: o.modTime, Size: int64(len(o.data))})
	}
	del := storage.GarbageFiles(infos, current.Path, policy, s.now())
	for _, p := range del {
		s.removeLocked(p)
	}
	return del, nil
}

// List returns the paths stored in dir, sorted.
func (s *Storage) List(dir string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for p := range s.dirs[dir] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Len returns how many artifacts are stored; for tests and metrics.
func (s *Storage) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.objs)
}

// roomLocked is how many bytes a Put at p of namespace ns may store: the
// smaller of the store's and the namespace's free bytes, plus what the
// object it replaces holds.
func (s *Storage) roomLocked(p, ns string) int64 {
	room := min(s.opts.MaxBytes-s.total, s.opts.MaxBytesPerNamespace-s.byNamespace[ns])
	if old, ok := s.objs[p]; ok {
		room += int64(len(old.data))
	}
	return room
}

// fullLocked is the error of a Put of n bytes at p that does not fit,
// naming the limit it hit: the namespace's share when that is what is
// full, so the tenant sees its own limit and not a full store.
func (s *Storage) fullLocked(p, ns string, n int64) error {
	var old int64
	if o, ok := s.objs[p]; ok {
		old = int64(len(o.data))
	}
	// With the share off (as large as the store) it is the store's limit.
	if s.opts.MaxBytesPerNamespace < s.opts.MaxBytes && s.byNamespace[ns]-old+n > s.opts.MaxBytesPerNamespace {
		return fmt.Errorf("memory store: namespace %q is at its share: storing %s would exceed "+
			"--memory-store-max-bytes-per-namespace=%d (the namespace holds %d bytes)",
			ns, p, s.opts.MaxBytesPerNamespace, s.byNamespace[ns])
	}
	return fmt.Errorf("memory store is full: storing %s would exceed --memory-store-max-bytes=%d", p, s.opts.MaxBytes)
}

func (s *Storage) removeLocked(p string) {
	if o, ok := s.objs[p]; ok {
		ns := namespaceOf(p)
		s.total -= int64(len(o.data))
		if s.byNamespace[ns] -= int64(len(o.data)); s.byNamespace[ns] <= 0 {
			delete(s.byNamespace, ns)
		}
		delete(s.objs, p)
		dir := dirOf(p)
		if delete(s.dirs[dir], p); len(s.dirs[dir]) == 0 {
			delete(s.dirs, dir)
		}
	}
}

// namespaceOf returns the namespace of an artifact path, which every
// backend lays out as <kind>/<namespace>/<name>/<file>
// (storage.ArtifactPath); a path of another shape counts as namespace "".
func namespaceOf(p string) string {
	parts := strings.SplitN(p, "/", 4)
	if len(parts) < 4 {
		return ""
	}
	return parts[1]
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func ptrInt64(v int64) *int64 { return &v }
