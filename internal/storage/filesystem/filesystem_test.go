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

package filesystem

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Backend {
		dir := t.TempDir()
		s, err := New(Options{Path: dir, BaseURL: "http://artifacts.example:9090"})
		if err != nil {
			t.Fatal(err)
		}
		return storagetest.Backend{
			Store:   s,
			BaseURL: "http://artifacts.example:9090",
			Corrupt: func(t *testing.T, p string) {
				if err := os.WriteFile(filepath.Join(dir, p), []byte("corrupt"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			TimeResolution: 20 * time.Millisecond,
		}
	})
}

func TestNewRequiresADirectory(t *testing.T) {
	g := NewWithT(t)
	_, err := New(Options{Path: filepath.Join(t.TempDir(), "missing")})
	g.Expect(err).To(MatchError(ContainSubstring("is not a directory")))
}

func TestOpenRefusesEscapes(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(filepath.Dir(root), "secret"), []byte("x"), 0o600)).To(Succeed())
	s, err := New(Options{Path: root})
	g.Expect(err).ToNot(HaveOccurred())
	for _, p := range []string{"../secret", "a/../../secret"} {
		_, _, err := s.Open(t.Context(), p)
		g.Expect(err).To(HaveOccurred(), p)
	}
}
