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

package http

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fluxcd/pkg/apis/meta"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

func source(url string, mutate func(*v1.HTTPGeneratorSpec)) *v1.ExternalSource {
	spec := &v1.HTTPGeneratorSpec{URL: url}
	if mutate != nil {
		mutate(spec)
	}
	return &v1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Spec:       v1.ExternalSourceSpec{Generator: v1.GeneratorSpec{Type: v1.GeneratorTypeHTTP, HTTP: spec}},
	}
}

// seen records what the server received.
type seen struct {
	method, body, auth, ifNoneMatch string
}

func TestGenerate(t *testing.T) {
	var last seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		last = seen{r.Method, string(b), r.Header.Get("Authorization"), r.Header.Get("If-None-Match")}
		switch r.URL.Path {
		case "/etag":
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/fail":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream is down")
			return
		}
		_, _ = io.WriteString(w, "data:"+r.Method)
	}))
	defer srv.Close()

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth", Namespace: "ns"},
		Data: map[string][]byte{"Authorization": []byte("Bearer t0ken\n")}}
	reader := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(secret).Build()
	gen := New(Options{})

	tests := []struct {
		name     string
		path     string
		mutate   func(*v1.HTTPGeneratorSpec)
		previous generator.Validators
		want     seen
		wantBody string
		notMod   bool
		wantErr  string
	}{
		{name: "get", path: "/", want: seen{method: "GET"}, wantBody: "data:GET"},
		{name: "post with body", path: "/", mutate: func(s *v1.HTTPGeneratorSpec) { s.Method = "POST"; s.Body = `{"a":1}` },
			want: seen{method: "POST", body: `{"a":1}`}, wantBody: "data:POST"},
		{name: "put with body", path: "/", mutate: func(s *v1.HTTPGeneratorSpec) { s.Method = "PUT"; s.Body = "x" },
			want: seen{method: "PUT", body: "x"}, wantBody: "data:PUT"},
		{name: "patch with body", path: "/", mutate: func(s *v1.HTTPGeneratorSpec) { s.Method = "PATCH"; s.Body = "y" },
			want: seen{method: "PATCH", body: "y"}, wantBody: "data:PATCH"},
		{name: "headers from secret", path: "/", mutate: func(s *v1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"} },
			want: seen{method: "GET", auth: "Bearer t0ken"}, wantBody: "data:GET"},
		{name: "conditional get unchanged", path: "/etag", previous: generator.Validators{ETag: `"v1"`},
			want: seen{method: "GET", ifNoneMatch: `"v1"`}, notMod: true},
		{name: "conditional get changed", path: "/etag", previous: generator.Validators{ETag: `"v0"`},
			want: seen{method: "GET", ifNoneMatch: `"v0"`}, wantBody: "data:GET"},
		{name: "no conditional for POST", path: "/etag", previous: generator.Validators{ETag: `"v1"`},
			mutate: func(s *v1.HTTPGeneratorSpec) { s.Method = "POST"; s.Body = "b" },
			want:   seen{method: "POST", body: "b"}, wantBody: "data:POST"},
		{name: "non-2xx", path: "/fail", want: seen{method: "GET"}, wantErr: `502 Bad Gateway: "upstream is down"`},
		{name: "missing secret", path: "/", mutate: func(s *v1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "nope"} },
			wantErr: `spec.generator.http.headersSecretRef: Secret "ns/nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			last = seen{}
			res, err := gen.Generate(context.Background(), &generator.Request{
				Source: source(srv.URL+tt.path, tt.mutate), Reader: reader, Previous: tt.previous,
			})
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(last).To(Equal(tt.want))
			g.Expect(res.NotModified).To(Equal(tt.notMod))
			if tt.notMod {
				g.Expect(res.Body).To(BeNil())
				g.Expect(res.Validators.ETag).To(Equal(`"v1"`))
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			g.Expect(string(b)).To(Equal(tt.wantBody))
		})
	}
}

func TestGenerateErrorsNameTheCause(t *testing.T) {
	g := NewWithT(t)
	gen := New(Options{})
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more

	_, err := gen.Generate(context.Background(), &generator.Request{Source: source(addr, nil)})
	g.Expect(err).To(MatchError(ContainSubstring("connection refused")))

	_, err = gen.Generate(context.Background(), &generator.Request{Source: source("ftp://x/y", nil)})
	g.Expect(err).To(MatchError(ContainSubstring("spec.generator.http.url")))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = gen.Generate(ctx, &generator.Request{Source: source("http://127.0.0.1:1/", nil)})
	g.Expect(err).To(HaveOccurred())
}
