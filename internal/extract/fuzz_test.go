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

package extract

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// FuzzExtract feeds arbitrary bytes to the extractor: it must never panic,
// and whatever it accepts is a tree of regular files inside the
// destination, within the limits.
func FuzzExtract(f *testing.F) {
	for _, c := range hostileCases(f) {
		if len(c.data) < 64<<10 {
			f.Add(c.data)
		}
	}
	f.Add(buildTar(f, []entry{reg("a/b.yaml", "x"), reg("c", "y")}, true))
	f.Add(buildZip(f, []entry{reg("a/b.yaml", "x")}))
	limits := Limits{MaxFiles: 100, MaxSize: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		dst, err := extractBytes(t, data, FormatAuto, limits)
		// Whether the archive was accepted or refused (possibly after a
		// partial write), nothing may exist outside the destination, nor
		// anything but regular files and directories inside it.
		files, size, problems := contained(dst)
		for _, p := range problems {
			t.Error(p)
		}
		if err == nil && (files > limits.MaxFiles || size > limits.MaxSize) {
			t.Fatalf("accepted %d files, %d bytes over the limits", files, size)
		}
	})
}

// contained checks an extraction into dst (extractBytes' layout: dst and
// the archive "data" in a directory of their own, made by t.TempDir in the
// test's temporary root) and returns the regular files and bytes under
// dst, and what is wrong: an entry under dst that is not a regular file
// or directory, or anything written next to dst or next to its directory.
func contained(dst string) (files int, size int64, problems []string) {
	dir := filepath.Dir(dst)
	werr := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dst {
				return nil // refused before anything was written
			}
			return err
		}
		if !strings.HasPrefix(p, dst) {
			problems = append(problems, fmt.Sprintf("%s is outside %s", p, dst))
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if !fi.Mode().IsRegular() {
				problems = append(problems, fmt.Sprintf("%s is a %s", p, fi.Mode().Type()))
			}
			files++
			size += fi.Size()
		}
		return nil
	})
	if werr != nil {
		problems = append(problems, werr.Error())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "data" && e.Name() != "out" {
			problems = append(problems, fmt.Sprintf("wrote %s outside the destination", filepath.Join(dir, e.Name())))
		}
	}
	// t.TempDir names its directories 001, 002, ...: anything else in the
	// test's temporary root was written by an escape two levels up.
	entries, _ = os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if !tempDirName.MatchString(e.Name()) {
			problems = append(problems, fmt.Sprintf("wrote %s outside the destination", filepath.Join(filepath.Dir(dir), e.Name())))
		}
	}
	return files, size, problems
}

// tempDirName is the name t.TempDir gives a directory.
var tempDirName = regexp.MustCompile(`^[0-9]{3,}$`)

// TestContainedCanFail is the positive control of the fuzz target's check:
// a file written next to the destination, or next to its directory, and a
// link inside it, are each reported.
func TestContainedCanFail(t *testing.T) {
	tests := []struct {
		name  string
		plant func(dst string) error
		want  string
	}{
		{name: "nothing outside", plant: func(string) error { return nil }},
		{name: "a file next to the destination", plant: func(dst string) error {
			return os.WriteFile(filepath.Join(filepath.Dir(dst), "escaped"), nil, 0o600)
		}, want: "escaped outside the destination"},
		{name: "a file two levels up", plant: func(dst string) error {
			return os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(dst)), "escaped2"), nil, 0o600)
		}, want: "escaped2 outside the destination"},
		{name: "a link inside", plant: func(dst string) error {
			return os.Symlink("/etc/passwd", filepath.Join(dst, "l"))
		}, want: "is a L"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dst, err := extractBytes(t, buildTar(t, []entry{reg("a", "x")}, true), FormatAuto, Limits{MaxFiles: 10, MaxSize: 1 << 10})
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(tt.plant(dst)).To(Succeed())
			files, _, problems := contained(dst)
			g.Expect(files).To(BeNumerically(">=", 1))
			if tt.want == "" {
				g.Expect(problems).To(BeEmpty())
				return
			}
			g.Expect(strings.Join(problems, "\n")).To(ContainSubstring(tt.want))
		})
	}
}
