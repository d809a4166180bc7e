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
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	godigest "github.com/opencontainers/go-digest"

	"github.com/fluxcd/pkg/artifact/digest"
)

func build(t *testing.T, p string, data []byte) ([]byte, Result) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Write(&buf, p, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Write(%q): %v", p, err)
	}
	return buf.Bytes(), res
}

type entry struct {
	name string
	mode int64
	data string
}

func entries(t *testing.T, b []byte) []entry {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, _ := io.ReadAll(tr)
		out = append(out, entry{h.Name, h.Mode, string(d)})
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	data := []byte(`{"price": 42}`)
	a, ra := build(t, "data/pricing.json", data)
	b, rb := build(t, "data/pricing.json", data)
	g.Expect(a).To(Equal(b))
	g.Expect(ra).To(Equal(rb))

	sum := sha256.Sum256(a)
	g.Expect(ra.Digest).To(Equal("sha256:" + hex.EncodeToString(sum[:])))
	g.Expect(ra.Size).To(Equal(int64(len(a))))
	g.Expect(Revision(ra.Digest)).To(Equal("latest@" + ra.Digest))

	_, rOtherData := build(t, "data/pricing.json", []byte(`{"price": 43}`))
	_, rOtherPath := build(t, "data/prices.json", data)
	g.Expect(rOtherData.Digest).ToNot(Equal(ra.Digest))
	g.Expect(rOtherPath.Digest).ToNot(Equal(ra.Digest))
}

// TestWriteHonoursTheDigestAlgorithm: --artifact-digest-algo sets
// digest.Canonical; the archive's digest, its hex (the file name) and its
// revision follow it.
func TestWriteHonoursTheDigestAlgorithm(t *testing.T) {
	tests := []struct {
		algo   godigest.Algorithm
		hexLen int
	}{
		{godigest.SHA256, 64},
		{godigest.SHA384, 96},
		{godigest.SHA512, 128},
	}
	for _, tt := range tests {
		t.Run(string(tt.algo), func(t *testing.T) {
			g := NewWithT(t)
			defer func(c godigest.Algorithm) { digest.Canonical = c }(digest.Canonical)
			digest.Canonical = tt.algo
			b, r := build(t, "data.json", []byte("hello"))
			g.Expect(r.Digest).To(Equal(tt.algo.FromBytes(b).String()))
			g.Expect(r.Hex()).To(HaveLen(tt.hexLen))
			g.Expect(r.Digest).To(Equal(string(tt.algo) + ":" + r.Hex()))
			g.Expect(Revision(r.Digest)).To(Equal("latest@" + string(tt.algo) + ":" + r.Hex()))
		})
	}
}

func TestWriteHoldsExactlyTheFile(t *testing.T) {
	long := strings.Repeat("d/", 80) + "file.json"
	tests := []struct {
		path, want string
	}{
		{"data.json", "data.json"},
		{"data/pricing.json", "data/pricing.json"},
		{"./a/./b//c.yaml", "a/b/c.yaml"},
		{"dir/", "dir"},
		{long, long},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			g := NewWithT(t)
			b, _ := build(t, tt.path, []byte("hello"))
			g.Expect(entries(t, b)).To(Equal([]entry{{tt.want, 0o644, "hello"}}))
		})
	}
}

func TestWriteRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "/etc/x", "a/../../b", "..", ".", "./", `\x`, "a/\x00"} {
		t.Run(p, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Write(io.Discard, p, strings.NewReader("x"), 1)
			g.Expect(err).To(MatchError(ContainSubstring("destinationPath")))
		})
	}
}

func TestWriteChecksTheSize(t *testing.T) {
	g := NewWithT(t)
	_, err := Write(io.Discard, "a", strings.NewReader("abc"), 2)
	g.Expect(err).To(HaveOccurred())
	_, err = Write(io.Discard, "a", strings.NewReader("a"), 2)
	g.Expect(err).To(HaveOccurred())
}
