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

// Package extract unpacks an upstream archive (tar, tar.gz or zip) into a
// directory of regular files, refusing whatever could reach outside that
// directory or exhaust the machine: absolute names and '..', links leaving
// the root, device files, duplicate names, too many entries, too many bytes.
// The archive is hostile until proven otherwise: every limit is enforced
// while reading, never by trusting a header, and the first violation stops
// the extraction with an error naming the entry or the limit.
package extract

import (
	"archive/tar"
	"archive/zip"
	"bytes"
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

	fluxtar "github.com/fluxcd/pkg/tar"

	"github.com/externalsource/externalsource-controller/internal/iobuf"
)

// Formats of spec.extract.format.
const (
	FormatAuto  = "auto"
	FormatTar   = "tar"
	FormatTarGz = "tar.gz"
	FormatZip   = "zip"
)

// Default limits (--max-extract-files, --max-extract-size).
const (
	DefaultMaxFiles = 10000
	DefaultMaxSize  = 512 << 20
)

// Limits bound one extraction.
type Limits struct {
	// MaxFiles is the most entries (files, directories, links) an archive
	// may hold.
	MaxFiles int
	// MaxSize is the most bytes the entries may unpack to, in total.
	MaxSize int64
}

// withDefaults fills unset limits, so a zero Limits is never "unlimited".
func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	return l
}

// Sniff names the format of the archive from its first bytes (gzip, zip
// local header, or the ustar magic at offset 257), never from a URL: an
// upstream may serve any name.
func Sniff(r io.ReaderAt) (string, error) {
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTarGz, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatTar, nil
	}
	return "", fmt.Errorf("format auto: the data is not a tar, tar.gz or zip archive (first bytes %x)", head[:min(len(head), 8)])
}

// File extracts the archive file src into the directory dst, which must not
// exist yet. format is one of the Format constants; auto sniffs it. On
// error dst may hold part of the archive: the caller removes it.
func File(src, dst, format string, limits Limits) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if format == "" || format == FormatAuto {
		if format, err = Sniff(f); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	c := &checker{limits: limits.withDefaults(), seen: map[string]bool{}}
	switch format {
	case FormatTar, FormatTarGz:
		err = c.untar(f, dst, format == FormatTarGz)
	case FormatZip:
		err = c.unzip(f, fi.Size(), dst)
	default:
		return fmt.Errorf("unknown archive format %q", format)
	}
	if err != nil {
		return err
	}
	if err := c.resolveLinks(dst); err != nil {
		return err
	}
	return normalizeModes(dst)
}

// checker applies the rules common to tar and zip to each entry, and
// remembers the links to materialize once every file is on disk.
type checker struct {
	limits Limits
	files  int
	size   int64
	seen   map[string]bool
	// links maps a link's name to the name of the file it stands for,
	// both relative to the root.
	links map[string]string
}

