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
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

// script answers with the given statuses in order, then 200 with "ok".
type script struct {
	mu         sync.Mutex
	statuses   []int
	retryAfter string
	requests   atomic.Int64
}

func (s *script) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	status := http.StatusOK
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	s.mu.Unlock()
	if status != http.StatusOK {
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "status %d", status)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// TestRetriesWithinAFetch: a fetch retries only where it is cheap and
// likely to help (a 503 or 429 whose Retry-After is within
// MaxRetryAfter), at most RetryMax times, and only as the reconciler's
// budget allows; everything else is the reconciler's backoff's to retry.
func TestRetriesWithinAFetch(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int
		retryAfter   string
		method       string
		timeout      time.Duration
		retryMax     int
		refuse       bool
		wantRequests int64
		wantErr      string
		minElapsed   time.Duration
		// wantRetryAfter is the wait the error hands to the reconciler.
		wantRetryAfter time.Duration
		// wantAsked are the waits the budget was asked for.
		wantAsked []time.Duration
	}{
		{name: "503 with Retry-After then 200", statuses: []int{503}, retryAfter: "0", wantRequests: 2, wantAsked: []time.Duration{0}},
		{name: "429 with Retry-After then 200", statuses: []int{429}, retryAfter: "0", wantRequests: 2, wantAsked: []time.Duration{0}},
		{name: "POST is retried too", statuses: []int{503}, retryAfter: "0", method: "POST", wantRequests: 2, wantAsked: []time.Duration{0}},
		{name: "Retry-After is honoured", statuses: []int{503}, retryAfter: "1", wantRequests: 2, minElapsed: 900 * time.Millisecond,
			wantAsked: []time.Duration{time.Second}},
		{name: "503 without Retry-After is not retried", statuses: []int{503}, wantRequests: 1, wantErr: "503 Service Unavailable"},
		{name: "429 without Retry-After is not retried", statuses: []int{429}, wantRequests: 1, wantErr: "429 Too Many Requests"},
		{name: "500 is not retried", statuses: []int{500, 500}, retryAfter: "0", wantRequests: 1,
			wantErr: `500 Internal Server Error: "status 500"`},
		{name: "502 is not retried", statuses: []int{502}, wantRequests: 1, wantErr: "502 Bad Gateway"},
		{name: "404 is not retried", statuses: []int{404}, wantRequests: 1, wantErr: "404 Not Found"},
		{name: "501 is not retried", statuses: []int{501}, wantRequests: 1, wantErr: "501 Not Implemented"},
		{name: "Retry-After beyond MaxRetryAfter is handed to the reconciler", statuses: []int{503, 503}, retryAfter: "10",
			wantRequests: 1, wantErr: "503 Service Unavailable", wantRetryAfter: 10 * time.Second},
		{name: "Retry-After beyond the deadline is not waited for", statuses: []int{503, 503}, retryAfter: "3",
			timeout: 2 * time.Second, wantRequests: 1, wantErr: "503 Service Unavailable", wantRetryAfter: 3 * time.Second},
		{name: "at most RetryMax retries", statuses: []int{503, 503, 503, 503, 503}, retryAfter: "0",
			wantRequests: 2, wantErr: "503 Service Unavailable", wantAsked: []time.Duration{0}},
		{name: "RetryMax 3", statuses: []int{503, 503, 503, 503, 503}, retryAfter: "0", retryMax: 3,
			wantRequests: 4, wantErr: "503 Service Unavailable", wantAsked: []time.Duration{0, 0, 0}},
		{name: "a retry the budget refuses is not made", statuses: []int{503}, retryAfter: "0", refuse: true,
			wantRequests: 1, wantErr: "503 Service Unavailable", wantAsked: []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := &script{statuses: tt.statuses, retryAfter: tt.retryAfter}
			srv := httptest.NewServer(s)
			defer srv.Close()
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			mutate := func(sp *exsv1beta1.HTTPGeneratorSpec) {
				if tt.method != "" {
					sp.Method, sp.Body = tt.method, "payload"
				}
			}
			var asked []time.Duration
			budget := func(wait time.Duration) bool {
				asked = append(asked, wait)
				return !tt.refuse
			}
			opts := fastOptions()
			opts.RetryMax = tt.retryMax
			start := time.Now()
			res, err := New(opts).Generate(ctx, &generator.Request{Source: source(srv.URL, mutate), Retry: budget})
			g.Expect(s.requests.Load()).To(Equal(tt.wantRequests))
			g.Expect(asked).To(Equal(tt.wantAsked))
			g.Expect(time.Since(start)).To(BeNumerically(">=", tt.minElapsed))
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				wait, ok := generator.RetryAfter(err)
				g.Expect(ok).To(Equal(tt.wantRetryAfter > 0))
				g.Expect(wait).To(Equal(tt.wantRetryAfter))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			g.Expect(string(b)).To(Equal("ok"))
		})
	}
}

