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
	"net/netip"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

func source(url string, mutate func(*exsv1beta1.HTTPGeneratorSpec)) *exsv1beta1.ExternalSource {
	spec := &exsv1beta1.HTTPGeneratorSpec{URL: url}
	if mutate != nil {
		mutate(spec)
	}
	return &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		Spec:       exsv1beta1.ExternalSourceSpec{Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: spec}},
	}
}

func secret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Data: data}
}

func reader(objs ...client.Object) client.Reader {
	return fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objs...).Build()
}

// fastOptions retry quickly, so tests of retries take milliseconds, and
// allow loopback, where the test servers listen.
func fastOptions() Options {
	return Options{RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond, URLPolicy: allowLoopback()}
}

// allowLoopback is the policy of tests whose upstreams are httptest
// servers on 127.0.0.1: the defaults but loopback.
func allowLoopback() *URLPolicy {
	return &URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// seen records one request the server received.
type seen struct {
	method, body, auth, ifNoneMatch, ifModifiedSince string
}

// recorder is a handler wrapper that records every request.
type recorder struct {
	mu  sync.Mutex
	got []seen
}

func (rec *recorder) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.got = append(rec.got, seen{r.Method, string(b), r.Header.Get("Authorization"),
			r.Header.Get("If-None-Match"), r.Header.Get("If-Modified-Since")})
		rec.mu.Unlock()
		h(w, r)
	}
}

func (rec *recorder) take() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.got
	rec.got = nil
	return out
}

const lastModified = "Mon, 02 Jan 2006 15:04:05 GMT"

// upstreamHandler serves paths with different conditional-request support:
// /etag supports HEAD, ETag and If-None-Match; /nohead refuses HEAD (405)
// but supports ETag on GET; /headnoetag answers HEAD without an ETag;
// /lastmod knows only Last-Modified; /always304 answers 304 to anything.
func upstreamHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/etag":
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	case "/nohead":
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	case "/headnoetag":
		if r.Method != http.MethodHead {
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	case "/lastmod":
		w.Header().Set("Last-Modified", lastModified)
		if r.Header.Get("If-Modified-Since") == lastModified {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	case "/always304":
		w.WriteHeader(http.StatusNotModified)
		return
	case "/fail":
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream is down")
		return
	}
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, "data:"+r.Method)
	}
}

