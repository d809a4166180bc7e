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
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// rawServer answers every connection with respond, which writes whatever
// it likes (a status line of any length, bytes at any pace); it returns
// http://host:port.
func rawServer(t *testing.T, respond func(c net.Conn, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read the request head, then answer.
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				respond(c, done)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// trickle writes s one byte a second until done or the peer goes.
func trickle(c net.Conn, done <-chan struct{}, s string) {
	for i := range len(s) {
		if _, err := c.Write([]byte{s[i]}); err != nil {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
	}
}

// TestUpstreamTextIsBounded: what the upstream chooses (validators, the
// status text, error bodies, header size) reaches status and messages only
// within bounds, redacted before it is cut.
func TestUpstreamTextIsBounded(t *testing.T) {
	long := strings.Repeat("e", MaxValidatorLength+1)
	atLimit := `"` + strings.Repeat("e", MaxValidatorLength-2) + `"`
	validators := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/long":
			w.Header().Set("ETag", long)
			w.Header().Set("Last-Modified", long)
		case "/limit":
			w.Header().Set("ETag", atLimit)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer validators.Close()
	gen := New(fastOptions())
	g := NewWithT(t)
	for path, want := range map[string]generator.Validators{"/long": {}, "/limit": {ETag: atLimit}} {
		res, err := gen.Generate(context.Background(), &generator.Request{Source: source(validators.URL+path, nil)})
		g.Expect(err).ToNot(HaveOccurred())
		res.Body.Close()
		g.Expect(res.Validators).To(Equal(want), path)
	}

	hugeStatus := rawServer(t, func(c net.Conn, _ <-chan struct{}) {
		_, _ = io.WriteString(c, "HTTP/1.1 418 "+strings.Repeat("\xff", 64<<10)+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	hugeHeaders := rawServer(t, func(c net.Conn, _ <-chan struct{}) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("h", 2<<20)+"\r\n\r\n")
	})
	body := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		switch r.URL.Path {
		case "/huge":
			_, _ = io.WriteString(w, strings.Repeat("b", 1<<20))
		case "/straddle":
			// The Secret's value across the cut at errorBodyPrefix.
			_, _ = io.WriteString(w, strings.Repeat("x", errorBodyPrefix-6)+headerSecret+strings.Repeat("y", 100))
		}
	}))
	defer body.Close()
	rd := reader(secret("headers", map[string][]byte{"X-Api-Key": []byte(headerSecret)}))
	withHeaders := func(s *exsv1beta1.HTTPGeneratorSpec) {
		s.HeadersSecretRef = &meta.LocalObjectReference{Name: "headers"}
	}
	tests := []struct {
		name, url string
		want      string
	}{
		{name: "status text of 64 KiB", url: hugeStatus, want: "418 \ufffd"},
		{name: "headers of 2 MiB", url: hugeHeaders, want: "server response headers exceeded 1048576 bytes"},
		{name: "error body of 1 MiB", url: body.URL + "/huge", want: `400 Bad Request: "bbbb`},
		{name: "a Secret across the cut", url: body.URL + "/straddle", want: `xxxxxx***`},
	}
	opts := fastOptions()
	opts.RetryMax = -1
	gen = New(opts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := gen.Generate(context.Background(), &generator.Request{Source: source(tt.url, withHeaders), Reader: rd, Secrets: &redact.Set{}})
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(len(err.Error())).To(BeNumerically("<", 1024))
			g.Expect(utf8.ValidString(err.Error())).To(BeTrue())
			g.Expect(err.Error()).ToNot(ContainSubstring(headerSecret[:4]))
		})
	}
}

// TestDeadlineBoundsEveryWait: no wait within a fetch outlives its
// deadline. A Retry-After or an exponential backoff that does not fit ends
// the attempt at once (the reconciler's backoff takes over, with the
// upstream's Retry-After), on the HEAD of change detection and inside the
// retry loop alike, and an upstream that answers one byte a second is cut
// at the deadline, in its headers or its body.
func TestDeadlineBoundsEveryWait(t *testing.T) {
	type upstream struct {
		url      string
		requests *atomic.Int64
	}
	always := func(status int, retryAfter string) upstream {
		n := &atomic.Int64{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			n.Add(1)
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return upstream{srv.URL, n}
	}
	slowHead := rawServer(t, func(c net.Conn, done <-chan struct{}) {
		trickle(c, done, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	slowBody := rawServer(t, func(c net.Conn, done <-chan struct{}) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
		trickle(c, done, strings.Repeat("b", 100))
	})

	tests := []struct {
		name     string
		up       upstream
		previous generator.Validators
		waitMin  time.Duration
		timeout  time.Duration
		// within is how long the fetch may take at most: generous (a
		// loaded machine is slow), and still below what the failure it
		// guards against would take (the full backoff, Retry-After or
		// trickle).
		within         time.Duration
		wantRequests   int64
		wantErr        string
		wantRetryAfter time.Duration
		readBody       bool
	}{
		{name: "exponential backoff longer than the time left", up: always(503, ""), waitMin: 5 * time.Second,
			timeout: time.Second, within: 4 * time.Second, wantRequests: 1, wantErr: "503 Service Unavailable"},
		{name: "Retry-After longer than the time left, HEAD then GET", up: always(503, "3600"),
			previous: generator.Validators{ETag: `"v1"`}, timeout: 5 * time.Second, within: 30 * time.Second,
			wantRequests: 2, wantErr: "503 Service Unavailable", wantRetryAfter: time.Hour},
		{name: "Retry-After that fits once, not twice", up: always(429, "1"), timeout: 1500 * time.Millisecond,
			within: 10 * time.Second, wantRequests: 2, wantErr: "429 Too Many Requests", wantRetryAfter: time.Second},
		{name: "status line at one byte a second", up: upstream{url: slowHead}, timeout: 1500 * time.Millisecond,
			within: 20 * time.Second, wantErr: "timeout"},
		{name: "body at one byte a second", up: upstream{url: slowBody}, timeout: 1500 * time.Millisecond,
			within: 20 * time.Second, readBody: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			opts := fastOptions()
			if tt.waitMin > 0 {
				opts.RetryWaitMin, opts.RetryWaitMax = tt.waitMin, 2*tt.waitMin
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			res, err := New(opts).Generate(ctx, &generator.Request{Source: source(tt.up.url, nil), Previous: tt.previous})
			if tt.readBody {
				g.Expect(err).ToNot(HaveOccurred())
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
				g.Expect(err).To(MatchError(context.DeadlineExceeded))
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				wait, ok := generator.RetryAfter(err)
				g.Expect(ok).To(Equal(tt.wantRetryAfter > 0))
				g.Expect(wait).To(Equal(tt.wantRetryAfter))
			}
			g.Expect(time.Since(start)).To(BeNumerically("<", tt.within))
			if tt.up.requests != nil {
				g.Expect(tt.up.requests.Load()).To(Equal(tt.wantRequests))
			}
		})
	}
}
