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
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

// listenOn starts an HTTP test server on ip (any 127.x address works on
// Linux) and counts the connections it accepts.
func listenOn(t *testing.T, ip string, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	conns := &atomic.Int64{}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns
}

func portOf(srv *httptest.Server) string {
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return port
}

// countDials makes gen count the connections it attempts (after the
// policy check), dialling for real.
func countDials(gen *Generator) *atomic.Int64 {
	n := &atomic.Int64{}
	d := &net.Dialer{}
	gen.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return d.DialContext(ctx, network, addr)
	}
	return n
}

// hit is one request a test server received.
type hit struct {
	path, method, body string
	header             http.Header
}

// hits records the requests of a test server.
type hits struct {
	mu  sync.Mutex
	got []hit
}

func (h *hits) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, hit{r.URL.Path, r.Method, string(b), r.Header.Clone()})
}

func (h *hits) take() []hit {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.got
	h.got = nil
	return out
}

// redirector answers the paths of redirects with a redirect to their
// value, /loop with a redirect to itself and /hops/N with a redirect to
// /hops/N-1 (and "ok" at 0); anything else with "ok".
func redirector(rec *hits, redirects map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		if loc, ok := redirects[r.URL.Path]; ok {
			code := http.StatusFound
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				code = http.StatusTemporaryRedirect
			}
			http.Redirect(w, r, loc, code)
			return
		}
		if r.URL.Path == "/loop" {
			http.Redirect(w, r, "/loop", http.StatusFound)
			return
		}
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/hops/%d", &n); err == nil && n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/hops/%d", n-1), http.StatusFound)
			return
		}
		w.Header().Set("ETag", `"v2"`)
		_, _ = io.WriteString(w, "ok")
	}
}

// TestRedirectPolicy: every hop of a redirect chain passes the URL
// patterns and the address check, the chain is at most MaxRedirects long,
// and a refusal names the (redacted) target and the rule. Nothing reaches
// a refused target.
func TestRedirectPolicy(t *testing.T) {
	// The refused target listens on 127.0.0.2: loopback, outside the
	// 127.0.0.1/32 the test allows.
	target, targetConns := listenOn(t, "127.0.0.2", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "must not be reached")
	}))
	tp := portOf(target)
	rec := &hits{}
	origin, _ := listenOn(t, "127.0.0.1", redirector(rec, map[string]string{
		"/to-forbidden":     "http://target.test:" + tp + "/forbidden?token=tok-s3cr3t-value",
		"/to-target":        "http://target.test:" + tp + "/data",
		"/to-metadata":      "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"/to-metadata-name": "http://metadata.test/latest/meta-data/",
		"/to-wireserver":    "http://168.63.129.16/machine?comp=goalstate",
		"/to-nat64":         "http://[64:ff9b::a9fe:a9fe]/latest/",
	}))
	op := portOf(origin)
	resolver := fakeResolver{
		"origin.test":   {"127.0.0.1"},
		"target.test":   {"127.0.0.2"},
		"metadata.test": {"169.254.169.254"},
	}
	only := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	denying, err := ParseURLPolicy(nil, []string{`.*/forbidden.*`}, false)
	if err != nil {
		t.Fatal(err)
	}
	denying.AllowedRanges = only
	allowing, err := ParseURLPolicy([]string{`http://origin\.test:[0-9]+/.*`}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	allowing.AllowedRanges = only

	tests := []struct {
		name     string
		policy   *URLPolicy
		path     string
		wantErr  []string
		requests int // at the origin
	}{
		{name: "redirect to a denied URL", policy: denying, path: "/to-forbidden", requests: 1, wantErr: []string{
			"GET http://origin.test:" + op + "/to-forbidden (redirected to \"http://target.test:" + tp + "/forbidden?token=***\")",
			"refusing the redirect: http://target.test:" + tp + "/forbidden?token=*** is denied by the controller's URL policy (--denied-url-patterns \".*/forbidden.*\")"}},
		{name: "redirect outside the allowed URLs", policy: allowing, path: "/to-target", requests: 1, wantErr: []string{
			"refusing the redirect: http://target.test:" + tp + "/data matches none of the controller's --allowed-url-patterns"}},
		{name: "redirect to a loopback address", policy: denying, path: "/to-target", requests: 1, wantErr: []string{
			"(redirected to \"http://target.test:" + tp + "/data\")", "target.test (127.0.0.2) is a loopback address"}},
		{name: "redirect to the metadata address", policy: denying, path: "/to-metadata", requests: 1, wantErr: []string{
			"(redirected to \"http://169.254.169.254/latest/meta-data/iam/security-credentials/\")", "169.254.169.254 is a link-local address"}},
		{name: "redirect to a name of the metadata address", policy: denying, path: "/to-metadata-name", requests: 1, wantErr: []string{
			"metadata.test (169.254.169.254) is a link-local address"}},
		{name: "redirect to Azure's WireServer", policy: denying, path: "/to-wireserver", requests: 1, wantErr: []string{
			"(redirected to \"http://168.63.129.16/machine?comp=***\")", "168.63.129.16 is a cloud platform address (Azure WireServer)"}},
		{name: "redirect to a NAT64 form of the metadata address", policy: denying, path: "/to-nat64", requests: 1, wantErr: []string{
			"64:ff9b::a9fe:a9fe is the NAT64 form of 169.254.169.254, a link-local address"}},
		{name: "redirect loop", policy: denying, path: "/loop", requests: MaxRedirects + 1, wantErr: []string{
			"more than 10 redirects, the most the controller follows"}},
		{name: "eleven redirects", policy: denying, path: "/hops/11", requests: MaxRedirects + 1, wantErr: []string{
			"GET http://origin.test:" + op + "/hops/11 (redirected to \"http://origin.test:" + op + "/hops/0\"): more than 10 redirects"}},
		{name: "ten redirects are followed", policy: denying, path: "/hops/10", requests: MaxRedirects + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			opts := fastOptions()
			opts.URLPolicy, opts.Resolver = tt.policy, resolver
			gen := New(opts)
			dials := countDials(gen)
			rec.take()
			res, err := gen.Generate(context.Background(), &generator.Request{Source: source("http://origin.test:"+op+tt.path, nil)})
			// Refusals are not retried: each request reached the origin once.
			g.Expect(rec.take()).To(HaveLen(tt.requests))
			g.Expect(targetConns.Load()).To(BeZero())
			if len(tt.wantErr) == 0 {
				g.Expect(err).ToNot(HaveOccurred())
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				g.Expect(string(b)).To(Equal("ok"))
				return
			}
			g.Expect(err).To(HaveOccurred())
			for _, want := range tt.wantErr {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
			g.Expect(err.Error()).ToNot(ContainSubstring("s3cr3t"))
			g.Expect(errors.Is(err, ErrDenied) || errors.Is(err, errTooManyRedirects)).To(BeTrue())
			// Only the origin was ever dialled (targetConns above). Not
			// asserted: that it was dialled once. net/http hands a
			// redirect's connection back to the pool from its read loop,
			// so on a loaded machine the next hop may dial again.
			g.Expect(dials.Load()).To(BeNumerically(">=", 1))
		})
	}
}

