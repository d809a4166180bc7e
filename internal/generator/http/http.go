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

// Package http is the generator that fetches data with one HTTP request:
// GET, POST, PUT or PATCH, with headers from a Secret, a custom CA bundle or
// client certificate, an optional proxy, retries within a fetch, and cheap
// change detection (HEAD with the recorded ETag, then conditional GET).
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// errorBodyPrefix is how much of a non-2xx body is quoted in the error: enough
// to read an API's error message, never a whole page.
const errorBodyPrefix = 256

// errorBodyWindow is how much of a non-2xx body is read and redacted before
// it is cut to errorBodyPrefix: a Secret value the upstream echoes across
// the cut is still replaced whole, not left half visible.
const errorBodyWindow = 16 << 10

// maxStatusText bounds the status line quoted in errors (the reason phrase
// is the upstream's to choose, at any length).
const maxStatusText = 128

// MaxValidatorLength is the longest ETag or Last-Modified recorded: longer
// ones (no real server sends them) are treated as absent, so that the
// upstream cannot grow the object's status, and change detection falls
// back to a plain GET.
const MaxValidatorLength = 256

// maxResponseHeaderBytes bounds the response headers the transport reads
// (net/http's default is 10 MiB per response).
const maxResponseHeaderBytes = 1 << 20

// Defaults of Options.
const (
	DefaultRetryMax      = 1
	DefaultRetryWaitMin  = 250 * time.Millisecond
	DefaultRetryWaitMax  = time.Second
	DefaultMaxRetryAfter = 5 * time.Second
	DefaultClientIdleTTL = time.Hour
	DefaultMaxClients    = 1000
)

// InsecureWarning is the warning returned with every result of a source
// with insecureSkipVerify; the reconciler puts it in Ready's message.
const InsecureWarning = "TLS certificate verification is disabled (spec.generator.http.insecureSkipVerify)"

