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
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// checkRetry decides, after each attempt of one fetch, whether to try
// again within it. The reconciler retries a failed fetch with its own
// exponential backoff, so a retry here is a second layer that multiplies
// the requests a failing upstream receives; it is made only where it is
// cheap and likely to help:
//
//   - the connection was reset (or closed) before any response: a stale
//     pooled connection or a restarting proxy, which a new connection a
//     moment later usually gets past;
//   - 503 or 429 with a Retry-After of at most Options.MaxRetryAfter: the
//     server says when it will answer.
//
// Anything else (500 and the other 5xx, connection refused, timeouts, DNS
// and TLS errors, the URL policy) ends the fetch at once and the
// reconciler's backoff takes over. So does a wait that would outlast the
// fetch's deadline (go-retryablehttp would sleep until the deadline and
// return a bare "context deadline exceeded", holding the worker and losing
// the upstream's answer), and a retry the reconciler's budget refuses
// (generator.Request.Retry), which counts the ones it allows against the
// object's backoff.
func (g *Generator) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		if err != nil {
			// The transport's error says what the deadline interrupted
			// (e.g. the wait for a slot of --max-concurrent-per-host).
			return false, err
		}
		return false, ctx.Err()
	}
	if err != nil {
		if !isConnectionReset(err) {
			return false, err
		}
	} else if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return false, nil
	} else if wait, ok := retryAfter(resp); !ok || wait > g.opts.MaxRetryAfter {
		return false, nil
	}
	// go-retryablehttp asks Backoff for the wait of attempt i right after
	// the i-th CheckRetry (counted from 0) that says yes.
	state := fetchStateFrom(ctx)
	attempt, _, _ := state.get()
	if attempt >= g.opts.RetryMax {
		// go-retryablehttp would stop anyway: no budget is spent on it.
		return false, nil
	}
	wait := backoff(g.opts.RetryWaitMin, g.opts.RetryWaitMax, attempt, resp)
	if !fitsDeadline(ctx, wait) {
		return false, nil
	}
	if state.retry != nil && !state.retry(wait) {
		return false, nil
	}
	state.set(func(s *fetchState) { s.attempts++ })
	return true, nil
}

// isConnectionReset says the connection failed before any response came:
// reset, broken pipe, or closed by the server (EOF). Not a refused
// connection (nothing listens) nor a timeout.
func isConnectionReset(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// fitsDeadline says whether waiting wait still leaves the fetch within its
// deadline.
func fitsDeadline(ctx context.Context, wait time.Duration) bool {
	deadline, has := ctx.Deadline()
	return !has || !time.Now().Add(wait).After(deadline)
}

// backoff waits what the server asks for in Retry-After (429 and 5xx), or
// min·2^attempt, at most max.
func backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if wait, ok := retryAfter(resp); ok {
			return wait
		}
	}
	wait := minWait << attempt
	if wait <= 0 || wait > maxWait {
		wait = maxWait
	}
	return wait
}

// retryAfter parses Retry-After (seconds or an HTTP date) of a 429 or 5xx.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// describeTransportError names the kind of failure (timeout, DNS, TLS,
// connection refused) in front of Go's own message, which stays for the
// details.
func describeTransportError(err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return fmt.Errorf("timeout: %w", err)
	case isDNSError(err):
		return fmt.Errorf("DNS error: %w", err)
	case isTLSError(err):
		return fmt.Errorf("TLS error: %w", err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused: %w", err)
	}
	return err
}

func isDNSError(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr)
}

func isDNSNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// isTLSError recognises certificate verification failures on either side
// (unknown authority, wrong host name, expired, a client certificate the
// server refuses) and handshake failures.
func isTLSError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		alert            tls.AlertError
		record           tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownAuthority), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verification), errors.As(err, &alert), errors.As(err, &record):
		return true
	}
	msg := err.Error()
	// Go's transport reports a server that answers the handshake in plain
	// HTTP without a typed error.
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:") ||
		strings.Contains(msg, "server gave HTTP response to HTTPS client")
}
