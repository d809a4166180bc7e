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

package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	. "github.com/onsi/gomega"
)

// TestBuild writes an image of a stand-in binary, loads the layout back
// and checks what a runtime would run: entrypoint, user, the file itself.
func TestBuild(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "controller")
	g.Expect(os.WriteFile(bin, []byte("#!stand-in binary"), 0o755)).To(Succeed())
	out := filepath.Join(dir, "image")
	g.Expect(Build(bin, out, "v0.0.0-test")).To(Succeed())

	p, err := layout.FromPath(out)
	g.Expect(err).ToNot(HaveOccurred())
	idx, err := p.ImageIndex()
	g.Expect(err).ToNot(HaveOccurred())
	m, err := idx.IndexManifest()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(m.Manifests).To(HaveLen(1))
	g.Expect(m.Manifests[0].Annotations["org.opencontainers.image.ref.name"]).To(Equal("v0.0.0-test"))
	img, err := idx.Image(m.Manifests[0].Digest)
	g.Expect(err).ToNot(HaveOccurred())

	cfg, err := img.ConfigFile()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(cfg.Config.Entrypoint).To(Equal([]string{"/usr/local/bin/externalsource-controller"}))
	g.Expect(cfg.Config.User).To(Equal("65532:65532"))
	g.Expect(cfg.OS).To(Equal("linux"))

	layers, err := img.Layers()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(layers).To(HaveLen(1))
	rc, err := layers[0].Uncompressed()
	g.Expect(err).ToNot(HaveOccurred())
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		g.Expect(err).ToNot(HaveOccurred())
		if h.Name == "usr/local/bin/externalsource-controller" {
			found = true
			g.Expect(h.Mode).To(Equal(int64(0o755)))
			b, _ := io.ReadAll(tr)
			g.Expect(string(b)).To(Equal("#!stand-in binary"))
		}
	}
	g.Expect(found).To(BeTrue())

	// The same binary gives the same image.
	d1, err := img.Digest()
	g.Expect(err).ToNot(HaveOccurred())
	out2 := filepath.Join(dir, "image2")
	g.Expect(Build(bin, out2, "v0.0.0-test")).To(Succeed())
	p2, _ := layout.FromPath(out2)
	idx2, _ := p2.ImageIndex()
	m2, _ := idx2.IndexManifest()
	g.Expect(m2.Manifests[0].Digest).To(Equal(d1))
}
