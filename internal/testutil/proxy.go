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

package testutil

import (
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a forward HTTP proxy on loopback. Plain-HTTP requests (absolute
// URIs) are answered by forwarding them to Upstream whatever their host, and
// CONNECT tunnels go to Upstream too, so tests can use names that resolve
// nowhere (Go never proxies loopback addresses). It counts what it served.
type Proxy struct {
	*httptest.Server
	// Upstream is host:port every request is sent to.
	Upstream string
	// User and Password, when set, are required in Proxy-Authorization.
	User, Password string

	Requests atomic.Int64 // plain-HTTP requests forwarded
	Connects atomic.Int64 // CONNECT tunnels opened
	Refused  atomic.Int64 // requests refused for missing credentials

	mu    sync.Mutex
	Hosts []string // the hosts requested, in order
}

// NewProxy starts a proxy forwarding to upstream (host:port).
func NewProxy(t testing.TB, upstream, user, password string) *Proxy {
	p := &Proxy{Upstream: upstream, User: user, Password: password}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	if p.User != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.User+":"+p.Password))
		if r.Header.Get("Proxy-Authorization") != want {
			p.Refused.Add(1)
			w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
			http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
			return
		}
	}
	p.mu.Lock()
	p.Hosts = append(p.Hosts, r.Host)
	p.mu.Unlock()
	if r.Method == http.MethodConnect {
		p.Connects.Add(1)
		p.tunnel(w)
		return
	}
	p.Requests.Add(1)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = p.Upstream
	out.Header.Del("Proxy-Authorization")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) tunnel(w http.ResponseWriter) {
	up, err := net.Dial("tcp", p.Upstream)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "no hijacking", http.StatusInternalServerError)
		return
	}
	client, _, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		client.Close()
		return
	}
	go func() {
		defer up.Close()
		defer client.Close()
		_, _ = io.Copy(up, client)
	}()
	go func() {
		defer up.Close()
		defer client.Close()
		_, _ = io.Copy(client, up)
	}()
}
