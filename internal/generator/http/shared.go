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

	"github.com/hashicorp/go-retryablehttp"

	"github.com/externalsource/externalsource-controller/internal/generator"
)

// Sender sends the requests of another generator type (e.g. release)
// through this generator's machinery, so that every type gets the same
// protections without its own copy: the controller's URL policy on the
// first URL and on every redirect hop, the address check at dial time, the
// per-host limit, credentials dropped when a hop leaves the origin, and
// errors that quote URLs redacted. It uses the default transport
// configuration (system roots, the controller's proxy settings).
type Sender struct {
	g *Generator
}

// Sender returns the Sender of g.
func (g *Generator) Sender() *Sender { return &Sender{g: g} }

// Do sends r within the fetch of req (whose namespace is the tenant of the
// per-host limit and whose Retry budget applies). A transport failure is
// returned as an error naming the redacted URL (and the redirect target);
// any HTTP status is returned as a response.
func (s *Sender) Do(ctx context.Context, req *generator.Request, r *http.Request) (*http.Response, error) {
	ctx = withFetchState(ctx, req.Retry)
	if req.Source != nil {
		ctx = withTenant(ctx, req.Source.Namespace)
	}
	if err := s.g.opts.URLPolicy.CheckURL(r.URL.String()); err != nil {
		return nil, err
	}
	var tc transportConfig
	client, err := s.g.clients.get(tc.key(), func() (*retryablehttp.Client, *http.Transport, error) { return s.g.newClient(tc) })
	if err != nil {
		return nil, err
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", s.g.opts.UserAgent)
	}
	// The plain client: a release list or asset answering 429/503 is
	// reported to the caller, which turns the rate-limit headers into a
	// requeue instead of waiting within the fetch.
	resp, err := client.HTTPClient.Do(r.WithContext(ctx))
	if err != nil {
		return nil, transportError(ctx, r.Method, r.URL, err)
	}
	return resp, nil
}
