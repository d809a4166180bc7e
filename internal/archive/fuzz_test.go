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

package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"path"
	"strings"
	"testing"
)

// FuzzCleanPath: whatever the input, an accepted path is relative, clean,
// names a file and never climbs out.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"data.json", "a/b/c.yaml", "./a//b/", "../x", "a/../../b", "/etc/passwd", ".", "", "a/./b", `a\..\b`, "a/\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanPath(p)
		if err != nil {
			return
		}
		if c == "" || c == "." || strings.HasPrefix(c, "/") || path.Clean(c) != c {
			t.Fatalf("CleanPath(%q) = %q: not a clean relative file path", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == ".." {
				t.Fatalf("CleanPath(%q) = %q climbs out", p, c)
			}
		}
	})
}

// FuzzWrite: any path and data give either a clear error or a valid,
// deterministic archive holding exactly that data at the cleaned path.
func FuzzWrite(f *testing.F) {
	f.Add("data.json", []byte(`{"a": 1}`))
	f.Add("a/b/../c", []byte{})
	f.Add(strings.Repeat("long/", 30)+"f", []byte("x"))
	f.Add("/abs", []byte("x"))
	f.Fuzz(func(t *testing.T, p string, data []byte) {
		var a, b bytes.Buffer
		ra, err := Write(&a, p, bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !strings.Contains(err.Error(), "destinationPath") {
				t.Fatalf("error does not name the field: %v", err)
			}
			return
		}
		rb, err := Write(&b, p, bytes.NewReader(data), int64(len(data)))
		if err != nil || ra != rb || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("not deterministic for %q", p)
		}
		want, _ := CleanPath(p)
		gz, err := gzip.NewReader(&a)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(gz)
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(tr)
		if h.Name != want || !bytes.Equal(got, data) {
			t.Fatalf("entry %q with %d bytes, want %q with %d", h.Name, len(got), want, len(data))
		}
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("more than one entry: %v", err)
		}
	})
}