func TestGenerate(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec.wrap(upstreamHandler))
	defer srv.Close()

	rd := reader(secret("auth", map[string][]byte{"Authorization": []byte("Bearer t0ken\n")}))
	gen := New(fastOptions())
	v1ETag := generator.Validators{ETag: `"v1"`}

	tests := []struct {
		name      string
		path      string
		mutate    func(*exsv1beta1.HTTPGeneratorSpec)
		previous  generator.Validators
		want      []seen
		wantBody  string
		notMod    bool
		detection string
		wantErr   string
	}{
		{name: "get", path: "/", want: []seen{{method: "GET"}}, wantBody: "data:GET", detection: "GET"},
		{name: "post with body", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "POST"; s.Body = `{"a":1}` },
			want: []seen{{method: "POST", body: `{"a":1}`}}, wantBody: "data:POST", detection: "POST"},
		{name: "put with body", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "PUT"; s.Body = "x" },
			want: []seen{{method: "PUT", body: "x"}}, wantBody: "data:PUT", detection: "PUT"},
		{name: "patch with body", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "PATCH"; s.Body = "y" },
			want: []seen{{method: "PATCH", body: "y"}}, wantBody: "data:PATCH", detection: "PATCH"},
		{name: "post without body", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "POST" },
			want: []seen{{method: "POST"}}, wantBody: "data:POST", detection: "POST"},
		{name: "headers from secret", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"} },
			want: []seen{{method: "GET", auth: "Bearer t0ken"}}, wantBody: "data:GET", detection: "GET"},
		{name: "HEAD confirms the ETag: no GET", path: "/etag", previous: v1ETag,
			want: []seen{{method: "HEAD", ifNoneMatch: `"v1"`}}, notMod: true, detection: "HEAD"},
		{name: "HEAD carries the secret headers too", path: "/etag", previous: v1ETag,
			mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"} },
			want:   []seen{{method: "HEAD", auth: "Bearer t0ken", ifNoneMatch: `"v1"`}}, notMod: true, detection: "HEAD"},
		{name: "changed ETag: HEAD detects it, a conditional GET fetches it", path: "/etag", previous: generator.Validators{ETag: `"v0"`},
			want:     []seen{{method: "HEAD", ifNoneMatch: `"v0"`}, {method: "GET", ifNoneMatch: `"v0"`}},
			wantBody: "data:GET", detection: "HEAD"},
		{name: "HEAD refused (405): conditional GET, 304", path: "/nohead", previous: v1ETag,
			want:   []seen{{method: "HEAD", ifNoneMatch: `"v1"`}, {method: "GET", ifNoneMatch: `"v1"`}},
			notMod: true, detection: "ConditionalGET"},
		{name: "HEAD without ETag: conditional GET, 304", path: "/headnoetag", previous: v1ETag,
			want:   []seen{{method: "HEAD", ifNoneMatch: `"v1"`}, {method: "GET", ifNoneMatch: `"v1"`}},
			notMod: true, detection: "ConditionalGET"},
		{name: "Last-Modified only: no HEAD, If-Modified-Since, 304", path: "/lastmod", previous: generator.Validators{LastModified: lastModified},
			want:   []seen{{method: "GET", ifModifiedSince: lastModified}},
			notMod: true, detection: "ConditionalGET"},
		{name: "no HEAD and no conditional for POST", path: "/etag", previous: v1ETag,
			mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "POST"; s.Body = "b" },
			want:   []seen{{method: "POST", body: "b"}}, wantBody: "data:POST", detection: "POST"},
		{name: "no validators yet: plain GET, whose ETag makes HEAD the next detection", path: "/etag",
			want: []seen{{method: "GET"}}, wantBody: "data:GET", detection: "HEAD"},
		{name: "304 to an unconditional GET is an error", path: "/always304",
			want: []seen{{method: "GET"}}, wantErr: "304 Not Modified"},
		{name: "non-2xx is not retried within the fetch", path: "/fail", want: []seen{{method: "GET"}},
			wantErr: `502 Bad Gateway: "upstream is down"`},
		{name: "missing secret", path: "/", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "nope"} },
			wantErr: `spec.generator.http.headersSecretRef: Secret "ns/nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			rec.take()
			res, err := gen.Generate(context.Background(), &generator.Request{
				Source: source(srv.URL+tt.path, tt.mutate), Reader: rd, Previous: tt.previous,
			})
			g.Expect(rec.take()).To(Equal(tt.want))
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.NotModified).To(Equal(tt.notMod))
			g.Expect(res.ChangeDetection).To(Equal(tt.detection))
			g.Expect(res.Warnings).To(BeEmpty())
			if tt.notMod {
				g.Expect(res.Body).To(BeNil())
				g.Expect(res.Validators).To(Equal(tt.previous))
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			g.Expect(string(b)).To(Equal(tt.wantBody))
		})
	}
}

func TestGenerateRecordsValidators(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `W/"weak"`)
		w.Header().Set("Last-Modified", lastModified)
		_, _ = io.WriteString(w, "0123456789")
	}))
	defer srv.Close()
	res, err := New(fastOptions()).Generate(context.Background(), &generator.Request{Source: source(srv.URL, nil)})
	g.Expect(err).ToNot(HaveOccurred())
	defer res.Body.Close()
	g.Expect(res.Validators).To(Equal(generator.Validators{ETag: `W/"weak"`, LastModified: lastModified}))
	g.Expect(res.ContentLength).To(Equal(int64(10)))
}

func TestHeaderSecretErrors(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(upstreamHandler))
	defer srv.Close()
	rd := reader(secret("bad", map[string][]byte{"Bad Header": []byte("x")}))
	_, err := New(fastOptions()).Generate(context.Background(), &generator.Request{
		Source: source(srv.URL, func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "bad"} }),
		Reader: rd,
	})
	// A Secret's content is fixed without a spec change: retried, not stalled.
	g.Expect(err).To(MatchError(ContainSubstring(`Secret "ns/bad": key "Bad Header" is not a valid header name`)))
	var inv *generator.InvalidSpecError
	g.Expect(errorsAs(err, &inv)).To(BeFalse())
}

func TestGenerateErrorsNameTheCause(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there any more
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()

	tests := []struct {
		name    string
		url     string
		mutate  func(*exsv1beta1.HTTPGeneratorSpec)
		timeout time.Duration
		want    string
		invalid bool
	}{
		{name: "connection refused", url: closedURL, want: "connection refused"},
		{name: "DNS", url: "http://nonexistent.invalid/", want: "DNS error"},
		{name: "timeout", url: slow.URL, timeout: 300 * time.Millisecond, want: "timeout"},
		{name: "bad scheme", url: "ftp://x/y", want: "spec.generator.http.url", invalid: true},
		{name: "body with GET", url: slow.URL, mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Body = "x" },
			want: "spec.generator.http.body", invalid: true},
		{name: "unknown method", url: slow.URL, mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.Method = "DELETE" },
			want: "spec.generator.http.method", invalid: true},
	}
	gen := New(fastOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			_, err := gen.Generate(ctx, &generator.Request{Source: source(tt.url, tt.mutate)})
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			var inv *generator.InvalidSpecError
			g.Expect(errorsAs(err, &inv)).To(Equal(tt.invalid))
		})
	}
}
