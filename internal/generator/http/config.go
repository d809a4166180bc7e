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
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"golang.org/x/net/http/httpguts"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fluxcd/pkg/runtime/secrets"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// Flux's key names in a certSecretRef Secret.
const (
	keyCA   = secrets.KeyCACert        // ca.crt
	keyCert = secrets.KeyTLSCert       // tls.crt
	keyKey  = secrets.KeyTLSPrivateKey // tls.key
)

// getSecret reads a Secret of the source's namespace through the API reader.
// Errors name the field and the Secret; a missing Secret is an ordinary
// (retried) error: creating it fixes the source without a spec change.
//
// The values of keys, the keys the generator uses, enter the redaction
// set; every value does when keys is nil (a Secret used whole, like
// headersSecretRef's). A Secret whose used values would take the set over
// its bound (redact.MaxValues, redact.MaxBytes) is refused before any of
// them is copied, by a message naming the Secret and the limit: a tenant's
// Secret of 90,000 keys must not cost every reconcile a matcher over all
// of them (issue 23).
func getSecret(ctx context.Context, req *generator.Request, field, name string, keys []string) (*corev1.Secret, error) {
	var s corev1.Secret
	key := types.NamespacedName{Namespace: req.Source.Namespace, Name: name}
	if req.Reader == nil {
		return nil, fmt.Errorf("%s: no API reader to read Secret %q", field, key.String())
	}
	// A Secret refused before is read as metadata first: while its
	// version is the one refused, the refusal stands without the data
	// being read (and decoded) again at every reconcile.
	if refusal := refusedSecrets.get(key); refusal != nil {
		meta := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
		if err := req.Reader.Get(ctx, key, meta); err == nil && meta.ResourceVersion == refusal.resourceVersion {
			return nil, fmt.Errorf("%s: Secret %q refused: %w", field, key.String(), refusal.err)
		}
	}
	if err := req.Reader.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%s: Secret %q not found", field, key.String())
		}
		return nil, fmt.Errorf("%s: reading Secret %q: %w", field, key.String(), err)
	}
	// Counted on the Secret as read: every key of a Secret used whole
	// counts, whatever its length.
	count, size := 0, 0
	if keys == nil {
		count = len(s.Data)
		for _, v := range s.Data {
			size += len(v)
		}
	} else {
		for _, k := range keys {
			if v, ok := s.Data[k]; ok {
				count++
				size += len(v)
			}
		}
	}
	if err := req.Secrets.Fits(count, size); err != nil {
		var alone *redact.Set
		if keys == nil && alone.Fits(count, size) != nil {
			// Whole and over the bound on its own: the refusal depends
			// on this version of the Secret alone.
			refusedSecrets.put(key, s.ResourceVersion, err)
		}
		return nil, fmt.Errorf("%s: Secret %q refused: %w", field, key.String(), err)
	}
	if keys == nil {
		refusedSecrets.forget(key)
		req.Secrets.AddBytes(s.Data)
	} else {
		for _, k := range keys {
			if v, ok := s.Data[k]; ok {
				req.Secrets.Add(string(v))
			}
		}
	}
	return &s, nil
}

// headers returns the request headers: the User-Agent and one header for
// every key of headersSecretRef. Values are never logged or reported;
// errors name the Secret and the key only.
func (g *Generator) headers(ctx context.Context, req *generator.Request, spec *exsv1beta1.HTTPGeneratorSpec) (http.Header, error) {
	h := http.Header{}
	h.Set("User-Agent", g.opts.UserAgent)
	if spec.HeadersSecretRef == nil {
		return h, nil
	}
	const field = "spec.generator.http.headersSecretRef"
	s, err := getSecret(ctx, req, field, spec.HeadersSecretRef.Name, nil)
	if err != nil {
		return nil, err
	}
	sh, err := secretHeaders(s.Data)
	if err != nil {
		// Not a spec error: fixing the Secret fixes it, so it is retried.
		return nil, fmt.Errorf("%s: Secret \"%s/%s\": %w", field, s.Namespace, s.Name, err)
	}
	if _, ok := sh["Authorization"]; ok && spec.Auth != nil {
		// The API server cannot see a Secret's keys: refused here, naming
		// both sides, until one of them is removed.
		return nil, generator.InvalidSpec("spec.generator.http.auth",
			"cannot be used with an Authorization key in the Secret of spec.generator.http.headersSecretRef (%q): remove one of them",
			s.Namespace+"/"+s.Name)
	}
	for k, v := range sh {
		h[k] = v
	}
	return h, nil
}

// secretHeaders turns a Secret's data into headers: every key a header
// name, every value (trimmed of surrounding space) its value. A key that is
// not a valid header name, or a value with a control character (which
// could smuggle another header), is an error naming the key, never the
// value.
func secretHeaders(data map[string][]byte) (http.Header, error) {
	h := http.Header{}
	for k, v := range data {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("key %q is not a valid header name", k)
		}
		val := strings.TrimSpace(string(v))
		if !httpguts.ValidHeaderFieldValue(val) {
			return nil, fmt.Errorf("the value of key %q is not a valid header value (control characters)", k)
		}
		h.Set(k, val)
	}
	return h, nil
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

