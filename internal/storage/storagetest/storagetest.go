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

// Package storagetest is the conformance suite every Storage backend runs:
// one table of behaviours, so the reconciler and the artifact server can
// rely on the same semantics whatever the backend.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/artifact/digest"
	godigest "github.com/opencontainers/go-digest"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// Backend is one store under test.
type Backend struct {
	Store storage.Storage
	// BaseURL the store was configured with.
	BaseURL string
	// Corrupt changes the stored bytes at path behind the store's back.
	Corrupt func(t *testing.T, path string)
	// TimeResolution of the store's modification times; puts that must be
	// ordered in time are spaced by it.
	TimeResolution time.Duration
	// HoldsData says the store keeps artifacts in the process's memory
	// (the memory backend), so the streaming memory bound does not apply.
	HoldsData bool
}

// Run runs the conformance suite; newBackend returns a fresh, empty store.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"put-open-verify", testPutOpenVerify},
		{"artifact-digest-algo-honoured", testDigestAlgorithm},
		{"expected-digest-mismatch-stores-nothing", testExpectedDigest},
		{"missing-is-not-found", testMissing},
		{"remove", testRemove},
		{"remove-all-of-one-object", testRemoveAll},
		{"garbage-collect-records", testGCRecords},
		{"garbage-collect-ttl", testGCTTL},
		{"concurrent-puts-of-the-same-artifact", testConcurrentPuts},
		{"corrupt-object-detected", testCorrupt},
		{"lock-excludes", testLock},
		{"large-object-streamed", testLarge},
		{"small-put-allocates-little", testSmallPutAllocatesLittle},
		{"more-than-1000-objects", testManyObjects},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newBackend(t)) })
	}
}

var ctx = context.Background()

func object(name string) *metav1.ObjectMeta {
	return &metav1.ObjectMeta{Name: name, Namespace: "ns"}
}

// digestOf is the digest a store must record for b: of Flux's canonical
// algorithm, which --artifact-digest-algo sets.
func digestOf(b []byte) string {
	return digest.Canonical.FromBytes(b).String()
}

func put(t *testing.T, b Backend, obj, file string, data []byte, withDigest bool) meta.Artifact {
	t.Helper()
	a := b.Store.NewArtifactFor("ExternalSource", object(obj), "rev", file)
	if withDigest {
		a.Digest = digestOf(data)
	}
	if err := b.Store.Put(ctx, &a, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put %s: %v", a.Path, err)
	}
	return a
}

func read(g Gomega, s storage.Storage, p string) []byte {
	rc, n, err := s.Open(ctx, p)
	g.Expect(err).ToNot(HaveOccurred())
	defer rc.Close()
	data, err := io.ReadAll(rc)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(int64(len(data))).To(Equal(n))
	return data
}

func testPutOpenVerify(t *testing.T, b Backend) {
	for _, withDigest := range []bool{false, true} {
		g := NewWithT(t)
		data := []byte(fmt.Sprintf("archive bytes, digest given: %v", withDigest))
		a := put(t, b, "obj", fmt.Sprintf("a-%v.tar.gz", withDigest), data, withDigest)
		g.Expect(a.Path).To(Equal(fmt.Sprintf("externalsource/ns/obj/a-%v.tar.gz", withDigest)))
		g.Expect(a.URL).To(Equal(b.BaseURL + "/" + a.Path))
		g.Expect(a.Digest).To(Equal(digestOf(data)))
		g.Expect(a.Size).ToNot(BeNil())
		g.Expect(*a.Size).To(Equal(int64(len(data))))
		g.Expect(a.LastUpdateTime.IsZero()).To(BeFalse())
		g.Expect(read(g, b.Store, a.Path)).To(Equal(data))
		g.Expect(b.Store.Verify(ctx, a)).To(Succeed())

		// Overwriting the same path replaces it whole.
		again := put(t, b, "obj", fmt.Sprintf("a-%v.tar.gz", withDigest), data, withDigest)
		g.Expect(again.Digest).To(Equal(a.Digest))
		g.Expect(b.Store.Verify(ctx, again)).To(Succeed())
	}
}