// Options configure the HTTP generator.
type Options struct {
	// UserAgent is sent with every request.
	UserAgent string

	// Proxy chooses the proxy of a request for sources without a
	// proxySecretRef. Nil is http.ProxyFromEnvironment (HTTPS_PROXY,
	// HTTP_PROXY, NO_PROXY, which Go reads once per process); tests inject
	// an equivalent function built from explicit values.
	Proxy func(*http.Request) (*url.URL, error)

	// RetryMax is how often one request is retried within a fetch, and
	// only after a connection reset before any response or a 503/429
	// whose Retry-After is at most MaxRetryAfter (checkRetry). Zero is
	// DefaultRetryMax; negative disables retries.
	RetryMax int

	// RetryWaitMin and RetryWaitMax bound the exponential wait before a
	// retry after a connection reset; a Retry-After header of the server
	// is honoured instead.
	RetryWaitMin, RetryWaitMax time.Duration

	// MaxRetryAfter is the longest Retry-After waited for within a fetch;
	// a longer one ends the fetch and is handed to the reconciler, which
	// requeues after it. Zero is DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration

	// MaxConcurrentPerHost bounds the requests in flight to one upstream
	// host (scheme, host and port) across all sources and reconciles
	// (--max-concurrent-per-host); zero or less is no limit. A request
	// over the limit waits for a slot within its fetch's deadline.
	MaxConcurrentPerHost int

	// ClientIdleTTL is how long a client of a TLS/proxy configuration that
	// no source uses any more is kept before its connections are closed.
	ClientIdleTTL time.Duration

	// MaxClients bounds the number of cached clients (one per distinct
	// TLS/proxy configuration); the least recently used goes first.
	MaxClients int

	// URLPolicy restricts the URLs and addresses fetched, on every
	// redirect too; nil still denies the default addresses (loopback,
	// unspecified, link-local and cloud platform addresses).
	URLPolicy *URLPolicy

	// Resolver resolves host names; nil is net.DefaultResolver.
	Resolver Resolver

	// MaxTokens bounds the number of cached OAuth2 tokens (one per object
	// with spec.generator.http.auth.oauth2). Zero is DefaultMaxTokens.
	MaxTokens int

	// Now is the clock of the token cache; nil is time.Now. Tests move it
	// to play hours of token lifetimes in seconds.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.UserAgent == "" {
		o.UserAgent = "externalsource-controller"
	}
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
	switch {
	case o.RetryMax == 0:
		o.RetryMax = DefaultRetryMax
	case o.RetryMax < 0:
		o.RetryMax = 0
	}
	if o.RetryWaitMin <= 0 {
		o.RetryWaitMin = DefaultRetryWaitMin
	}
	if o.RetryWaitMax < o.RetryWaitMin {
		o.RetryWaitMax = max(DefaultRetryWaitMax, o.RetryWaitMin)
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.ClientIdleTTL <= 0 {
		o.ClientIdleTTL = DefaultClientIdleTTL
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Generator fetches data over HTTP. One instance serves every object. It
// keeps one retrying client, with its own transport and connection pool,
// per distinct TLS/proxy configuration and reuses it across reconciles, so
// no transport (and no idle connection or goroutine) is created per request.
type Generator struct {
	opts    Options
	clients *clientCache
	// tokens are the OAuth2 tokens of spec.generator.http.auth.oauth2,
	// one per object, reused across reconciles until shortly before
	// they expire.
	tokens *tokenCache
	// dial, when set, replaces the network dial behind the policy check:
	// tests count the connections attempted with it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// hosts bounds the requests in flight per upstream host, shared by
	// every client; nil is no limit.
	hosts *hostLimiter
}

var (
	_ generator.Generator = (*Generator)(nil)
	_ generator.Forgetter = (*Generator)(nil)
)

// New returns the HTTP generator.
func New(opts Options) *Generator {
	opts = opts.withDefaults()
	return &Generator{opts: opts, clients: newClientCache(opts.ClientIdleTTL, opts.MaxClients),
		tokens: newTokenCache(opts.MaxTokens, opts.Now), hosts: newHostLimiter(opts.MaxConcurrentPerHost)}
}

// Clients returns the number of cached clients (one per TLS/proxy
// configuration in use).
func (g *Generator) Clients() int { return g.clients.len() }

// Generate implements generator.Generator. The context bounds the whole
// fetch (the reconciler sets spec.timeout); the body it returns must be
// read before the context ends. Every error it returns is redacted: URLs
// lose their userinfo and query values, and every value read from a Secret
// (req.Secrets) is replaced, wherever the message came from.
func (g *Generator) Generate(ctx context.Context, req *generator.Request) (_ *generator.Result, err error) {
	defer func() { err = req.Secrets.Error(err) }()
	ctx = withFetchState(ctx, req.Retry)
	spec := req.Source.Spec.Generator.HTTP
	if spec == nil {
		return nil, generator.InvalidSpec("spec.generator.http", "must be set when type is http")
	}
	method := spec.Method
	if method == "" {
		method = http.MethodGet
	}
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil, generator.InvalidSpec("spec.generator.http.method", "%q is not one of GET, POST, PUT, PATCH", method)
	}
	if spec.Body != "" && method == http.MethodGet {
		return nil, generator.InvalidSpec("spec.generator.http.body", "is not allowed with method GET")
	}
	u, err := url.Parse(spec.URL)
	if err != nil {
		// Not the URL itself: one that does not parse cannot be redacted
		// reliably (its userinfo may be anywhere).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, generator.InvalidSpec("spec.generator.http.url", "is not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, generator.InvalidSpec("spec.generator.http.url", "scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, generator.InvalidSpec("spec.generator.http.url", "must have a host")
	}
	// A query value or userinfo may be a credential (?api_key=...).
	req.Secrets.AddURL(u)
	header, err := g.headers(ctx, req, spec)
	if err != nil {
		return nil, err
	}
	tc, err := g.transportConfig(ctx, req, spec)
	if err != nil {
		return nil, err
	}
	client, err := g.clients.get(tc.key(), func() (*retryablehttp.Client, *http.Transport, error) { return g.newClient(tc) })
	if err != nil {
		return nil, err
	}
	// The Authorization header is set before the pre-request hooks run, so
	// that a hook sees (and may sign over) the request as it is sent. An
	// OAuth2 token is requested through the request's own client: same
	// TLS, proxy and address checks.
	authz, cachedToken, err := g.authorization(ctx, req, spec, client.HTTPClient, tc.key())
	if err != nil {
		return nil, err
	}
	if authz != "" {
		header.Set("Authorization", authz)
	}
	bodyText := spec.Body
	if req.PreRequest != nil {
		if u, method, header, bodyText, err = preRequest(ctx, req, u, method, header, bodyText); err != nil {
			return nil, err
		}
	}
	req.Secrets.AddURL(u)
	if err := g.opts.URLPolicy.CheckURL(u.String()); err != nil {
		return nil, generator.InvalidSpec("spec.generator.http.url", "%v", err)
	}
	var warnings []string
	if spec.InsecureSkipVerify {
		warnings = append(warnings, InsecureWarning)
	}

	prev := req.Previous
	// A HEAD costs the upstream no body: when it returns the ETag the
	// published artifact was built from, there is nothing to fetch. Only
	// for GET: HEAD says nothing about what a POST would return.
	// headRefused says a HEAD was sent and did not work as change
	// detection (405, 501, no ETag, an error).
	var headRefused bool
	if method == http.MethodGet && prev.ETag != "" {
		confirmed, answered := g.headConfirms(ctx, req.Secrets, client, u, header, prev.ETag)
		if confirmed {
			return &generator.Result{
				NotModified:     true,
				Validators:      prev,
				ChangeDetection: generator.ChangeDetectionHEAD,
				Warnings:        warnings,
			}, nil
		}
		headRefused = !answered
	}

	var body any
	if bodyText != "" {
		body = []byte(bodyText)
	}
	detection := method
	if method == http.MethodGet {
		detection = generator.ChangeDetectionGET
		// Conditional GET: the server answers 304 when the data is unchanged.
		if prev.ETag != "" {
			header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			header.Set("If-Modified-Since", prev.LastModified)
		}
		if !prev.IsZero() {
			detection = generator.ChangeDetectionConditionalGET
		}
	}
	send := func(header http.Header) (*http.Response, error) {
		rreq, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), body)
		if err != nil {
			return nil, generator.InvalidSpec("spec.generator.http.url", "%s", redact.URLsIn(err.Error()))
		}
		rreq.Header = header
		resp, err := client.Do(rreq)
		if err != nil {
			return nil, transportError(ctx, method, u, err)
		}
		return resp, nil
	}

	resp, err := send(header)
	if err != nil {
		return nil, err
	}
	if spec.Auth != nil && resp.StatusCode == http.StatusUnauthorized && cachedToken {
		// The cached token was revoked or expired early: drop it and try
		// once more with a new one.
		drain(resp.Body)
		g.Forget(req.Source.Namespace, req.Source.Name)
		if authz, _, err = g.authorization(ctx, req, spec, client.HTTPClient, tc.key()); err != nil {
			return nil, err
		}
		header = header.Clone()
		header.Set("Authorization", authz)
		if resp, err = send(header); err != nil {
			return nil, err
		}
	}
	if spec.Auth != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		defer drain(resp.Body)
		return nil, &generator.AuthError{Err: fmt.Errorf("authentication failed: %s %s: %s: %q", method, redact.URL(u.String()),
			upstreamText(req.Secrets, resp.Status, maxStatusText), errorBody(req.Secrets, resp.Body))}
	}
	validators := generator.Validators{
		ETag:         validator(resp.Header.Get("ETag")),
		LastModified: validator(resp.Header.Get("Last-Modified")),
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && detection == generator.ChangeDetectionConditionalGET:
		drain(resp.Body)
		if validators.ETag == "" {
			validators.ETag = prev.ETag
		}
		if validators.LastModified == "" {
			validators.LastModified = prev.LastModified
		}
		return &generator.Result{NotModified: true, Validators: validators, ChangeDetection: detection, Warnings: warnings}, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		defer drain(resp.Body)
		err := fmt.Errorf("%s %s: %s: %q", method, redact.URL(u.String()),
			upstreamText(req.Secrets, resp.Status, maxStatusText), errorBody(req.Secrets, resp.Body))
		// The upstream's last word on when to come back is the
		// reconciler's to honour (the retries within the fetch are spent,
		// or the wait did not fit in the deadline).
		if wait, ok := retryAfter(resp); ok && wait > 0 {
			return nil, &generator.RetryAfterError{After: wait, Err: err}
		}
		return nil, err
	}
	if method == http.MethodGet {
		detection = nextDetection(validators, headRefused)
	}
	return &generator.Result{
		Body:            resp.Body,
		ContentLength:   resp.ContentLength,
		Validators:      validators,
		ChangeDetection: detection,
		Warnings:        warnings,
	}, nil
}

