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

package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

func put(t *testing.T, s *Storage, name, file, data string) meta.Artifact {
	t.Helper()
	a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: name, Namespace: "ns"}, "rev", file)
	if err := s.Put(context.Background(), &a, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPutOpenVerify(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := New(Options{BaseURL: "http://host:9090"})
	g.Expect(s.Ephemeral()).To(BeTrue())

	a := put(t, s, "obj", "one.tar.gz", "hello")
	g.Expect(a.Path).To(Equal("externalsource/ns/obj/one.tar.gz"))
	g.Expect(a.URL).To(Equal("http://host:9090/externalsource/ns/obj/one.tar.gz"))
	g.Expect(a.Digest).To(Equal("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"))
	g.Expect(*a.Size).To(Equal(int64(5)))
	g.Expect(a.LastUpdateTime.IsZero()).To(BeFalse())

	rc, n, err := s.Open(ctx, a.Path)
	g.Expect(err).ToNot(HaveOccurred())
	b, _ := io.ReadAll(rc)
	g.Expect(string(b)).To(Equal("hello"))
	g.Expect(n).To(Equal(int64(5)))

	g.Expect(s.Verify(ctx, a)).To(Succeed())

	wrong := a
	wrong.Digest = "sha256:0000"
	g.Expect(errors.Is(s.Verify(ctx, wrong), storage.ErrDigestMismatch)).To(BeTrue())

	g.Expect(s.Remove(ctx, a)).To(Succeed())
	g.Expect(errors.Is(s.Verify(ctx, a), storage.ErrNotFound)).To(BeTrue())
	_, _, err = s.Open(ctx, a.Path)
	g.Expect(errors.Is(err, storage.ErrNotFound)).To(BeTrue())
}

func TestMaxBytes(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{MaxBytes: 10, MaxBytesPerNamespace: 10})
	put(t, s, "a", "1", "12345")
	a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "b", Namespace: "ns"}, "rev", "2")
	err := s.Put(context.Background(), &a, strings.NewReader("123456"))
	g.Expect(err).To(MatchError(ContainSubstring("--memory-store-max-bytes=10")))
	// Replacing an object frees its bytes first.
	put(t, s, "a", "1", "1234567890")
	g.Expect(s.Len()).To(Equal(1))
}

func TestRemoveAllAndGarbageCollect(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := New(Options{})
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }

	var arts []meta.Artifact
	for i, f := range []string{"1", "2", "3", "4"} {
		clock = time.Unix(1000+int64(i), 0)
		arts = append(arts, put(t, s, "obj", f, f))
	}
	other := put(t, s, "other", "x", "x")

	// Keep the current and the newest other one (records=2), within TTL.
	clock = time.Unix(1010, 0)
	del, err := s.GarbageCollect(ctx, arts[3], storage.Retention{TTL: time.Minute, Records: 2})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(arts[0].Path, arts[1].Path))
	g.Expect(s.Len()).To(Equal(3))

	// Past the TTL only the current one stays.
	clock = time.Unix(2000, 0)
	del, err = s.GarbageCollect(ctx, arts[3], storage.Retention{TTL: time.Minute, Records: 2})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(arts[2].Path))

	n, err := s.RemoveAll(ctx, arts[3])
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(1))
	g.Expect(s.Verify(ctx, other)).To(Succeed(), "other objects' artifacts are untouched")
	g.Expect(s.List(dirOf(other.Path))).To(Equal([]string{other.Path}))

	// The directory index follows every removal, down to nothing.
	g.Expect(s.dirs).To(HaveLen(1))
	g.Expect(s.Remove(ctx, other)).To(Succeed())
	g.Expect(s.dirs).To(BeEmpty())
	g.Expect(s.List(dirOf(other.Path))).To(BeEmpty())
}

// BenchmarkGarbageCollect is the collection after a new revision in a
// store of 10,000 sources' artifacts: it reads the object's directory, not
// the store (docs/benchmarks.md has the figures before and after).
func BenchmarkGarbageCollect(b *testing.B) {
	ctx := context.Background()
	s := New(Options{MaxBytes: 1 << 30, MaxBytesPerNamespace: 1 << 30})
	var last meta.Artifact
	for i := range 10000 {
		a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i), Namespace: "ns"}, "rev", "a.tar.gz")
		if err := s.Put(ctx, &a, strings.NewReader("data")); err != nil {
			b.Fatal(err)
		}
		last = a
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GarbageCollect(ctx, last, storage.DefaultRetention); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecoverFindsNothing: a memory Put is all or nothing, so start-up
// recovery has nothing to remove and leaves the artifacts alone.
func TestRecoverFindsNothing(t *testing.T) {
	g := NewWithT(t)
	s := New(Options{BaseURL: "http://host:9090"})
	a := put(t, s, "obj", "one.tar.gz", "hello")
	removed, err := s.Recover(context.Background(), time.Now().Add(time.Hour))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(removed).To(BeEmpty())
	g.Expect(s.Verify(context.Background(), a)).To(Succeed())
}

// putIn stores data as an artifact of namespace ns.
func putIn(s *Storage, ns, name, file, data string) (meta.Artifact, error) {
	a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: name, Namespace: ns}, "rev", file)
	return a, s.Put(context.Background(), &a, strings.NewReader(data))
}