// TestRetryAfterConnectionReset: a connection closed or reset before any
// response is retried once on a new connection; a refused one is not (the
// reconciler's backoff retries it).
func TestRetryAfterConnectionReset(t *testing.T) {
	g := NewWithT(t)
	var conns atomic.Int64
	reset := rawServer(t, func(c net.Conn, _ <-chan struct{}) {
		if conns.Add(1) == 1 {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	var asked int
	res, err := New(fastOptions()).Generate(context.Background(), &generator.Request{Source: source(reset, nil),
		Retry: func(time.Duration) bool { asked++; return true }})
	g.Expect(err).ToNot(HaveOccurred())
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	g.Expect(string(b)).To(Equal("ok"))
	g.Expect(conns.Load()).To(Equal(int64(2)))
	g.Expect(asked).To(Equal(1))

	// Nothing listens: refused, not retried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	addr := ln.Addr().String()
	ln.Close()
	asked = 0
	_, err = New(fastOptions()).Generate(context.Background(), &generator.Request{Source: source("http://"+addr, nil),
		Retry: func(time.Duration) bool { asked++; return true }})
	g.Expect(err).To(MatchError(ContainSubstring("connection refused")))
	g.Expect(asked).To(BeZero())
}

func TestBackoff(t *testing.T) {
	g := NewWithT(t)
	resp := func(status int, retryAfter string) *http.Response {
		r := &http.Response{StatusCode: status, Header: http.Header{}}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		return r
	}
	var waits []time.Duration
	for i := range 6 {
		waits = append(waits, backoff(time.Second, 10*time.Second, i, resp(503, "")))
	}
	g.Expect(waits).To(Equal([]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}))
	g.Expect(backoff(time.Second, 10*time.Second, 0, resp(429, "7"))).To(Equal(7 * time.Second))
	g.Expect(backoff(time.Second, 10*time.Second, 0, resp(503, "7"))).To(Equal(7 * time.Second))
	date := time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat)
	g.Expect(backoff(time.Second, 10*time.Second, 0, resp(503, date))).To(BeNumerically("~", 20*time.Second, 2*time.Second))
	g.Expect(backoff(time.Second, 10*time.Second, 1, resp(503, "soon"))).To(Equal(2 * time.Second))
	g.Expect(backoff(time.Second, 10*time.Second, 1, nil)).To(Equal(2 * time.Second))
}

// TestClientsAreReused checks the contract that keeps a controller with
// thousands of sources healthy: one client per TLS/proxy configuration,
// whose connections are reused across fetches (one TCP connection for many
// fetches), and a new client only for a new configuration.
func TestClientsAreReused(t *testing.T) {
	g := NewWithT(t)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	rd := reader(
		secret("ca", map[string][]byte{"ca.crt": serverCA(srv)}),
		secret("ca-copy", map[string][]byte{"ca.crt": serverCA(srv)}),
	)
	gen := New(fastOptions())
	fetch := func(secretName string) {
		res, err := gen.Generate(context.Background(), &generator.Request{
			Source: source(srv.URL, func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: secretName} }),
			Reader: rd,
		})
		g.Expect(err).ToNot(HaveOccurred())
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for range 5 {
		fetch("ca")
	}
	g.Expect(gen.Clients()).To(Equal(1))
	g.Expect(conns.Load()).To(Equal(int64(1)))

	// Another source of the same configuration fails against another
	// server: the pooled connection of the first stays open.
	failing := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	_, err := gen.Generate(context.Background(), &generator.Request{
		Source: source(failing.URL, func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: "ca"} }),
		Reader: rd,
	})
	g.Expect(err).To(MatchError(ContainSubstring("503")))
	g.Expect(gen.Clients()).To(Equal(1))
	fetch("ca")
	g.Expect(conns.Load()).To(Equal(int64(1)))

	// Another Secret with the same content is the same configuration.
	fetch("ca-copy")
	g.Expect(gen.Clients()).To(Equal(1))

	// A different configuration gets its own client.
	_, err = gen.Generate(context.Background(), &generator.Request{
		Source: source(srv.URL, func(s *exsv1beta1.HTTPGeneratorSpec) { s.InsecureSkipVerify = true }),
	})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(gen.Clients()).To(Equal(2))
}

func TestClientCacheEviction(t *testing.T) {
	g := NewWithT(t)
	now := time.Unix(1000, 0)
	c := newClientCache(time.Hour, 2)
	c.now = func() time.Time { return now }
	builds := 0
	get := func(key string) {
		_, err := c.get(key, func() (*retryableClient, *http.Transport, error) { builds++; return newTestClient(), nil, nil })
		g.Expect(err).ToNot(HaveOccurred())
	}
	get("a")
	get("a")
	g.Expect(builds).To(Equal(1))
	now = now.Add(time.Minute)
	get("b")
	now = now.Add(time.Minute)
	get("c") // over max: "a", the least recently used, goes
	g.Expect(c.len()).To(Equal(2))
	get("a")
	g.Expect(builds).To(Equal(4))

	// Unused for longer than the TTL: dropped at the next sweep.
	now = now.Add(2 * time.Hour)
	get("d")
	g.Expect(c.len()).To(Equal(1))

	_, err := c.get("e", func() (*retryableClient, *http.Transport, error) { return nil, nil, fmt.Errorf("bad config") })
	g.Expect(err).To(MatchError("bad config"))
	g.Expect(c.len()).To(Equal(1))
}
