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

// Package iobuf copies streams through pooled buffers.
//
// io.Copy allocates a 32 KiB buffer per call whenever neither side offers a
// shortcut, and *os.File offers one that falls back to io.Copy (a new
// buffer) for anything but a socket or another file. A new revision copies
// its data three times (spool, archive, store) and every artifact download
// once more: at a thousand sources that was the largest allocation of a
// reconcile after the gzip tables (docs/benchmarks.md).
package iobuf

import (
	"io"
	"sync"
)

// size is io.Copy's own buffer size.
const size = 32 << 10

var buffers = sync.Pool{New: func() any {
	b := make([]byte, size)
	return &b
}}

// Copy is io.Copy with a pooled buffer: it copies from src to dst until
// EOF or an error and returns the bytes written and the first error other
// than EOF. It never uses src's WriteTo or dst's ReadFrom, whose fallbacks
// allocate, so its memory use is the pool's whatever the types.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	return io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
}

// readerOnly and writerOnly hide every method but Read and Write.
type readerOnly struct{ io.Reader }

type writerOnly struct{ io.Writer }
