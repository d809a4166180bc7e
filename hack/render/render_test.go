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
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestRender renders the release manifests and checks what a user applies:
// our CRD alone in one file, the install with the release's images in the
// other, and never Flux's ExternalArtifact CRD.
func TestRender(t *testing.T) {
	g := NewWithT(t)
	out := t.TempDir()
	g.Expect(Render(devenv.Root(), "1.2.3", out)).To(Succeed())

	crds, err := os.ReadFile(filepath.Join(out, "externalsource-controller.crds.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	docs := strings.Split(string(crds), "\n---\n")
	g.Expect(docs).To(HaveLen(1))
	var crd map[string]any
	g.Expect(yaml.Unmarshal([]byte(docs[0]), &crd)).To(Succeed())
	g.Expect(crd["kind"]).To(Equal("CustomResourceDefinition"))
	g.Expect(string(crds)).To(ContainSubstring("name: externalsources.source.externalsource.io"))

	dep, err := os.ReadFile(filepath.Join(out, "externalsource-controller.deployment.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	s := string(dep)
	g.Expect(s).To(ContainSubstring("image: ghcr.io/externalsource/externalsource-controller:v1.2.3"))
	g.Expect(s).To(ContainSubstring("image: ghcr.io/externalsource/externalsource-hook-executor:v1.2.3"))
	g.Expect(s).ToNot(ContainSubstring("CustomResourceDefinition"))
	g.Expect(s).ToNot(ContainSubstring("externalartifacts.source.toolkit.fluxcd.io"))
	for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "ClusterRole", "NetworkPolicy", "ConfigMap"} {
		g.Expect(s).To(ContainSubstring("kind: "+kind), kind)
	}
}
