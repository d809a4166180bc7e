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
//
// The slots of a host are shared by tenants: one namespace holds at most
// half of them (rounded up), as it holds at most its share of the
// workers, so a tenant downloading large files from a shared host
// (github.com, a registry) cannot make every other tenant's sources of
// that host wait out their timeouts.
type hostLimiter struct {
	max, maxPerTenant int
	mu                sync.Mutex
	hosts             map[string]*hostSlots
}

// hostSlots is one host's semaphore, with one semaphore per tenant of it;
// users counts the requests holding or waiting for a slot, so an entry
// goes when the last one leaves.
type hostSlots struct {
	sem     chan struct{}
	users   int
	tenants map[string]*tenantSlots
}

// tenantSlots is one namespace's share of a host's slots.
type tenantSlots struct {
	sem   chan struct{}
	users int
}

// newHostLimiter returns a limiter of max requests per host; nil (no
// limit) when max <= 0.
func newHostLimiter(maxPerHost int) *hostLimiter {
	if maxPerHost <= 0 {
		return nil
	}
	return &hostLimiter{max: maxPerHost, maxPerTenant: (maxPerHost + 1) / 2, hosts: map[string]*hostSlots{}}
}

// tenantKey carries the namespace of the source a request is made for.
type tenantKey struct{}

// withTenant marks ctx's requests as made for a source of namespace ns.
func withTenant(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, tenantKey{}, ns)
}

// tenantOf is the namespace withTenant recorded ("" when none was).
func tenantOf(ctx context.Context) string {
	ns, _ := ctx.Value(tenantKey{}).(string)
	return ns
}

// acquire waits for a slot of host within tenant's share, or for ctx to
// end.
func (l *hostLimiter) acquire(ctx context.Context, host, tenant string) (release func(), err error) {
	l.mu.Lock()
	hs := l.hosts[host]
	if hs == nil {
		hs = &hostSlots{sem: make(chan struct{}, l.max), tenants: map[string]*tenantSlots{}}
		l.hosts[host] = hs
	}
	ts := hs.tenants[tenant]
	if ts == nil {
		ts = &tenantSlots{sem: make(chan struct{}, l.maxPerTenant)}
		hs.tenants[tenant] = ts
	}
	hs.users++
	ts.users++
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if ts.users--; ts.users == 0 {
			delete(hs.tenants, tenant)
		}
		if hs.users--; hs.users == 0 {
			delete(l.hosts, host)
		}
	}
	select {
	case ts.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("waiting for one of the %d connections to %s a namespace may hold (half of --max-concurrent-per-host): %w",
			l.maxPerTenant, host, ctx.Err())
	}
	select {
	case hs.sem <- struct{}{}:
	case <-ctx.Done():
		<-ts.sem
		leave()
		return nil, fmt.Errorf("waiting for one of the %d connections to %s (--max-concurrent-per-host): %w", l.max, host, ctx.Err())
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-hs.sem
			<-ts.sem
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
	release, err := t.limiter.acquire(req.Context(), hostKey(req.URL), tenantOf(req.Context()))
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
