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

package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	. "github.com/onsi/gomega"
)

// dockerfile is what a Dockerfile's final stage puts into its image.
type dockerfile struct {
	copies     []string // destinations of COPY --from=build
	packages   []string // apt-get install's packages
	user       string
	entrypoint []string
	cmd        []string
}

var (
	copyRe = regexp.MustCompile(`^COPY --from=build \S+ (\S+)$`)
	aptRe  = regexp.MustCompile(`apt-get install -y ([^&]+)`)
)

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var d dockerfile
	final := text[strings.LastIndex(text, "\nFROM "):]
	for _, l := range strings.Split(final, "\n") {
		l = strings.TrimSpace(l)
		if m := copyRe.FindStringSubmatch(l); m != nil {
			d.copies = append(d.copies, m[1])
		}
		if m := aptRe.FindStringSubmatch(l); m != nil {
			for _, f := range strings.Fields(m[1]) {
				if !strings.HasPrefix(f, "-") {
					d.packages = append(d.packages, f)
				}
			}
		}
		if v, ok := strings.CutPrefix(l, "USER "); ok {
			d.user = v
		}
		if v, ok := strings.CutPrefix(l, "ENTRYPOINT "); ok {
			if err := json.Unmarshal([]byte(v), &d.entrypoint); err != nil {
				t.Fatal(err)
			}
		}
		if v, ok := strings.CutPrefix(l, "CMD "); ok {
			if err := json.Unmarshal([]byte(v), &d.cmd); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d
}

// TestImagesMatchDockerfiles keeps the Dockerfiles (the release path) and
// the images the cluster tests build without an engine from drifting: every
// file a Dockerfile copies is in the built image, every package it installs
// is unpacked into it, and user, entrypoint and command agree.
func TestImagesMatchDockerfiles(t *testing.T) {
	imgs, err := ProjectImages(testCluster.opts.Root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Image{}
	for _, i := range imgs {
		byName[i.Name] = i
	}
	for _, tc := range []struct{ dockerfile, image string }{
		{"Dockerfile", ControllerImage},
		{"Dockerfile.hook-executor", HookExecutorImage},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			g := NewWithT(t)
			d := parseDockerfile(t, filepath.Join(testCluster.opts.Root, tc.dockerfile))
			g.Expect(d.copies).NotTo(BeEmpty(), "the parser found the COPY lines")
			img := byName[tc.image]
			files := map[string]File{}
			for _, f := range img.Files {
				files["/"+f.Path] = f
			}
			for _, c := range d.copies {
				_, ok := files[c]
				g.Expect(ok).To(BeTrue(), "%s copies %s, the builder does not", tc.dockerfile, c)
				g.Expect(files[c].Mode&0o111).NotTo(BeZero(), "%s is executable", c)
			}
			g.Expect(HookExecutorPackages).To(ContainElements(d.packages))
			g.Expect(img.User).To(Equal(d.user))
			g.Expect(img.Entrypoint).To(Equal(d.entrypoint))
			g.Expect(img.Cmd).To(Equal(d.cmd))
		})
	}
	// Each Debian package's files are in the hook executor's image.
	g := NewWithT(t)
	var paths []string
	for _, f := range byName[HookExecutorImage].Files {
		paths = append(paths, f.Path)
	}
	g.Expect(paths).To(ContainElements("usr/bin/jq", "etc/ssl/certs/ca-certificates.crt"))

	// The same inputs give the same image.
	var a v1.Image
	a, err = byName[HookExecutorImage].Build()
	g.Expect(err).NotTo(HaveOccurred())
	b, err := byName[HookExecutorImage].Build()
	g.Expect(err).NotTo(HaveOccurred())
	da, _ := a.Digest()
	db, _ := b.Digest()
	g.Expect(da).To(Equal(db))
}