// transportConfig is everything a transport depends on. Sources with equal
// configurations share one client.
type transportConfig struct {
	caPEM, certPEM, keyPEM []byte
	insecure               bool
	// proxy from proxySecretRef, credentials included; nil uses Options.Proxy.
	proxy *url.URL
	// source names the Secrets in errors found while building.
	certSecret string
}

// key identifies the configuration by a hash, so that no credential is
// kept as a map key in clear.
func (c transportConfig) key() string {
	h := sha256.New()
	for _, b := range [][]byte{c.caPEM, c.certPEM, c.keyPEM, []byte(fmt.Sprint(c.insecure)), []byte(proxyString(c.proxy))} {
		_ = binary.Write(h, binary.BigEndian, uint64(len(b)))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func proxyString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// transportConfig reads certSecretRef and proxySecretRef.
func (g *Generator) transportConfig(ctx context.Context, req *generator.Request, spec *exsv1beta1.HTTPGeneratorSpec) (transportConfig, error) {
	tc := transportConfig{insecure: spec.InsecureSkipVerify}
	if ref := spec.CertSecretRef; ref != nil {
		const field = "spec.generator.http.certSecretRef"
		// The private key only: certificates are public.
		s, err := getSecret(ctx, req, field, ref.Name, []string{keyKey})
		if err != nil {
			return tc, err
		}
		tc.certSecret = s.Namespace + "/" + s.Name
		tc.caPEM, tc.certPEM, tc.keyPEM = s.Data[keyCA], s.Data[keyCert], s.Data[keyKey]
		switch {
		case len(tc.certPEM) > 0 && len(tc.keyPEM) == 0:
			return tc, fmt.Errorf("%s: Secret %q has %s but no %s", field, tc.certSecret, keyCert, keyKey)
		case len(tc.keyPEM) > 0 && len(tc.certPEM) == 0:
			return tc, fmt.Errorf("%s: Secret %q has %s but no %s", field, tc.certSecret, keyKey, keyCert)
		case len(tc.caPEM) == 0 && len(tc.certPEM) == 0:
			return tc, fmt.Errorf("%s: Secret %q must have %s, or %s and %s", field, tc.certSecret, keyCA, keyCert, keyKey)
		}
	}
	if ref := spec.ProxySecretRef; ref != nil {
		const field = "spec.generator.http.proxySecretRef"
		s, err := getSecret(ctx, req, field, ref.Name, []string{secrets.KeyAddress, secrets.KeyUsername, secrets.KeyPassword})
		if err != nil {
			return tc, err
		}
		u, err := secrets.ProxyURLFromSecret(ctx, s)
		if err != nil {
			return tc, fmt.Errorf("%s: %w", field, err)
		}
		tc.proxy = u
	}
	return tc, nil
}

// tlsConfig builds the TLS configuration: the system roots plus ca.crt, the
// client certificate, and InsecureSkipVerify when asked for.
func (c transportConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	const field = "spec.generator.http.certSecretRef"
	if len(c.caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(c.caPEM) {
			return nil, fmt.Errorf("%s: %s of Secret %q holds no PEM certificate", field, keyCA, c.certSecret)
		}
		cfg.RootCAs = pool
	}
	if len(c.certPEM) > 0 {
		pair, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %s and %s of Secret %q: %w", field, keyCert, keyKey, c.certSecret, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	cfg.InsecureSkipVerify = c.insecure //nolint:gosec // opt-in per source, warned about in status and events
	return cfg, nil
}

// keepIdle hides the transport's CloseIdleConnections from http.Client:
// go-retryablehttp closes the idle connections of its client after every
// failed request, which on a client shared by many sources would drop the
// pooled connections of all of them because one upstream fails. The cache
// closes them when the configuration is no longer used.
type keepIdle struct{ http.RoundTripper }

// newClient builds the retrying client of a configuration. It is called
// only on a cache miss, i.e. once per configuration.
func (g *Generator) newClient(c transportConfig) (*retryablehttp.Client, *http.Transport, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, nil, err
	}
	// The admin's proxies (the environment) are dialled without an
	// address check; a tenant's proxy (proxySecretRef) is checked like
	// any other address. Either way the target is checked first.
	proxy, trusted := g.proxyFunc(g.opts.Proxy, true), true
	if c.proxy != nil {
		proxy, trusted = g.proxyFunc(http.ProxyURL(c.proxy), false), false
	}
	transport := &http.Transport{
		Proxy:                  proxy,
		DialContext:            g.dialer(trusted),
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  1 * time.Second,
		TLSClientConfig:        tlsCfg,
	}
	return &retryablehttp.Client{
		// No client timeout: the context carries spec.timeout, which bounds
		// the retries and the body too.
		HTTPClient:   &http.Client{Transport: keepIdle{g.hosts.wrap(transport)}, CheckRedirect: g.checkRedirect},
		Logger:       nil, // URLs and errors are reported through status; never log headers
		RetryMax:     g.opts.RetryMax,
		RetryWaitMin: g.opts.RetryWaitMin,
		RetryWaitMax: g.opts.RetryWaitMax,
		CheckRetry:   g.checkRetry,
		Backoff:      backoff,
		// Keep the last response, so that its status and body reach the user.
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}, transport, nil
}
