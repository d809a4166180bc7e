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
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/externalsource/externalsource-controller/internal/generator"
)

// FuzzSecretHeaders: a Secret's data becomes headers only when every name
// and value is valid on the wire; otherwise the error names the key and
// never contains the value.
func FuzzSecretHeaders(f *testing.F) {
	f.Add("Authorization", "Bearer t0ken")
	f.Add("X-Api-Key", "secret\r\nX-Evil: 1")
	f.Add("Bad Header", "v")
	f.Add("", "v")
	f.Add("X", "  padded  ")
	f.Fuzz(func(t *testing.T, k, v string) {
		h, err := secretHeaders(map[string][]byte{k: []byte(v)})
		if err != nil {
			// The message names the key (quoted); what is left must not
			// hold the value, unless the fixed text itself does.
			rest := strings.ReplaceAll(err.Error(), strconv.Quote(k), "")
			if len(v) > 3 && strings.Contains(rest, v) &&
				!strings.Contains("key is not a valid header name the value of key is not a valid header value (control characters)", v) {
				t.Fatalf("the error reveals the value: %v", err)
			}
			return
		}
		for name, vals := range h {
			if !httpguts.ValidHeaderFieldName(name) {
				t.Fatalf("invalid header name %q accepted", name)
			}
			for _, val := range vals {
				if !httpguts.ValidHeaderFieldValue(val) {
					t.Fatalf("invalid header value %q accepted", val)
				}
			}
		}
	})
}

// FuzzTransportErrorRedaction: whatever the password and query value of
// the URL (and the path around them), the error of a failed connection
// carries neither, even without a Set of Secret values: URLs are redacted
// in the generator itself.
func FuzzTransportErrorRedaction(f *testing.F) {
	f.Add("pa55word-x", "api-key-value", "data")
	f.Add("p@ss:w/rd?#", "k=v&x=y", "a b/c")
	f.Add("%zz%", "\"quoted\" value", "%2F")
	f.Add("ünïcödé-pw", "…secret…", "ü")
	closed := httptest.NewServer(http.NotFoundHandler())
	host := closed.Listener.Addr().String()
	closed.Close()
	gen := New(Options{RetryMax: -1, URLPolicy: allowLoopback()})
	errorOf := func(pw, q, path string) string {
		u := url.URL{Scheme: "http", User: url.UserPassword("user", pw), Host: host, Path: "/" + path,
			RawQuery: url.Values{"api_key": {q}}.Encode()}
		_, err := gen.Generate(context.Background(), &generator.Request{Source: source(u.String(), nil)})
		if err == nil {
			return ""
		}
		return err.Error()
	}
	f.Fuzz(func(t *testing.T, pw, q, path string) {
		skeleton := errorOf("XXXXXXXX", "YYYYYYYY", path)
		msg := errorOf(pw, q, path)
		if msg == "" {
			t.Fatal("no error from a closed port")
		}
		for _, v := range []string{pw, q} {
			// Too short to tell, or part of the message anyway.
			if len(v) < 6 || strings.Contains(skeleton, v) || strings.Contains(path, v) {
				continue
			}
			for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), strconv.Quote(v)} {
				if strings.Contains(msg, form) {
					t.Fatalf("%q appears in the error: %s", v, msg)
				}
			}
		}
	})
}
