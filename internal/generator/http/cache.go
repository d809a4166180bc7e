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
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// clientCache holds one client per TLS/proxy configuration. Clients that no
// source used for ttl are dropped and their idle connections closed, so a
// rotated certificate does not leave its old pool behind forever; max bounds
// the number of configurations (the least recently used goes first).
type clientCache struct {
	mu        sync.Mutex
	ttl       time.Duration
	max       int
	now       func() time.Time
	lastSweep time.Time
	entries   map[string]*cachedClient
}

type cachedClient struct {
	client *retryablehttp.Client
	// transport is closed (its idle connections) when the entry goes.
	transport *http.Transport
	lastUsed  time.Time
}

func newClientCache(ttl time.Duration, maxEntries int) *clientCache {
	return &clientCache{ttl: ttl, max: maxEntries, now: time.Now, entries: map[string]*cachedClient{}}
}

// get returns the client for key, building it on a miss. A failed build is
// not cached: the error is reported again on the next reconcile, and a
// fixed Secret yields a new key anyway.
func (c *clientCache) get(key string, build func() (*retryablehttp.Client, *http.Transport, error)) (*retryablehttp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	if e, ok := c.entries[key]; ok {
		e.lastUsed = now
		return e.client, nil
	}
	client, transport, err := build()
	if err != nil {
		return nil, err
	}
	for len(c.entries) >= c.max {
		c.evictOldest()
	}
	c.entries[key] = &cachedClient{client: client, transport: transport, lastUsed: now}
	return client, nil
}

// sweep drops clients unused for ttl, at most once per minute.
func (c *clientCache) sweep(now time.Time) {
	if now.Sub(c.lastSweep) < time.Minute {
		return
	}
	c.lastSweep = now
	for k, e := range c.entries {
		if now.Sub(e.lastUsed) > c.ttl {
			e.close()
			delete(c.entries, k)
		}
	}
}

func (c *clientCache) evictOldest() {
	var oldest string
	var at time.Time
	for k, e := range c.entries {
		if oldest == "" || e.lastUsed.Before(at) {
			oldest, at = k, e.lastUsed
		}
	}
	if e, ok := c.entries[oldest]; ok {
		e.close()
		delete(c.entries, oldest)
	}
}

func (e *cachedClient) close() {
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
}

func (c *clientCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
