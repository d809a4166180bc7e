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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
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
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// TestOAuth2EncodedPairRedacted is issue 23's attack 5: an identity
// provider (a stand-in on loopback) answers with the client's own
// credentials, as x/oauth2 sent them, in its RFC 6749 error code. Whatever
// form it echoes (the Basic pair of the header style, url-encoded first;
// the form body of the params style), the error carries none of it.
func TestOAuth2EncodedPairRedacted(t *testing.T) {
	// Characters that url-encoding changes, so that the pair x/oauth2
	// builds differs from base64(id:secret).
	const id, clientSecret = "client/id+7", "s3cret pair&=/+value"
	header := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(clientSecret)))
	plain := base64.StdEncoding.EncodeToString([]byte(id + ":" + clientSecret))
	form := url.Values{"client_id": {id}, "client_secret": {clientSecret}}.Encode()
	tests := []struct {
		name string
		// echo is what the IdP answers as its error code, given the
		// Authorization header of the client's first attempt.
		echo func(first string) string
		leak []string
	}{
		{name: "header style: base64 of the url-encoded pair", leak: []string{header},
			echo: func(first string) string { return strings.TrimPrefix(first, "Basic ") }},
		{name: "header style: the whole Authorization value", leak: []string{header},
			echo: func(first string) string { return first }},
		{name: "base64 of the pair as written", leak: []string{plain}, echo: func(string) string { return plain }},
		{name: "params style: the form body", leak: []string{form, url.QueryEscape(clientSecret)},
			echo: func(string) string { return form }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var first string
			idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if first == "" {
					first = r.Header.Get("Authorization")
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": tt.echo(first)})
			}))
			defer idp.Close()
			rd := reader(secret("client", map[string][]byte{"clientID": []byte(id), "clientSecret": []byte(clientSecret)}))
			set := &redact.Set{}
			_, err := New(fastOptions()).Generate(context.Background(), &generator.Request{
				Source: source("http://127.0.0.1:1/", withOAuth2(idp.URL, "client")), Reader: rd, Secrets: set})
			g.Expect(err).To(MatchError(ContainSubstring("token endpoint")))
			// What Ready's message would say: the error through the set.
			msg := set.String(err.Error())
			for _, l := range append(tt.leak, clientSecret) {
				g.Expect(msg).ToNot(ContainSubstring(l))
				g.Expect(err.Error()).ToNot(ContainSubstring(l))
			}
			g.Expect(msg).To(ContainSubstring(redact.Placeholder))
		})
	}
}

// manyValues returns a Secret's data of n keys with 8-byte values.
func manyValues(n int) map[string][]byte {
	data := make(map[string][]byte, n)
	for i := range n {
		data[fmt.Sprintf("X-K%d", i)] = fmt.Appendf(nil, "%08x", uint32(i)*2654435761)
	}
	return data
}

// TestSecretBound: a Secret used whole (headersSecretRef) over the
// redaction set's bound is refused by a message naming the field, the
// Secret and the limit, before any value enters the set; a Secret whose
// used keys fit is fine however much else it holds, and only the values
// of the keys read enter the set.
func TestSecretBound(t *testing.T) {
	const unused = "unused-value-never-sent"
	big := map[string][]byte{"username": []byte(testUser), "password": []byte(testPassword), "junk": []byte(strings.Repeat("j", 1<<20))}
	for k, v := range manyValues(5000) {
		big[k] = v
	}
	big["other"] = []byte(unused)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer up.Close()
	withHeaders := func(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: name} }
	}
	rd := reader(
		secret("huge", manyValues(90000)),
		secret("at-limit", manyValues(redact.MaxValues)),
		secret("one-big-value", map[string][]byte{"X-Big": []byte(strings.Repeat("b", redact.MaxBytes+1))}),
		secret("basic-and-more", big),
		secret("bearer-big", map[string][]byte{"token": []byte(strings.Repeat("t", redact.MaxBytes+1))}),
	)
	tests := []struct {
		name    string
		mutate  func(*exsv1beta1.HTTPGeneratorSpec)
		wantErr string
		// notRedacted is a value of the Secret the set must not hold.
		notRedacted string
	}{
		{name: "90,000 keys", mutate: withHeaders("huge"),
			wantErr: `spec.generator.http.headersSecretRef: Secret "ns/huge" refused: a source may use at most 1024 Secret values, this one would make 90000`},
		{name: "at the limit", mutate: withHeaders("at-limit")},
		{name: "one value over the byte limit", mutate: withHeaders("one-big-value"),
			wantErr: fmt.Sprintf(`Secret "ns/one-big-value" refused: a source may use at most %d bytes of Secret values`, redact.MaxBytes)},
		{name: "unused keys are not read", mutate: withBasic("basic-and-more"), notRedacted: unused},
		{name: "a used key over the byte limit", mutate: withBearer("bearer-big"),
			wantErr: `spec.generator.http.auth.bearer.secretRef: Secret "ns/bearer-big" refused`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			set := &redact.Set{}
			res, err := New(fastOptions()).Generate(context.Background(), &generator.Request{
				Source: source(up.URL, tt.mutate), Reader: rd, Secrets: set})
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				var le *redact.LimitError
				g.Expect(errors.As(err, &le)).To(BeTrue())
				g.Expect(set.Fits(0, 0)).To(Succeed(), "nothing of the refused Secret entered the set")
				g.Expect(set.Fits(redact.MaxValues, 0)).To(Succeed(), "nothing of the refused Secret entered the set")
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			_ = res.Body.Close()
			if tt.notRedacted != "" {
				g.Expect(set.String(tt.notRedacted)).To(Equal(tt.notRedacted))
				g.Expect(set.String(testPassword)).To(Equal(redact.Placeholder), "the used key is")
			}
		})
	}
}

