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
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// Key names of the auth Secrets.
const (
	keyUsername     = "username"
	keyPassword     = "password"
	keyToken        = "token"
	keyClientID     = "clientID"
	keyClientSecret = "clientSecret"
)

const authField = "spec.generator.http.auth"

// DefaultMaxTokens is the default bound of the token cache (one entry per
// object with oauth2).
const DefaultMaxTokens = 10000

// maxTokenReuse bounds the reuse of a token, for endpoints that send no
// expires_in (a 401 still replaces it earlier).
const maxTokenReuse = time.Hour

// maxEarlyRefresh is the most a token is renewed before its expiry; short
// lifetimes are renewed a tenth of their lifetime early instead, so that a
// token never expires while a fetch uses it.
const maxEarlyRefresh = 30 * time.Second

// authorization returns the Authorization header value of spec.auth ("" when
// there is none) and whether it is an OAuth2 token from the cache, which a
// 401 may have invalidated. Every credential read or obtained is added to
// req.Secrets before anything can fail on it.
func (g *Generator) authorization(ctx context.Context, req *generator.Request, spec *exsv1beta1.HTTPGeneratorSpec,
	hc *http.Client, tcKey string) (string, bool, error) {
	a := spec.Auth
	switch {
	case a == nil:
		return "", false, nil
	case a.Basic != nil && a.Bearer == nil && a.OAuth2 == nil:
		field := authField + ".basic.secretRef"
		if a.Basic.SecretRef == nil {
			return "", false, generator.InvalidSpec(field, "must be set")
		}
		s, err := getSecret(ctx, req, field, a.Basic.SecretRef.Name, []string{keyUsername, keyPassword})
		if err != nil {
			return "", false, err
		}
		v, err := secretValues(s, field, keyUsername, keyPassword)
		if err != nil {
			return "", false, err
		}
		h := "Basic " + base64.StdEncoding.EncodeToString([]byte(v[0]+":"+v[1]))
		// The pair, and its base64 form (forms), is as much a credential
		// as its parts.
		req.Secrets.Add(v[0]+":"+v[1], h[len("Basic "):])
		return h, false, nil
	case a.Bearer != nil && a.Basic == nil && a.OAuth2 == nil:
		field := authField + ".bearer.secretRef"
		if a.Bearer.SecretRef == nil {
			return "", false, generator.InvalidSpec(field, "must be set")
		}
		s, err := getSecret(ctx, req, field, a.Bearer.SecretRef.Name, []string{keyToken})
		if err != nil {
			return "", false, err
		}
		v, err := secretValues(s, field, keyToken)
		if err != nil {
			return "", false, err
		}
		return "Bearer " + v[0], false, nil
	case a.OAuth2 != nil && a.Basic == nil && a.Bearer == nil:
		return g.oauth2Token(ctx, req, a.OAuth2, hc, tcKey)
	}
	return "", false, generator.InvalidSpec(authField, "exactly one of basic, bearer or oauth2 must be set")
}

// secretValues returns the values of keys in s (trimmed of surrounding
// space), each required and fit for a header. Errors name the key, never
// the value; they are not spec errors (fixing the Secret fixes them).
func secretValues(s *corev1.Secret, field string, keys ...string) ([]string, error) {
	out := make([]string, len(keys))
	for i, k := range keys {
		v := strings.TrimSpace(string(s.Data[k]))
		switch {
		case v == "":
			return nil, fmt.Errorf("%s: Secret \"%s/%s\" has no key %q", field, s.Namespace, s.Name, k)
		case !httpguts.ValidHeaderFieldValue(v):
			return nil, fmt.Errorf("%s: the value of key %q of Secret \"%s/%s\" has control characters", field, k, s.Namespace, s.Name)
		}
		out[i] = v
	}
	return out, nil
}

