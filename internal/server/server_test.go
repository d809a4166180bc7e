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
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

func TestHandler(t *testing.T) {
	g := NewWithT(t)
	store := memory.New(memory.Options{BaseURL: "http://example"})
	obj := &metav1.ObjectMeta{Name: "pricing", Namespace: "flux-system"}
	a := store.NewArtifactFor("ExternalSource", obj, "latest@sha256:x", "abc.tar.gz")
	g.Expect(store.Put(context.Background(), &a, strings.NewReader("archive-bytes"))).To(Succeed())
	g.Expect(a.Path).To(Equal("externalsource/flux-system/pricing/abc.tar.gz"))

	srv := httptest.NewServer(Handler(store, ctrl.Log))
	defer srv.Close()

	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/externalsource/flux-system/pricing/abc.tar.gz", 200, "archive-bytes"},
		{"HEAD", "/externalsource/flux-system/pricing/abc.tar.gz", 200, ""},
		{"GET", "/externalsource/flux-system/pricing/other.tar.gz", 404, ""},
		{"GET", "/externalsource/flux-system/pricing/", 404, ""},
		{"GET", "/externalsource/flux-system/", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/externalsource/flux-system/pricing/../pricing/abc.tar.gz", 404, ""},
		{"GET", "/externalsource/flux-system/pricing/%2e%2e/pricing/abc.tar.gz", 404, ""},
		{"GET", "/externalsource/flux-system/pricing/.%2fabc.tar.gz", 404, ""},
		{"GET", "//externalsource/flux-system/pricing/abc.tar.gz", 404, ""},
		{"GET", "/externalsource//flux-system/pricing/abc.tar.gz", 404, ""},
		{"GET", "/%2fetc/passwd", 404, ""},
		{"POST", "/externalsource/flux-system/pricing/abc.tar.gz", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			g := NewWithT(t)
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			g.Expect(err).ToNot(HaveOccurred())
			// Send the path as written: no client-side cleaning.
			req.URL.Opaque = tt.path
			resp, err := http.DefaultClient.Do(req)
			g.Expect(err).ToNot(HaveOccurred())
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			g.Expect(resp.StatusCode).To(Equal(tt.status))
			if tt.status == 200 {
				g.Expect(string(b)).To(Equal(tt.body))
				g.Expect(resp.ContentLength).To(Equal(int64(len("archive-bytes"))))
			}
		})
	}
}

func TestCleanRequestPath(t *testing.T) {
	tests := map[string]bool{
		"/a/b/c.tar.gz": true,
		"a/b":           true,
		"/":             false,
		"":              false,
		"/a/../b":       false,
		"/a/./b":        false,
		"/a//b":         false,
		"/a/b/":         false,
		`/a\b`:          false,
		"/a/\x00":       false,
		"/..":           false,
	}
	for in, ok := range tests {
		_, got := CleanRequestPath(in)
		if got != ok {
			t.Errorf("CleanRequestPath(%q) = %v, want %v", in, got, ok)
		}
	}
}

func TestServeReadinessAndShutdown(t *testing.T) {
	g := NewWithT(t)
	store := memory.New(memory.Options{})
	obj := &metav1.ObjectMeta{Name: "o", Namespace: "ns"}
	a := store.NewArtifactFor("ExternalSource", obj, "rev", "a.tar.gz")
	g.Expect(store.Put(context.Background(), &a, strings.NewReader(strings.Repeat("x", 1<<20)))).To(Succeed())

	srv := &Server{Addr: "127.0.0.1:0", Storage: store, Log: ctrl.Log}
	g.Expect(srv.ReadyCheck(nil)).To(MatchError(ContainSubstring("not serving")))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	g.Eventually(func() error { return srv.ReadyCheck(nil) }).Should(Succeed())

	resp, err := http.Get("http://" + ln.Addr().String() + "/" + a.Path)
	g.Expect(err).ToNot(HaveOccurred())
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	g.Expect(b).To(HaveLen(1 << 20))

	cancel()
	g.Eventually(done, 10*time.Second).Should(Receive(BeNil()), "graceful shutdown returns no error")
	g.Expect(srv.ReadyCheck(nil)).To(HaveOccurred())
	_, err = http.Get("http://" + ln.Addr().String() + "/" + a.Path)
	g.Expect(err).To(HaveOccurred(), "no longer listening")
}
