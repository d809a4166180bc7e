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
	"testing"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/generator"
)

// fakeResolver answers from a table, as a DNS server controlled by an
// attacker could.
type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

// TestURLPolicy: link-local and metadata addresses are refused after
// resolution (nothing is sent to them), patterns allow and deny URLs.
func TestURLPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	resolver := fakeResolver{
		"api.test":         {"127.0.0.1"},
		"metadata.test":    {"169.254.169.254"},
		"sneaky.test":      {"fe80::1"},
		"both.test":        {"169.254.169.254", "127.0.0.1"},
		"alibaba.test":     {"100.100.100.200"},
		"aws-ipv6.test":    {"fd00:ec2::254"},
		"allowed-ll.test":  {"169.254.1.1"},
		"denied-path.test": {"127.0.0.1"},
	}
	policy, err := ParseURLPolicy([]string{`http://[a-z0-9-]+\.test(:[0-9]+)?/.*`}, []string{`.*/admin/.*`}, false)
	if err != nil {
		t.Fatal(err)
	}
	policy.AllowedRanges = allowLoopback().AllowedRanges
	tests := []struct {
		url     string
		policy  *URLPolicy
		wantErr string
	}{
		{url: "http://api.test:%s/data", policy: policy},
		{url: "http://both.test:%s/data", policy: policy},
		{url: "http://metadata.test:%s/latest/meta-data/", policy: policy, wantErr: "metadata.test (169.254.169.254) is a link-local address"},
		{url: "http://sneaky.test:%s/", policy: policy, wantErr: "is a link-local address"},
		{url: "http://alibaba.test:%s/", policy: policy, wantErr: "is a cloud metadata address"},
		{url: "http://aws-ipv6.test:%s/", policy: policy, wantErr: "is a cloud metadata address"},
		{url: "http://169.254.169.254:%s/", policy: nil, wantErr: "is a link-local address"},
		{url: "http://denied-path.test:%s/admin/x", policy: policy, wantErr: "denied by the controller's URL policy"},
		{url: "http://127.0.0.1:%s/", policy: policy, wantErr: "matches none of the controller's --allowed-url-patterns"},
	}
	for _, tt := range tests {
		u := fmt.Sprintf(tt.url, port)
		t.Run(u, func(t *testing.T) {
			g := NewWithT(t)
			gen := New(Options{URLPolicy: tt.policy, Resolver: resolver, RetryMax: -1})
			res, err := gen.Generate(context.Background(), &generator.Request{Source: source(u, nil)})
			if tt.wantErr == "" {
				g.Expect(err).ToNot(HaveOccurred())
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				g.Expect(string(b)).To(Equal("ok"))
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}

	// The admin can lift the default.
	lifted, err := ParseURLPolicy(nil, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	NewWithT(t).Expect(lifted.deniedIP(net.ParseIP("169.254.1.1"))).To(BeEmpty())
	_, err = ParseURLPolicy([]string{"("}, nil, false)
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("--allowed-url-patterns")))
}
