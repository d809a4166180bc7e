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

package archive

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// The digests of these archives are pinned: a revision is the digest of
// its archive, so any change to the bytes Write and WriteDir produce for
// the same data (a gzip level, a header field, a writer reused from the
// pool in a dirty state) would publish a new revision of every source at
// the upgrade, and every Kustomization and HelmRelease would apply again.
const (
	pinnedWrite    = "sha256:736de164b5929ce1927d9a40043971c42bb9d7fac41cc897cb391c192aad9695"
	pinnedWriteDir = "sha256:059c1d0a5965b90c8589934c44aa53834ff59b88a46271aa5088ed4f6d0fe80d"
)

// pinnedDir makes the files of the WriteDir pin.
func pinnedDir(t *testing.T) string {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"deploy/a.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
		"deploy/b.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
		"bin/run.sh":     "#!/bin/sh\necho ok\n",
		"README.md":      "# pinned\n",
		"deploy/z/c.txt": "c\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if filepath.Ext(p) == ".sh" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDigestsArePinned: the same data gives the pinned digests, first
// and after archives of other, incompressible data have used (and
// returned) the pooled gzip writers.
func TestDigestsArePinned(t *testing.T) {
	g := NewWithT(t)
	data := []byte(`{"price": 42}`)
	dir := pinnedDir(t)
	noise := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	for round := range 3 {
		r, err := Write(io.Discard, "data/pricing.json", bytes.NewReader(data), int64(len(data)))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.Digest).To(Equal(pinnedWrite), "Write, round %d", round)
		rd, err := WriteDir(io.Discard, "app", dir)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rd.Digest).To(Equal(pinnedWriteDir), "WriteDir, round %d", round)

		// Dirty the pool: a large archive, and one abandoned half-way.
		_, err = Write(io.Discard, "noise.bin", bytes.NewReader(noise), int64(len(noise)))
		g.Expect(err).NotTo(HaveOccurred())
		_, err = Write(io.Discard, "short.bin", bytes.NewReader(noise[:1000]), 5000)
		g.Expect(err).To(HaveOccurred())
	}
}

// BenchmarkWrite is the archive of a small JSON document, what most
// revisions are. Its allocations are paid at every new revision: 1.2 MB
// and 400 µs per archive with a new gzip writer each time, 2 KB and 9 µs
// with the pool (docs/benchmarks.md).
func BenchmarkWrite(b *testing.B) {
	data := bytes.Repeat([]byte(`{"name": "value", "n": 12345},`), 40)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Write(io.Discard, "data.json", bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
