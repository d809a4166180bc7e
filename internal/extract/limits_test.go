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

package extract

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/archive"
)

// tree counts the regular files under root and their bytes; a root that
// does not exist holds nothing.
func tree(root string) (files int, size int64) {
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				files++
				size += fi.Size()
			}
		}
		return nil
	})
	return files, size
}

// TestLimitsAtTheBoundary: an archive exactly at --max-extract-files or
// --max-extract-size is accepted, one entry or one byte more is refused
// naming the entry that crossed the limit, for every format. A zip is
// refused from its central directory, before anything is unpacked.
func TestLimitsAtTheBoundary(t *testing.T) {
	limits := Limits{MaxFiles: 20, MaxSize: 1000}
	nFiles := func(n int) []entry {
		es := make([]entry, n)
		for i := range es {
			es[i] = reg(fmt.Sprintf("d/%02d.yaml", i), "x")
		}
		return es
	}
	// Four entries of 250 bytes: 1000 bytes; the last one a byte longer.
	nBytes := func(extra int) []entry {
		es := make([]entry, 4)
		for i := range es {
			es[i] = reg(fmt.Sprintf("d/%d.yaml", i), strings.Repeat("y", 250))
		}
		es[3].body += strings.Repeat("y", extra)
		return es
	}
	formats := map[string]func(testing.TB, []entry) []byte{
		"tar":    func(t testing.TB, es []entry) []byte { return buildTar(t, es, false) },
		"tar.gz": func(t testing.TB, es []entry) []byte { return buildTar(t, es, true) },
		"zip":    buildZip,
	}
	for format, build := range formats {
		tests := []struct {
			name    string
			entries []entry
			want    []string // empty: accepted
		}{
			{"files-at-limit", nFiles(20), nil},
			{"files-over-limit", nFiles(21), []string{`"d/20.yaml"`, "more than 20 entries", "--max-extract-files"}},
			{"size-at-limit", nBytes(0), nil},
			{"size-over-limit", nBytes(1), []string{`"d/3.yaml"`, "1000 bytes"}},
		}
		for _, tt := range tests {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				g := NewWithT(t)
				dst, err := extractBytes(t, build(t, tt.entries), FormatAuto, limits)
				files, size := tree(dst)
				if tt.want == nil {
					g.Expect(err).ToNot(HaveOccurred())
					g.Expect(files).To(Equal(len(tt.entries)))
					return
				}
				g.Expect(err).To(HaveOccurred())
				for _, w := range tt.want {
					g.Expect(err.Error()).To(ContainSubstring(w))
				}
				g.Expect(files).To(BeNumerically("<=", limits.MaxFiles))
				g.Expect(size).To(BeNumerically("<=", limits.MaxSize))
				if format == "zip" {
					g.Expect(files).To(BeZero(), "refused from the central directory")
				}
			})
		}
	}
}

// TestTenThousandTinyEntries: an archive of exactly the default
// --max-extract-files tiny entries is accepted, with the heap bounded
// (the names seen are the only state that grows with the entries).
func TestTenThousandTinyEntries(t *testing.T) {
	many := make([]entry, DefaultMaxFiles)
	for i := range many {
		many[i] = reg(fmt.Sprintf("manifests/%02d/%05d.yaml", i%100, i), "x")
	}
	for _, format := range []string{"tar.gz", "zip"} {
		t.Run(format, func(t *testing.T) {
			g := NewWithT(t)
			var data []byte
			if format == "zip" {
				data = buildZip(t, many)
			} else {
				data = buildTar(t, many, true)
			}
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			var dst string
			var err error
			peak := peakHeap(func() { dst, err = extractBytes(t, data, FormatAuto, Limits{}) })
			g.Expect(err).ToNot(HaveOccurred())
			files, _ := tree(dst)
			g.Expect(files).To(Equal(DefaultMaxFiles))
			t.Logf("%s: %d entries (%d bytes on the wire) extracted in %s, peak heap %.1f MiB (%.1f MiB above the start)",
				format, files, len(data), time.Since(start).Round(time.Millisecond),
				float64(peak)/(1<<20), (float64(peak)-float64(before.HeapAlloc))/(1<<20))
			g.Expect(peak-min(peak, before.HeapAlloc)).To(BeNumerically("<", 32<<20), "heap bounded")
		})
	}
}

