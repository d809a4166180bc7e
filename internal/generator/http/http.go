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

// Package http is the generator that fetches data with one HTTP request.
package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/externalsource/externalsource-controller/internal/generator"
)

// errorBodyPrefix is how much of a non-2xx body is quoted in the error: enough
// to read an API's error message, never a whole page.
const errorBodyPrefix = 256

// Options configure the HTTP generator.
type Options struct {
	// UserAgent is sent with every request.
	UserAgent string
	// Transport overrides the shared transport (tests).
	Transport http.RoundTripper
}

// Generator fetches data over HTTP. One instance serves every object; its
// client and transport are shared, so connections are pooled across
// reconciles instead of being opened and leaked per request.
type Generator struct {
	client    *http.Client
	userAgent string
}

var _ generator.Generator = (*Generator)(nil)

// New returns the HTTP generator.
func New(opts Options) *Generator {
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 4
		t.IdleConnTimeout = 90 * time.Second
		tr = t
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "externalsource-controller"
	}
	return &Generator{
		// No client timeout: the reconciler's context carries spec.timeout.
		client:    &http.Client{Transport: tr},
		userAgent: ua,
	}
}

// Generate implements generator.Generator.
func (g *Generator) Generate(ctx context.Context, req *generator.Request) (*generator.Result, error) {
	spec := req.Source.Spec.Generator.HTTP
	if spec == nil {
		return nil, generator.InvalidSpec("spec.generator.http", "must be set when type is http")
	}
	if spec.CertSecretRef != nil {
		return nil, generator.InvalidSpec("spec.generator.http.certSecretRef", "is not supported by this controller version yet")
	}
	if spec.InsecureSkipVerify {
		return nil, generator.InvalidSpec("spec.generator.http.insecureSkipVerify", "is not supported by this controller version yet")
	}

	method := spec.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if spec.Body != "" {
		if method == http.MethodGet {
			return nil, generator.InvalidSpec("spec.generator.http.body", "is not allowed with method GET")
		}
		body = strings.NewReader(spec.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, spec.URL, body)
	if err != nil {
		return nil, generator.InvalidSpec("spec.generator.http.url", "%v", err)
	}
	if hreq.URL.Scheme != "http" && hreq.URL.Scheme != "https" {
		return nil, generator.InvalidSpec("spec.generator.http.url", "scheme must be http or https, not %q", hreq.URL.Scheme)
	}
	if hreq.URL.Host == "" {
		return nil, generator.InvalidSpec("spec.generator.http.url", "must have a host")
	}
	hreq.Header.Set("User-Agent", g.userAgent)

	if ref := spec.HeadersSecretRef; ref != nil {
		if err := g.addSecretHeaders(ctx, req, ref.Name, hreq.Header); err != nil {
			return nil, err
		}
	}

	// Conditional GET: the server answers 304 when the data is unchanged.
	if method == http.MethodGet {
		if v := req.Previous.ETag; v != "" {
			hreq.Header.Set("If-None-Match", v)
		}
		if v := req.Previous.LastModified; v != "" {
			hreq.Header.Set("If-Modified-Since", v)
		}
	}

	resp, err := g.client.Do(hreq)
	if err != nil {
		return nil, describeTransportError(err)
	}
	validators := generator.Validators{
		ETag:         resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"),
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && method == http.MethodGet:
		resp.Body.Close()
		if validators.ETag == "" {
			validators.ETag = req.Previous.ETag
		}
		if validators.LastModified == "" {
			validators.LastModified = req.Previous.LastModified
		}
		return &generator.Result{NotModified: true, Validators: validators}, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		defer resp.Body.Close()
		prefix, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyPrefix))
		return nil, fmt.Errorf("%s %s: %s: %q", method, redact(hreq), resp.Status, strings.TrimSpace(string(prefix)))
	}
	return &generator.Result{Body: resp.Body, Validators: validators}, nil
}

// addSecretHeaders sets a header for every key of the Secret. Values are
// never logged or reported; errors name the Secret and key only.
func (g *Generator) addSecretHeaders(ctx context.Context, req *generator.Request, name string, h http.Header) error {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: req.Source.Namespace, Name: name}
	if err := req.Reader.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("spec.generator.http.headersSecretRef: Secret %q not found", key.String())
		}
		return fmt.Errorf("spec.generator.http.headersSecretRef: reading Secret %q: %w", key.String(), err)
	}
	for k, v := range s.Data {
		if !validHeaderName(k) {
			return generator.InvalidSpec("spec.generator.http.headersSecretRef",
				"key %q of Secret %q is not a valid header name", k, key.String())
		}
		h.Set(k, strings.TrimSpace(string(v)))
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

// describeTransportError names the kind of failure (DNS, TLS, timeout,
// connection) in front of Go's own message, which stays for the details.
func describeTransportError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timeout: %w", err)
	case strings.Contains(err.Error(), "no such host"):
		return fmt.Errorf("DNS error: %w", err)
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("TLS error: %w", err)
	case strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("connection refused: %w", err)
	}
	return err
}

// redact returns the request URL without user info and query, which may
// carry credentials.
func redact(r *http.Request) string {
	u := *r.URL
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
