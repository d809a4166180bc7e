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
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
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