// TestNamespaceShare: one namespace cannot fill the store. Each case
// stores artifacts in order; a Put over the namespace's share fails naming
// --memory-store-max-bytes-per-namespace and the namespace, one over the
// whole store names --memory-store-max-bytes, and the other namespaces
// still store.
func TestNamespaceShare(t *testing.T) {
	type put struct {
		ns, name, file string
		size           int
		wantErr        string // "" : stored
	}
	tests := []struct {
		name         string
		max, perNS   int64
		puts         []put
		wantPerNS    int64
		wantHeldByNS map[string]int64
	}{
		{"default-is-a-quarter", 100, 0, []put{
			{"hostile", "a", "1", 25, ""},
			{"hostile", "b", "1", 1, `namespace "hostile" is at its share`},
			{"other", "a", "1", 25, ""},
		}, 25, map[string]int64{"hostile": 25, "other": 25}},
		{"hostile-tenant-cannot-fill-the-store", 100, 30, []put{
			{"hostile", "a", "1", 20, ""},
			{"hostile", "b", "1", 10, ""},
			{"hostile", "c", "1", 1, "--memory-store-max-bytes-per-namespace=30"},
			{"hostile", "d", "1", 60, "--memory-store-max-bytes-per-namespace=30"},
			{"tenant-b", "x", "1", 30, ""},
			{"tenant-c", "x", "1", 30, ""},
		}, 30, map[string]int64{"hostile": 30, "tenant-b": 30, "tenant-c": 30}},
		{"replacing-an-object-frees-its-bytes-first", 100, 30, []put{
			{"ns", "a", "1", 30, ""},
			{"ns", "a", "1", 30, ""},
			{"ns", "a", "1", 31, `namespace "ns" is at its share`},
		}, 30, map[string]int64{"ns": 30}},
		{"a-full-store-names-the-store-limit", 50, 30, []put{
			{"a", "x", "1", 30, ""},
			{"b", "x", "1", 20, ""},
			{"c", "x", "1", 1, "memory store is full: storing externalsource/c/x/1 would exceed --memory-store-max-bytes=50"},
		}, 30, map[string]int64{"a": 30, "b": 20}},
		{"a-share-above-the-store-is-the-store", 40, 1000, []put{
			{"a", "x", "1", 40, ""},
			{"a", "y", "1", 1, "--memory-store-max-bytes=40"},
		}, 40, map[string]int64{"a": 40}},
		{"retention-counts-previous-artifacts", 100, 30, []put{
			{"ns", "a", "1", 20, ""},
			{"ns", "a", "2", 11, "--memory-store-max-bytes-per-namespace=30"},
		}, 30, map[string]int64{"ns": 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := New(Options{MaxBytes: tt.max, MaxBytesPerNamespace: tt.perNS})
			g.Expect(s.opts.MaxBytesPerNamespace).To(Equal(tt.wantPerNS))
			for i, p := range tt.puts {
				a, err := putIn(s, p.ns, p.name, p.file, strings.Repeat("x", p.size))
				if p.wantErr == "" {
					g.Expect(err).ToNot(HaveOccurred(), "put %d", i)
					g.Expect(s.Verify(context.Background(), a)).To(Succeed())
					continue
				}
				g.Expect(err).To(MatchError(ContainSubstring(p.wantErr)), "put %d", i)
				if strings.Contains(p.wantErr, "per-namespace") || strings.Contains(p.wantErr, "share") {
					g.Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("namespace %q", p.ns)))
				}
			}
			g.Expect(s.byNamespace).To(Equal(tt.wantHeldByNS))
		})
	}
}

// TestNamespaceShareIsFreed: removing, garbage-collecting and replacing
// artifacts give the namespace its bytes back.
func TestNamespaceShareIsFreed(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s := New(Options{MaxBytes: 100, MaxBytesPerNamespace: 10})
	a, err := putIn(s, "ns", "a", "1", "0123456789")
	g.Expect(err).ToNot(HaveOccurred())
	_, err = putIn(s, "ns", "b", "1", "x")
	g.Expect(err).To(HaveOccurred())

	g.Expect(s.Remove(ctx, a)).To(Succeed())
	b, err := putIn(s, "ns", "b", "1", "01234")
	g.Expect(err).ToNot(HaveOccurred())
	_, err = putIn(s, "ns", "b", "2", "01234")
	g.Expect(err).ToNot(HaveOccurred())
	del, err := s.GarbageCollect(ctx, meta.Artifact{Path: storage.ArtifactPath("ExternalSource", "ns", "b", "2")},
		storage.Retention{Records: 1})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(b.Path))
	_, err = putIn(s, "ns", "c", "1", "01234")
	g.Expect(err).ToNot(HaveOccurred())

	n, err := s.RemoveAll(ctx, meta.Artifact{Path: storage.ArtifactPath("ExternalSource", "ns", "c", "1")})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(1))
	g.Expect(s.byNamespace).To(Equal(map[string]int64{"ns": 5}))
	g.Expect(s.total).To(Equal(int64(5)))
}

func TestNamespaceOf(t *testing.T) {
	tests := []struct{ path, want string }{
		{storage.ArtifactPath("ExternalSource", "team-a", "obj", "x.tar.gz"), "team-a"},
		{"externalsource/ns/obj/file", "ns"},
		{"externalsource/ns/obj", ""},
		{"file", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(namespaceOf(tt.path)).To(Equal(tt.want))
		})
	}
}
