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

package filesystem

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// putArtifact stores data as an artifact of a test object and returns it.
func putArtifact(t testing.TB, s *Storage, data []byte) meta.Artifact {
	t.Helper()
	obj := &metav1.ObjectMeta{Name: "big", Namespace: "ns"}
	a := s.NewArtifactFor("ExternalSource", obj, "latest", "big.tar.gz")
	if err := s.Put(context.Background(), &a, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestVerifyReadsOnlyWhenChanged: Verify reads an artifact whole only the
// first time this process sees it (not after its own write) and after the
// file changed in any way, including same size, different bytes and the
// mtime put back; otherwise it costs a stat.
func TestVerifyReadsOnlyWhenChanged(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := New(Options{Path: dir})
	g.Expect(err).ToNot(HaveOccurred())
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	size := int64(len(data))
	a := putArtifact(t, s, data)
	file := filepath.Join(dir, a.Path)

	// verify checks a and says how many bytes it read.
	verify := func(s *Storage, a meta.Artifact) (int64, error) {
		before := s.hashed.Load()
		err := s.Verify(ctx, a)
		return s.hashed.Load() - before, err
	}

	n, err := verify(s, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(BeZero(), "the bytes this process wrote are not read back")

	// A restart: the first verification reads the file, the next ones not.
	s, err = New(Options{Path: dir})
	g.Expect(err).ToNot(HaveOccurred())
	n, err = verify(s, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(size), "first verification after a start")
	for range 3 {
		n, err = verify(s, a)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(n).To(BeZero(), "unchanged file")
	}

	// Another digest for the same file is checked, not assumed.
	other := a
	other.Digest = "sha256:" + string(bytes.Repeat([]byte("0"), 64))
	n, err = verify(s, other)
	g.Expect(errors.Is(err, storage.ErrDigestMismatch)).To(BeTrue(), "%v", err)
	g.Expect(n).To(Equal(size))
	n, err = verify(s, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(size), "the failed check forgot the stamp")

	corrupt := func(mutate func(fi os.FileInfo)) {
		t.Helper()
		fi, err := os.Stat(file)
		g.Expect(err).ToNot(HaveOccurred())
		changed := bytes.Clone(data)
		changed[len(changed)/2] ^= 0xff
		f, err := os.OpenFile(file, os.O_WRONLY, 0)
		g.Expect(err).ToNot(HaveOccurred())
		_, err = f.WriteAt(changed[len(changed)/2:len(changed)/2+1], int64(len(changed)/2))
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(f.Close()).To(Succeed())
		mutate(fi)
	}
	restore := func() {
		t.Helper()
		g.Expect(os.WriteFile(file, data, 0o644)).To(Succeed())
		n, err := verify(s, a)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(n).To(Equal(size))
	}

	// Same size, different bytes, mtime touched.
	corrupt(func(os.FileInfo) {
		g.Expect(os.Chtimes(file, time.Now(), time.Now().Add(time.Second))).To(Succeed())
	})
	n, err = verify(s, a)
	g.Expect(errors.Is(err, storage.ErrDigestMismatch)).To(BeTrue(), "%v", err)
	g.Expect(n).To(Equal(size))
	restore()

	// Same size, different bytes, mtime put back: the change time (which
	// no program sets) still tells.
	corrupt(func(fi os.FileInfo) {
		g.Expect(os.Chtimes(file, fi.ModTime(), fi.ModTime())).To(Succeed())
	})
	n, err = verify(s, a)
	g.Expect(errors.Is(err, storage.ErrDigestMismatch)).To(BeTrue(), "%v", err)
	g.Expect(n).To(Equal(size))
	restore()

	// The same bytes renamed over it (a new inode) are read again, once.
	tmp := file + ".new"
	g.Expect(os.WriteFile(tmp, data, 0o644)).To(Succeed())
	g.Expect(os.Rename(tmp, file)).To(Succeed())
	n, err = verify(s, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(size))
	n, err = verify(s, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(BeZero())

	// Gone is gone, whatever was recorded.
	g.Expect(s.Remove(ctx, a)).To(Succeed())
	_, err = verify(s, a)
	g.Expect(errors.Is(err, storage.ErrNotFound)).To(BeTrue(), "%v", err)
}

// BenchmarkVerify verifies a 100 MiB artifact: "unchanged" is the cost at
// every interval (a stat), "first" the cost after a start or a change (a
// full read and hash).
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	s, err := New(Options{Path: dir})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 100<<20)
	_, _ = rand.Read(data)
	a := putArtifact(b, s, data)
	ctx := context.Background()
	b.Run("unchanged", func(b *testing.B) {
		if err := s.Verify(ctx, a); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if err := s.Verify(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("first", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			s.stamps.forget(a.Path)
			if err := s.Verify(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestStampsFollowTheFiles: the stamps of removed and garbage-collected
// artifacts go with them, so the record does not grow with the history.
func TestStampsFollowTheFiles(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s, err := New(Options{Path: t.TempDir()})
	g.Expect(err).ToNot(HaveOccurred())
	obj := &metav1.ObjectMeta{Name: "gc", Namespace: "ns"}
	var arts []meta.Artifact
	for i := range 3 {
		a := s.NewArtifactFor("ExternalSource", obj, "latest", "a"+string(rune('0'+i))+".tar.gz")
		g.Expect(s.Put(ctx, &a, bytes.NewReader([]byte{byte(i)}))).To(Succeed())
		arts = append(arts, a)
		time.Sleep(20 * time.Millisecond) // distinct mtimes: GC orders by them
	}
	stamped := func() []string {
		var out []string
		s.stamps.m.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
		return out
	}
	g.Expect(stamped()).To(ConsistOf(arts[0].Path, arts[1].Path, arts[2].Path))
	deleted, err := s.GarbageCollect(ctx, arts[2], storage.Retention{Records: 1})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(deleted).To(ConsistOf(arts[0].Path, arts[1].Path))
	g.Expect(stamped()).To(ConsistOf(arts[2].Path))
	_, err = s.RemoveAll(ctx, arts[2])
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(stamped()).To(BeEmpty())
}
