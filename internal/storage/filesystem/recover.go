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
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/externalsource/externalsource-controller/internal/storage"

	"github.com/externalsource/externalsource-controller/internal/flock"
)

// Flux's AtomicWriteFile writes an artifact to os.CreateTemp(dir, name),
// that is "<artifact file name><random decimal uint32>" beside the
// artifact, then renames it over the artifact. A writer killed before the
// rename leaves that file forever, and Flux's garbage collector counts it
// as an artifact. These helpers recognise and remove such files.

// artifactExt is the extension of every artifact the controller writes.
const artifactExt = ".tar.gz"

// maxTempDigits is the longest random suffix os.CreateTemp appends: a
// uint32 in decimal.
const maxTempDigits = 10

var _ storage.Recoverer = (*Storage)(nil)

// tempFileArtifact reports whether name is the temporary file of an
// artifact write, and returns that artifact's file name. An artifact
// ("<hex>.tar.gz") and a lock file ("<hex>.tar.gz.lock") never match.
func tempFileArtifact(name string) (string, bool) {
	base := strings.TrimRight(name, "0123456789")
	digits := len(name) - len(base)
	if digits == 0 || digits > maxTempDigits {
		return "", false
	}
	if len(base) <= len(artifactExt) || !strings.HasSuffix(base, artifactExt) {
		return "", false
	}
	return base, true
}

// removeTempFiles removes the temporary files in dir whose writer is gone:
// modified before before (when not zero), and whose artifact's lock
// (taken by every writer for the whole Put) is free, or is held by the
// caller (held names that artifact). It returns the removed paths.
func removeTempFiles(dir, held string, before time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		art, ok := tempFileArtifact(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !before.IsZero() {
			fi, err := e.Info()
			if err != nil || !fi.ModTime().Before(before) {
				continue
			}
		}
		if art != held {
			unlock, free, err := tryLock(filepath.Join(dir, art) + ".lock")
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !free {
				continue // a live writer
			}
			// Held while removing: no writer starts in between.
			defer unlock()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// tryLock takes, without waiting, the lock that Flux's Storage.Lock takes
// on an artifact's lock file. A missing lock file is free and is not
// created.
func tryLock(p string) (unlock func(), free bool, err error) {
	f, err := flock.Open(p, os.O_RDONLY, false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return func() {}, true, nil
	case errors.Is(err, flock.ErrLocked):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return func() { f.Close() }, true, nil
}

// Recover implements storage.Recoverer: it walks the storage root and
// removes the temporary files of writes that a crash interrupted, modified
// before before and with no writer holding their artifact's lock. Artifacts
// and lock files are never removed. The paths returned are relative to the
// root.
func (s *Storage) Recover(ctx context.Context, before time.Time) ([]string, error) {
	if before.IsZero() {
		return nil, nil // nothing is older than the zero time
	}
	var removed []string
	var errs []error
	err := filepath.WalkDir(s.flux.BasePath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.IsDir() {
			return nil
		}
		got, err := removeTempFiles(p, "", before)
		if err != nil {
			errs = append(errs, err)
		}
		for _, r := range got {
			rel, err := filepath.Rel(s.flux.BasePath, r)
			if err != nil {
				return err
			}
			removed = append(removed, filepath.ToSlash(rel))
		}
		return nil
	})
	return removed, errors.Join(append(errs, err)...)
}
