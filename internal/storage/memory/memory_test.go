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
	s := New(Options{MaxBytes: 10})
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
