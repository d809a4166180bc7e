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
	"compress/flate"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/archive"
)

// entry is one member of a test archive.
type entry struct {
	name     string
	body     string
	typ      byte // tar type; zip: TypeSymlink, TypeDir or regular
	linkname string
	mode     int64
	mtime    time.Time
	uid      int
}

func reg(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }

// buildTar writes entries as a tar, gzipped when gz.
func buildTar(t testing.TB, entries []entry, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.linkname, Mode: mode,
			ModTime: e.mtime, Uid: e.uid, Gid: e.uid, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// buildZip writes entries as a zip.
func buildZip(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: e.mtime}
		mode := fs.FileMode(e.mode)
		if mode == 0 {
			mode = 0o644
		}
		body := e.body
		switch e.typ {
		case tar.TypeSymlink:
			mode |= fs.ModeSymlink
			body = e.linkname
		case tar.TypeDir:
			mode |= fs.ModeDir
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// extractBytes writes data to a file and extracts it into a new directory.
func extractBytes(t testing.TB, data []byte, format string, l Limits) (string, error) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "out")
	return dst, File(src, dst, format, l)
}

// hostileCases are archives that must be refused; they also seed the fuzzer.
func hostileCases(t testing.TB) []struct {
	name string
	data []byte
	want []string
} {
	many := make([]entry, DefaultMaxFiles+1)
	for i := range many {
		many[i] = reg(fmt.Sprintf("f/%05d", i), "x")
	}
	return []struct {
		name string
		data []byte
		want []string
	}{
		{"zip-slip", buildZip(t, []entry{reg("ok.yaml", "a"), reg("../evil.sh", "x")}), []string{`"../evil.sh"`, "'..'"}},
		{"zip-slip-nested", buildZip(t, []entry{reg("a/b/../../../evil", "x")}), []string{`"a/b/../../../evil"`, "'..'"}},
		{"zip-absolute", buildZip(t, []entry{reg("/etc/cron.d/evil", "x")}), []string{`"/etc/cron.d/evil"`, "absolute"}},
		{"tar-dotdot", buildTar(t, []entry{reg("../../evil", "x")}, true), []string{`"../../evil"`}},
		{"tar-dotdot-end", buildTar(t, []entry{reg("a/..", "x")}, false), []string{`"a/.."`, "'..'"}},
		{"tar-absolute", buildTar(t, []entry{reg("/etc/passwd", "x")}, true), []string{`"/etc/passwd"`}},
		{"tar-symlink-etc", buildTar(t, []entry{{name: "etc", typ: tar.TypeSymlink, linkname: "/etc"}}, true),
			[]string{`"etc"`, "leaves the archive root"}},
		{"tar-symlink-climb", buildTar(t, []entry{{name: "a/l", typ: tar.TypeSymlink, linkname: "../../x"}}, true),
			[]string{`"a/l"`, "leaves the archive root"}},
		{"zip-symlink-etc", buildZip(t, []entry{{name: "passwd", typ: tar.TypeSymlink, linkname: "/etc/passwd"}}),
			[]string{`"passwd"`, "leaves the archive root"}},
		{"tar-hardlink-out", buildTar(t, []entry{{name: "h", typ: tar.TypeLink, linkname: "../outside"}}, true),
			[]string{`"h"`, "leaves the archive root"}},
		{"tar-hardlink-absolute", buildTar(t, []entry{{name: "h", typ: tar.TypeLink, linkname: "/etc/shadow"}}, false),
			[]string{`"h"`, "leaves the archive root"}},
		{"tar-char-device", buildTar(t, []entry{{name: "dev/null", typ: tar.TypeChar}}, true), []string{`"dev/null"`, "character device"}},
		{"tar-block-device", buildTar(t, []entry{{name: "sda", typ: tar.TypeBlock}}, true), []string{`"sda"`, "block device"}},
		{"tar-fifo", buildTar(t, []entry{{name: "p", typ: tar.TypeFifo}}, true), []string{`"p"`, "fifo"}},
		{"tar-duplicate", buildTar(t, []entry{reg("a.yaml", "1"), reg("./a.yaml", "2")}, true), []string{`"./a.yaml"`, "duplicate"}},
		{"zip-duplicate", buildZip(t, []entry{reg("a.yaml", "1"), reg("a.yaml", "2")}), []string{`"a.yaml"`, "duplicate"}},
		{"tar-too-many", buildTar(t, many, true), []string{`"f/10000"`, "more than 10000 entries", "--max-extract-files"}},
		{"zip-too-many", buildZip(t, many), []string{`"f/10000"`, "more than 10000 entries"}},
		{"link-to-dir", buildTar(t, []entry{{name: "d", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeSymlink, linkname: "d"}}, true),
			[]string{`"l"`, "not a regular file"}},
		{"not-an-archive", []byte(`{"kind": "json"}`), []string{"not a tar, tar.gz or zip"}},
	}
}

