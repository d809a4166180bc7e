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

// Command render writes the release manifests from config/ with the
// release's image tags: externalsource-controller.crds.yaml (our CRD) and
// externalsource-controller.deployment.yaml (everything else of the default
// install). goreleaser attaches both to a release.
//
// usage: go run ./hack/render -version v0.1.0 -out build/manifests
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Images are the repositories of the release images.
const (
	ControllerImage   = "ghcr.io/externalsource/externalsource-controller"
	HookExecutorImage = "ghcr.io/externalsource/externalsource-hook-executor"
)

func main() {
	version := flag.String("version", "dev", "the release version; images are tagged with it")
	out := flag.String("out", "build/manifests", "the output directory")
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := Render(*root, *version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

// Render builds config/default with the version's image tags in an
// overlay (so config/ stays untouched) and writes the two manifests.
func Render(root, version, out string) error {
	tag := version
	if tag != "dev" && !strings.HasPrefix(tag, "v") {
		tag = "v" + tag
	}
	fs := filesys.MakeFsInMemory()
	disk := filesys.MakeFsOnDisk()
	// Copy config/ into memory and add the overlay beside it.
	err := filepath.Walk(filepath.Join(root, "config"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		b, err := disk.ReadFile(p)
		if err != nil {
			return err
		}
		return fs.WriteFile("/repo/"+filepath.ToSlash(rel), b)
	})
	if err != nil {
		return err
	}
	overlay := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../config/default
images:
  - name: %s
    newTag: %s
  - name: %s
    newTag: %s
`, ControllerImage, tag, HookExecutorImage, tag)
	if err := fs.WriteFile("/repo/release/kustomization.yaml", []byte(overlay)); err != nil {
		return err
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/repo/release")
	if err != nil {
		return err
	}
	var crds, rest bytes.Buffer
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return err
		}
		w := &rest
		if r.GetKind() == "CustomResourceDefinition" {
			w = &crds
		}
		if w.Len() > 0 {
			w.WriteString("---\n")
		}
		w.Write(y)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "externalsource-controller.crds.yaml"), crds.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "externalsource-controller.deployment.yaml"), rest.Bytes(), 0o644)
}
