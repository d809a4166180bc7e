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
	"io/fs"
	"strings"
	"sync"
)

// fileStamp is what the store knows of a file whose bytes it has hashed:
// its identity and the digest they had. While a file's stamp is unchanged
// its bytes are taken as unchanged too, so that verifying a 100 MiB
// artifact at every interval costs a stat, not a read: any write through
// the filesystem (a new file renamed over it, a truncate, an in-place
// edit, even one whose size and mtime are put back) changes the inode, the
// size, the mtime or the change time (ctime, which no program can set).
type fileStamp struct {
	size   int64
	mtime  int64 // ns
	dev    uint64
	ino    uint64
	ctime  int64 // ns; 0 where the platform does not say
	digest string
}

// stampOf is fi's stamp for digest.
func stampOf(fi fs.FileInfo, digest string) fileStamp {
	dev, ino, ctime := fileID(fi)
	return fileStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino, ctime: ctime, digest: digest}
}

// stamps holds the stamps of the files hashed (or written) by this
// process, by artifact path. It starts empty, so the first verification of
// each artifact after a start reads it whole.
type stamps struct {
	m sync.Map // artifact path -> fileStamp
}

// verified says whether path was hashed with stamp st (same file, same
// digest) and found right.
func (s *stamps) verified(path string, st fileStamp) bool {
	v, ok := s.m.Load(path)
	return ok && v.(fileStamp) == st
}

func (s *stamps) record(path string, st fileStamp) { s.m.Store(path, st) }

func (s *stamps) forget(path string) { s.m.Delete(path) }

// forgetDir forgets every path under dir (an object's directory).
func (s *stamps) forgetDir(dir string) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	s.m.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			s.m.Delete(k)
		}
		return true
	})
}