// BenchmarkSecretReconcile is the cost of one fetch's Secret handling and
// redaction for a headersSecretRef Secret of n 8-byte values: the
// generator reads it (from a stand-in reader: the API server's decoding is
// not ours), checks it against the bound, adds its values, sends the
// request, and the reconciler's messages go through the set. 90,000 is
// issue 23's attack, refused. The heap still in use at
// the end of the reconcile (runtime.ReadMemStats after a GC), the
// automaton cache included (heap-bytes-kept).
func BenchmarkSecretReconcile(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer up.Close()
	for _, n := range []int{1000, redact.MaxValues, 90000} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			rd := reader(secret("h", manyValues(n)))
			obj := source(up.URL, func(s *exsv1beta1.HTTPGeneratorSpec) { s.HeadersSecretRef = &meta.LocalObjectReference{Name: "h"} })
			gen := New(fastOptions())
			msg := strings.Repeat("upstream answered 503 Service Unavailable; ", 16)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			for b.Loop() {
				set := &redact.Set{}
				res, err := gen.Generate(context.Background(), &generator.Request{Source: obj, Reader: rd, Secrets: set})
				if err == nil {
					_ = res.Body.Close()
				} else if n <= redact.MaxValues {
					b.Fatal(err)
				}
				for range 10 {
					_ = set.String(msg)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc)-float64(before.HeapAlloc), "heap-bytes-kept")
		})
	}
}

// interfaceIPv4 returns a non-loopback IPv4 address of one of this
// machine's interfaces. A listener on it is reached by traffic that never
// leaves the machine, as a pod's own IP is.
func interfaceIPv4(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatalf("reading this machine's interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
				return ip.Unmap()
			}
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this machine has no non-loopback IPv4 interface address: the pod-IP test needs one to listen on")
	}
	t.Skip("this machine has no non-loopback IPv4 interface address to listen on")
	return netip.Addr{}
}

// TestOwnAddressDenied is issue 23's attack 6: an upstream listening on
// an address of this machine's own interface (what a pod's own IP is to
// the controller), with loopback allowed as tests do. It is denied by
// default, by its address and through a name resolving to it, before any
// connection; --allowed-address-ranges holding it lifts the denial.
func TestOwnAddressDenied(t *testing.T) {
	ip := interfaceIPv4(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatalf("listening on this machine's own address %s: %v", ip, err)
	}
	var conns atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	lifted := allowLoopback()
	lifted.AllowedRanges = append(lifted.AllowedRanges, netip.PrefixFrom(ip, 32))
	linkLocal := allowLoopback()
	linkLocal.AllowLinkLocal = true
	tests := []struct {
		name    string
		url     string
		policy  *URLPolicy
		wantErr bool
	}{
		{name: "by address", url: "http://" + net.JoinHostPort(ip.String(), port) + "/", policy: allowLoopback(), wantErr: true},
		{name: "through a name", url: "http://pod.test:" + port + "/", policy: allowLoopback(), wantErr: true},
		{name: "IPv4-mapped", url: "http://[::ffff:" + ip.String() + "]:" + port + "/", policy: allowLoopback(), wantErr: true},
		{name: "--allow-link-local does not lift it", url: "http://" + net.JoinHostPort(ip.String(), port) + "/", policy: linkLocal, wantErr: true},
		{name: "lifted by --allowed-address-ranges", url: "http://pod.test:" + port + "/", policy: lifted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			before := conns.Load()
			opts := fastOptions()
			opts.URLPolicy, opts.Resolver = tt.policy, fakeResolver{"pod.test": {ip.String()}}
			res, err := New(opts).Generate(context.Background(), &generator.Request{Source: source(tt.url, nil), Secrets: &redact.Set{}})
			if !tt.wantErr {
				g.Expect(err).ToNot(HaveOccurred())
				_ = res.Body.Close()
				g.Expect(conns.Load() - before).To(BeNumerically(">", 0))
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring("an address of the controller's own host")))
			g.Expect(err).To(MatchError(ContainSubstring("--allowed-address-ranges")))
			g.Expect(errors.Is(err, ErrDenied)).To(BeTrue())
			g.Expect(conns.Load()-before).To(BeZero(), "no connection was made")
		})
	}
}

