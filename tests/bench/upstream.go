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

package bench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream is the pool of HTTP endpoints the benchmark's sources fetch:
// endpoint i is http://<listener i mod L>/s/<i>. Each endpoint has a
// version; its body is deterministic text-like data derived from (i,
// version), so the same version always yields the same bytes (and the same
// revision) and a new version yields new bytes. With ETags on, the ETag is
// "<i>-<version>" and a matching If-None-Match gets a 304.
type Upstream struct {
	size      int
	etag      bool
	fixed     []byte // served for every endpoint when set (the large-payload case)
	versions  []atomic.Int64
	listeners []net.Listener
	servers   []*http.Server

	heads, gets, others, notModified atomic.Int64

	// perEndpoint counts the requests of each endpoint.
	perEndpoint []atomic.Int64
	// delay is added before every answer: a slow upstream.
	delay time.Duration
	// failing endpoints answer 500 to every request.
	failing []atomic.Bool
	// inflight and peakInflight count concurrent requests.
	inflight, peakInflight atomic.Int64

	mu sync.Mutex
	// perSecond counts requests by Unix second, for the peak rate one
	// host sees.
	perSecond map[int64]int64
	// failTimes are the arrival times of the requests to failing
	// endpoints.
	failTimes []FailedRequest
}

// FailedRequest is one request to a failing endpoint.
type FailedRequest struct {
	At       time.Time
	Endpoint int
}

// UpstreamCounts are the requests the pool answered, by method.
type UpstreamCounts struct {
	HEAD        int64 `json:"head"`
	GET         int64 `json:"get"`
	Other       int64 `json:"other"`
	NotModified int64 `json:"notModified"`
}

// Total is the number of requests of any method.
func (c UpstreamCounts) Total() int64 { return c.HEAD + c.GET + c.Other }

// Sub returns c minus o.
func (c UpstreamCounts) Sub(o UpstreamCounts) UpstreamCounts {
	return UpstreamCounts{HEAD: c.HEAD - o.HEAD, GET: c.GET - o.GET, Other: c.Other - o.Other, NotModified: c.NotModified - o.NotModified}
}

// StartUpstream starts n endpoints on up to maxListeners loopback listeners.
// fixed, when not nil, is the body of every endpoint (its size overrides
// size).
func StartUpstream(n, size int, etag bool, fixed []byte, maxListeners int) (*Upstream, error) {
	u := &Upstream{size: size, etag: etag, fixed: fixed, versions: make([]atomic.Int64, n),
		failing: make([]atomic.Bool, n), perEndpoint: make([]atomic.Int64, n), perSecond: map[int64]int64{}}
	if fixed != nil {
		u.size = len(fixed)
	}
	l := min(n, maxListeners)
	if l < 1 {
		l = 1
	}
	for range l {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			u.Close()
			return nil, err
		}
		srv := &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
		u.listeners = append(u.listeners, ln)
		u.servers = append(u.servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	return u, nil
}

// URL returns the URL of endpoint i.
func (u *Upstream) URL(i int) string {
	return fmt.Sprintf("http://%s/s/%d", u.listeners[i%len(u.listeners)].Addr(), i)
}

// Change gives endpoint i a new version: new bytes and a new ETag.
func (u *Upstream) Change(i int) { u.versions[i].Add(1) }

// Counts returns the requests answered so far.
func (u *Upstream) Counts() UpstreamCounts {
	return UpstreamCounts{HEAD: u.heads.Load(), GET: u.gets.Load(), Other: u.others.Load(), NotModified: u.notModified.Load()}
}

// Close stops every listener.
func (u *Upstream) Close() {
	for _, s := range u.servers {
		_ = s.Close()
	}
}

// SetDelay makes every answer wait d first, as a slow upstream does.
func (u *Upstream) SetDelay(d time.Duration) { u.delay = d }

// SetFailing makes endpoint i answer 500 to every request (or stop).
func (u *Upstream) SetFailing(i int, fail bool) { u.failing[i].Store(fail) }

// Hosts is the number of distinct host:port the endpoints are spread over.
func (u *Upstream) Hosts() int { return len(u.listeners) }

// PeakPerSecond returns the most requests answered in one calendar second
// from since on, and that second's start.
func (u *Upstream) PeakPerSecond(since time.Time) (int64, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var peak, at int64
	for sec, n := range u.perSecond {
		if sec >= since.Unix() && n > peak {
			peak, at = n, sec
		}
	}
	return peak, time.Unix(at, 0)
}

// PerSecond returns the requests answered in each second of [from, to).
func (u *Upstream) PerSecond(from, to time.Time) []int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []int64
	for sec := from.Unix(); sec < to.Unix(); sec++ {
		out = append(out, u.perSecond[sec])
	}
	return out
}

