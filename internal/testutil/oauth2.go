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

package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
)

// TokenServer is an OAuth2 token endpoint implementing the client
// credentials grant (RFC 6749, 4.4) the way identity providers do: the
// client authenticates with HTTP basic auth or with client_id and
// client_secret in the form, grant_type must be client_credentials, the
// scope must be the one configured. It issues random tokens valid until
// revoked, and counts its requests.
type TokenServer struct {
	*httptest.Server

	mu           sync.Mutex
	clientID     string
	clientSecret string
	scope        string
	expiresIn    int
	status       int    // != 0: every request answers this status
	rawBody      string // != "": every request answers this body with 200
	valid        map[string]bool

	// Requests counts every request received; Issued the tokens issued.
	Requests, Issued atomic.Int64
}

// NewTokenServer starts a token endpoint for one client; scope "" accepts
// requests without scope. Close it when done.
func NewTokenServer(clientID, clientSecret, scope string, expiresIn int) *TokenServer {
	ts := &TokenServer{clientID: clientID, clientSecret: clientSecret, scope: scope, expiresIn: expiresIn, valid: map[string]bool{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	return ts
}

func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.Requests.Add(1)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.status != 0 {
		w.WriteHeader(ts.status)
		_, _ = fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
		return
	}
	if ts.rawBody != "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprint(w, ts.rawBody)
		return
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		ts.oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != ts.clientID || secret != ts.clientSecret {
		ts.oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("scope") != ts.scope {
		ts.oauthError(w, http.StatusBadRequest, "invalid_scope")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "at-" + hex.EncodeToString(b)
	ts.valid[tok] = true
	ts.Issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": ts.expiresIn})
}

func (ts *TokenServer) oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q}`, code)
}

// SetClientSecret rotates the client secret: tokens already issued stay valid.
func (ts *TokenServer) SetClientSecret(s string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.clientSecret = s
}

// Fail makes every request answer status (0: serve normally).
func (ts *TokenServer) Fail(status int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.status = status
}

// AnswerRaw makes every request answer body with 200 ("" : serve normally).
func (ts *TokenServer) AnswerRaw(body string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.rawBody = body
}

// RevokeAll invalidates every token issued so far, as an identity provider
// does when it rotates its keys.
func (ts *TokenServer) RevokeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.valid = map[string]bool{}
}

// Valid reports whether an Authorization header value carries a token this
// server issued and did not revoke.
func (ts *TokenServer) Valid(authorization string) bool {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ok && ts.valid[tok]
}

// AuthUpstream is an API that answers body to requests whose Authorization
// header check accepts, 401 otherwise, with an ETag so that an unchanged
// interval costs one HEAD. It counts the requests it answered and refused.
type AuthUpstream struct {
	*httptest.Server
	check             func(authorization string) bool
	body, etag        string
	Served, Refused   atomic.Int64
	mu                sync.Mutex
	lastAuthorization string
}

// NewAuthUpstream starts an upstream that accepts the requests check
// accepts. Close it when done.
func NewAuthUpstream(body string, check func(authorization string) bool) *AuthUpstream {
	u := &AuthUpstream{check: check, body: body, etag: `"v1"`}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	return u
}

func (u *AuthUpstream) serve(w http.ResponseWriter, r *http.Request) {
	a := r.Header.Get("Authorization")
	u.mu.Lock()
	u.lastAuthorization = a
	u.mu.Unlock()
	if !u.check(a) {
		u.Refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprint(w, "unauthorized")
		return
	}
	u.Served.Add(1)
	w.Header().Set("ETag", u.etag)
	if r.Header.Get("If-None-Match") == u.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodGet {
		_, _ = fmt.Fprint(w, u.body)
	}
}

// LastAuthorization is the Authorization header of the last request.
func (u *AuthUpstream) LastAuthorization() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastAuthorization
}