// name checks an entry name and returns its clean relative form; "" for
// the root itself.
func (c *checker) name(n string) (string, error) {
	c.files++
	if c.files > c.limits.MaxFiles {
		return "", fmt.Errorf("entry %q: the archive holds more than %d entries (--max-extract-files)", n, c.limits.MaxFiles)
	}
	if n == "" || strings.ContainsRune(n, 0) || strings.Contains(n, `\`) {
		return "", fmt.Errorf("entry %q: invalid name", n)
	}
	if strings.HasPrefix(n, "/") || filepath.VolumeName(n) != "" {
		return "", fmt.Errorf("entry %q: absolute names are not allowed", n)
	}
	for _, s := range strings.Split(n, "/") {
		if s == ".." {
			return "", fmt.Errorf("entry %q: '..' segments are not allowed", n)
		}
	}
	clean := path.Clean(n)
	if clean == "." {
		return "", nil
	}
	if c.seen[clean] {
		return "", fmt.Errorf("entry %q: duplicate name in the archive", n)
	}
	c.seen[clean] = true
	return clean, nil
}

// grow accounts for n more unpacked bytes of entry.
func (c *checker) grow(entry string, n int64) error {
	if n < 0 || c.size+n > c.limits.MaxSize {
		return fmt.Errorf("entry %q: the archive unpacks to more than %d bytes (--max-extract-size)", entry, c.limits.MaxSize)
	}
	c.size += n
	return nil
}

// link records a symlink or hardlink named name pointing at target
// (relative to the link's directory for a symlink, to the root for a
// hardlink). A target outside the root is refused.
func (c *checker) link(name, target string, symlink bool) error {
	if target == "" || strings.HasPrefix(target, "/") {
		return fmt.Errorf("entry %q: link to %q leaves the archive root", name, target)
	}
	t := target
	if symlink {
		t = path.Join(path.Dir(name), target)
	}
	t = path.Clean(t)
	if t == ".." || strings.HasPrefix(t, "../") {
		return fmt.Errorf("entry %q: link to %q leaves the archive root", name, target)
	}
	if c.links == nil {
		c.links = map[string]string{}
	}
	c.links[name] = t
	return nil
}

// untar extracts with fluxcd/pkg/tar, whose filter sees each header before
// anything is written: the rules run there, and the first violation stops
// the stream (the reader fails), so nothing past it is even decompressed.
func (c *checker) untar(r io.Reader, dst string, gz bool) error {
	var ruleErr error
	var mu sync.Mutex
	stop := func() error { mu.Lock(); defer mu.Unlock(); return ruleErr }
	filter := func(name string, fi os.FileInfo) bool {
		hdr, ok := fi.Sys().(*tar.Header)
		if ok && hdr.Typeflag == tar.TypeXGlobalHeader {
			// A pax global header is metadata, not a member: `git
			// archive` (GitHub's "Source code" release assets) writes
			// one with the commit id. archive/tar does not apply it to
			// the entries that follow, so every name checked below is
			// the name written.
			return true
		}
		err := func() error {
			if !ok {
				return fmt.Errorf("entry %q: unreadable header", name)
			}
			clean, err := c.name(hdr.Name)
			if err != nil {
				return err
			}
			switch hdr.Typeflag {
			case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
				return c.grow(hdr.Name, hdr.Size)
			case tar.TypeDir:
				return nil
			case tar.TypeSymlink:
				return c.link(clean, hdr.Linkname, true)
			case tar.TypeLink:
				return c.link(clean, hdr.Linkname, false)
			default:
				return fmt.Errorf("entry %q: %s entries are not allowed", hdr.Name, typeName(hdr.Typeflag))
			}
		}()
		if err != nil {
			mu.Lock()
			ruleErr = err
			mu.Unlock()
			return true
		}
		// Links are written by resolveLinks, as copies.
		return hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink
	}
	opts := []fluxtar.Option{fluxtar.WithFilter(filter), fluxtar.WithSkipSymlinks(),
		fluxtar.WithMaxUntarSize(int(c.limits.MaxSize))}
	if !gz {
		opts = append(opts, fluxtar.WithSkipGzip())
	}
	err := fluxtar.Untar(&stoppingReader{r: r, stop: stop}, dst, opts...)
	if rerr := stop(); rerr != nil {
		return rerr
	}
	if err != nil {
		return fmt.Errorf("reading tar: %w", err)
	}
	return nil
}

// stoppingReader fails as soon as a rule was broken, so that Untar stops
// instead of reading (and decompressing) the rest of the archive.
type stoppingReader struct {
	r    io.Reader
	stop func() error
}

func (s *stoppingReader) Read(p []byte) (int, error) {
	if err := s.stop(); err != nil {
		return 0, err
	}
	return s.r.Read(p)
}

func typeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	default:
		return fmt.Sprintf("type %q", t)
	}
}

// unzip extracts a zip under the same rules. The sizes in the central
// directory are only trusted to refuse early; every entry is copied
// through a LimitReader of the bytes left, so a lying header cannot
// unpack more than the limit.
func (c *checker) unzip(r io.ReaderAt, size int64, dst string) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("reading zip: %w", err)
	}
	if err := c.precheckZip(zr.File); err != nil {
		return err
	}
	for _, f := range zr.File {
		clean, err := c.name(f.Name)
		if err != nil {
			return err
		}
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if clean != "" {
				if err := os.MkdirAll(filepath.Join(dst, filepath.FromSlash(clean)), 0o700); err != nil {
					return err
				}
			}
		case mode&fs.ModeSymlink != 0:
			// The target is the entry's content: small, but bounded all the same.
			target, err := c.readAll(f, 4096)
			if err != nil {
				return err
			}
			if err := c.link(clean, string(target), true); err != nil {
				return err
			}
		case mode.IsRegular():
			if f.UncompressedSize64 > uint64(c.limits.MaxSize-c.size) {
				return c.grow(f.Name, c.limits.MaxSize+1)
			}
			if err := c.writeZipFile(f, filepath.Join(dst, filepath.FromSlash(clean)), mode); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: %s entries are not allowed", f.Name, mode.Type())
		}
	}
	return nil
}