// TestRedirectDropsCredentials asserts on what the servers received: a hop
// to another origin (scheme, host, port) carries none of the Secret's
// headers, no Authorization, Cookie or Proxy-Authorization, and the chain
// stays stripped when it comes back; a same-origin hop keeps them; a body
// is never re-sent to another origin.
func TestRedirectDropsCredentials(t *testing.T) {
	otherRec, originRec := &hits{}, &hits{}
	var op string
	other, _ := listenOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherRec.record(r)
		if r.URL.Path == "/back" {
			http.Redirect(w, r, "http://origin.test:"+op+"/final", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	otherURL := "http://other.test:" + portOf(other)
	origin, _ := listenOn(t, "127.0.0.1", redirector(originRec, map[string]string{
		"/same":       "/final",
		"/cross":      otherURL + "/final",
		"/cross-back": otherURL + "/back",
	}))
	op = portOf(origin)
	opts := fastOptions()
	opts.Resolver = fakeResolver{"origin.test": {"127.0.0.1"}, "other.test": {"127.0.0.1"}}
	gen := New(opts)
	creds := map[string]string{
		"X-Api-Key":           "key-s3cr3t",
		"Authorization":       "Bearer tok-s3cr3t",
		"Cookie":              "session=ck-s3cr3t",
		"Proxy-Authorization": "Basic px-s3cr3t",
	}
	data := map[string][]byte{}
	for k, v := range creds {
		data[k] = []byte(v)
	}
	rd := reader(secret("creds", data))
	withCreds := func(method string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) {
			s.HeadersSecretRef = &meta.LocalObjectReference{Name: "creds"}
			if method != "" {
				s.Method, s.Body = method, "payload"
			}
		}
	}
	hasCreds := func(g Gomega, h hit) {
		for k, v := range creds {
			g.Expect(h.header.Get(k)).To(Equal(v), k)
		}
	}
	noCreds := func(g Gomega, h hit) {
		for k := range creds {
			g.Expect(h.header.Values(k)).To(BeEmpty(), k)
		}
		g.Expect(h.header.Get("User-Agent")).To(Equal("externalsource-controller"))
	}

	tests := []struct {
		name     string
		path     string
		method   string
		previous generator.Validators
		check    func(g Gomega, origin, other []hit)
		wantErr  string
	}{
		{name: "same origin keeps them", path: "/same", check: func(g Gomega, origin, other []hit) {
			g.Expect(origin).To(HaveLen(2))
			g.Expect(origin[1].path).To(Equal("/final"))
			hasCreds(g, origin[1])
			g.Expect(other).To(BeEmpty())
		}},
		{name: "another origin gets none", path: "/cross", check: func(g Gomega, origin, other []hit) {
			hasCreds(g, origin[0])
			g.Expect(other).To(HaveLen(1))
			noCreds(g, other[0])
		}},
		{name: "away and back stays stripped", path: "/cross-back", check: func(g Gomega, origin, other []hit) {
			g.Expect(origin).To(HaveLen(2))
			g.Expect(origin[1].path).To(Equal("/final"))
			noCreds(g, origin[1])
			noCreds(g, other[0])
		}},
		{name: "the HEAD of change detection too", path: "/cross", previous: generator.Validators{ETag: `"v1"`},
			check: func(g Gomega, origin, other []hit) {
				g.Expect(other[0].method).To(Equal(http.MethodHead))
				noCreds(g, other[0])
				g.Expect(other[0].header.Get("If-None-Match")).To(BeEmpty())
			}},
		{name: "same-origin 307 re-sends the body with them", path: "/same", method: http.MethodPost,
			check: func(g Gomega, origin, other []hit) {
				g.Expect(origin).To(HaveLen(2))
				g.Expect(origin[1].method).To(Equal(http.MethodPost))
				g.Expect(origin[1].body).To(Equal("payload"))
				hasCreds(g, origin[1])
			}},
		{name: "no body to another origin", path: "/cross", method: http.MethodPost,
			wantErr: "refusing the redirect: it would send the POST body to " + otherURL + "/final, another origin than http://origin.test:",
			check: func(g Gomega, origin, other []hit) {
				g.Expect(origin).To(HaveLen(1))
				g.Expect(other).To(BeEmpty())
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			originRec.take()
			otherRec.take()
			res, err := gen.Generate(context.Background(), &generator.Request{
				Source: source("http://origin.test:"+op+tt.path, withCreds(tt.method)), Reader: rd, Previous: tt.previous})
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
			} else {
				g.Expect(err).ToNot(HaveOccurred())
				if res.Body != nil {
					_, _ = io.ReadAll(res.Body)
					res.Body.Close()
				}
			}
			tt.check(g, originRec.take(), otherRec.take())
		})
	}
}

