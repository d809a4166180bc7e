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
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/externalsource/externalsource-controller/internal/redact"
)

// URLPolicy restricts where the HTTP generator may connect: URL patterns
// chosen by the cluster admin, and, by default, never an address of the
// controller's own host (loopback, unspecified, the addresses of its
// interfaces: the pod's IPs), a link-local address or a
// cloud platform endpoint (metadata, WireServer), checked on the addresses
// a name resolves to, so that no ExternalSource reaches them through a DNS
// name, a redirect or an IPv6 spelling of an IPv4 address.
type URLPolicy struct {
	// Allowed, when not empty, lists the patterns one of which a URL must match.
	Allowed []*regexp.Regexp
	// Denied lists patterns no URL may match.
	Denied []*regexp.Regexp
	// AllowLinkLocal lifts the default denial of link-local and platform
	// (metadata) addresses.
	AllowLinkLocal bool
	// AllowedRanges lifts the default denial for the addresses inside
	// them (e.g. 127.0.0.0/8 for a development cluster); an embedded IPv4
	// address (IPv4-mapped, IPv4-compatible, NAT64) is allowed when the
	// IPv4 address is.
	AllowedRanges []netip.Prefix

	// ownAddrs, when set, replaces the host's addresses (tests).
	ownAddrs *hostAddrs
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

// ParseAddressRanges parses --allowed-address-ranges: CIDRs, or single
// addresses (a /32 or /128).
func ParseAddressRanges(ranges []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ranges {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--allowed-address-ranges %q: not a CIDR or an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// CheckURL says why a URL is refused by the patterns, or nil. The message
// carries the URL redacted (no userinfo, no query values) and names the
// rule.
func (p *URLPolicy) CheckURL(u string) error {
	if p == nil {
		return nil
	}
	for _, re := range p.Denied {
		if re.MatchString(u) {
			return fmt.Errorf("%s is denied by the controller's URL policy (--denied-url-patterns %q): %w",
				redact.URL(u), unanchor(re), ErrDenied)
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
	return fmt.Errorf("%s matches none of the controller's --allowed-url-patterns: %w", redact.URL(u), ErrDenied)
}

// unanchor returns the admin's pattern as written.
func unanchor(re *regexp.Regexp) string {
	return strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$")
}

// deniedRange is one range denied by default.
type deniedRange struct {
	prefix netip.Prefix
	why    string
	// platform ranges (link-local, metadata) are lifted by AllowLinkLocal.
	platform bool
}

// defaultDenied is what no source may reach unless the admin allows it.
// Loopback and unspecified addresses reach the controller's own metrics,
// probe and artifact ports without crossing any NetworkPolicy; the rest
// are where clouds serve instance credentials.
var defaultDenied = func() []deniedRange {
	r := func(s, why string, platform bool) deniedRange {
		return deniedRange{prefix: netip.MustParsePrefix(s), why: why, platform: platform}
	}
	const (
		loopback    = "a loopback address (the controller's own ports)"
		unspecified = "an unspecified address (it reaches the controller's own host)"
		linkLocal   = "a link-local address (cloud metadata services live there)"
	)
	return []deniedRange{
		r("127.0.0.0/8", loopback, false),
		r("::1/128", loopback, false),
		r("0.0.0.0/8", unspecified, false),
		r("::/128", unspecified, false),
		r("169.254.0.0/16", linkLocal, true),
		r("fe80::/10", linkLocal, true),
		r("224.0.0.0/24", "a link-local multicast address", true),
		r("ff02::/16", "a link-local multicast address", true),
		r("168.63.129.16/32", "a cloud platform address (Azure WireServer)", true),
		r("192.0.0.192/32", "a cloud metadata address (Oracle Cloud)", true),
		r("100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)", true),
		r("fd00:ec2::254/128", "a cloud metadata address (AWS IMDS over IPv6)", true),
		r("fd00:ec2::23/128", "a cloud credentials address (AWS EKS Pod Identity over IPv6)", true),
		r("fd20:ce::254/128", "a cloud metadata address (Google Cloud over IPv6)", true),
	}
}()

var (
	// ipv4Compatible is the deprecated ::a.b.c.d form (RFC 4291).
	ipv4Compatible = netip.MustParsePrefix("::/96")
	// nat64WellKnown is RFC 6052's well-known prefix: the IPv4 address in
	// the last 32 bits.
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
	// nat64Local is RFC 8215's local-use prefix, which an operator
	// divides with any RFC 6052 prefix length from /48 on.
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
)

// nat64Layout is where RFC 6052 puts the IPv4 address for one prefix
// length: its four bytes, and the first byte of the suffix, which (like
// byte 8, the "u" octet) must be zero.
type nat64Layout struct {
	v4     [4]int
	suffix int
}

// nat64Layouts are the layouts of the prefix lengths possible inside
// 64:ff9b:1::/48: /48, /56, /64 and /96.
var nat64Layouts = []nat64Layout{
	{v4: [4]int{6, 7, 9, 10}, suffix: 11},
	{v4: [4]int{7, 9, 10, 11}, suffix: 12},
	{v4: [4]int{9, 10, 11, 12}, suffix: 13},
	{v4: [4]int{12, 13, 14, 15}, suffix: 16},
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address stands for when
// it is an IPv4-compatible or NAT64 address, with the form's name. An
// address of the local-use NAT64 prefix does not say which prefix length
// the operator chose, so every layout its bits are consistent with (zero
// "u" octet and suffix) counts: a rare false positive is lifted with
// --allowed-address-ranges, a false negative would reach the metadata
// service.
func embeddedIPv4(a netip.Addr) (form string, v4s []netip.Addr) {
	b := a.As16()
	at := func(l nat64Layout) netip.Addr {
		return netip.AddrFrom4([4]byte{b[l.v4[0]], b[l.v4[1]], b[l.v4[2]], b[l.v4[3]]})
	}
	last := nat64Layouts[len(nat64Layouts)-1]
	switch {
	case ipv4Compatible.Contains(a):
		return "IPv4-compatible", []netip.Addr{at(last)}
	case nat64WellKnown.Contains(a):
		return "NAT64", []netip.Addr{at(last)}
	case nat64Local.Contains(a):
		for _, l := range nat64Layouts {
			consistent := l.suffix == 16 || b[8] == 0
			for i := l.suffix; i < 16; i++ {
				consistent = consistent && b[i] == 0
			}
			if consistent {
				v4s = append(v4s, at(l))
			}
		}
		return "NAT64 (local-use prefix)", v4s
	}
	return "", nil
}

// thisNetwork is 0.0.0.0/8. Embedded in an IPv4-compatible or NAT64
// address it is no way to the controller's host (a NAT64 gateway does not
// translate to it), and every non-/96 layout of the local-use NAT64 prefix
// reads as 0.0.0.0 under the /96 one; it is not held against such forms.
var thisNetwork = netip.MustParsePrefix("0.0.0.0/8")

// deniedIP reports why ip may not be connected to, or "". A net.IP does
// not tell an IPv4 address from its IPv4-mapped form (::ffff:a.b.c.d):
// both are one and the same connection to the IPv4 address.
func (p *URLPolicy) deniedIP(ip net.IP) string {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return "not an IP address"
	}
	return p.deniedAddr(a.Unmap())
}

func (p *URLPolicy) deniedAddr(a netip.Addr) string {
	if p.allowedRange(a) {
		return ""
	}
	if a.Is4In6() {
		if why := p.deniedAddr(a.Unmap()); why != "" {
			return fmt.Sprintf("the IPv4-mapped form of %s, %s", a.Unmap(), why)
		}
		return ""
	}
	for _, d := range defaultDenied {
		if d.platform && p != nil && p.AllowLinkLocal {
			continue
		}
		if d.prefix.Contains(a) {
			return d.why
		}
	}
	// Not a platform address: --allow-link-local does not lift the host's
	// own link-local addresses.
	if p.hostAddrs().contains(a) {
		return ownAddress
	}
	if a.Is6() {
		form, v4s := embeddedIPv4(a)
		for _, v4 := range v4s {
			if thisNetwork.Contains(v4) {
				continue
			}
			if why := p.deniedAddr(v4); why != "" {
				return fmt.Sprintf("the %s form of %s, %s", form, v4, why)
			}
		}
	}
	return ""
}

// ownAddress is why the host's own addresses are denied.
const ownAddress = "an address of the controller's own host (its pod IP reaches the controller's own ports)"

// hostAddrs returns the host's addresses the policy denies.
func (p *URLPolicy) hostAddrs() *hostAddrs {
	if p != nil && p.ownAddrs != nil {
		return p.ownAddrs
	}
	return ownAddrs
}

func (p *URLPolicy) allowedRange(a netip.Addr) bool {
	if p == nil {
		return false
	}
	for _, r := range p.AllowedRanges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// Resolver resolves host names; net.DefaultResolver by default, a fake in
// tests.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// ErrDenied marks a request refused by the URL policy: a URL pattern, a
// denied address (checked on the address connected to), a redirect the
// policy forbids. Such an error is not retried within the fetch.
var ErrDenied = errors.New("denied by the URL policy")

// allowedHint tells the admin how to lift an address denial.
const allowedHint = "an admin can allow it with --allowed-address-ranges"

// dialer resolves, checks every address against the policy, and dials an
// allowed one: the address checked is the address connected to. With
// trustProxy, the connection to the admin's proxy (from the environment)
// that the current request goes through is dialled without a check; a
// direct request to the same address is checked like any other.
func (g *Generator) dialer(trustProxy bool) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	policy := g.opts.URLPolicy
	dial := g.dial
	if dial == nil {
		dial = d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if trustProxy {
			if _, _, proxy := fetchStateFrom(ctx).get(); proxy != "" && proxy == addr {
				return dial(ctx, network, addr)
			}
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := g.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		var lastErr error
		for _, ip := range ips {
			if why := policy.deniedIP(ip); why != "" {
				lastErr = fmt.Errorf("%s is %s; %s: %w", hostAndIP(host, ip), why, allowedHint, ErrDenied)
				continue
			}
			conn, err := dial(ctx, network, net.JoinHostPort(ip.String(), port))
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

// hostAndIP names a host and the address it resolved to.
func hostAndIP(host string, ip net.IP) string {
	if net.ParseIP(host).Equal(ip) {
		return host
	}
	return host + " (" + ip.String() + ")"
}

// resolve returns the addresses of host (itself when it is an address).
func (g *Generator) resolve(ctx context.Context, host string) ([]net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}, nil
	}
	resolver := g.opts.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	ips := make([]net.IP, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, a.IP)
	}
	return ips, nil
}

// checkProxiedTarget checks the target of a request a proxy will make for
// the controller: the proxy connects, not this process, so the dialer
// never sees the target's address. The target is resolved here and
// refused when any of its addresses is denied (the proxy may pick any of
// them). A name this network does not know (NXDOMAIN) is handed to the
// proxy: resolving what the cluster cannot is what egress proxies are for
// in closed networks, and such a name cannot point at this network's
// addresses through this network's DNS. The proxy's own resolver may still
// answer differently, so the proxy must deny internal and metadata
// addresses itself (docs/security.md). Other lookup failures are errors.
func (g *Generator) checkProxiedTarget(ctx context.Context, target *url.URL) error {
	host := target.Hostname()
	ips, err := g.resolve(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return nil
		}
		return fmt.Errorf("%s is fetched through a proxy, and its host must resolve here to be checked first: %w", redact.URL(target.String()), err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%s is fetched through a proxy, and its host %s has no address to check: %w", redact.URL(target.String()), host, ErrDenied)
	}
	for _, ip := range ips {
		if why := g.opts.URLPolicy.deniedIP(ip); why != "" {
			return fmt.Errorf("%s is not handed to the proxy: %s is %s; %s: %w",
				redact.URL(target.String()), hostAndIP(host, ip), why, allowedHint, ErrDenied)
		}
	}
	return nil
}

// proxyFunc wraps the proxy choice of a client: a request that goes
// through a proxy has its target checked first (every hop: the transport
// asks for every request, redirects and retries included, before it
// dials). With trusted, the proxy chosen is the admin's own, which the
// dialer connects to for this request without an address check (an
// HTTPS_PROXY on loopback is common).
func (g *Generator) proxyFunc(choose func(*http.Request) (*url.URL, error), trusted bool) func(*http.Request) (*url.URL, error) {
	return func(r *http.Request) (*url.URL, error) {
		state := fetchStateFrom(r.Context())
		state.set(func(s *fetchState) { s.proxy = "" })
		proxy, err := choose(r)
		if err != nil || proxy == nil {
			return proxy, err
		}
		if err := g.checkProxiedTarget(r.Context(), r.URL); err != nil {
			return nil, err
		}
		if trusted {
			state.set(func(s *fetchState) { s.proxy = proxyAddr(proxy) })
		}
		return proxy, nil
	}
}

// proxyAddr is the host:port the transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
