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

package devenv

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	. "github.com/onsi/gomega"
)

// TestToolModuleVersion reads the Flux controllers' versions from their
// tool modules (one in a require block, the flux CLI's on a require line
// of its own) and names the go.mod that lacks a module.
func TestToolModuleVersion(t *testing.T) {
	semver := regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	for _, tc := range []struct {
		tool, mod string
		wantErr   string
	}{
		{tool: "kustomize-controller", mod: "github.com/fluxcd/kustomize-controller"},
		{tool: "helm-controller", mod: "github.com/fluxcd/helm-controller"},
		{tool: "notification-controller", mod: "github.com/fluxcd/notification-controller"},
		{tool: "flux", mod: "github.com/fluxcd/flux2/v2"},
		{tool: "helm-controller", mod: "github.com/fluxcd/kustomize-controller",
			wantErr: "tests/tools/helm-controller/go.mod requires no github.com/fluxcd/kustomize-controller"},
		{tool: "no-such-tool", mod: "github.com/fluxcd/helm-controller", wantErr: "no such file"},
	} {
		t.Run(tc.tool+" "+tc.mod, func(t *testing.T) {
			g := NewWithT(t)
			v, err := ToolModuleVersion(tc.tool, tc.mod)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(v).To(MatchRegexp(semver.String()))
			// The version is the one the tool module's go.mod names.
			b, err := os.ReadFile(filepath.Join(Root(), "tests", "tools", tc.tool, "go.mod"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(b)).To(MatchRegexp(regexp.QuoteMeta(tc.mod+" "+v) + `\b`))
		})
	}
}
