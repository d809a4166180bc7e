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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

var hex64 = strings.Repeat("0123456789abcdef", 4)

func TestTempFileArtifact(t *testing.T) {
	tests := []struct {
		name string
		want string // "" when not a temporary file
	}{
		{name: hex64 + ".tar.gz1234567890", want: hex64 + ".tar.gz"},
		{name: hex64 + ".tar.gz7", want: hex64 + ".tar.gz"},
		{name: "x.tar.gz4294967295", want: "x.tar.gz"},
		{name: hex64 + ".tar.gz"},            // an artifact
		{name: hex64 + ".tar.gz.lock"},       // its lock
		{name: hex64 + ".tar.gz123.lock"},    // not what CreateTemp makes
		{name: hex64 + ".tar.gz12345678901"}, // more digits than a uint32
		{name: ".tar.gz123"},                 // no artifact name
		{name: "data.json123"},               // not an artifact extension
		{name: "1234"},
		{name: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, ok := tempFileArtifact(tt.name)
			g.Expect(ok).To(Equal(tt.want != ""))
			g.Expect(got).To(Equal(tt.want))
		})
	}
}

// TestTempFileArtifactMatchesCreateTemp: what os.CreateTemp really makes
// (as Flux's AtomicWriteFile calls it) is recognised.
func TestTempFileArtifactMatchesCreateTemp(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	for range 50 {
		f, err := os.CreateTemp(dir, hex64+".tar.gz")
		g.Expect(err).ToNot(HaveOccurred())
		f.Close()
		got, ok := tempFileArtifact(filepath.Base(f.Name()))
		g.Expect(ok).To(BeTrue(), f.Name())
		g.Expect(got).To(Equal(hex64 + ".tar.gz"))
	}
}

// fixture is a store with one object's directory holding real artifacts,
// lock files and temporary files.
type fixture struct {
	s    *Storage
	root string
	dir  string // the object's directory, relative
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	root := t.TempDir()
	s, err := New(Options{Path: root, BaseURL: "http://artifacts.example"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{s: s, root: root, dir: "externalsource/ns/obj"}
}

func (f *fixture) artifact(name string) meta.Artifact {
	return f.s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Namespace: "ns", Name: "obj"}, "latest@"+name, name)
}

// file writes a file in the object's directory with the given age.
func (f *fixture) file(t *testing.T, name string, age time.Duration) string {
	t.Helper()
	p := filepath.Join(f.root, f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	mt := time.Now().Add(-age)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	return f.dir + "/" + name
}

func (f *fixture) exists(p string) bool {
	_, err := os.Lstat(filepath.Join(f.root, p))
	return err == nil
}

func TestRecover(t *testing.T) {
	a, b := "a"+hex64[1:]+".tar.gz", "b"+hex64[1:]+".tar.gz"
	tests := []struct {
		name    string
		setup   func(t *testing.T, f *fixture) (removed, kept []string)
		wantErr bool
	}{
		{
			name: "a temporary file older than the start goes",
			setup: func(t *testing.T, f *fixture) ([]string, []string) {
				return []string{f.file(t, a+"123456", time.Hour)}, nil
			},
		},
		{
			name: "several, in several objects' directories",
			setup: func(t *testing.T, f *fixture) ([]string, []string) {
				x := f.file(t, a+"1", time.Hour)
				y := f.file(t, b+"22", time.Minute)
				f.dir = "externalsource/other/obj"
				z := f.file(t, a+"333", time.Hour)
				return []string{x, y, z}, nil
			},
		},
		{
			name: "a temporary file written since the start stays",
			setup: func(t *testing.T, f *fixture) ([]string, []string) {
				return nil, []string{f.file(t, a+"123", -time.Second)}
			},
		},
		{
			name: "artifacts and lock files stay",
			setup: func(t *testing.T, f *fixture) ([]string, []string) {
				return []string{f.file(t, b+"9", time.Hour)},
					[]string{f.file(t, a, time.Hour), f.file(t, a+".lock", time.Hour), f.file(t, b+".lock", time.Hour),
						f.file(t, "data.json123", time.Hour)}
			},
		},
		{
			name: "a temporary file whose artifact is locked by a writer stays",
			setup: func(t *testing.T, f *fixture) ([]string, []string) {
				unlock, err := f.s.Lock(t.Context(), f.artifact(a))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(unlock)
				return []string{f.file(t, b+"2", time.Hour)}, []string{f.file(t, a+"1", time.Hour)}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t)
			removed, kept := tt.setup(t, f)
			got, err := f.s.Recover(t.Context(), time.Now())
			g.Expect(err).ToNot(HaveOccurred())
			if removed == nil {
				g.Expect(got).To(BeEmpty())
			} else {
				g.Expect(got).To(ConsistOf(removed))
			}
			for _, p := range removed {
				g.Expect(f.exists(p)).To(BeFalse(), p)
			}
			for _, p := range kept {
				g.Expect(f.exists(p)).To(BeTrue(), p)
			}
		})
	}
}