// TestHostAddrsFollowChanges: an address the host gains is denied from
// the next read of its interfaces on; a failed read keeps the last.
func TestHostAddrsFollowChanges(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1000, 0)
	list := []net.Addr{&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)}}
	var readErr error
	h := &hostAddrs{now: func() time.Time { return now }, interfaceAddrs: func() ([]net.Addr, error) { return list, readErr }}
	p := &URLPolicy{ownAddrs: h}
	g.Expect(p.deniedAddr(netip.MustParseAddr("10.1.2.3"))).To(Equal(ownAddress))
	g.Expect(p.deniedAddr(netip.MustParseAddr("10.1.2.4"))).To(BeEmpty())

	list = append(list, &net.IPNet{IP: net.ParseIP("fd00::7"), Mask: net.CIDRMask(64, 128)})
	g.Expect(p.deniedAddr(netip.MustParseAddr("fd00::7"))).To(BeEmpty(), "not read again yet")
	now = now.Add(hostAddrsMaxAge)
	g.Expect(p.deniedAddr(netip.MustParseAddr("fd00::7"))).To(Equal(ownAddress), "read again")

	readErr = errors.New("netlink failed")
	now = now.Add(hostAddrsMaxAge)
	g.Expect(p.deniedAddr(netip.MustParseAddr("10.1.2.3"))).To(Equal(ownAddress), "kept across a failed read")
}

// countingReader counts the reads of whole Secrets and of their metadata.
type countingReader struct {
	client.Client
	whole, metadata atomic.Int64
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*metav1.PartialObjectMetadata); ok {
		c.metadata.Add(1)
	} else {
		c.whole.Add(1)
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestRefusedSecretNotReadAgain: a Secret refused for its size is read
// whole once; while its version stays, the next fetches read its metadata
// only and are refused alike. A new version is read whole again, and used
// once it fits.
func TestRefusedSecretNotReadAgain(t *testing.T) {
	g := NewWithT(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer up.Close()
	s := secret("refused-once", manyValues(redact.MaxValues+1))
	rd := &countingReader{Client: fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(s).Build()}
	obj := source(up.URL, func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.HeadersSecretRef = &meta.LocalObjectReference{Name: "refused-once"}
	})
	gen := New(fastOptions())
	fetch := func() error {
		res, err := gen.Generate(context.Background(), &generator.Request{Source: obj, Reader: rd, Secrets: &redact.Set{}})
		if err == nil {
			_ = res.Body.Close()
		}
		return err
	}
	for i := range 3 {
		g.Expect(fetch()).To(MatchError(ContainSubstring(`Secret "ns/refused-once" refused: a source may use at most 1024 Secret values, this one would make 1025`)), "fetch %d", i)
	}
	g.Expect(rd.whole.Load()).To(Equal(int64(1)), "read whole once")
	g.Expect(rd.metadata.Load()).To(Equal(int64(2)))

	cur := &corev1.Secret{}
	g.Expect(rd.Get(context.Background(), client.ObjectKeyFromObject(s), cur)).To(Succeed())
	cur.Data = manyValues(10)
	g.Expect(rd.Update(context.Background(), cur)).To(Succeed())
	whole := rd.whole.Load()
	g.Expect(fetch()).To(Succeed())
	g.Expect(rd.whole.Load()-whole).To(Equal(int64(1)), "the new version is read")
	g.Expect(refusedSecrets.get(client.ObjectKeyFromObject(s))).To(BeNil(), "and the refusal forgotten")
}
