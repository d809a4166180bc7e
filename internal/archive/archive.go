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

// Package archive packages data as a deterministic tar.gz: the same bytes at
// the same path always give the same archive, and so the same digest and
// revision. That is what lets an unchanged upstream publish nothing new.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	godigest "github.com/opencontainers/go-digest"

	"github.com/fluxcd/pkg/artifact/digest"

	"github.com/externalsource/externalsource-controller/internal/iobuf"
)

// modTime is the fixed modification time of every entry. A real clock would
// make each build of the same data a new revision.
var modTime = time.Unix(0, 0).UTC()

// fileMode is the fixed mode of the data file: readable by consumers
// whatever the umask of the machine that built it.
const fileMode = 0o644

// CleanPath returns the cleaned, slash-separated relative form of p, or an
// error when p is absolute, climbs out with '..', or names no file. The API
// server rejects such values already (CEL rules); this is the controller's
// own guard, since the archive must never hold an entry outside its root.
func CleanPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("must not be empty")
	}
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) {
		return "", fmt.Errorf("%q must be a relative path", p)
	}
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return "", fmt.Errorf("%q must not contain '..' segments", p)
		}
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%q must not contain NUL", p)
	}
	c := path.Clean(p)
	if c == "." || c == "/" {
		return "", fmt.Errorf("%q must name a file", p)
	}
	return c, nil
}

// Result describes a written archive.
type Result struct {
	// Digest is "<algorithm>:<hex>" of the archive bytes, of Flux's
	// canonical algorithm (digest.Canonical, set by --artifact-digest-algo).
	Digest string
	// Size is the length of the archive in bytes.
	Size int64
}

// Hex returns the hex part of the digest.
func (r Result) Hex() string {
	return godigest.Digest(r.Digest).Encoded()
}

// Write streams a tar.gz holding exactly one regular file, at destPath, with
// the size bytes read from data, to w. The reader must yield exactly size
// bytes: the tar header is written first and states the size. Memory use is
// bounded by the gzip window whatever the size.
func Write(w io.Writer, destPath string, data io.Reader, size int64) (Result, error) {
	name, err := CleanPath(destPath)
	if err != nil {
		return Result{}, fmt.Errorf("destinationPath: %w", err)
	}
	return writeTarGz(w, func(tw *tar.Writer) error {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Size:     size,
			Mode:     fileMode,
			ModTime:  modTime,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing tar header: %w", err)
		}
		n, err := iobuf.Copy(tw, data)
		if err != nil {
			return fmt.Errorf("writing data: %w", err)
		}
		if n != size {
			return fmt.Errorf("data is %d bytes, expected %d", n, size)
		}
		return nil
	})
}

// writeTarGz streams to w the tar.gz of the entries that entries writes,
// and returns its digest and size: the one place Write and WriteDir share,
// so that both make their bytes the same way. A zero gzip header (no name,
// no mtime, OS unknown) keeps the bytes stable; no explicit tar format:
// archive/tar picks USTAR when a header fits (short ASCII names) and PAX
// otherwise, the same way for the same header, so the bytes stay
// deterministic.
func writeTarGz(w io.Writer, entries func(tw *tar.Writer) error) (Result, error) {
	h := digest.Canonical.Digester()
	cw := &countingWriter{w: io.MultiWriter(w, h.Hash())}
	gz, done := newGzip(cw)
	defer done()
	tw := tar.NewWriter(gz)
	if err := entries(tw); err != nil {
		return Result{}, err
	}
	if err := tw.Close(); err != nil {
		return Result{}, fmt.Errorf("closing tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return Result{}, fmt.Errorf("closing gzip: %w", err)
	}
	return Result{Digest: h.Digest().String(), Size: cw.n}, nil
}

// gzipLevel is BestSpeed: artifacts are read far less often than they
// are built, and the data is usually small JSON. The level is part of the
// determinism, so it is a constant, not a flag.
const gzipLevel = gzip.BestSpeed

// gzipWriters keeps gzip writers between archives. A new flate compressor
// allocates over 1 MiB of tables, whatever the data: at a thousand new
// revisions that was most of what a reconcile allocated and most of the
// controller's garbage-collection work (BenchmarkWrite,
// docs/benchmarks.md). Reset makes a pooled writer the same as a new one
// of the same level, header included, so the bytes do not change.
var gzipWriters = sync.Pool{New: func() any {
	gz, err := gzip.NewWriterLevel(io.Discard, gzipLevel)
	if err != nil {
		panic(err) // only for an invalid level, a constant
	}
	return gz
}}

// newGzip returns a pooled gzip writer to w, and done, which gives it back
// (whether it was closed or not) and must be called once it is no longer
// used.
func newGzip(w io.Writer) (gz *gzip.Writer, done func()) {
	gz = gzipWriters.Get().(*gzip.Writer)
	gz.Reset(w)
	return gz, func() {
		gz.Reset(io.Discard) // drop w
		gzipWriters.Put(gz)
	}
}

// Revision returns the Flux revision of an archive digest.
func Revision(digest string) string {
	return "latest@" + digest
}

// NamedRevision returns the Flux revision of an archive digest for the
// named version of the data (e.g. a release tag, as GitRepository writes
// "v1.2.3@sha1:..."); an empty name is Revision's "latest".
func NamedRevision(name, digest string) string {
	if name == "" {
		return Revision(digest)
	}
	return name + "@" + digest
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteDir streams a tar.gz of every regular file under root to w, each at
// prefix/<its path under root> (prefix "" is the archive root). Like Write
// it is deterministic: entries sorted by name, fixed mtime and owner, mode
// 0644 or 0755 when the file has an executable bit, and no directory
// entries, so the digest depends on names, contents and the executable
// bit only, never on how the files got there. Anything but a regular file
// or directory under root is an error.
func WriteDir(w io.Writer, prefix, root string) (Result, error) {
	if prefix != "" {
		p, err := CleanPath(prefix)
		if err != nil {
			return Result{}, fmt.Errorf("destinationPath: %w", err)
		}
		prefix = p
	}
	type file struct {
		name, path string
		mode       int64
		size       int64
	}
	var files []file
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%q is not a regular file", filepath.ToSlash(rel))
		}
		mode := int64(fileMode)
		if fi.Mode()&0o111 != 0 {
			mode = execMode
		}
		files = append(files, file{name: path.Join(prefix, filepath.ToSlash(rel)), path: p, mode: mode, size: fi.Size()})
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })

	return writeTarGz(w, func(tw *tar.Writer) error {
		for _, f := range files {
			hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: f.size, Mode: f.mode, ModTime: modTime}
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("writing tar header of %q: %w", f.name, err)
			}
			if err := copyFile(tw, f.path, f.size); err != nil {
				return fmt.Errorf("writing %q: %w", f.name, err)
			}
		}
		return nil
	})
}

// execMode is the mode of a file that had any executable bit.
const execMode = 0o755

// copyFile copies exactly size bytes of the file at p: a file that changed
// size since it was listed would make a corrupt tar.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := iobuf.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("file is %d bytes, expected %d", n, size)
	}
	return nil
}
