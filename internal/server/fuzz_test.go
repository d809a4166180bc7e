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

package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// FuzzCleanRequestPath: an accepted request path is a clean relative path
// without '.', '..' or empty segments.
func FuzzCleanRequestPath(f *testing.F) {
	for _, s := range []string{"/a/b.tar.gz", "/../etc/passwd", "/a/%2e%2e/b", "//x", "/a/./b", `/a\..\b`, "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, ok := CleanRequestPath(p)
		if !ok {
			return
		}
		if c == "" || strings.HasPrefix(c, "/") || path.Clean(c) != c {
			t.Fatalf("CleanRequestPath(%q) = %q", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("CleanRequestPath(%q) = %q has segment %q", p, c, seg)
			}
		}
	})
}

// FuzzHandler: whatever is requested, only the stored artifact is ever
// served, and nothing else answers 200.
func FuzzHandler(f *testing.F) {
	store := memory.New(memory.Options{})
	a := store.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "o", Namespace: "ns"}, "rev", "a.tar.gz")
	if err := store.Put(context.Background(), &a, strings.NewReader("artifact")); err != nil {
		f.Fatal(err)
	}
	h := Handler(store, ctrl.Log)
	for _, s := range []string{"/" + a.Path, "/externalsource/ns/o/", "/externalsource/ns/o/../o/a.tar.gz", "/%2e%2e/", "/externalsource/ns/o/a.tar.gz/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req := httptest.NewRequest(http.MethodGet, "http://artifacts/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK && strings.TrimPrefix(p, "/") != a.Path {
			t.Fatalf("GET %q served %q", p, rec.Body.String())
		}
	})
}
