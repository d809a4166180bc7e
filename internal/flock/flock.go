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

// Package flock takes exclusive flock(2) locks on files. The kernel drops
// such a lock when its holder dies, however it dies, which is what lets a
// starting process tell a crashed writer's leftovers (lock free) from a
// live writer's work (lock held). It is the lock Flux's Storage.Lock takes
// on an artifact's lock file (fluxcd/pkg/lockedfile), so both see each
// other. flock is advisory and local: not for NFS.
package flock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked says that another open file description holds the lock.
var ErrLocked = errors.New("locked by another holder")

// Open opens path with flag (os.O_CREATE to create it, 0600) and takes an
// exclusive lock on it, waiting for it when wait is set and failing with
// ErrLocked otherwise. Closing the file releases the lock. A missing file
// without os.O_CREATE fails with fs.ErrNotExist.
func Open(path string, flag int, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, ErrLocked
	default:
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
}