// TestDefaultDeniedAddresses: with no policy configured, every listed
// address, and the IPv4-compatible, IPv4-mapped and NAT64 forms of the
// denied IPv4 addresses, is refused after resolution and before any
// connection; the admin's ranges lift the denial.
func TestDefaultDeniedAddresses(t *testing.T) {
	srv, conns := listenOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	port := portOf(srv)
	tests := []struct {
		addr, why string
	}{
		{"127.0.0.1", "is a loopback address"},
		{"127.3.4.5", "is a loopback address"},
		{"::1", "is a loopback address"},
		{"0.0.0.0", "is an unspecified address"},
		{"0.1.2.3", "is an unspecified address"},
		{"::", "is an unspecified address"},
		{"169.254.169.254", "is a link-local address"},
		{"169.254.170.2", "is a link-local address"},
		{"fe80::1", "is a link-local address"},
		{"168.63.129.16", "is a cloud platform address (Azure WireServer)"},
		{"192.0.0.192", "is a cloud metadata address (Oracle Cloud)"},
		{"100.100.100.200", "is a cloud metadata address (Alibaba Cloud)"},
		{"fd00:ec2::254", "is a cloud metadata address (AWS IMDS over IPv6)"},
		{"fd00:ec2::23", "(AWS EKS Pod Identity over IPv6)"},
		{"fd20:ce::254", "is a cloud metadata address (Google Cloud over IPv6)"},
		{"::ffff:127.0.0.1", "is a loopback address"},
		{"::ffff:169.254.169.254", "is a link-local address"},
		{"::ffff:168.63.129.16", "(Azure WireServer)"},
		{"::127.0.0.1", "is the IPv4-compatible form of 127.0.0.1, a loopback address"},
		{"::a9fe:a9fe", "is the IPv4-compatible form of 169.254.169.254, a link-local address"},
		{"::c000:c0", "is the IPv4-compatible form of 192.0.0.192, a cloud metadata address (Oracle Cloud)"},
		{"64:ff9b::a9fe:a9fe", "is the NAT64 form of 169.254.169.254, a link-local address"},
		{"64:ff9b::7f00:1", "is the NAT64 form of 127.0.0.1, a loopback address"},
		{"64:ff9b::a83f:8110", "is the NAT64 form of 168.63.129.16"},
		{"64:ff9b::6464:64c8", "is the NAT64 form of 100.100.100.200"},
		{"64:ff9b:1::a9fe:a9fe", "is the NAT64 (local-use prefix) form of 169.254.169.254"},
		{"64:ff9b:1:a9fe:a9:fe00::", "is the NAT64 (local-use prefix) form of 169.254.169.254"},
		{"64:ff9b:1:7f00:0:100::", "is the NAT64 (local-use prefix) form of 127.0.0.1"},
	}
	resolver := fakeResolver{}
	for i, tt := range tests {
		resolver[fmt.Sprintf("h%d.test", i)] = []string{tt.addr}
	}
	gen := New(Options{Resolver: resolver, RetryMax: -1})
	dials := countDials(gen)
	for i, tt := range tests {
		host := fmt.Sprintf("h%d.test", i)
		literal := tt.addr
		if strings.Contains(literal, ":") {
			literal = "[" + literal + "]"
		}
		for _, u := range []string{"http://" + host + ":" + port + "/", "http://" + literal + ":" + port + "/"} {
			t.Run(u, func(t *testing.T) {
				g := NewWithT(t)
				_, err := gen.Generate(context.Background(), &generator.Request{Source: source(u, nil)})
				g.Expect(err).To(MatchError(ErrDenied))
				g.Expect(err.Error()).To(ContainSubstring(tt.why))
				g.Expect(err.Error()).To(ContainSubstring("an admin can allow it with --allowed-address-ranges"))
				if strings.HasPrefix(u, "http://"+host) {
					g.Expect(err.Error()).To(ContainSubstring(host + " (" + net.ParseIP(tt.addr).String() + ") is "))
				}
			})
		}
	}
	g := NewWithT(t)
	g.Expect(dials.Load()).To(BeZero())
	g.Expect(conns.Load()).To(BeZero())

	// Allowed addresses are dialled: the admin's ranges (an embedded IPv4
	// address counts as the IPv4 address), and the allowed one of a
	// mixed answer.
	resolver["mixed.test"] = []string{"169.254.169.254", "127.0.0.1"}
	lifted, err := ParseAddressRanges([]string{"127.0.0.0/8", " ", "::1"})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(lifted).To(Equal([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}))
	allowed := New(Options{Resolver: resolver, RetryMax: -1, URLPolicy: &URLPolicy{AllowedRanges: lifted}})
	allowedDials := countDials(allowed)
	for _, u := range []string{"http://127.0.0.1:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/", "http://mixed.test:" + port + "/"} {
		res, err := allowed.Generate(context.Background(), &generator.Request{Source: source(u, nil)})
		g.Expect(err).ToNot(HaveOccurred(), u)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		g.Expect(string(b)).To(Equal("ok"))
	}
	g.Expect(allowedDials.Load()).To(BeNumerically(">=", 1))
	g.Expect(conns.Load()).To(BeNumerically(">=", 1))
	g.Expect(allowed.opts.URLPolicy.deniedAddr(netip.MustParseAddr("64:ff9b::7f00:1"))).To(BeEmpty())
	g.Expect(allowed.opts.URLPolicy.deniedAddr(netip.MustParseAddr("169.254.169.254"))).ToNot(BeEmpty())

	// --allow-link-local-addresses lifts link-local and platform
	// addresses, not loopback.
	linkLocal, err := ParseURLPolicy(nil, nil, true)
	g.Expect(err).ToNot(HaveOccurred())
	for _, a := range []string{"169.254.169.254", "168.63.129.16", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"} {
		g.Expect(linkLocal.deniedAddr(netip.MustParseAddr(a))).To(BeEmpty(), a)
	}
	g.Expect(linkLocal.deniedAddr(netip.MustParseAddr("127.0.0.1"))).ToNot(BeEmpty())
	// Ordinary addresses, and NAT64 forms of them, are not denied.
	for _, a := range []string{"203.0.113.7", "10.0.0.1", "2001:db8::1", "64:ff9b::cb00:7107", "::ffff:203.0.113.7",
		"64:ff9b:1::cb00:7107", "64:ff9b:1:cb00:71:700::", "::1.2.3.4"} {
		g.Expect((*URLPolicy)(nil).deniedAddr(netip.MustParseAddr(a))).To(BeEmpty(), a)
	}
	_, err = ParseAddressRanges([]string{"10.0.0.0/33"})
	g.Expect(err).To(MatchError(ContainSubstring(`--allowed-address-ranges "10.0.0.0/33"`)))
}