func testExpectedDigest(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := b.Store.NewArtifactFor("ExternalSource", object("obj"), "rev", "x.tar.gz")
	a.Digest = digestOf([]byte("something else"))
	err := b.Store.Put(ctx, &a, strings.NewReader("the bytes"))
	g.Expect(errors.Is(err, storage.ErrDigestMismatch)).To(BeTrue(), "got %v", err)
	_, _, err = b.Store.Open(ctx, a.Path)
	g.Expect(errors.Is(err, storage.ErrNotFound)).To(BeTrue(), "nothing stored, got %v", err)
}

// testDigestAlgorithm stores with digest.Canonical set to SHA-512, as main
// does for --artifact-digest-algo=sha512: the recorded digest is SHA-512,
// verification uses the digest's own algorithm (so an artifact recorded
// with SHA-256 before the flag changed still verifies), and a mismatch is
// recognised whatever the algorithm.
func testDigestAlgorithm(t *testing.T, b Backend) {
	g := NewWithT(t)
	old := put(t, b, "algo", "old.tar.gz", []byte("before the flag changed"), true)
	g.Expect(old.Digest).To(HavePrefix(string(digest.Canonical) + ":"))

	defer func(c godigest.Algorithm) { digest.Canonical = c }(digest.Canonical)
	digest.Canonical = godigest.SHA512
	for _, withDigest := range []bool{false, true} {
		data := []byte(fmt.Sprintf("sha512 bytes, digest given: %v", withDigest))
		a := put(t, b, "algo", fmt.Sprintf("new-%v.tar.gz", withDigest), data, withDigest)
		g.Expect(a.Digest).To(Equal(godigest.SHA512.FromBytes(data).String()))
		g.Expect(b.Store.Verify(ctx, a)).To(Succeed())
		wrong := a
		wrong.Digest = godigest.SHA512.FromString("other").String()
		g.Expect(errors.Is(b.Store.Verify(ctx, wrong), storage.ErrDigestMismatch)).To(BeTrue())
	}
	g.Expect(b.Store.Verify(ctx, old)).To(Succeed())

	// An expected digest of another algorithm than the canonical one is
	// checked with its own algorithm.
	data := []byte("sha256 expected while sha512 is canonical")
	a := b.Store.NewArtifactFor("ExternalSource", object("algo"), "rev", "mixed.tar.gz")
	a.Digest = godigest.SHA256.FromBytes(data).String()
	g.Expect(b.Store.Put(ctx, &a, bytes.NewReader(data))).To(Succeed())
	g.Expect(a.Digest).To(Equal(godigest.SHA256.FromBytes(data).String()))
	g.Expect(b.Store.Verify(ctx, a)).To(Succeed())
}

func testMissing(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := b.Store.NewArtifactFor("ExternalSource", object("none"), "rev", "none.tar.gz")
	a.Digest = digestOf(nil)
	g.Expect(errors.Is(b.Store.Verify(ctx, a), storage.ErrNotFound)).To(BeTrue())
	_, _, err := b.Store.Open(ctx, a.Path)
	g.Expect(errors.Is(err, storage.ErrNotFound)).To(BeTrue(), "got %v", err)
	g.Expect(b.Store.Remove(ctx, a)).To(Succeed(), "removing a missing artifact is not an error")
	n, err := b.Store.RemoveAll(ctx, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(BeZero())
}

func testRemove(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := put(t, b, "obj", "a.tar.gz", []byte("a"), true)
	keep := put(t, b, "obj", "b.tar.gz", []byte("b"), true)
	g.Expect(b.Store.Remove(ctx, a)).To(Succeed())
	g.Expect(errors.Is(b.Store.Verify(ctx, a), storage.ErrNotFound)).To(BeTrue())
	g.Expect(b.Store.Verify(ctx, keep)).To(Succeed())
}

func testRemoveAll(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := put(t, b, "obj", "a.tar.gz", []byte("a"), true)
	put(t, b, "obj", "b.tar.gz", []byte("b"), true)
	other := put(t, b, "obj-2", "a.tar.gz", []byte("a"), true)
	n, err := b.Store.RemoveAll(ctx, a)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(2))
	g.Expect(errors.Is(b.Store.Verify(ctx, a), storage.ErrNotFound)).To(BeTrue())
	g.Expect(b.Store.Verify(ctx, other)).To(Succeed(), "another object whose name shares a prefix is untouched")
}