// PeakInflight returns the most requests in progress at once since the
// last reset, and resets it to the current value.
func (u *Upstream) PeakInflight() int64 {
	return u.peakInflight.Swap(u.inflight.Load())
}

// EndpointCounts returns the requests each endpoint answered so far.
func (u *Upstream) EndpointCounts() []int64 {
	out := make([]int64, len(u.perEndpoint))
	for i := range u.perEndpoint {
		out[i] = u.perEndpoint[i].Load()
	}
	return out
}

// FailTimes returns the arrival times of the requests to failing
// endpoints.
func (u *Upstream) FailTimes() []FailedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]FailedRequest(nil), u.failTimes...)
}

// ServeHTTP answers GET and HEAD for /s/<i>.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	in := u.inflight.Add(1)
	defer u.inflight.Add(-1)
	for {
		p := u.peakInflight.Load()
		if in <= p || u.peakInflight.CompareAndSwap(p, in) {
			break
		}
	}
	u.mu.Lock()
	u.perSecond[now.Unix()]++
	u.mu.Unlock()
	if u.delay > 0 {
		time.Sleep(u.delay)
	}
	switch r.Method {
	case http.MethodHead:
		u.heads.Add(1)
	case http.MethodGet:
		u.gets.Add(1)
	default:
		u.others.Add(1)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/s/"))
	if err != nil || i < 0 || i >= len(u.versions) {
		http.NotFound(w, r)
		return
	}
	u.perEndpoint[i].Add(1)
	if u.failing[i].Load() {
		u.mu.Lock()
		u.failTimes = append(u.failTimes, FailedRequest{At: now, Endpoint: i})
		u.mu.Unlock()
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
		return
	}
	v := u.versions[i].Load()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if u.etag {
		etag := fmt.Sprintf(`"%d-%d"`, i, v)
		h.Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			u.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Length", strconv.Itoa(u.size))
	if r.Method == http.MethodHead {
		return
	}
	if u.fixed != nil {
		_, _ = bytes.NewReader(u.fixed).WriteTo(w)
		return
	}
	_, _ = w.Write(Payload(i, v, u.size))
}

// Payload returns size bytes of deterministic, text-like JSON for endpoint
// i at version v: words drawn from a small vocabulary by a seeded PCG, so
// gzip does real work (it compresses to roughly a third) and no two
// versions are alike.
func Payload(i int, v int64, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 64)
	fmt.Fprintf(&b, `{"source":%d,"version":%d,"data":"`, i, v)
	fillText(&b, rand.New(rand.NewPCG(uint64(i), uint64(v))), size-b.Len()-2)
	b.WriteString(`"}`)
	out := b.Bytes()
	if len(out) > size && size > 0 {
		out = out[:size]
	}
	return out
}

var words = strings.Fields("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike " +
	"november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu price region plan " +
	"standard premium basic eu us ap 0 1 2 3 4 5 6 7 8 9 42 100 1000 true false null")

// fillText appends n bytes of space-separated words and numbers.
func fillText(b *bytes.Buffer, r *rand.Rand, n int) {
	end := b.Len() + n
	for b.Len() < end {
		w := words[r.IntN(len(words))]
		if r.IntN(4) == 0 {
			w = strconv.Itoa(r.IntN(1 << 20))
		}
		if left := end - b.Len(); len(w)+1 > left {
			b.WriteString(strings.Repeat("x", left))
			break
		}
		b.WriteString(w)
		b.WriteByte(' ')
	}
}

// TextData returns size bytes of the same text-like data, for the
// large-payload case.
func TextData(size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	fillText(&b, rand.New(rand.NewPCG(1, 2)), size)
	return b.Bytes()
}
