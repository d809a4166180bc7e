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
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/externalsource/externalsource-controller/internal/redact"
)

// MaxRedirects is the most redirects one request follows.
const MaxRedirects = 10

// errTooManyRedirects ends a redirect chain longer than MaxRedirects.
var errTooManyRedirects = fmt.Errorf("more than %d redirects, the most the controller follows", MaxRedirects)

// fetchState is what the client's hooks (CheckRedirect, CheckRetry) need
// to know of the fetch they serve; it travels in the request's context,
// which net/http hands on to every redirect.
type fetchState struct {
	mu sync.Mutex
	// attempts counts the attempts of the retried request, so that
	// CheckRetry knows the wait go-retryablehttp's backoff will ask for.
	attempts int
	// lastHop is the absolute URL of the last redirect checked: net/http
	// reports a refused redirect with the Location as the server wrote
	// it, possibly relative.
	lastHop string
	// proxy is the host:port of the admin's proxy the current request
	// goes through, "" when it goes direct or through a tenant's proxy:
	// only a connection to it, for it, is dialled without a check.
	proxy string
	// retry is the reconciler's retry budget (generator.Request.Retry);
	// nil allows every retry checkRetry would make.
	retry func(wait time.Duration) bool
}

// set changes the state under its lock.
func (s *fetchState) set(f func(*fetchState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// get reads the state under its lock.
func (s *fetchState) get() (attempts int, lastHop, proxy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, s.lastHop, s.proxy
}

type fetchStateKey struct{}

func withFetchState(ctx context.Context, retry func(time.Duration) bool) context.Context {
	return context.WithValue(ctx, fetchStateKey{}, &fetchState{retry: retry})
}

func fetchStateFrom(ctx context.Context) *fetchState {
	if s, ok := ctx.Value(fetchStateKey{}).(*fetchState); ok {
		return s
	}
	return &fetchState{}
}

// checkRedirect applies to every hop what the first request passed: the
// URL patterns here, the address check in the dialer (or, through a
// proxy, in proxyFunc). A hop that leaves the origin of the first request
// (scheme, host and port) carries no credential: net/http itself drops
// Authorization and Cookie across domains, but not headers such as
// X-Api-Key from headersSecretRef, nor what a pre-request hook derived
// from them, so such a hop keeps only the User-Agent. Once the chain has
// left the origin, later hops stay stripped even when they come back (the
// foreign server chose where they go). A body is never re-sent to another
// origin (307/308).
func (g *Generator) checkRedirect(req *http.Request, via []*http.Request) error {
	fetchStateFrom(req.Context()).set(func(s *fetchState) { s.lastHop = req.URL.String() })
	if len(via) > MaxRedirects {
		return errTooManyRedirects
	}
	if err := g.opts.URLPolicy.CheckURL(req.URL.String()); err != nil {
		return fmt.Errorf("refusing the redirect: %w", err)
	}
	origin := originOf(via[0].URL)
	left := originOf(req.URL) != origin
	for _, v := range via[1:] {
		left = left || originOf(v.URL) != origin
	}
	if !left {
		return nil
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return fmt.Errorf("refusing the redirect: it would send the %s body to %s, another origin than %s: %w",
			req.Method, redact.URL(req.URL.String()), origin, ErrDenied)
	}
	req.Header = http.Header{"User-Agent": {g.opts.UserAgent}}
	return nil
}

// originOf is scheme://host:port, the port explicit.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// transportError describes a failed request: Go's url.Error quotes the
// whole URL, query and userinfo included, so it is replaced by the
// request's redacted URL and, when the failure happened at a redirect
// target, that target, redacted too (quoted: redact.URLsIn, which every
// message passes through again, takes what follows a URL up to a space or
// a quote as part of it).
func transportError(ctx context.Context, method string, u *url.URL, err error) error {
	where := method + " " + redact.URL(u.String())
	var ue *url.Error
	if errors.As(err, &ue) {
		// net/http writes the URL with its password as "***".
		if redact.URL(ue.URL) != redact.URL(u.String()) {
			hop := ue.URL
			if p, perr := url.Parse(hop); perr != nil || !p.IsAbs() {
				_, hop, _ = fetchStateFrom(ctx).get()
			}
			where += ` (redirected to "` + redact.URL(hop) + `")`
		}
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", where, describeTransportError(err))
}