func testGCRecords(t *testing.T, b Backend) {
	g := NewWithT(t)
	var arts []meta.Artifact
	for i := range 4 {
		if i > 0 {
			time.Sleep(b.TimeResolution)
		}
		arts = append(arts, put(t, b, "obj", fmt.Sprintf("%d.tar.gz", i), []byte{byte(i)}, true))
	}
	other := put(t, b, "other", "0.tar.gz", []byte{0}, true)
	// Current is the newest; records=2 keeps it and the one before.
	del, err := b.Store.GarbageCollect(ctx, arts[3], storage.Retention{TTL: time.Hour, Records: 2})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(arts[0].Path, arts[1].Path))
	for i, a := range arts {
		err := b.Store.Verify(ctx, a)
		if i < 2 {
			g.Expect(errors.Is(err, storage.ErrNotFound)).To(BeTrue(), a.Path)
		} else {
			g.Expect(err).ToNot(HaveOccurred(), a.Path)
		}
	}
	g.Expect(b.Store.Verify(ctx, other)).To(Succeed())
	// The current artifact is kept even when it is the oldest.
	del, err = b.Store.GarbageCollect(ctx, arts[2], storage.Retention{TTL: time.Hour, Records: 1})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(arts[3].Path))
	g.Expect(b.Store.Verify(ctx, arts[2])).To(Succeed())
}

func testGCTTL(t *testing.T, b Backend) {
	g := NewWithT(t)
	old := put(t, b, "obj", "old.tar.gz", []byte("old"), true)
	time.Sleep(b.TimeResolution)
	cur := put(t, b, "obj", "cur.tar.gz", []byte("cur"), true)
	// Within the TTL the previous one stays for in-flight downloads.
	del, err := b.Store.GarbageCollect(ctx, cur, storage.Retention{TTL: time.Hour, Records: 5})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(BeEmpty())
	time.Sleep(b.TimeResolution + 10*time.Millisecond)
	del, err = b.Store.GarbageCollect(ctx, cur, storage.Retention{TTL: time.Nanosecond, Records: 5})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(del).To(ConsistOf(old.Path))
	g.Expect(b.Store.Verify(ctx, cur)).To(Succeed())
}

func testConcurrentPuts(t *testing.T, b Backend) {
	g := NewWithT(t)
	data := bytes.Repeat([]byte("concurrent "), 10000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := b.Store.NewArtifactFor("ExternalSource", object("obj"), "rev", "same.tar.gz")
			a.Digest = digestOf(data)
			errs <- b.Store.Put(ctx, &a, bytes.NewReader(data))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).ToNot(HaveOccurred())
	}
	a := b.Store.NewArtifactFor("ExternalSource", object("obj"), "rev", "same.tar.gz")
	a.Digest = digestOf(data)
	g.Expect(b.Store.Verify(ctx, a)).To(Succeed())
	g.Expect(read(g, b.Store, a.Path)).To(Equal(data))
}

func testCorrupt(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := put(t, b, "obj", "c.tar.gz", []byte("pristine"), true)
	b.Corrupt(t, a.Path)
	err := b.Store.Verify(ctx, a)
	g.Expect(errors.Is(err, storage.ErrDigestMismatch)).To(BeTrue(), "got %v", err)
}