func TestHostileArchivesAreRefused(t *testing.T) {
	for _, tt := range hostileCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dst, err := extractBytes(t, tt.data, FormatAuto, Limits{})
			g.Expect(err).To(HaveOccurred())
			for _, w := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			t.Logf("refused: %v", err)
			// Nothing was written outside the destination.
			g.Expect(filepath.Join(filepath.Dir(dst), "evil")).ToNot(BeAnExistingFile())
			g.Expect(filepath.Join(filepath.Dir(filepath.Dir(dst)), "evil")).ToNot(BeAnExistingFile())
		})
	}
}

// peakHeap runs f while sampling the heap, and returns the highest
// HeapAlloc seen.
func peakHeap(f func()) uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak.Load()
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// tarGzBomb is a tar.gz, best compression, of one file "bomb" of size
// zeros: about a thousandth of size on the wire.
func tarGzBomb(tb testing.TB, size int64) []byte {
	var tgz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&tgz, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bomb", Size: size, Mode: 0o644}); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.CopyN(tw, zeros{}, size); err != nil {
		tb.Fatal(err)
	}
	_ = tw.Close()
	_ = zw.Close()
	return tgz.Bytes()
}

// TestBombsAreRefused: archives of ~1 MiB that unpack to 1 GiB are refused
// naming the limit, with the heap bounded: an honest header is refused
// before anything is unpacked, a lying zip header is stopped by counting
// the bytes as they are copied.
func TestBombsAreRefused(t *testing.T) {
	const gib = 1 << 30
	tgz := tarGzBomb(t, gib)

	// The same zeros as raw deflate, for the zip entries.
	var raw bytes.Buffer
	fw, _ := flate.NewWriter(&raw, flate.BestCompression)
	if _, err := io.CopyN(fw, zeros{}, gib); err != nil {
		t.Fatal(err)
	}
	_ = fw.Close()
	crc := crc32.NewIEEE()
	if _, err := io.CopyN(crc, zeros{}, gib); err != nil {
		t.Fatal(err)
	}
	zipBomb := func(declared uint64) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		fh := &zip.FileHeader{Name: "bomb", Method: zip.Deflate, CRC32: crc.Sum32(),
			CompressedSize64: uint64(raw.Len()), UncompressedSize64: declared}
		fh.SetMode(0o644)
		ew, err := w.CreateRaw(fh)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ew.Write(raw.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = w.Close()
		return buf.Bytes()
	}

	tests := []struct {
		name   string
		data   []byte
		limits Limits
		want   string
	}{
		// fluxcd/pkg/tar refuses it from the tar header (its own message).
		{"tar.gz", tgz, Limits{}, "bigger than max archive size of 536870912 bytes"},
		{"zip-honest-header", zipBomb(gib), Limits{}, "more than 536870912 bytes (--max-extract-size)"},
		// A header declaring 1 KiB: archive/zip stops reading at the
		// declared size (the LimitReader of the bytes left is the second
		// guard), so 1 KiB at most reaches the disk.
		{"zip-lying-header", zipBomb(1024), Limits{}, "not a valid zip file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var err error
			var dst string
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			peak := peakHeap(func() { dst, err = extractBytes(t, tt.data, FormatAuto, tt.limits) })
			g.Expect(err).To(HaveOccurred())
			g.Expect(err.Error()).To(ContainSubstring(`"bomb"`))
			g.Expect(err.Error()).To(ContainSubstring(tt.want))
			var written int64
			_ = filepath.WalkDir(dst, func(_ string, d fs.DirEntry, _ error) error {
				if d != nil && !d.IsDir() {
					if fi, err := d.Info(); err == nil {
						written += fi.Size()
					}
				}
				return nil
			})
			t.Logf("%s: %d bytes on the wire, refused in %s, %d bytes written to disk, peak heap %.1f MiB (%.1f MiB above the archive held by the test): %v",
				tt.name, len(tt.data), time.Since(start).Round(time.Millisecond), written,
				float64(peak)/(1<<20), (float64(peak)-float64(before.HeapAlloc))/(1<<20), err)
			g.Expect(len(tt.data)).To(BeNumerically("<", 2<<20), "about 1 MiB on the wire")
			g.Expect(written).To(BeNumerically("<=", 1024))
			g.Expect(peak-min(peak, before.HeapAlloc)).To(BeNumerically("<", 32<<20), "heap bounded")
		})
	}
}

// files returns the regular files of a tree by slash path, with contents.
func files(g Gomega, root string) map[string]string {
	out := map[string]string{}
	g.Expect(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})).To(Succeed())
	return out
}

