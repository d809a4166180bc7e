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
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

// gatedUpstream holds every request until its gate opens, and records how
// many were in flight at most.
type gatedUpstream struct {
	*httptest.Server
	gate               chan struct{}
	once               sync.Once
	inFlight, max, all atomic.Int64
}

func newGatedUpstream(t *testing.T) *gatedUpstream {
	u := &gatedUpstream{gate: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		u.all.Add(1)
		n := u.inFlight.Add(1)
		defer u.inFlight.Add(-1)
		for {
			m := u.max.Load()
			if n <= m || u.max.CompareAndSwap(m, n) {
				break
			}
		}
		<-u.gate
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(u.Close)
	// Runs before Close (cleanups run last first): a failed test does not
	// leave handlers waiting, nor Close waiting for them.
	t.Cleanup(u.open)
	return u
}

// open lets every request through, once.
func (u *gatedUpstream) open() { u.once.Do(func() { close(u.gate) }) }

// TestMaxConcurrentPerHost: the requests in flight to one upstream host are
// bounded across sources and clients (two TLS configurations here), the
// ones over the limit wait (and give up at their deadline, saying why),
// and another host is not held up by a saturated one.
func TestMaxConcurrentPerHost(t *testing.T) {
	g := NewWithT(t)
	const limit, sources = 3, 8
	opts := fastOptions()
	opts.MaxConcurrentPerHost = limit
	gen := New(opts)
	busy := newGatedUpstream(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(other.Close)

	fetch := func(ctx context.Context, i int, u string) error {
		src := source(u, func(s *exsv1beta1.HTTPGeneratorSpec) { s.InsecureSkipVerify = i%2 == 1 })
		src.Name = fmt.Sprintf("s%d", i)
		res, err := gen.Generate(ctx, &generator.Request{Source: src})
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.ReadAll(res.Body)
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, sources)
	for i := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetch(context.Background(), i, busy.URL)
		}()
	}
	g.Eventually(busy.inFlight.Load, 10*time.Second, 10*time.Millisecond).Should(BeEquivalentTo(limit))

	// The saturated host does not hold another host's requests.
	g.Expect(fetch(context.Background(), 100, other.URL)).To(Succeed())
	// A request that cannot get a slot before its deadline says why.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := fetch(ctx, 101, busy.URL)
	cancel()
	g.Expect(err).To(MatchError(ContainSubstring("--max-concurrent-per-host")))
	g.Expect(busy.all.Load()).To(BeEquivalentTo(limit), "the others wait without a request")

	busy.open()
	wg.Wait()
	for i, err := range errs {
		g.Expect(err).ToNot(HaveOccurred(), "source %d", i)
	}
	g.Expect(busy.all.Load()).To(BeEquivalentTo(sources))
	g.Expect(busy.max.Load()).To(BeEquivalentTo(limit))
	g.Expect(gen.Clients()).To(Equal(2), "two clients shared the host's slots")
	gen.hosts.mu.Lock()
	g.Expect(gen.hosts.hosts).To(BeEmpty(), "idle hosts hold no slots")
	gen.hosts.mu.Unlock()
}

func TestHostKey(t *testing.T) {
	g := NewWithT(t)
	for in, want := range map[string]string{
		"https://API.example.com/x":     "https://api.example.com:443",
		"https://api.example.com:443/y": "https://api.example.com:443",
		"http://api.example.com":        "http://api.example.com:80",
		"http://api.example.com:8080/":  "http://api.example.com:8080",
		"http://[::1]:9000/":            "http://[::1]:9000",
	} {
		u, err := url.Parse(in)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(hostKey(u)).To(Equal(want), in)
	}
}