// TestManyEntryBombs: 1 GiB unpacked as 1024 honest entries of 1 MiB of
// zeros, about 1 MiB on the wire. No single header is alarming; the sum
// is. A zip is refused from its central directory with nothing written;
// a tar.gz, a stream, is refused at the first entry past the limit, with
// at most the limit on disk. Either way the entry is named and the heap
// stays bounded.
func TestManyEntryBombs(t *testing.T) {
	const mib = 1 << 20
	var tgz bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&tgz, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for i := range 1024 {
		name := fmt.Sprintf("bomb/%04d", i)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: mib, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(tw, zeros{}, mib); err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(w, zeros{}, mib); err != nil {
			t.Fatal(err)
		}
	}
	_ = tw.Close()
	_ = gz.Close()
	_ = zw.Close()

	tests := []struct {
		name    string
		data    []byte
		limits  Limits
		want    string
		maxDisk int64
	}{
		// The default 512 MiB would be written before the refusal: a
		// lower limit shows the same bound without filling the disk.
		{"tar.gz", tgz.Bytes(), Limits{MaxSize: 64 * mib}, `"bomb/0064"`, 64 * mib},
		{"zip", zbuf.Bytes(), Limits{}, `"bomb/0512"`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(len(tt.data)).To(BeNumerically("<", 2*mib), "about 1 MiB on the wire")
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			var dst string
			var err error
			peak := peakHeap(func() { dst, err = extractBytes(t, tt.data, FormatAuto, tt.limits) })
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			_, written := tree(dst)
			t.Logf("%s: %d bytes on the wire, refused in %s, %d bytes written to disk, peak heap %.1f MiB (%.1f MiB above the start): %v",
				tt.name, len(tt.data), time.Since(start).Round(time.Millisecond), written,
				float64(peak)/(1<<20), (float64(peak)-float64(before.HeapAlloc))/(1<<20), err)
			g.Expect(written).To(BeNumerically("<=", tt.maxDisk))
			g.Expect(peak-min(peak, before.HeapAlloc)).To(BeNumerically("<", 32<<20), "heap bounded")
		})
	}
}

// git runs git in dir with a configuration of the test's own.
func git(g Gomega, dir string, args ...string) []byte {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.Output()
	g.Expect(err).ToNot(HaveOccurred(), "git %v", args)
	return out
}

// TestGitArchiveReleaseAssets: GitHub's "Source code" release assets are
// `git archive` output, whose tar starts with a pax global header holding
// the commit id. Real git's tar, tar.gz and zip of a tree, and archive/tar's
// packing of the same files (another order, mtime, owner, modes), all
// extract to the same files and publish the same digest.
func TestGitArchiveReleaseAssets(t *testing.T) {
	g := NewWithT(t)
	_, err := exec.LookPath("git")
	g.Expect(err).ToNot(HaveOccurred(), "git is needed to build this repository, and here")
	want := map[string]string{
		"deploy/app.yaml":          "kind: Deployment\n",
		"deploy/base/svc.yaml":     "kind: Service\n",
		"charts/app/Chart.yaml":    "name: app\nversion: 1.2.3\n",
		"charts/app/values.yaml":   "replicas: 1\n",
		"hack/install.sh":          "#!/bin/sh\n",
		"README.md":                "# app\n",
		"charts/app/templates/x.y": "{{ .Values.replicas }}\n",
	}
	repo := t.TempDir()
	for n, b := range want {
		p := filepath.Join(repo, filepath.FromSlash(n))
		g.Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		g.Expect(os.WriteFile(p, []byte(b), mode)).To(Succeed())
	}
	git(g, repo, "init", "-q")
	git(g, repo, "add", ".")
	git(g, repo, "commit", "-q", "-m", "v1.2.3")
	archives := map[string][]byte{}
	for _, format := range []string{"tar", "tar.gz", "zip"} {
		archives["git-"+format] = git(g, repo, "archive", "--format="+format, "--prefix=app-1.2.3/", "HEAD")
	}
	g.Expect(archives["git-tar"][:512]).To(ContainSubstring("pax_global_header"))
	var mine []entry
	for n, b := range want { // map order: another order than git's
		e := entry{name: "app-1.2.3/" + n, body: b, typ: tar.TypeReg, mode: 0o600, mtime: time.Unix(1, 0), uid: 4242}
		if strings.HasSuffix(n, ".sh") {
			e.mode = 0o700
		}
		mine = append(mine, e)
	}
	archives["archive/tar"] = buildTar(t, mine, true)

	digests := map[string]string{}
	for name, data := range archives {
		dst, err := extractBytes(t, data, FormatAuto, Limits{})
		g.Expect(err).ToNot(HaveOccurred(), name)
		dir, err := Select(dst, "app-1.2.3")
		g.Expect(err).ToNot(HaveOccurred(), name)
		g.Expect(files(g, dir)).To(Equal(want), name)
		var buf bytes.Buffer
		res, err := archive.WriteDir(&buf, "", dir)
		g.Expect(err).ToNot(HaveOccurred(), name)
		digests[name] = res.Digest
	}
	for name, d := range digests {
		g.Expect(d).To(Equal(digests["archive/tar"]), name)
	}
	t.Logf("git tar, tar.gz, zip and archive/tar all give %s", digests["archive/tar"])
}

// BenchmarkBomb measures what refusing a 1 GiB-unpacked, ~1 MiB archive
// costs (run with -benchmem; peak-heap-MiB is the highest HeapAlloc
// sampled during the refusals, the archive itself included).
func BenchmarkBomb(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "bomb.tar.gz")
	if err := os.WriteFile(src, tarGzBomb(b, 1<<30), 0o600); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.ResetTimer()
	peak := peakHeap(func() {
		for i := range b.N {
			if err := File(src, filepath.Join(dir, fmt.Sprint(i)), FormatAuto, Limits{}); err == nil {
				b.Fatal("the bomb was extracted")
			}
		}
	})
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
