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
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

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
