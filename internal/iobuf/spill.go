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
)

// SpillBuffer holds what is written to it in memory up to a limit and in a
// temporary file beyond it, to be read back once. Most artifacts are a few
// KiB: a file for each costs a create, an open and an unlink, which at
// thousands of new revisions was a tenth of the controller's CPU on a slow
// filesystem; a large one still never sits whole in memory.
//
// A SpillBuffer is not safe for concurrent use; Close removes the file.
type SpillBuffer struct {
	dir   string
	limit int
	buf   []byte
	f     *os.File
	n     int64
}

// NewSpillBuffer returns an empty spool keeping up to limit bytes in memory and
// the rest in a file created in dir ("" is the system's temporary
// directory) on the first byte over it.
func NewSpillBuffer(dir string, limit int) *SpillBuffer {
	return &SpillBuffer{dir: dir, limit: limit}
}

// Write implements io.Writer.
func (s *SpillBuffer) Write(p []byte) (int, error) {
	if s.f == nil && len(s.buf)+len(p) <= s.limit {
		s.buf = append(s.buf, p...)
		s.n += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "externalsource-spool-")
		if err != nil {
			return 0, err
		}
		s.f = f
		if _, err := f.Write(s.buf); err != nil {
			return 0, err
		}
		s.buf = nil
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	return n, err
}

// Size is the number of bytes written.
func (s *SpillBuffer) Size() int64 { return s.n }

// InMemory says the whole content is in memory (no file was needed).
func (s *SpillBuffer) InMemory() bool { return s.f == nil }

// Reader returns a reader of the whole content, from its start.
func (s *SpillBuffer) Reader() io.Reader {
	if s.f == nil {
		return bytes.NewReader(s.buf)
	}
	return io.NewSectionReader(s.f, 0, s.n)
}

// Close removes the file, if any, and forgets the content.
func (s *SpillBuffer) Close() error {
	s.buf = nil
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	return errors.Join(f.Close(), os.Remove(f.Name()))
}
