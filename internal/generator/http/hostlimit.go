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
	"net/url"
	"strings"
	"sync"
)

// hostLimiter bounds the requests in flight to one upstream host (scheme,
// host and port) across every source, client and reconcile of the
// process: a thousand sources of one API, due at once after a restart,
// reach it a few at a time instead of as many as there are workers. A
// request holds its slot from the moment it is sent until its body is
// closed (the download is part of the load). Slots of hosts with no
// request in flight or waiting are freed.
type hostLimiter struct {
	max   int
	mu    sync.Mutex
	hosts map[string]*hostSlots
}

// hostSlots is one host's semaphore; users counts the requests holding or
// waiting for a slot, so the entry goes when the last one leaves.
type hostSlots struct {
	sem   chan struct{}
	users int
}

// newHostLimiter returns a limiter of max requests per host; nil (no
// limit) when max <= 0.
func newHostLimiter(maxPerHost int) *hostLimiter {
	if maxPerHost <= 0 {
		return nil
	}
	return &hostLimiter{max: maxPerHost, hosts: map[string]*hostSlots{}}
}

// acquire waits for a slot of host, or for ctx to end.
func (l *hostLimiter) acquire(ctx context.Context, host string) (release func(), err error) {
	l.mu.Lock()
	hs := l.hosts[host]
	if hs == nil {
		hs = &hostSlots{sem: make(chan struct{}, l.max)}
		l.hosts[host] = hs
	}
	hs.users++
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if hs.users--; hs.users == 0 {
			delete(l.hosts, host)
		}
	}
	select {
	case hs.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("waiting for one of the %d connections to %s (--max-concurrent-per-host): %w", l.max, host, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-hs.sem
			leave()
		})
	}, nil
}

// wrap returns rt with its requests limited per host; rt itself without a
// limit.
func (l *hostLimiter) wrap(rt http.RoundTripper) http.RoundTripper {
	if l == nil {
		return rt
	}
	return &limitedTransport{rt: rt, limiter: l}
}

// limitedTransport takes a host slot for each request (each redirect hop
// is a request of its own: net/http closes the previous response first).
type limitedTransport struct {
	rt      http.RoundTripper
	limiter *hostLimiter
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	release, err := t.limiter.acquire(req.Context(), hostKey(req.URL))
	if err != nil {
		return nil, err
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// releasingBody frees the request's slot when the body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// hostKey is scheme://host:port, the port made explicit, so that
// https://api.example.com and https://API.example.com:443 share slots.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
