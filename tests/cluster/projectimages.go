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
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// The project's images as the cluster imports them; the install's
// kustomize `images:` overrides point at these names.
const (
	ControllerImage          = "localhost/exs/externalsource-controller:test"
	HookExecutorImage        = "localhost/exs/externalsource-hook-executor:test"
	KustomizeControllerImage = "localhost/exs/kustomize-controller:test"
	HelmControllerImage      = "localhost/exs/helm-controller:test"
	// ToolsHookExecutorImage is the hook executor with one more tool, the
	// sandbox tests' probe (internal/hook/sandboxtest/probe), at
	// ProbePath: what an admin does to whitelist a tool of their own
	// (docs/hooks.md). The probe does what jq and yq cannot (connect,
	// write files without end) for scenarios b and e.
	ToolsHookExecutorImage = "localhost/exs/externalsource-hook-executor:test-tools"
	// ProbePath is where ToolsHookExecutorImage has the probe.
	ProbePath = "/usr/local/bin/probe"
)

// HookExecutorPackages are the Debian packages Dockerfile.hook-executor
// installs, and those they need at run time that its debian base brings
// (libc6 and jq's libraries): the builder unpacks exactly these.
var HookExecutorPackages = []string{"jq", "libjq1", "libonig5", "libc6", "ca-certificates"}

// debCache is where hack/tools.sh keeps the .debs (its cache's debs/).
func debCache() string {
	if d := os.Getenv("EXS_TOOLS_CACHE"); d != "" {
		return filepath.Join(d, "debs")
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "externalsource-controller", "tools", "debs")
}

// DebFiles returns the files of the packages' .debs, which `hack/tools.sh
// debs` downloads with apt-get into the tools cache (the archive this
// machine's apt sources name, at their candidate versions), without
// documentation, for a layer. What maintainer scripts would
// generate is done here: ca-certificates' bundle is the concatenation of its
// certificates, as update-ca-certificates writes it.
func DebFiles(pkgs ...string) ([]File, error) {
	dir := debCache()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []File
	var certs []string
	certData := map[string][]byte{}
	for _, p := range pkgs {
		deb, err := findDeb(dir, p)
		if err != nil {
			return nil, err
		}
		if deb == "" {
			return nil, fmt.Errorf("no .deb of %s in %s: `hack/tools.sh debs` downloads them (the tests reach no network)", p, dir)
		}
		out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
		if err != nil {
			return nil, fmt.Errorf("dpkg-deb %s: %w", deb, err)
		}
		tr := tar.NewReader(bytes.NewReader(out))
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", deb, err)
			}
			name := strings.Trim(path.Clean("/"+h.Name), "/")
			if name == "" || strings.HasPrefix(name, "usr/share/doc") || strings.HasPrefix(name, "usr/share/man") ||
				strings.HasPrefix(name, "usr/share/lintian") || strings.HasPrefix(name, "usr/share/locale") {
				continue
			}
			switch h.Typeflag {
			case tar.TypeDir:
				files = append(files, File{Path: name, Dir: true, Mode: h.Mode & 0o7777})
			case tar.TypeSymlink:
				files = append(files, File{Path: name, Link: h.Linkname})
			case tar.TypeReg:
				b, err := io.ReadAll(tr)
				if err != nil {
					return nil, err
				}
				files = append(files, File{Path: name, Data: b, Mode: h.Mode & 0o7777})
				if strings.HasPrefix(name, "usr/share/ca-certificates/") && strings.HasSuffix(name, ".crt") {
					certs = append(certs, name)
					certData[name] = b
				}
			}
		}
	}
	if len(certs) > 0 {
		sort.Strings(certs)
		var bundle []byte
		for _, c := range certs {
			bundle = append(bundle, certData[c]...)
		}
		files = append(files, File{Path: "etc/ssl/certs/ca-certificates.crt", Data: bundle, Mode: 0o644})
	}
	return files, nil
}

func findDeb(dir, pkg string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if err != nil || len(m) == 0 {
		return "", err
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// baseFiles are what the distroless and debian bases give every image and
// the programs here need: a world-writable /tmp (replaced by an emptyDir in
// the pod) and the nonroot user.
func baseFiles() []File {
	return []File{
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{Path: "home/nonroot", Dir: true, Mode: 0o700},
	}
}

// ProjectImages builds the images the shipped install runs, from this tree
// and the tools: the controller (as Dockerfile describes it) and the hook
// executor (as Dockerfile.hook-executor describes it).
func ProjectImages(root, dir string) ([]Image, error) {
	ctrl, err := GoBinary(root, dir, ".", "externalsource-controller")
	if err != nil {
		return nil, err
	}
	tramp, err := GoBinary(root, dir, "./internal/hook/sandbox/trampoline", "hook-sandbox")
	if err != nil {
		return nil, err
	}
	debs, err := DebFiles(HookExecutorPackages...)
	if err != nil {
		return nil, err
	}
	bin := func(n string) string { return filepath.Join(root, "bin", n) }
	return []Image{
		{Name: ControllerImage, User: "65532:65532", Entrypoint: []string{"/usr/local/bin/externalsource-controller"},
			Files: append(baseFiles(), File{Path: "usr/local/bin/externalsource-controller", Mode: 0o755, Source: ctrl})},
		{Name: HookExecutorImage, User: "65532:65532", Entrypoint: []string{"/usr/local/bin/externalsource-controller"},
			Cmd: []string{"hook-executor"},
			Files: append(append(baseFiles(), debs...),
				File{Path: "usr/bin/yq", Mode: 0o755, Source: bin("yq")},
				File{Path: "usr/local/bin/hook-sandbox", Mode: 0o755, Source: tramp},
				File{Path: "usr/local/bin/externalsource-controller", Mode: 0o755, Source: ctrl})},
	}, nil
}

// ToolsImage returns the hook executor image with the probe added at
// ProbePath, named ToolsHookExecutorImage. The shipped image's files are
// unchanged (TestImagesMatchDockerfiles compares those).
func ToolsImage(root, dir string, hookExecutor Image) (Image, error) {
	probe, err := GoBinary(root, dir, "./internal/hook/sandboxtest/probe", "probe")
	if err != nil {
		return Image{}, err
	}
	img := hookExecutor
	img.Name = ToolsHookExecutorImage
	img.Files = append(append([]File(nil), hookExecutor.Files...),
		File{Path: strings.TrimPrefix(ProbePath, "/"), Mode: 0o755, Source: probe})
	return img, nil
}

// FluxImages builds Flux's kustomize-controller and helm-controller images
// from the binaries hack/tools.sh builds, with the libc it links against.
func FluxImages(root string) ([]Image, error) {
	libc, err := DebFiles("libc6", "ca-certificates")
	if err != nil {
		return nil, err
	}
	bin := func(n string) string { return filepath.Join(root, "bin", n) }
	var imgs []Image
	for _, fc := range []struct{ name, image string }{
		{"kustomize-controller", KustomizeControllerImage},
		{"helm-controller", HelmControllerImage},
	} {
		imgs = append(imgs, Image{Name: fc.image, User: "65534:65534", Entrypoint: []string{"/usr/local/bin/" + fc.name},
			Files: append(append(baseFiles(), libc...), File{Path: "usr/local/bin/" + fc.name, Mode: 0o755, Source: bin(fc.name)})})
	}
	return imgs, nil
}
