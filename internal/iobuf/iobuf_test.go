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

package iobuf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"

	. "github.com/onsi/gomega"
)

// TestCopy: the bytes and counts of io.Copy, for sizes around the buffer's
// and for the file-to-buffer case whose io.Copy fallback allocates, and
// the first error of either side.
func TestCopy(t *testing.T) {
	for _, n := range []int{0, 1, size - 1, size, size + 1, 3*size + 7} {
		g := NewWithT(t)
		data := bytes.Repeat([]byte{'x', 'y', 'z'}, n/3+1)[:n]
		var out bytes.Buffer
		written, err := Copy(&out, iotest.OneByteReader(bytes.NewReader(data)))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(written).To(BeEquivalentTo(n))
		g.Expect(out.Bytes()).To(Equal(data))

		p := filepath.Join(t.TempDir(), "f")
		g.Expect(os.WriteFile(p, data, 0o600)).To(Succeed())
		f, err := os.Open(p)
		g.Expect(err).NotTo(HaveOccurred())
		out.Reset()
		written, err = Copy(&out, f)
		f.Close()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(written).To(BeEquivalentTo(n))
		g.Expect(out.Bytes()).To(Equal(data))
	}

	g := NewWithT(t)
	boom := errors.New("boom")
	_, err := Copy(io.Discard, iotest.ErrReader(boom))
	g.Expect(err).To(MatchError(boom))
	_, err = Copy(failingWriter{boom}, bytes.NewReader([]byte("data")))
	g.Expect(err).To(MatchError(boom))
}

type failingWriter struct{ err error }

// nopWriter discards like io.Discard, without its ReadFrom.
type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestCopyDoesNotAllocateTheBuffer: from a file, io.Copy allocates its
// 32 KiB buffer at every call; Copy reuses the pool's.
func TestCopyDoesNotAllocateTheBuffer(t *testing.T) {
	g := NewWithT(t)
	p := filepath.Join(t.TempDir(), "f")
	g.Expect(os.WriteFile(p, bytes.Repeat([]byte("a"), 1000), 0o600)).To(Succeed())
	f, err := os.Open(p)
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	const runs = 100
	measure := func(copy func(io.Writer, io.Reader) (int64, error)) uint64 {
		_, _ = copy(nopWriter{}, f) // warm the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			_, _ = f.Seek(0, io.SeekStart)
			_, _ = copy(nopWriter{}, f)
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / runs
	}
	std, pooled := measure(io.Copy), measure(Copy)
	t.Logf("bytes allocated per copy: io.Copy %d, Copy %d", std, pooled)
	g.Expect(std).To(BeNumerically(">=", size), "the io.Copy fallback allocates a buffer")
	g.Expect(pooled).To(BeNumerically("<", 1024), "Copy does not")
}

// TestSpillBuffer: the content reads back whole below, at and over the memory
// limit; over it, a file holds it and Close removes the file.
func TestSpillBuffer(t *testing.T) {
	for _, n := range []int{0, 10, 99, 100, 101, 1000} {
		g := NewWithT(t)
		dir := t.TempDir()
		s := NewSpillBuffer(dir, 100)
		data := bytes.Repeat([]byte("0123456789"), n/10+1)[:n]
		// In pieces of 7 bytes, so the limit is crossed inside a write.
		for i := 0; i < len(data); i += 7 {
			_, err := s.Write(data[i:min(i+7, len(data))])
			g.Expect(err).NotTo(HaveOccurred())
		}
		g.Expect(s.Size()).To(BeEquivalentTo(n))
		g.Expect(s.InMemory()).To(Equal(n <= 100), "n=%d", n)
		files, err := os.ReadDir(dir)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(files).To(HaveLen(map[bool]int{true: 0, false: 1}[n <= 100]), "a file only over the limit")
		got, err := io.ReadAll(s.Reader())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(data))
		got, err = io.ReadAll(s.Reader())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(Equal(data), "read again from the start")
		g.Expect(s.Close()).To(Succeed())
		files, err = os.ReadDir(dir)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(files).To(BeEmpty(), "Close removes the file")
	}
}

// TestSpillBufferCannotCreateItsFile: over the limit with no directory to write
// to, Write fails and says why.
func TestSpillBufferCannotCreateItsFile(t *testing.T) {
	g := NewWithT(t)
	s := NewSpillBuffer(filepath.Join(t.TempDir(), "missing"), 4)
	_, err := s.Write([]byte("1234"))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = s.Write([]byte("5"))
	g.Expect(err).To(MatchError(os.ErrNotExist))
	g.Expect(s.Close()).To(Succeed())
}