// TestGarbageCollectRemovesTempFiles: the garbage collection after a new
// artifact removes what killed writers left in the object's directory,
// so that Flux's retention counts only real artifacts, and keeps the file
// of a live writer.
func TestGarbageCollectRemovesTempFiles(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	put := func(name, data string) meta.Artifact {
		a := f.artifact(name)
		g.Expect(f.s.Put(t.Context(), &a, strings.NewReader(data))).To(Succeed())
		return a
	}
	prev := put("a"+hex64[1:]+".tar.gz", "previous")
	time.Sleep(20 * time.Millisecond)
	cur := put("b"+hex64[1:]+".tar.gz", "current")
	gc := func(records int) []string {
		unlock, err := f.s.Lock(t.Context(), cur)
		g.Expect(err).ToNot(HaveOccurred())
		defer unlock()
		deleted, err := f.s.GarbageCollect(t.Context(), cur, storage.Retention{TTL: time.Hour, Records: records})
		g.Expect(err).ToNot(HaveOccurred())
		return deleted
	}

	// Left by killed writers, newer than both artifacts (Flux's retention
	// would keep them instead of the previous artifact): one of the
	// current artifact (the same data fetched again after a restart), one
	// of the previous one.
	staleCur := f.file(t, filepath.Base(cur.Path)+"4242", 0)
	stalePrev := f.file(t, filepath.Base(prev.Path)+"17", 0)
	g.Expect(gc(2)).To(ConsistOf(staleCur, stalePrev))
	g.Expect(f.exists(staleCur)).To(BeFalse())
	g.Expect(f.exists(stalePrev)).To(BeFalse())
	g.Expect(f.exists(prev.Path)).To(BeTrue(), "retention keeps the previous artifact")
	g.Expect(f.exists(cur.Path)).To(BeTrue())

	// A live writer of another artifact holds its lock: its file stays.
	other := "c" + hex64[1:] + ".tar.gz"
	unlock, err := f.s.Lock(t.Context(), f.artifact(other))
	g.Expect(err).ToNot(HaveOccurred())
	defer unlock()
	live := f.file(t, other+"99", 0)
	g.Expect(gc(10)).To(BeEmpty())
	g.Expect(f.exists(live)).To(BeTrue(), "a live writer's file")

	n, err := f.s.RemoveAll(t.Context(), cur)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(n).To(Equal(2), "RemoveAll counts artifacts, not the temporary file")
}

// TestRecoverWithoutAStartTime: the zero time is before everything, so a
// caller that forgot the process start removes nothing.
func TestRecoverWithoutAStartTime(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	p := f.file(t, hex64+".tar.gz1", time.Hour)
	removed, err := f.s.Recover(t.Context(), time.Time{})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(removed).To(BeEmpty())
	g.Expect(f.exists(p)).To(BeTrue())
}
