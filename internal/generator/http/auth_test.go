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
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
	tu "github.com/externalsource/externalsource-controller/internal/testutil"
)

const (
	testUser         = "alice-user"
	testPassword     = "s3cret-password-42"
	testBearer       = "static-bearer-token-0123456789"
	testClientID     = "client-id-7"
	testClientSecret = "client-secret-abcdef123456"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func withBasic(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
	return func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.Auth = &exsv1beta1.HTTPAuth{Basic: &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{Name: name}}}
	}
}

func withBearer(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
	return func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.Auth = &exsv1beta1.HTTPAuth{Bearer: &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{Name: name}}}
	}
}

func withOAuth2(tokenURL, name string) func(*exsv1beta1.HTTPGeneratorSpec) {
	return func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.Auth = &exsv1beta1.HTTPAuth{OAuth2: &exsv1beta1.OAuth2Auth{TokenURL: tokenURL, Scopes: []string{"read"},
			SecretRef: &meta.LocalObjectReference{Name: name}}}
	}
}

// TestAuthMethods runs each method against an upstream that checks the
// credentials, with right and wrong ones and broken token endpoints.
func TestAuthMethods(t *testing.T) {
	basicHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword))
	ts := tu.NewTokenServer(testClientID, testClientSecret, "read", 3600)
	defer ts.Close()
	broken := tu.NewTokenServer(testClientID, testClientSecret, "read", 3600)
	defer broken.Close()
	closed := tu.NewTokenServer("", "", "", 0)
	closed.Close()
	up := tu.NewAuthUpstream(`{"ok":true}`, func(a string) bool {
		return a == basicHeader || a == "Bearer "+testBearer || ts.Valid(a)
	})
	defer up.Close()

	rd := reader(
		secret("basic", map[string][]byte{"username": []byte(testUser), "password": []byte(testPassword)}),
		secret("basic-wrong", map[string][]byte{"username": []byte(testUser), "password": []byte("wrong-password-99")}),
		secret("basic-nopass", map[string][]byte{"username": []byte(testUser)}),
		secret("bearer", map[string][]byte{"token": []byte(testBearer + "\n")}),
		secret("bearer-wrong", map[string][]byte{"token": []byte("wrong-bearer-token-99")}),
		secret("client", map[string][]byte{"clientID": []byte(testClientID), "clientSecret": []byte(testClientSecret)}),
		secret("client-wrong", map[string][]byte{"clientID": []byte(testClientID), "clientSecret": []byte("wrong-client-secret-99")}),
		secret("headers-authz", map[string][]byte{"Authorization": []byte("Bearer " + testBearer)}),
	)
	tests := []struct {
		name     string
		mutate   func(*exsv1beta1.HTTPGeneratorSpec)
		setup    func()
		wantErr  string // "" : success
		auth     bool   // the error is an AuthError
		denied   bool   // the error wraps ErrDenied
		invalid  bool   // the error is an InvalidSpecError
		leaks    []string
		tokenReq int64 // requests to ts expected (-1: not checked)
	}{
		{name: "basic", mutate: withBasic("basic"), tokenReq: 0},
		{name: "bearer (trimmed)", mutate: withBearer("bearer"), tokenReq: 0},
		{name: "oauth2", mutate: withOAuth2(ts.URL, "client"), tokenReq: 1},
		{name: "basic wrong", mutate: withBasic("basic-wrong"), wantErr: "401 Unauthorized", auth: true,
			leaks: []string{"wrong-password-99"}, tokenReq: 0},
		{name: "basic without password", mutate: withBasic("basic-nopass"), wantErr: `has no key "password"`, tokenReq: 0},
		{name: "bearer wrong", mutate: withBearer("bearer-wrong"), wantErr: "401 Unauthorized", auth: true,
			leaks: []string{"wrong-bearer-token-99"}, tokenReq: 0},
		{name: "oauth2 wrong client secret", mutate: withOAuth2(ts.URL, "client-wrong"),
			wantErr: `token endpoint ` + ts.URL + ` answered 401 Unauthorized (error "invalid_client")`, auth: true,
			// Refused in the Authorization header, the credentials are
			// tried once more in the form (providers differ), then fail.
			leaks: []string{"wrong-client-secret-99"}, tokenReq: 2},
		// Only the identity provider's refusal (a 4xx, an OAuth2 error
		// code) is AuthenticationFailed; an outage is a fetch failure
		// with its cause.
		{name: "oauth2 endpoint 400 without an error code", mutate: withOAuth2(broken.URL, "client"),
			setup: func() { broken.Fail(http.StatusBadRequest) }, wantErr: "authentication failed: token endpoint " + broken.URL + " answered 400",
			auth: true, tokenReq: 0},
		{name: "oauth2 endpoint 500", mutate: withOAuth2(broken.URL+"?key=query-secret-value", "client"),
			setup: func() { broken.Fail(http.StatusInternalServerError) }, wantErr: "500 Internal Server Error",
			leaks: []string{"query-secret-value"}, tokenReq: 0},
		{name: "oauth2 bad JSON", mutate: withOAuth2(broken.URL, "client"),
			setup: func() { broken.Fail(0); broken.AnswerRaw(`{"access_token": `) }, wantErr: "token request to " + broken.URL},
		{name: "oauth2 endpoint down", mutate: withOAuth2(closed.URL, "client"), wantErr: "connection refused"},
		{name: "oauth2 endpoint's name does not resolve", mutate: withOAuth2("http://idp.invalid/token", "client"),
			wantErr: "no such host", tokenReq: 0},
		{name: "oauth2 token URL denied by the URL policy", mutate: withOAuth2("http://169.254.169.254/token", "client"),
			wantErr: "169.254.169.254", denied: true, tokenReq: 0},
		{name: "Authorization header and auth", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) {
			withBearer("bearer")(s)
			s.HeadersSecretRef = &meta.LocalObjectReference{Name: "headers-authz"}
		}, wantErr: "spec.generator.http.auth: cannot be used with an Authorization key in the Secret of spec.generator.http.headersSecretRef",
			invalid: true, tokenReq: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			if tt.setup != nil {
				tt.setup()
			}
			before := ts.Requests.Load()
			// Names resolve through a fake with no names: no lookup
			// leaves the machine.
			opts := fastOptions()
			opts.Resolver = fakeResolver{}
			gen := New(opts)
			set := &redact.Set{}
			res, err := gen.Generate(context.Background(), &generator.Request{
				Source: source(up.URL, tt.mutate), Reader: rd, Secrets: set})
			if tt.wantErr == "" {
				g.Expect(err).ToNot(HaveOccurred())
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				g.Expect(string(b)).To(Equal(`{"ok":true}`))
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				g.Expect(generator.IsAuthError(err)).To(Equal(tt.auth), "AuthError: %v", err)
				g.Expect(errors.Is(err, ErrDenied)).To(Equal(tt.denied), "ErrDenied: %v", err)
				var inv *generator.InvalidSpecError
				g.Expect(errorsAs(err, &inv)).To(Equal(tt.invalid))
				for _, s := range append(tt.leaks, testPassword, testBearer, testClientSecret, "Basic ") {
					g.Expect(err.Error()).ToNot(ContainSubstring(s))
				}
			}
			if tt.tokenReq >= 0 {
				g.Expect(ts.Requests.Load() - before).To(Equal(tt.tokenReq))
			}
		})
	}
}

