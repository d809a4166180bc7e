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
	"fmt"

	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// The secrets of TestErrorsCarryNoSecrets, one per place a credential
// travels in: the URL's query and userinfo, a redirect's Location, a
// header from headersSecretRef, a proxy password from proxySecretRef.
const (
	querySecret    = "q-S3CRET-query-value"
	userSecret     = "u-S3CRET-password"
	locationSecret = "l-S3CRET-location"
	headerSecret   = "h-S3CRET-header-key"
	proxySecret    = "p-S3CRET-proxy-pass"
)

// TestErrorsCarryNoSecrets makes every failure the generator reports fire
// with credentials in the URL query and userinfo, in redirect targets, in
// Secret headers and proxy credentials, and asserts that neither the
// returned error nor any log line (captured at debug level) holds any of
// them, whole or cut.
func TestErrorsCarryNoSecrets(t *testing.T) {
	secrets := []string{querySecret, userSecret, locationSecret, headerSecret, proxySecret}

	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := closed.Listener.Addr().String()
	closed.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/?token="+locationSecret, http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop?token="+locationSecret, http.StatusFound)
		case "/relative-denied":
			http.Redirect(w, r, "/admin/x?token="+locationSecret, http.StatusFound)
		default:
			// An API that echoes what it was given, cut anywhere.
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = fmt.Fprintf(w, "%s invalid key %q for %s, api_key=%s, user %s",
				strings.Repeat("x", 230), r.Header.Get("X-Api-Key"), r.URL.String(), r.URL.Query().Get("api_key"), userSecret)
		}
	}))
	defer echo.Close()
	proxy := testutil.NewProxy(t, strings.TrimPrefix(echo.URL, "http://"), "proxyuser", "the-right-one")

	rd := reader(
		secret("headers", map[string][]byte{"X-Api-Key": []byte(headerSecret)}),
		secret("proxy", map[string][]byte{"address": []byte(proxy.URL), "username": []byte("proxyuser"), "password": []byte(proxySecret)}),
	)
	withHeaders := func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.HeadersSecretRef = &meta.LocalObjectReference{Name: "headers"}
	}
	withProxy := func(s *exsv1beta1.HTTPGeneratorSpec) {
		withHeaders(s)
		s.ProxySecretRef = &meta.LocalObjectReference{Name: "proxy"}
	}
	at := func(scheme, host, path string) string {
		return scheme + "://user:" + userSecret + "@" + host + path + "?api_key=" + querySecret + "&page=1"
	}
	hostOf := func(s *httptest.Server) string { return s.Listener.Addr().String() }

	opts := fastOptions()
	opts.RetryMax = -1
	opts.Resolver = fakeResolver{"metadata.test": {"169.254.169.254"}, "public.test": {"203.0.113.10"}}
	opts.URLPolicy.Denied = append(opts.URLPolicy.Denied, mustDenied(t, `.*/admin/.*`)...)
	gen := New(opts)

	tests := []struct {
		name    string
		url     string
		mutate  func(*exsv1beta1.HTTPGeneratorSpec)
		timeout time.Duration
		want    string
	}{
		{name: "connection refused", url: at("http", closedHost, "/data"), mutate: withHeaders, want: "connection refused"},
		{name: "TLS error", url: at("https", hostOf(plain), "/data"), mutate: withHeaders, want: "TLS error"},
		{name: "DNS error", url: at("http", "nowhere.test:80", "/data"), mutate: withHeaders, want: "DNS error"},
		{name: "timeout", url: at("http", hostOf(slow), "/data"), mutate: withHeaders, timeout: 300 * time.Millisecond, want: "timeout"},
		{name: "denied address", url: at("http", "metadata.test", "/latest/"), mutate: withHeaders, want: "is a link-local address"},
		{name: "denied URL", url: at("http", hostOf(echo), "/admin/"), want: "is denied by the controller's URL policy"},
		{name: "redirect to a denied address", url: at("http", hostOf(echo), "/to-metadata"), mutate: withHeaders,
			want: `(redirected to "http://169.254.169.254/latest/?token=***")`},
		{name: "relative redirect to a denied URL", url: at("http", hostOf(echo), "/relative-denied"), mutate: withHeaders,
			want: "refusing the redirect"},
		{name: "redirect loop", url: at("http", hostOf(echo), "/loop"), mutate: withHeaders, want: "more than 10 redirects"},
		{name: "401 echoing the credentials", url: at("http", hostOf(echo), "/data"), mutate: withHeaders, want: "401 Unauthorized"},
		{name: "proxy refusing the credentials", url: at("http", "public.test", "/data"), mutate: withProxy,
			want: "407 Proxy Authentication Required"},
		{name: "proxy target refused", url: at("http", "metadata.test", "/data"), mutate: withProxy, want: "is not handed to the proxy"},
		{name: "unparsable URL", url: "http://user:" + userSecret + "@" + hostOf(echo) + "/%zz?api_key=" + querySecret,
			want: `spec.generator.http.url: is not a valid URL: invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var mu sync.Mutex
			var lines []string
			logger := funcr.New(func(prefix, args string) {
				mu.Lock()
				defer mu.Unlock()
				lines = append(lines, prefix+" "+args)
			}, funcr.Options{Verbosity: 2})
			ctx := log.IntoContext(context.Background(), logger)
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			// A previous ETag: the HEAD runs first and its failure is logged.
			_, err := gen.Generate(ctx, &generator.Request{Source: source(tt.url, tt.mutate), Reader: rd,
				Secrets: &redact.Set{}, Previous: generator.Validators{ETag: `"v0"`}})
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			mu.Lock()
			out := append([]string{err.Error()}, lines...)
			mu.Unlock()
			for _, o := range out {
				for _, s := range secrets {
					// Whole, or the first half of it.
					g.Expect(o).ToNot(ContainSubstring(s[:len(s)/2]), "%s in %q", s, o)
				}
			}
			if !strings.Contains(tt.name, "unparsable") {
				g.Expect(err.Error()).To(ContainSubstring("api_key=***"))
			}
			if !strings.Contains(tt.name, "redirect") {
				g.Expect(err.Error()).ToNot(ContainSubstring("redirected to"))
			}
		})
	}
}

func mustDenied(t *testing.T, patterns ...string) []*regexp.Regexp {
	t.Helper()
	p, err := ParseURLPolicy(nil, patterns, false)
	if err != nil {
		t.Fatal(err)
	}
	return p.Denied
}