// precheckZip refuses, before anything is unpacked, a zip whose central
// directory already declares more entries or more bytes than the limits:
// a bomb of many honest entries is stopped by counting, not after
// --max-extract-size bytes reached the disk. The entries are still
// counted and bounded as they are copied, since a header may lie.
func (c *checker) precheckZip(files []*zip.File) error {
	if len(files) > c.limits.MaxFiles {
		return fmt.Errorf("entry %q: the archive holds more than %d entries (--max-extract-files)",
			files[c.limits.MaxFiles].Name, c.limits.MaxFiles)
	}
	left := uint64(c.limits.MaxSize)
	for _, f := range files {
		// Compared before subtracting: a declared size near 2^64 must
		// not wrap around.
		if f.UncompressedSize64 > left {
			return fmt.Errorf("entry %q: the archive unpacks to more than %d bytes (--max-extract-size)", f.Name, c.limits.MaxSize)
		}
		left -= f.UncompressedSize64
	}
	return nil
}

// readAll reads a small entry whole, at most limit bytes.
func (c *checker) readAll(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("entry %q: %w", f.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("entry %q: link target longer than %d bytes", f.Name, limit)
	}
	return b, c.grow(f.Name, int64(len(b)))
}

// writeZipFile copies one entry, counting the bytes as they come.
func (c *checker) writeZipFile(f *zip.File, dst string, mode fs.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("entry %q: %w", f.Name, err)
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("entry %q: %w", f.Name, err)
	}
	left := c.limits.MaxSize - c.size
	n, err := iobuf.Copy(out, io.LimitReader(rc, left+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if n > left {
		return c.grow(f.Name, n)
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", f.Name, err)
	}
	return c.grow(f.Name, n)
}

// resolveLinks writes each link as a copy of the regular file it points
// to: the artifact holds regular files only. A link to a directory,
// to another link or to nothing is refused, naming it.
func (c *checker) resolveLinks(dst string) error {
	names := make([]string, 0, len(c.links))
	for n := range c.links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := c.links[n]
		if _, isLink := c.links[t]; isLink {
			return fmt.Errorf("entry %q: link to another link %q is not supported", n, t)
		}
		src := filepath.Join(dst, filepath.FromSlash(t))
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("entry %q: link target %q is not a regular file of the archive", n, t)
		}
		if err := c.grow(n, fi.Size()); err != nil {
			return err
		}
		if err := copyFile(src, filepath.Join(dst, filepath.FromSlash(n)), fi.Mode().Perm()); err != nil {
			return fmt.Errorf("entry %q: %w", n, err)
		}
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // file to file: copy_file_range, no buffer
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// normalizeModes gives every file 0644, or 0755 when any executable bit is
// set, and every directory 0755: a header's mode 0000 must not make a file
// unreadable when it is packed.
func normalizeModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Chmod(p, 0o755)
		case fi.Mode().IsRegular():
			if fi.Mode()&0o111 != 0 {
				return os.Chmod(p, 0o755)
			}
			return os.Chmod(p, 0o644)
		default:
			return fmt.Errorf("%s: unexpected %s after extraction", p, fi.Mode().Type())
		}
	})
}

// Select returns the directory of subPath inside the extracted tree root,
// or an error naming subPath when the archive has no such directory.
func Select(root, subPath string) (string, error) {
	sp := strings.Trim(subPath, "/")
	if sp == "" || sp == "." {
		return root, nil
	}
	for _, s := range strings.Split(sp, "/") {
		if s == ".." {
			return "", fmt.Errorf("spec.extract.subPath %q must not contain '..' segments", subPath)
		}
	}
	dir := filepath.Join(root, filepath.FromSlash(path.Clean(sp)))
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return "", fmt.Errorf("spec.extract.subPath %q: no such directory in the archive", subPath)
	}
	return dir, nil
}