// TestOAuth2TokenReuse plays 10 intervals of 1000 s of an unchanged upstream
// with tokens living 3000 s on a fake clock: 4 token requests (at 0, 3000,
// 6000, 9000 s: each token is renewed 30 s before it expires), one request
// upstream per interval (HEAD confirms the ETag), and the metric counts
// them.
func TestOAuth2TokenReuse(t *testing.T) {
	g := NewWithT(t)
	ts := tu.NewTokenServer(testClientID, testClientSecret, "read", 3000)
	defer ts.Close()
	up := tu.NewAuthUpstream(`{"ok":true}`, ts.Valid)
	defer up.Close()
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	opts := fastOptions()
	opts.Now = clock.Now
	gen := New(opts)
	rd := reader(secret("client", map[string][]byte{"clientID": []byte(testClientID), "clientSecret": []byte(testClientSecret)}))
	obj := source(up.URL, withOAuth2(ts.URL, "client"))
	success := testutil.ToFloat64(tokenRequests.WithLabelValues(tokenResultSuccess))

	var prev generator.Validators
	for i := range 10 {
		before := up.Served.Load()
		res, err := gen.Generate(context.Background(), &generator.Request{Source: obj, Reader: rd, Previous: prev, Secrets: &redact.Set{}})
		g.Expect(err).ToNot(HaveOccurred(), "interval %d", i)
		if res.Body != nil {
			_ = res.Body.Close()
		}
		prev = res.Validators
		g.Expect(up.Served.Load()-before).To(Equal(int64(1)), "interval %d: one request upstream", i)
		clock.Add(1000 * time.Second)
	}
	g.Expect(up.Refused.Load()).To(BeZero())
	g.Expect(ts.Requests.Load()).To(Equal(int64(4)))
	g.Expect(testutil.ToFloat64(tokenRequests.WithLabelValues(tokenResultSuccess)) - success).To(Equal(4.0))
	t.Logf("10 intervals, token lifetime 3 intervals: %d token requests, %d upstream requests", ts.Requests.Load(), up.Served.Load())

	// Deleting the object drops its token: the next fetch asks again.
	g.Expect(gen.Tokens()).To(Equal(1))
	gen.Forget(obj.Namespace, obj.Name)
	g.Expect(gen.Tokens()).To(BeZero())
}