// oauth2Token returns "Bearer <token>" for the client credentials grant: the
// cached token of the object while it is valid for this spec, Secret
// version and transport, else a new one requested through hc (the
// client of the request's own TLS and proxy configuration, whose dialer
// applies the URL policy's address checks).
func (g *Generator) oauth2Token(ctx context.Context, req *generator.Request, a *exsv1beta1.OAuth2Auth,
	hc *http.Client, tcKey string) (string, bool, error) {
	const field = authField + ".oauth2"
	tu, err := url.Parse(a.TokenURL)
	if err != nil || (tu.Scheme != "http" && tu.Scheme != "https") || tu.Host == "" {
		return "", false, generator.InvalidSpec(field+".tokenURL", "must be an http or https URL with a host")
	}
	req.Secrets.AddURL(tu)
	if err := g.opts.URLPolicy.CheckURL(tu.String()); err != nil {
		return "", false, generator.InvalidSpec(field+".tokenURL", "%v", err)
	}
	if a.SecretRef == nil {
		return "", false, generator.InvalidSpec(field+".secretRef", "must be set")
	}
	s, err := getSecret(ctx, req, field+".secretRef", a.SecretRef.Name, []string{keyClientID, keyClientSecret})
	if err != nil {
		return "", false, err
	}
	v, err := secretValues(s, field+".secretRef", keyClientID, keyClientSecret)
	if err != nil {
		return "", false, err
	}
	// The pair x/oauth2 sends in its first attempt (header style) is
	// base64(urlencode(id):urlencode(secret)); forms adds the base64 of
	// each pair, so an identity provider echoing the header, the pair as
	// written or the form body (params style) meets a redacted value.
	req.Secrets.Add(v[0]+":"+v[1], url.QueryEscape(v[0])+":"+url.QueryEscape(v[1]))
	key := types.NamespacedName{Namespace: req.Source.Namespace, Name: req.Source.Name}
	fp := tokenFingerprint(a, s.ResourceVersion, tcKey)
	if tok, ok := g.tokens.get(key, fp); ok {
		req.Secrets.Add(tok)
		return "Bearer " + tok, true, nil
	}

	params := url.Values{}
	for k, vs := range a.EndpointParams {
		params[k] = append([]string(nil), vs...)
	}
	cfg := clientcredentials.Config{ClientID: v[0], ClientSecret: v[1], TokenURL: tu.String(),
		Scopes: a.Scopes, EndpointParams: params}
	obtained := g.tokens.now()
	t, err := cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		tokenRequests.WithLabelValues(tokenResultError).Inc()
		return "", false, tokenError(req.Secrets, tu, err)
	}
	tokenRequests.WithLabelValues(tokenResultSuccess).Inc()
	req.Secrets.Add(t.AccessToken)
	if !httpguts.ValidHeaderFieldValue(t.AccessToken) {
		return "", false, &generator.AuthError{Err: fmt.Errorf("token endpoint %s returned an access token with control characters",
			redact.URL(tu.String()))}
	}
	lifetime := maxTokenReuse
	if !t.Expiry.IsZero() {
		// oauth2 computed Expiry on the real clock; the cache counts the
		// same lifetime on its own (tests move it).
		lifetime = min(time.Until(t.Expiry), maxTokenReuse)
	}
	if reuse := lifetime - min(lifetime/10, maxEarlyRefresh); reuse > 0 {
		g.tokens.put(key, fp, t.AccessToken, obtained.Add(reuse))
	}
	return "Bearer " + t.AccessToken, false, nil
}

// tokenError describes a failed token request. Only the identity
// provider's refusal, a 4xx answer or an OAuth2 error code, is an
// authentication failure (generator.AuthError, reason AuthenticationFailed):
// an endpoint that is down, a DNS failure, a 5xx, an answer that is no
// token, or a denial by the URL policy is a fetch failure with its real
// cause, wrapped (errors.Is finds ErrDenied), so that an identity-provider
// outage never reads as bad credentials.
func tokenError(secrets *redact.Set, tu *url.URL, err error) error {
	where := redact.URL(tu.String())
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status, code := "an error", 0
		if re.Response != nil {
			status, code = upstreamText(secrets, re.Response.Status, maxStatusText), re.Response.StatusCode
		}
		switch {
		case re.ErrorCode != "":
			return &generator.AuthError{Err: fmt.Errorf("authentication failed: token endpoint %s answered %s (error %q)", where, status,
				upstreamText(secrets, re.ErrorCode, 64))}
		case code >= 400 && code < 500:
			return &generator.AuthError{Err: fmt.Errorf("authentication failed: token endpoint %s answered %s", where, status)}
		}
		return fmt.Errorf("token endpoint %s answered %s", where, status)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("token request to %s: %w", where, &causeError{msg: redact.URLsIn(secrets.String(err.Error())), err: err})
}

// causeError is a cause as it may be shown (redacted) that still unwraps
// to itself, so that callers can tell its kind (ErrDenied, a timeout).
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

// tokenFingerprint identifies what a cached token was obtained with: the
// auth spec, the Secret's version (a rotated client secret gets a new
// token) and the transport configuration. Hashed: no credential is kept
// in clear outside the token itself.
func tokenFingerprint(a *exsv1beta1.OAuth2Auth, resourceVersion, tcKey string) string {
	spec, _ := json.Marshal(a)
	h := sha256.New()
	for _, b := range [][]byte{spec, []byte(resourceVersion), []byte(tcKey)} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Forget implements generator.Forgetter: the token of a deleted object
// goes with it.
func (g *Generator) Forget(namespace, name string) {
	g.tokens.drop(types.NamespacedName{Namespace: namespace, Name: name})
}

// Tokens returns the number of cached OAuth2 tokens.
func (g *Generator) Tokens() int { return g.tokens.len() }

// tokenCache holds one OAuth2 token per object, shared across reconciles,
// with what it was obtained with (fingerprint) and until when it is
// reused. A changed spec, Secret or transport replaces the entry instead
// of adding one; max bounds the entries, expired ones going first, then
// the least recently used.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	now     func() time.Time
	entries map[types.NamespacedName]*tokenEntry
}

type tokenEntry struct {
	fingerprint string
	token       string
	until       time.Time
	lastUsed    time.Time
}

func newTokenCache(maxEntries int, now func() time.Time) *tokenCache {
	return &tokenCache{max: maxEntries, now: now, entries: map[types.NamespacedName]*tokenEntry{}}
}

// get returns the object's token if it was obtained with fingerprint and is
// still to be reused.
func (c *tokenCache) get(key types.NamespacedName, fingerprint string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e, ok := c.entries[key]
	if !ok || e.fingerprint != fingerprint || !now.Before(e.until) {
		return "", false
	}
	e.lastUsed = now
	return e.token, true
}

func (c *tokenCache) put(key types.NamespacedName, fingerprint, token string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		for len(c.entries) >= c.max {
			var oldest types.NamespacedName
			var at time.Time
			first := true
			for k, e := range c.entries {
				if first || e.lastUsed.Before(at) {
					oldest, at, first = k, e.lastUsed, false
				}
			}
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = &tokenEntry{fingerprint: fingerprint, token: token, until: until, lastUsed: now}
}

func (c *tokenCache) drop(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