// TestSameFilesSameRevision: the same files packed by different writers
// (tar, tar.gz, zip; different orders, mtimes, owners, modes, directory
// entries or not) give the same artifact digest.
func TestSameFilesSameRevision(t *testing.T) {
	t1 := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 := time.Date(2026, 6, 7, 8, 9, 10, 0, time.UTC)
	a := []entry{
		{name: "deploy/", typ: tar.TypeDir, mode: 0o700, mtime: t1},
		{name: "deploy/app.yaml", body: "kind: Deployment\n", typ: tar.TypeReg, mode: 0o600, mtime: t1, uid: 1000},
		{name: "deploy/svc/svc.yaml", body: "kind: Service\n", typ: tar.TypeReg, mode: 0o644, mtime: t1, uid: 1000},
		{name: "bin/run.sh", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o700, mtime: t1},
		{name: "kustomization.yaml", body: "resources: [deploy]\n", typ: tar.TypeReg, mode: 0o664, mtime: t1},
	}
	b := []entry{
		{name: "kustomization.yaml", body: "resources: [deploy]\n", typ: tar.TypeReg, mode: 0o644, mtime: t2, uid: 0},
		{name: "bin/run.sh", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755, mtime: t2},
		{name: "deploy/svc/svc.yaml", body: "kind: Service\n", typ: tar.TypeReg, mode: 0o640, mtime: t2, uid: 42},
		{name: "./deploy/app.yaml", body: "kind: Deployment\n", typ: tar.TypeReg, mode: 0o644, mtime: t2, uid: 42},
	}
	// A link inside the root is published as a copy of its target.
	withLink := append(append([]entry{}, b[:3]...), reg("real.yaml", "kind: Deployment\n"),
		entry{name: "deploy/app.yaml", typ: tar.TypeSymlink, linkname: "../real.yaml"})
	archives := map[string][]byte{
		"tar.gz-a":   buildTar(t, a, true),
		"tar-b":      buildTar(t, b, false),
		"zip-a":      buildZip(t, a),
		"zip-b":      buildZip(t, b),
		"tar-link-b": buildTar(t, withLink, false),
	}
	digests := map[string]string{}
	for name, data := range archives {
		g := NewWithT(t)
		dst, err := extractBytes(t, data, FormatAuto, Limits{})
		g.Expect(err).ToNot(HaveOccurred(), name)
		if name == "tar-link-b" {
			g.Expect(os.Remove(filepath.Join(dst, "real.yaml"))).To(Succeed())
		}
		g.Expect(files(g, dst)).To(HaveLen(4), name)
		var buf bytes.Buffer
		res, err := archive.WriteDir(&buf, "manifests", dst)
		g.Expect(err).ToNot(HaveOccurred())
		digests[name] = res.Digest
		// The packed archive: sorted regular files, fixed metadata.
		tr := tar.NewReader(mustGunzip(g, buf.Bytes()))
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(h.Typeflag).To(Equal(byte(tar.TypeReg)))
			g.Expect(h.ModTime.Unix()).To(BeZero())
			g.Expect(h.Uid).To(BeZero())
			if h.Name == "manifests/bin/run.sh" {
				g.Expect(h.Mode).To(Equal(int64(0o755)))
			} else {
				g.Expect(h.Mode).To(Equal(int64(0o644)))
			}
			names = append(names, h.Name)
		}
		g.Expect(names).To(Equal([]string{"manifests/bin/run.sh", "manifests/deploy/app.yaml",
			"manifests/deploy/svc/svc.yaml", "manifests/kustomization.yaml"}))
	}
	g := NewWithT(t)
	for name, d := range digests {
		g.Expect(d).To(Equal(digests["tar.gz-a"]), name)
	}
	t.Logf("every writer gives %s", digests["tar.gz-a"])
}

func mustGunzip(g Gomega, b []byte) io.Reader {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	g.Expect(err).ToNot(HaveOccurred())
	return zr
}

func TestSniffAndExplicitFormat(t *testing.T) {
	members := []entry{reg("a/b.yaml", "x")}
	tests := []struct {
		name, format string
		data         []byte
		ok           bool
	}{
		{"auto-tar", FormatAuto, buildTar(t, members, false), true},
		{"auto-tar.gz", FormatAuto, buildTar(t, members, true), true},
		{"auto-zip", "", buildZip(t, members), true},
		{"explicit-zip", FormatZip, buildZip(t, members), true},
		{"zip-as-tar.gz", FormatTarGz, buildZip(t, members), false},
		{"tar.gz-as-zip", FormatZip, buildTar(t, members, true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dst, err := extractBytes(t, tt.data, tt.format, Limits{})
			if !tt.ok {
				g.Expect(err).To(HaveOccurred())
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(files(g, dst)).To(Equal(map[string]string{"a/b.yaml": "x"}))
		})
	}
}

func TestSelect(t *testing.T) {
	g := NewWithT(t)
	dst, err := extractBytes(t, buildTar(t, []entry{reg("charts/app/Chart.yaml", "name: app"), reg("README", "r")}, true), FormatAuto, Limits{})
	g.Expect(err).ToNot(HaveOccurred())
	for _, sp := range []string{"charts/app", "charts/app/", "/charts/app"} {
		dir, err := Select(dst, sp)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(files(g, dir)).To(Equal(map[string]string{"Chart.yaml": "name: app"}))
	}
	_, err = Select(dst, "charts/missing")
	g.Expect(err).To(MatchError(ContainSubstring(`"charts/missing": no such directory in the archive`)))
	_, err = Select(dst, "README")
	g.Expect(err).To(HaveOccurred())
}