// TestOAuth2RevokedAndRotated: a 401 to a cached token is answered by one
// new token and one retry; a rotated client secret (new resourceVersion)
// is used at the next fetch without waiting for the token to expire; a
// 401 to a fresh token is an AuthError.
func TestOAuth2RevokedAndRotated(t *testing.T) {
	g := NewWithT(t)
	ts := tu.NewTokenServer(testClientID, testClientSecret, "read", 3600)
	defer ts.Close()
	refuseAll := false
	var mu sync.Mutex
	up := tu.NewAuthUpstream(`{"ok":true}`, func(a string) bool {
		mu.Lock()
		defer mu.Unlock()
		return !refuseAll && ts.Valid(a)
	})
	defer up.Close()
	gen := New(fastOptions())
	sec := secret("client", map[string][]byte{"clientID": []byte(testClientID), "clientSecret": []byte(testClientSecret)})
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(sec).Build()
	obj := source(up.URL, withOAuth2(ts.URL, "client"))
	fetch := func() error {
		res, err := gen.Generate(context.Background(), &generator.Request{Source: obj, Reader: c, Secrets: &redact.Set{}})
		if err == nil {
			_ = res.Body.Close()
		}
		return err
	}
	g.Expect(fetch()).To(Succeed())
	g.Expect(fetch()).To(Succeed())
	g.Expect(ts.Requests.Load()).To(Equal(int64(1)), "the token is reused")

	ts.RevokeAll()
	g.Expect(fetch()).To(Succeed())
	g.Expect(ts.Requests.Load()).To(Equal(int64(2)), "one new token after the 401")
	g.Expect(up.Refused.Load()).To(Equal(int64(1)))

	// Rotation: the provider and the Secret change; the cached token (still
	// valid upstream) is not used with the new Secret.
	ts.SetClientSecret("rotated-client-secret-777")
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(sec), sec)).To(Succeed())
	sec.Data["clientSecret"] = []byte("rotated-client-secret-777")
	g.Expect(c.Update(context.Background(), sec)).To(Succeed())
	g.Expect(fetch()).To(Succeed())
	g.Expect(ts.Requests.Load()).To(Equal(int64(3)), "a new token with the rotated secret")
	g.Expect(ts.Issued.Load()).To(Equal(int64(3)))

	// A 401 to a fresh token is not retried again: AuthError naming the
	// upstream, never the token.
	mu.Lock()
	refuseAll = true
	mu.Unlock()
	refusedBefore := up.Refused.Load()
	err := fetch()
	g.Expect(err).To(MatchError(ContainSubstring("authentication failed: GET " + up.URL)))
	g.Expect(generator.IsAuthError(err)).To(BeTrue())
	g.Expect(err.Error()).ToNot(ContainSubstring("at-"))
	g.Expect(ts.Requests.Load()).To(Equal(int64(4)), "exactly one new token for the 401")
	g.Expect(up.Refused.Load() - refusedBefore).To(Equal(int64(2)))
}

