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

package cluster

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// outsidePaths are the places the node's parts write to whatever their
// configuration says (the kubelet's device-plugin socket and container log
// links, the CNI plugins' cache, containerd's shim sockets, CRI's network
// namespaces). Teardown removes what appeared in them.
var outsidePaths = []string{
	"/var/lib/kubelet",
	"/var/log/containers",
	"/var/log/pods",
	"/var/lib/cni",
	"/run/containerd",
	"/var/run/netns",
	"/run/netns",
	"/etc/cni",
	"/opt/cni",
}

// restoredSysctls are the sysctls the kubelet, kube-proxy and the bridge
// plugin are known to set; teardown writes their saved values back.
var restoredSysctls = []string{
	"vm/overcommit_memory",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/forwarding",
	"net/ipv4/conf/default/forwarding",
	"net/ipv4/conf/all/route_localnet",
	"net/ipv6/conf/all/forwarding",
	"net/ipv6/conf/default/forwarding",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
	"net/netfilter/nf_conntrack_tcp_be_liberal",
	"net/netfilter/nf_conntrack_udp_timeout",
	"net/netfilter/nf_conntrack_udp_timeout_stream",
}

// volatileSysctls change on their own (or on every read) and are not
// compared.
var volatileSysctls = regexp.MustCompile(`^(kernel/ns_last_pid|kernel/random/|fs/binfmt_misc/|vm/drop_caches|vm/compact_memory|net/ipv6/conf/[^/]+/stable_secret|kernel/sched_domain/|fs/.*-state$|fs/file-nr|fs/inode-nr|kernel/pty/nr|kernel/tainted)`)

// HostState is what of the machine the cluster may change: taken before the
// cluster starts and again after teardown, the two must be equal.
type HostState struct {
	Links    []string
	Routes   []string
	Mounts   []string
	IPTables map[string][]string
	Cgroups  []string
	Sysctls  map[string]string
	Files    map[string][]string
}

// Snapshot reads the host state. cgroupRoot names the kubelet's cgroup
// root, whose absence in every hierarchy is part of the state.
func Snapshot() (*HostState, error) {
	s := &HostState{IPTables: map[string][]string{}, Sysctls: map[string]string{}, Files: map[string][]string{}}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, i := range ifs {
		s.Links = append(s.Links, i.Name)
	}
	sort.Strings(s.Links)
	for _, args := range [][]string{{"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			return nil, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		s.Routes = append(s.Routes, lines(out)...)
	}
	sort.Strings(s.Routes)
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	for _, l := range lines(mi) {
		f := strings.Fields(l)
		if len(f) > 4 {
			s.Mounts = append(s.Mounts, f[4])
		}
	}
	sort.Strings(s.Mounts)
	for _, tool := range []string{"iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		out, err := exec.Command(tool).Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		s.IPTables[tool] = iptablesLines(out)
	}
	hier, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	for _, h := range hier {
		sub, err := os.ReadDir(filepath.Join("/sys/fs/cgroup", h.Name()))
		if err != nil {
			continue
		}
		for _, d := range sub {
			if d.IsDir() {
				s.Cgroups = append(s.Cgroups, h.Name()+"/"+d.Name())
			}
		}
	}
	sort.Strings(s.Cgroups)
	_ = filepath.WalkDir("/proc/sys", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm()&0o200 == 0 {
			return nil
		}
		key := strings.TrimPrefix(p, "/proc/sys/")
		if volatileSysctls.MatchString(key) {
			return nil
		}
		if v, err := os.ReadFile(p); err == nil {
			s.Sysctls[key] = string(v)
		}
		return nil
	})
	for _, root := range outsidePaths {
		s.Files[root] = listTree(root)
	}
	return s, nil
}

// Diff lists every difference between two states; nothing means equal.
// Sysctls of interfaces present in only one state are not compared. Links,
// routes, mounts and cgroups are compared when ours says they can be the
// cluster's: other tests of `make test` run beside this package and make
// their own (nil compares all).
func (s *HostState) Diff(after *HostState, ours func(string) bool) []string {
	if ours == nil {
		ours = func(string) bool { return true }
	}
	filter := func(xs []string) []string {
		var out []string
		for _, x := range xs {
			if ours(x) {
				out = append(out, x)
			}
		}
		return out
	}
	var d []string
	d = append(d, diffSets("link", filter(s.Links), filter(after.Links))...)
	d = append(d, diffSets("route", filter(s.Routes), filter(after.Routes))...)
	d = append(d, diffSets("mount", filter(s.Mounts), filter(after.Mounts))...)
	d = append(d, diffSets("cgroup", filter(s.Cgroups), filter(after.Cgroups))...)
	for tool, before := range s.IPTables {
		d = append(d, diffSets(tool, before, after.IPTables[tool])...)
	}
	for k, v := range s.Sysctls {
		if w, ok := after.Sysctls[k]; ok && w != v {
			d = append(d, fmt.Sprintf("sysctl %s: %q, was %q", k, strings.TrimSpace(w), strings.TrimSpace(v)))
		}
	}
	for root, before := range s.Files {
		d = append(d, diffSets("file under "+root, before, after.Files[root])...)
	}
	sort.Strings(d)
	return d
}

func diffSets(what string, before, after []string) []string {
	b := map[string]int{}
	for _, x := range before {
		b[x]++
	}
	a := map[string]int{}
	for _, x := range after {
		a[x]++
	}
	var d []string
	for x, n := range a {
		if b[x] < n {
			d = append(d, fmt.Sprintf("%s left behind: %s", what, x))
		}
	}
	for x, n := range b {
		if a[x] < n {
			d = append(d, fmt.Sprintf("%s gone: %s", what, x))
		}
	}
	return d
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// iptablesLines is iptables-save's output without comments and counters.
func iptablesLines(b []byte) []string {
	var out []string
	for _, l := range lines(b) {
		if strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, counters.ReplaceAllString(l, ""))
	}
	return out
}

func listTree(root string) []string {
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}
