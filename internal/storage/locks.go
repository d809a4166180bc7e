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

package storage

import (
	"hash/fnv"
	"sync"
)

// PathLocks serializes the work on one artifact path inside a process, for
// the backends whose Lock is in-process (memory, S3). It is a fixed set of
// mutexes picked by a hash of the path: a mutex per path ever locked grew
// with every new revision and was never freed. Two paths may share a
// mutex, which costs a wait, never a deadlock: a caller holds one lock at
// a time.
type PathLocks struct {
	mu [64]sync.Mutex
}

// Lock locks p's mutex and returns its unlock.
func (l *PathLocks) Lock(p string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(p))
	mu := &l.mu[h.Sum32()%uint32(len(l.mu))]
	mu.Lock()
	return mu.Unlock
}