// TestPreRequestHookSeesAuthorization: the hooks get the request with its
// final Authorization header, so that they can sign over it.
func TestPreRequestHookSeesAuthorization(t *testing.T) {
	g := NewWithT(t)
	up := tu.NewAuthUpstream(`{"ok":true}`, func(a string) bool { return a == "Bearer "+testBearer })
	defer up.Close()
	var seenAuth string
	res, err := New(fastOptions()).Generate(context.Background(), &generator.Request{
		Source: source(up.URL, withBearer("bearer")),
		Reader: reader(secret("bearer", map[string][]byte{"token": []byte(testBearer)})),
		PreRequest: func(_ context.Context, hr *generator.HookRequest) error {
			seenAuth = hr.Headers["Authorization"]
			return nil
		},
	})
	g.Expect(err).ToNot(HaveOccurred())
	_ = res.Body.Close()
	g.Expect(seenAuth).To(Equal("Bearer " + testBearer))
}

// TestTokenCacheBounded: the cache holds at most MaxTokens entries,
// dropping expired ones first, then the least recently used.
func TestTokenCacheBounded(t *testing.T) {
	g := NewWithT(t)
	clock := &fakeClock{now: time.Unix(0, 0)}
	c := newTokenCache(2, clock.Now)
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }
	c.put(key("a"), "fa", "ta", clock.Now().Add(time.Hour))
	clock.Add(time.Second)
	c.put(key("b"), "fb", "tb", clock.Now().Add(time.Hour))
	clock.Add(time.Second)
	_, ok := c.get(key("a"), "fa") // a is now the most recently used
	g.Expect(ok).To(BeTrue())
	c.put(key("c"), "fc", "tc", clock.Now().Add(time.Hour))
	g.Expect(c.len()).To(Equal(2))
	_, ok = c.get(key("b"), "fb")
	g.Expect(ok).To(BeFalse(), "b was the least recently used")
	_, ok = c.get(key("a"), "other fingerprint")
	g.Expect(ok).To(BeFalse(), "a token is not used with another spec or Secret version")
	clock.Add(2 * time.Hour)
	_, ok = c.get(key("a"), "fa")
	g.Expect(ok).To(BeFalse(), "expired")
}

// TestTokenURLDeniedBeforeAnyConnection: a token endpoint whose address
// the policy denies (loopback, by default) is refused in the dialer, before
// a connection is opened, and the refusal is a fetch failure that wraps
// ErrDenied, not an authentication failure.
func TestTokenURLDeniedBeforeAnyConnection(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	defer ln.Close()

	rd := reader(secret("client", map[string][]byte{"clientID": []byte(testClientID), "clientSecret": []byte(testClientSecret)}))
	// The default policy: loopback denied.
	gen := New(Options{RetryMax: -1, Resolver: fakeResolver{}})
	_, err = gen.Generate(context.Background(), &generator.Request{
		Source: source("http://127.0.0.1:1/", withOAuth2("http://"+ln.Addr().String()+"/token", "client")), Reader: rd, Secrets: &redact.Set{}})
	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.Is(err, ErrDenied)).To(BeTrue(), "%v", err)
	g.Expect(generator.IsAuthError(err)).To(BeFalse(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("token request to http://" + ln.Addr().String()))
	g.Expect(accepted.Load()).To(BeZero(), "no connection to the denied address")
}