func testLock(t *testing.T, b Backend) {
	g := NewWithT(t)
	a := b.Store.NewArtifactFor("ExternalSource", object("obj"), "rev", "l.tar.gz")
	unlock, err := b.Store.Lock(ctx, a)
	g.Expect(err).ToNot(HaveOccurred())
	var second atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		u, err := b.Store.Lock(ctx, a)
		if err == nil {
			second.Store(true)
			u()
		}
	}()
	g.Consistently(second.Load, 200*time.Millisecond, 20*time.Millisecond).Should(BeFalse(), "a held lock excludes")
	unlock()
	g.Eventually(done, 5*time.Second).Should(BeClosed())
	g.Expect(second.Load()).To(BeTrue())
}

// patternReader yields n bytes of a non-repeating pattern without holding them.
type patternReader struct {
	n, off int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n-r.off {
		p = p[:r.n-r.off]
	}
	for i := range p {
		x := uint64(r.off + int64(i))
		p[i] = byte((x * 2654435761) >> 13)
	}
	r.off += int64(len(p))
	return len(p), nil
}

// testLarge stores 100 MiB streamed from a reader that holds nothing and
// checks, for backends that do not keep data in memory, that the live heap
// never grows by more than 64 MiB while doing so.
func testLarge(t *testing.T, b Backend) {
	g := NewWithT(t)
	const size = 100 << 20
	h := digest.Canonical.Digester()
	_, _ = io.Copy(h.Hash(), &patternReader{n: size})
	want := h.Digest().String()

	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	a := b.Store.NewArtifactFor("ExternalSource", object("large"), "rev", "large.tar.gz")
	err := b.Store.Put(ctx, &a, &patternReader{n: size})
	close(stop)
	<-sampled
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(a.Digest).To(Equal(want))
	g.Expect(*a.Size).To(Equal(int64(size)))
	growth := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("heap growth while storing 100 MiB: %d MiB", growth>>20)
	if !b.HoldsData {
		g.Expect(growth).To(BeNumerically("<", 64<<20), "storing must stream, not buffer")
	}

	rc, n, err := b.Store.Open(ctx, a.Path)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(int64(size)))
	h = digest.Canonical.Digester()
	_, err = io.Copy(h.Hash(), rc)
	rc.Close()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(h.Digest().String()).To(Equal(want))
	g.Expect(b.Store.Verify(ctx, a)).To(Succeed())
	g.Expect(b.Store.Remove(ctx, a)).To(Succeed())
}

// testSmallPutAllocatesLittle stores a 4 KiB artifact from a reader that
// knows its size, as the reconciler's spool gives it: the backend must not
// allocate much more than the artifact (S3 used to allocate a 16 MiB part
// for every upload).
func testSmallPutAllocatesLittle(t *testing.T, b Backend) {
	g := NewWithT(t)
	data := bytes.Repeat([]byte("small artifact "), 4096/15)
	var total uint64
	const puts = 5
	for i := range puts {
		a := b.Store.NewArtifactFor("ExternalSource", object("small"), "rev", fmt.Sprintf("small-%d.tar.gz", i))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g.Expect(b.Store.Put(ctx, &a, bytes.NewReader(data))).To(Succeed())
		runtime.ReadMemStats(&after)
		total += after.TotalAlloc - before.TotalAlloc
		g.Expect(b.Store.Verify(ctx, a)).To(Succeed())
		g.Expect(b.Store.Remove(ctx, a)).To(Succeed())
	}
	perPut := total / puts
	t.Logf("allocated per Put of %d bytes: %d KiB", len(data), perPut>>10)
	g.Expect(perPut).To(BeNumerically("<", 1<<20), "a small Put allocates far less than one upload part")
}

// testManyObjects lists past one page of S3 results (1,000 keys).
func testManyObjects(t *testing.T, b Backend) {
	g := NewWithT(t)
	const n = 1005
	var first meta.Artifact
	for i := range n {
		a := put(t, b, "many", fmt.Sprintf("%04d.tar.gz", i), []byte{byte(i)}, true)
		if i == 0 {
			first = a
		}
	}
	removed, err := b.Store.RemoveAll(ctx, first)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(removed).To(Equal(n))
	g.Expect(errors.Is(b.Store.Verify(ctx, first), storage.ErrNotFound)).To(BeTrue())
}
