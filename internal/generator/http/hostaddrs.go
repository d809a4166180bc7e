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
	"net"
	"net/netip"
	"sync"
	"time"
)

// hostAddrsMaxAge is how long the host's interface addresses are reused
// before they are read again: an address added later (a new pod IP, a
// second interface) is denied from the next read on.
const hostAddrsMaxAge = 10 * time.Second

// hostAddrs is the set of the addresses of the host's own interfaces (the
// pod's IPs). The controller's listeners bind every interface, and traffic
// to a pod's own IP is delivered locally, past every NetworkPolicy: a
// source fetching http://<pod IP>:<metrics port>/ would reach the
// controller's own ports as loopback would (issue 23).
type hostAddrs struct {
	mu    sync.Mutex
	addrs map[netip.Addr]struct{}
	read  time.Time
	// interfaceAddrs and now are net.InterfaceAddrs and time.Now; tests
	// replace them.
	interfaceAddrs func() ([]net.Addr, error)
	now            func() time.Time
}

// ownAddrs are this process's host addresses, read at the first check and
// again when older than hostAddrsMaxAge.
var ownAddrs = &hostAddrs{interfaceAddrs: net.InterfaceAddrs, now: time.Now}

// contains reports whether a is an address of one of the host's
// interfaces. A failed read keeps the addresses read before (an address
// the host had stays denied).
func (h *hostAddrs) contains(a netip.Addr) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if now := h.now(); h.addrs == nil || now.Sub(h.read) >= hostAddrsMaxAge {
		if list, err := h.interfaceAddrs(); err == nil {
			addrs := make(map[netip.Addr]struct{}, len(list))
			for _, l := range list {
				var ip net.IP
				switch v := l.(type) {
				case *net.IPNet:
					ip = v.IP
				case *net.IPAddr:
					ip = v.IP
				}
				if x, ok := netip.AddrFromSlice(ip); ok {
					addrs[x.Unmap()] = struct{}{}
				}
			}
			h.addrs = addrs
		} else if h.addrs == nil {
			h.addrs = map[netip.Addr]struct{}{}
		}
		h.read = now
	}
	_, ok := h.addrs[a.WithZone("")]
	return ok
}