// preRequest hands the request to the pre-request hooks and takes back
// what they return, checked as the spec would be: an http(s) URL with a
// host and one of the supported methods.
func preRequest(ctx context.Context, req *generator.Request, u *url.URL, method string, header http.Header, body string) (
	*url.URL, string, http.Header, string, error) {
	hr := &generator.HookRequest{URL: u.String(), Method: method, Headers: map[string]string{}, Body: body}
	for k := range header {
		hr.Headers[k] = header.Get(k)
	}
	if err := req.PreRequest(ctx, hr); err != nil {
		return nil, "", nil, "", err
	}
	nu, err := url.Parse(hr.URL)
	if err != nil || (nu.Scheme != "http" && nu.Scheme != "https") || nu.Host == "" {
		return nil, "", nil, "", fmt.Errorf("pre-request hooks returned an invalid url %q: it must be http or https with a host", hr.URL)
	}
	m := strings.ToUpper(hr.Method)
	if m == "" {
		m = http.MethodGet
	}
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return nil, "", nil, "", fmt.Errorf("pre-request hooks returned method %q: it must be GET, POST, PUT or PATCH", hr.Method)
	}
	nh := http.Header{}
	for k, v := range hr.Headers {
		if !validHeaderName(k) || strings.ContainsAny(v, "\r\n") {
			return nil, "", nil, "", fmt.Errorf("pre-request hooks returned an invalid header %q", k)
		}
		nh.Set(k, v)
	}
	return nu, m, nh, hr.Body, nil
}

