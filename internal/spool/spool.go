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

// Package spool gives a process a private scratch directory that a crash
// cannot leak. Each process owns <parent>/externalsource-spool/<random>
// and holds an exclusive flock on a lock file inside it for as long as it
// lives; the kernel drops the lock when the process dies, however it dies
// (SIGKILL, OOM kill). A starting process removes every sibling whose lock
// nobody holds, so what a killed process spooled (fetched data, archives,
// hook scratch directories) is gone at the next start instead of filling
// the emptyDir /tmp that survives a container restart. Processes sharing
// the parent (two replicas on one node's /tmp, several controllers in a
// test) never remove each other's live directories: a live owner's lock
// cannot be taken.
//
// flock is advisory and local: the parent must be on a local filesystem
// (a tmpfs or an emptyDir), not NFS.
package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/externalsource/externalsource-controller/internal/flock"
)

// RootName is the directory, under the parent, that holds every process's
// spool directory. It is fixed so that a restarted process finds what its
// dead predecessor left.
const RootName = "externalsource-spool"

// lockName is the lock file: inside each spool directory (held by its
// owner for life) and in the root (held briefly while a process sweeps and
// creates its directory, so that no sweeper sees a directory whose owner
// has not locked it yet).
const lockName = ".lock"

// Dir is one process's spool directory. Its methods are safe for
// concurrent use; Close must be called once, at shutdown.
type Dir struct {
	path    string
	lock    *os.File
	removed []string
}

// New removes the spool directories of dead processes under parent
// (os.TempDir() when empty) and creates this process's own, locked until
// Close or the process's death. The root is created 0700 and must be a
// directory owned by this user, not a symbolic link: a shared /tmp must
// not let another user choose where we write or what we remove.
func New(parent string) (*Dir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	root := filepath.Join(parent, RootName)
	if err := os.Mkdir(root, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := checkOwned(root); err != nil {
		return nil, err
	}

	// The root lock serialises sweeping and creation between processes:
	// a directory is created and locked in one step as far as any sweeper
	// can see, so a directory without a held lock always has a dead owner.
	rootLock, err := lockFile(filepath.Join(root, lockName), true)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer rootLock.Close() // releases the root lock

	removed, err := sweep(root)
	if err != nil {
		return nil, err
	}
	p, err := os.MkdirTemp(root, "")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockFile(filepath.Join(p, lockName), false)
	if err != nil {
		_ = os.RemoveAll(p)
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &Dir{path: p, lock: lock, removed: removed}, nil
}

// checkOwned refuses a root that is a symbolic link, not a directory, or
// another user's.
func checkOwned(root string) error {
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", root)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("spool: %s belongs to uid %d, not to this process's uid %d", root, st.Uid, os.Getuid())
	}
	return nil
}

// lockFile opens (creating) a lock file and takes its exclusive lock,
// waiting when wait is set, failing with flock.ErrLocked otherwise.
func lockFile(p string, wait bool) (*os.File, error) {
	return flock.Open(p, os.O_RDWR|os.O_CREATE, wait)
}

// sweep removes the directories under root whose owner is dead, and
// returns their paths. The caller holds the root lock.
func sweep(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() {
			continue // the root lock, or something that is not ours
		}
		p := filepath.Join(root, e.Name())
		dead, err := ownerDead(p)
		if err != nil || !dead {
			continue // a live owner, or one we cannot judge: keep it
		}
		if err := removeAll(p); err != nil {
			// Not fatal: a directory we cannot remove costs space, and
			// refusing to start over it would crash-loop the process.
			continue
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// removeAll removes a dead process's directory, making read-only
// directories in it writable first (a hook may have left some, as
// `go mod download` does).
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// ownerDead reports whether a spool directory's owner is gone: its lock
// can be taken, or it has no lock file (its owner died between creating
// the directory and locking it, which the root lock makes the only way).
func ownerDead(dir string) (bool, error) {
	f, err := flock.Open(filepath.Join(dir, lockName), os.O_RDONLY, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, nil
	case errors.Is(err, flock.ErrLocked):
		return false, nil
	case err != nil:
		return false, err
	}
	f.Close() // releases the lock we took
	return true, nil
}

// Path is the process's spool directory.
func (d *Dir) Path() string { return d.path }

// Removed lists the directories of dead processes that New removed, for
// the start-up log.
func (d *Dir) Removed() []string { return d.removed }

// Close removes the spool directory, then releases its lock; a clean
// shutdown leaves nothing for the next start to sweep.
func (d *Dir) Close() error {
	err := os.RemoveAll(d.path)
	if cerr := d.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
