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
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/net/http/httpproxy"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestProxySecretRef sends plain-HTTP requests through a real forward proxy
// named by proxySecretRef, with basic auth. The target host resolves (for
// the controller's check of the target) to a documentation address that
// routes nowhere: only the proxy can reach the upstream.
func TestProxySecretRef(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "via proxy: "+r.Host)
	}))
	defer upstream.Close()
	proxy := testutil.NewProxy(t, strings.TrimPrefix(upstream.URL, "http://"), "user", "s3cret")

	rd := reader(
		secret("proxy", map[string][]byte{"address": []byte(proxy.URL), "username": []byte("user"), "password": []byte("s3cret")}),
		secret("proxy-wrong", map[string][]byte{"address": []byte(proxy.URL), "username": []byte("user"), "password": []byte("nope")}),
		secret("proxy-noaddr", map[string][]byte{"username": []byte("user")}),
	)
	proxyRef := func(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) { s.ProxySecretRef = &meta.LocalObjectReference{Name: name} }
	}
	// The environment proxy must not be used when proxySecretRef is set.
	envUsed := 0
	opts := fastOptions()
	opts.Proxy = func(*http.Request) (*url.URL, error) { envUsed++; return nil, nil }
	opts.Resolver = fakeResolver{"api.externalsource.invalid": {"203.0.113.10"}}
	gen := New(opts)

	tests := []struct {
		name     string
		mutate   func(*exsv1beta1.HTTPGeneratorSpec)
		wantBody string
		wantErr  string
		refused  int64
	}{
		{name: "authenticated", mutate: proxyRef("proxy"), wantBody: "via proxy: api.externalsource.invalid"},
		{name: "wrong password", mutate: proxyRef("proxy-wrong"), wantErr: "407 Proxy Authentication Required", refused: 1},
		{name: "no address", mutate: proxyRef("proxy-noaddr"), wantErr: "spec.generator.http.proxySecretRef: secret 'ns/proxy-noaddr': key 'address' not found"},
		{name: "missing Secret", mutate: proxyRef("nope"), wantErr: `spec.generator.http.proxySecretRef: Secret "ns/nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			refused := proxy.Refused.Load()
			res, err := gen.Generate(context.Background(), &generator.Request{
				Source: source("http://api.externalsource.invalid/data", tt.mutate), Reader: rd})
			g.Expect(proxy.Refused.Load() - refused).To(Equal(tt.refused))
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(err.Error()).ToNot(ContainSubstring("s3cret"))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			g.Expect(string(b)).To(Equal(tt.wantBody))
		})
	}
	g := NewWithT(t)
	g.Expect(envUsed).To(BeZero())
	g.Expect(proxy.Requests.Load()).To(Equal(int64(1)))
}

// TestEnvironmentProxy checks that sources without proxySecretRef use the
// controller's HTTPS_PROXY and NO_PROXY. Go reads the environment once per
// process, so the test injects the function http.ProxyFromEnvironment is
// built from, with explicit values. HTTPS goes through a CONNECT tunnel to a
// TLS server whose certificate is valid for example.com. The default
// policy denies loopback, where the proxy listens: the admin's own proxy
// is trusted (a tenant's proxySecretRef is not, TestProxyTargetChecked).
func TestEnvironmentProxy(t *testing.T) {
	g := NewWithT(t)
	upstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tunnelled to "+r.Host)
	}))
	defer upstream.Close()
	proxy := testutil.NewProxy(t, strings.TrimPrefix(upstream.URL, "https://"), "", "")
	env := httpproxy.Config{HTTPSProxy: proxy.URL, NoProxy: "direct.example.com"}
	envProxy := env.ProxyFunc()
	opts := fastOptions()
	opts.RetryMax = -1
	opts.Proxy = func(r *http.Request) (*url.URL, error) { return envProxy(r.URL) }
	opts.URLPolicy = nil
	opts.Resolver = fakeResolver{"api.example.com": {"203.0.113.10"}}
	gen := New(opts)
	rd := reader(secret("ca", map[string][]byte{"ca.crt": testutil.ServerCAPEM(upstream)}))
	withCA := func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: "ca"} }

	res, err := gen.Generate(context.Background(), &generator.Request{Source: source("https://api.example.com/data", withCA), Reader: rd})
	g.Expect(err).ToNot(HaveOccurred())
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	g.Expect(string(b)).To(Equal("tunnelled to api.example.com"))
	g.Expect(proxy.Connects.Load()).To(Equal(int64(1)))

	// NO_PROXY: the proxy is not asked; the direct connection goes wherever
	// DNS says (nowhere useful here), so only the proxy's silence counts.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = gen.Generate(ctx, &generator.Request{Source: source("https://direct.example.com/data", withCA), Reader: rd})
	g.Expect(err).To(HaveOccurred())
	g.Expect(proxy.Connects.Load()).To(Equal(int64(1)))
}

// TestProxyTargetChecked: through a proxy, the controller never dials the
// target, so it resolves and checks the target itself before handing the
// request to the proxy, on every hop, whether the proxy is the admin's
// (environment) or the tenant's (proxySecretRef). A tenant's proxy
// address is itself checked; the admin's proxy on loopback is trusted.
func TestProxyTargetChecked(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect-to-metadata" {
			http.Redirect(w, r, "http://metadata.test/latest/meta-data/", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "via proxy")
	}))
	defer upstream.Close()
	proxy := testutil.NewProxy(t, strings.TrimPrefix(upstream.URL, "http://"), "", "")
	resolver := fakeResolver{
		"public.test":   {"203.0.113.10"},
		"metadata.test": {"169.254.169.254"},
		"loop.test":     {"127.0.0.2"},
		"mixed.test":    {"203.0.113.10", "169.254.169.254"},
	}
	envOpts := fastOptions()
	envOpts.URLPolicy = nil // the defaults: loopback denied, yet the admin's proxy is there
	envOpts.Resolver = resolver
	envOpts.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(proxy.URL) }
	secretOpts := fastOptions()
	secretOpts.URLPolicy = &URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	secretOpts.Resolver = resolver
	gens := map[string]*Generator{"environment": New(envOpts), "proxySecretRef": New(secretOpts)}
	rd := reader(
		secret("proxy", map[string][]byte{"address": []byte(proxy.URL)}),
		secret("proxy-at-metadata", map[string][]byte{"address": []byte("http://169.254.169.254:3128")}),
	)
	via := func(kind, name string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) {
			if kind == "proxySecretRef" {
				s.ProxySecretRef = &meta.LocalObjectReference{Name: name}
			}
		}
	}
	seen := func() int64 { return proxy.Requests.Load() + proxy.Connects.Load() + proxy.Refused.Load() }

	tests := []struct {
		url     string
		wantErr string
		// proxied is how many requests the proxy gets. Every row that
		// fails is a denial of the policy (ErrDenied).
		proxied int64
	}{
		{url: "http://metadata.test/latest/meta-data/",
			wantErr: "http://metadata.test/latest/meta-data/ is not handed to the proxy: metadata.test (169.254.169.254) is a link-local address"},
		{url: "http://169.254.169.254/latest/meta-data/", wantErr: "169.254.169.254 is a link-local address"},
		{url: "https://metadata.test/computeMetadata/v1/", wantErr: "is not handed to the proxy: metadata.test (169.254.169.254)"},
		{url: "http://mixed.test/", wantErr: "mixed.test (169.254.169.254) is a link-local address"},
		{url: "http://loop.test/", wantErr: "loop.test (127.0.0.2) is a loopback address"},
		{url: "http://[64:ff9b::a9fe:a9fe]/", wantErr: "is the NAT64 form of 169.254.169.254"},
		// A name only the proxy can resolve (a closed network's egress
		// proxy) is handed to it.
		{url: "http://unknown.test/", proxied: 1},
		{url: "http://public.test/data", proxied: 1},
		{url: "http://public.test/redirect-to-metadata", proxied: 1,
			wantErr: `(redirected to "http://metadata.test/latest/meta-data/"): http://metadata.test/latest/meta-data/ is not handed to the proxy`},
	}
	for _, kind := range []string{"environment", "proxySecretRef"} {
		for _, tt := range tests {
			t.Run(kind+" "+tt.url, func(t *testing.T) {
				g := NewWithT(t)
				before := seen()
				res, err := gens[kind].Generate(context.Background(), &generator.Request{Source: source(tt.url, via(kind, "proxy")), Reader: rd})
				g.Expect(seen() - before).To(Equal(tt.proxied))
				if tt.wantErr == "" {
					g.Expect(err).ToNot(HaveOccurred())
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					g.Expect(string(b)).To(Equal("via proxy"))
					return
				}
				g.Expect(errors.Is(err, ErrDenied)).To(BeTrue(), "%v", err)
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
			})
		}
	}

	// The admin's proxy is trusted only as the proxy of a request: after
	// a request went through it, a direct request to its address, or a
	// redirect there, is checked like any other (loopback: refused).
	g := NewWithT(t)
	var redirecting *testutil.Proxy
	upstreamRedirects := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/to-the-proxy" {
			http.Redirect(w, r, redirecting.URL+"/squid-internal-mgr/info", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "via proxy")
	}))
	defer upstreamRedirects.Close()
	redirecting = testutil.NewProxy(t, strings.TrimPrefix(upstreamRedirects.URL, "http://"), "", "")
	directOpts := envOpts
	directOpts.Proxy = func(r *http.Request) (*url.URL, error) {
		if r.URL.Hostname() == "127.0.0.1" { // as Go's environment proxy never proxies loopback
			return nil, nil
		}
		return url.Parse(redirecting.URL)
	}
	direct := New(directOpts)
	for _, tt := range []struct{ url, wantErr string }{
		{url: "http://public.test/data"},
		{url: redirecting.URL + "/squid-internal-mgr/info", wantErr: "127.0.0.1 is a loopback address"},
		{url: "http://public.test/to-the-proxy",
			wantErr: `(redirected to "` + redirecting.URL + `/squid-internal-mgr/info"): 127.0.0.1 is a loopback address`},
	} {
		before := redirecting.Requests.Load()
		res, err := direct.Generate(context.Background(), &generator.Request{Source: source(tt.url, nil)})
		if tt.wantErr == "" {
			g.Expect(err).ToNot(HaveOccurred())
			res.Body.Close()
		} else {
			g.Expect(err).To(MatchError(ErrDenied))
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		}
		// Only proxied requests: the direct ones never reached it.
		g.Expect(redirecting.Requests.Load() - before).To(Equal(map[bool]int64{true: 1, false: 0}[strings.Contains(tt.url, "public.test")]))
	}

	// A tenant's proxy is an address like any other.
	dials := countDials(gens["proxySecretRef"])
	_, err := gens["proxySecretRef"].Generate(context.Background(), &generator.Request{
		Source: source("http://public.test/data", via("proxySecretRef", "proxy-at-metadata")), Reader: rd})
	g.Expect(err).To(MatchError(ErrDenied))
	g.Expect(err).To(MatchError(ContainSubstring("169.254.169.254 is a link-local address")))
	g.Expect(dials.Load()).To(BeZero())
}