// nextDetection is the change detection recorded for data just downloaded
// by a GET: the method the following checks will use, given the validators
// the upstream sent (a HEAD with the ETag, unless this server refused it;
// a conditional GET with Last-Modified alone; a GET without validators).
// It is what detected this change when a HEAD saw another ETag, and what
// an unchanged interval records: the interval after a new revision, or
// after a source's first fetch, then writes nothing to the API server.
func nextDetection(v generator.Validators, headRefused bool) string {
	switch {
	case v.ETag != "" && !headRefused:
		return generator.ChangeDetectionHEAD
	case v.ETag != "" || v.LastModified != "":
		return generator.ChangeDetectionConditionalGET
	}
	return generator.ChangeDetectionGET
}

// headConfirms sends one HEAD (no retries: it is an optimisation) and
// reports whether the upstream confirms etag, by returning it or by
// answering 304 to If-None-Match. Anything else (405 or 501 for servers
// without HEAD, no ETag, an error) is not a confirmation and the caller
// falls back to a conditional GET, which is retried and reports errors
// properly. answered says the HEAD worked as change detection: a 2xx with
// an ETag (another one, or it would have confirmed).
func (g *Generator) headConfirms(ctx context.Context, secrets *redact.Set, client *retryablehttp.Client, u *url.URL,
	header http.Header, etag string) (confirmed, answered bool) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return false, false
	}
	hreq.Header = header.Clone()
	hreq.Header.Set("If-None-Match", etag)
	resp, err := client.HTTPClient.Do(hreq)
	if err != nil {
		log.FromContext(ctx).V(1).Info("HEAD failed, falling back to a conditional GET",
			"error", secrets.String(transportError(ctx, http.MethodHead, u, err).Error()))
		return false, false
	}
	drain(resp.Body)
	ok := resp.StatusCode >= 200 && resp.StatusCode <= 299
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return true, true
	case ok && resp.Header.Get("ETag") == etag:
		return true, true
	}
	log.FromContext(ctx).V(1).Info("HEAD did not confirm the ETag, falling back to a conditional GET",
		"status", resp.StatusCode, "etag", upstreamText(secrets, resp.Header.Get("ETag"), MaxValidatorLength))
	return false, ok && resp.Header.Get("ETag") != ""
}

// drain reads what is left of a small body (so that the connection can be
// reused) and closes it.
func drain(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	_ = b.Close()
}

// validator returns an ETag or Last-Modified value, or "" when it is longer
// than MaxValidatorLength.
func validator(v string) string {
	if len(v) > MaxValidatorLength {
		return ""
	}
	return v
}

// upstreamText makes text the upstream chose fit for a message: redacted
// first (so that a Secret value cut in two is still found whole), then cut
// to at most n bytes of valid UTF-8.
func upstreamText(secrets *redact.Set, s string, n int) string {
	return truncate(secrets.String(strings.ToValidUTF8(s, "\ufffd")), n)
}

// errorBody is the start of a non-2xx body for the error message, redacted
// over a window larger than what is kept.
func errorBody(secrets *redact.Set, body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, errorBodyWindow))
	return upstreamText(secrets, strings.TrimSpace(string(b)), errorBodyPrefix)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
