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

// Package repo holds checks of the repository itself.
package repo

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// TestCheckSize runs hack/check-size.sh on this repository (which must
// pass) and on a scratch repository with a tracked 6 MB file (which must
// fail naming it), so the CI check is known to be able to fail.
func TestCheckSize(t *testing.T) {
	script, err := filepath.Abs("../../hack/check-size.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string, args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	git := func(g *WithT, dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		g.Expect(err).NotTo(HaveOccurred(), string(out))
	}

	tests := []struct {
		name    string
		size    int
		wantErr bool
	}{
		{name: "a tracked 6 MB file fails", size: 6_000_000, wantErr: true},
		{name: "a tracked 1 MB file passes", size: 1_000_000, wantErr: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			git(g, dir, "init", "-q")
			g.Expect(os.WriteFile(filepath.Join(dir, "blob.bin"), make([]byte, tt.size), 0o644)).To(Succeed())
			git(g, dir, "add", "blob.bin")
			out, err := run(dir)
			if tt.wantErr {
				g.Expect(err).To(HaveOccurred())
				g.Expect(out).To(ContainSubstring("blob.bin"))
			} else {
				g.Expect(err).NotTo(HaveOccurred(), out)
			}
		})
	}

	t.Run("this repository passes", func(t *testing.T) {
		g := NewWithT(t)
		out, err := run("../..")
		g.Expect(err).NotTo(HaveOccurred(), out)
	})
}
