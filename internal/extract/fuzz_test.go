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
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		dir := filepath.Dir(dst)
		if err != nil {
			return
		}
		var n int
		var size int64
		werr := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !strings.HasPrefix(p, dst) {
				t.Fatalf("%s is outside %s", p, dst)
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			if !d.IsDir() {
				if !fi.Mode().IsRegular() {
					t.Fatalf("%s is a %s", p, fi.Mode().Type())
				}
				n++
				size += fi.Size()
			}
			return nil
		})
		if werr != nil {
			t.Fatal(werr)
		}
		if n > limits.MaxFiles || size > limits.MaxSize {
			t.Fatalf("accepted %d files, %d bytes over the limits", n, size)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "data" && e.Name() != "out" {
				t.Fatalf("wrote %s outside the destination", e.Name())
			}
		}
	})
}
