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
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"
)

// URLPolicy restricts where the HTTP generator may connect: URL patterns
// chosen by the cluster admin, and, by default, never a link-local or
// cloud metadata address, checked on the addresses a name resolves to, so
// that no ExternalSource can read 169.254.169.254 through a DNS name.
type URLPolicy struct {
	// Allowed, when not empty, lists the patterns one of which a URL must match.
	Allowed []*regexp.Regexp
	// Denied lists patterns no URL may match.
	Denied []*regexp.Regexp
	// AllowLinkLocal lifts the default denial of link-local and metadata
	// addresses.
	AllowLinkLocal bool
}

// ParseURLPolicy compiles the admin's patterns (anchored: a pattern must
// match the whole URL).
func ParseURLPolicy(allowed, denied []string, allowLinkLocal bool) (*URLPolicy, error) {
	p := &URLPolicy{AllowLinkLocal: allowLinkLocal}
	for _, s := range allowed {
		re, err := regexp.Compile(`^(?:` + s + `)$`)
		if err != nil {
			return nil, fmt.Errorf("--allowed-url-patterns %q: %w", s, err)
		}
		p.Allowed = append(p.Allowed, re)
	}
	for _, s := range denied {
		re, err := regexp.Compile(`^(?:` + s + `)$`)
		if err != nil {
			return nil, fmt.Errorf("--denied-url-patterns %q: %w", s, err)
		}
		p.Denied = append(p.Denied, re)
	}
	return p, nil
}

// CheckURL says why a URL is refused by the patterns, or nil.
func (p *URLPolicy) CheckURL(u string) error {
	if p == nil {
		return nil
	}
	for _, re := range p.Denied {
		if re.MatchString(u) {
			return fmt.Errorf("%s is denied by the controller's URL policy (--denied-url-patterns)", u)
		}
	}
	if len(p.Allowed) == 0 {
		return nil
	}
	for _, re := range p.Allowed {
		if re.MatchString(u) {
			return nil
		}
	}
	return fmt.Errorf("%s matches none of the controller's --allowed-url-patterns", u)
}

// metadataAddresses are cloud metadata endpoints outside the link-local
// ranges.
var metadataAddresses = []net.IP{
	net.ParseIP("100.100.100.200"), // Alibaba Cloud
	net.ParseIP("fd00:ec2::254"),   // AWS IMDS over IPv6
}

// deniedIP reports why ip may not be dialled, or "".
func (p *URLPolicy) deniedIP(ip net.IP) string {
	if p != nil && p.AllowLinkLocal {
		return ""
	}
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		return "a link-local address (cloud metadata services live there)"
	}
	for _, m := range metadataAddresses {
		if ip.Equal(m) {
			return "a cloud metadata address"
		}
	}
	return ""
}

// Resolver resolves host names; net.DefaultResolver by default, a fake in
// tests.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// errDeniedAddress marks a dial refused by the URL policy.
var errDeniedAddress = errors.New("denied by the URL policy")

// dialer resolves, checks every address against the policy, and dials an
// allowed one: the address checked is the address connected to.
func (g *Generator) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	resolver := g.opts.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	policy := g.opts.URLPolicy
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []net.IP
		if ip := net.ParseIP(host); ip != nil {
			ips = []net.IP{ip}
		} else {
			addrs, err := resolver.LookupIPAddr(ctx, host)
			if err != nil {
				return nil, err
			}
			for _, a := range addrs {
				ips = append(ips, a.IP)
			}
		}
		var lastErr error
		for _, ip := range ips {
			if why := policy.deniedIP(ip); why != "" {
				lastErr = fmt.Errorf("%s (%s) is %s: %w", host, ip, why, errDeniedAddress)
				continue
			}
			conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return conn, nil
			}
			lastErr = err
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("%s has no address", host)
		}
		return nil, lastErr
	}
}
