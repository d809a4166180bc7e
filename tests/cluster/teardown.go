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
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Stop tears the cluster down and then checks the host: no process, mount,
// link, route, iptables rule, cgroup, file in the places the node's parts
// write outside their directories, or changed sysctl may be left of it.
// It returns every leftover it found (after removing what it could).
func (c *Cluster) Stop() error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	c.stopProc("kube-controller-manager")
	c.stopProc("kube-scheduler")
	c.deletePods()
	c.stopProc("kube-proxy")
	if c.alive("kubelet") {
		c.stopProc("kubelet")
	}
	c.killTasks()
	c.stopProc("containerd")
	note(c.killStragglers())
	note(c.unmount())
	note(c.removeCgroups())
	note(c.sweepIPTables())
	c.removeLinks()
	c.restoreSysctls()
	c.removeOutsideFiles()
	c.stopProc("kube-apiserver")
	c.stopProc("etcd")
	for _, p := range c.procs {
		select {
		case <-p.done:
		default:
			errs = append(errs, fmt.Errorf("process %s (pid %d) still running", p.name, p.cmd.Process.Pid))
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", c.Dir, err))
	}
	if pids := c.processesOf(); len(pids) > 0 {
		errs = append(errs, fmt.Errorf("processes left behind: %v", pids))
	}
	if c.before != nil {
		after, err := Snapshot()
		if err != nil {
			errs = append(errs, err)
		} else if d := c.before.Diff(after, c.mayBeOurs); len(d) > 0 {
			errs = append(errs, fmt.Errorf("host state changed:\n  %s", strings.Join(d, "\n  ")))
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) find(name string) *proc {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (c *Cluster) alive(name string) bool {
	p := c.find(name)
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stopProc sends SIGTERM to a component's process group, then SIGKILL
// after ten seconds.
func (c *Cluster) stopProc(name string) {
	p := c.find(name)
	if p == nil {
		return
	}
	p.stopped = true
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever else ran in its group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// deletePods deletes every pod at once and waits (a minute at most) for the
// kubelet to stop their sandboxes, which runs the CNI plugin's DEL.
func (c *Cluster) deletePods() {
	if c.Client == nil || !c.alive("kubelet") || !c.alive("kube-apiserver") {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	zero := int64(0)
	nss, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, ns := range nss.Items {
		_ = c.Client.CoreV1().Pods(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
	}
	_ = c.waitFor(ctx, "every pod's sandbox stopped", time.Minute, func(context.Context) (bool, error) {
		out, err := exec.Command("ctr", "--address", c.ContainerdSocket, "-n", "k8s.io", "tasks", "ls", "-q").Output()
		return err == nil && strings.TrimSpace(string(out)) == "", nil
	})
}

// killTasks kills what containerd still runs (after a failed pod deletion).
func (c *Cluster) killTasks() {
	if !c.alive("containerd") {
		return
	}
	ctr := func(args ...string) string {
		out, _ := exec.Command("ctr", append([]string{"--address", c.ContainerdSocket, "-n", "k8s.io"}, args...)...).Output()
		return string(out)
	}
	for _, id := range strings.Fields(ctr("tasks", "ls", "-q")) {
		ctr("tasks", "kill", "-s", "SIGKILL", id)
	}
	time.Sleep(time.Second)
	for _, id := range strings.Fields(ctr("tasks", "ls", "-q")) {
		ctr("tasks", "delete", "-f", id)
	}
}

// processesOf lists the processes that belong to the cluster: those whose
// command line names its directory (containerd's shims) and those in its
// cgroups (the containers).
func (c *Cluster) processesOf() []int {
	seen := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && c.Dir != "" && strings.Contains(string(cl), c.Dir) {
			seen[pid] = true
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && c.cgroupRoot != "" && strings.Contains(string(cg), ":"+c.cgroupRoot+"/") {
			seen[pid] = true
		}
	}
	var out []int
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// killStragglers SIGKILLs the cluster's processes left after containerd
// stopped (shims, containers) and waits for them to go.
func (c *Cluster) killStragglers() error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := c.processesOf()
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes that would not die: %v", pids)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// unmount detaches every mount under the cluster's directory and every new
// mount in the places the node's parts write outside it (CRI's network
// namespaces), deepest first.
func (c *Cluster) unmount() error {
	var errs []error
	for range 3 {
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		old := map[string]bool{}
		if c.before != nil {
			for _, m := range c.before.Mounts {
				old[m] = true
			}
		}
		var ours []string
		for _, l := range lines(mi) {
			f := strings.Fields(l)
			if len(f) < 5 {
				continue
			}
			m := unescapeMount(f[4])
			if strings.HasPrefix(m, c.Dir+"/") || (!old[f[4]] && underOutside(m)) {
				ours = append(ours, m)
			}
		}
		if len(ours) == 0 {
			return nil
		}
		sort.Slice(ours, func(i, j int) bool { return len(ours[i]) > len(ours[j]) })
		errs = errs[:0]
		for _, m := range ours {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func underOutside(p string) bool {
	for _, o := range outsidePaths {
		if p == o || strings.HasPrefix(p, o+"/") {
			return true
		}
	}
	return false
}

// removeCgroups removes the kubelet's cgroup root, children first, in
// every hierarchy.
func (c *Cluster) removeCgroups() error {
	if c.cgroupRoot == "" {
		return nil
	}
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	var errs []error
	for _, h := range hier {
		root := filepath.Join("/sys/fs/cgroup", h.Name(), c.cgroupRoot)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for range 50 {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ourChain says whether an iptables chain is one the cluster's parts
// create: the kubelet's and kube-proxy's KUBE-*, the CNI plugins' CNI-*,
// and the guard chain.
func ourChain(name string) bool {
	return strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") || name == guardChain
}

// sweepIPTables deletes, in every table of every iptables flavour, the
// rules that jump to or mention the cluster's chains, bridge or ranges,
// then the cluster's chains themselves.
func (c *Cluster) sweepIPTables() error {
	var errs []error
	for _, fl := range []struct{ save, restore string }{
		{"iptables-save", "iptables-restore"}, {"ip6tables-save", "ip6tables-restore"},
		{"iptables-legacy-save", "iptables-legacy-restore"}, {"ip6tables-legacy-save", "ip6tables-legacy-restore"},
	} {
		if _, err := exec.LookPath(fl.save); err != nil {
			continue
		}
		out, err := exec.Command(fl.save).Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fl.save, err))
			continue
		}
		var script []string
		var table string
		var chains, rules []string
		flush := func() {
			if table == "" || (len(chains) == 0 && len(rules) == 0) {
				return
			}
			script = append(script, "*"+table)
			script = append(script, rules...)
			for _, ch := range chains {
				script = append(script, "-F "+ch)
			}
			for _, ch := range chains {
				script = append(script, "-X "+ch)
			}
			script = append(script, "COMMIT")
		}
		for _, l := range lines(out) {
			switch {
			case strings.HasPrefix(l, "*"):
				flush()
				table, chains, rules = l[1:], nil, nil
			case strings.HasPrefix(l, ":"):
				if ch := strings.Fields(l[1:])[0]; ourChain(ch) {
					chains = append(chains, ch)
				}
			case strings.HasPrefix(l, "-A "):
				f := strings.Fields(l)
				if ourChain(f[1]) {
					continue // flushed with its chain
				}
				if c.mentionsUs(l) {
					rules = append(rules, "-D"+l[2:])
				}
			}
		}
		flush()
		if len(script) == 0 {
			continue
		}
		if len(script) > 0 {
			cmd := exec.Command(fl.restore, "-w", "--noflush")
			cmd.Stdin = strings.NewReader(strings.Join(script, "\n") + "\n")
			if b, err := cmd.CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w: %s", fl.restore, err, b))
			}
		}
		errs = append(errs, c.dropNewTables(fl.save))
	}
	return errors.Join(errs...)
}

// dropNewTables deletes the nf_tables tables that iptables-nft created for
// the cluster (a table is created on first use and stays, empty, after its
// rules are gone): those absent before the cluster started and now without
// rules. Legacy iptables' tables cannot be removed and are left alone.
func (c *Cluster) dropNewTables(save string) error {
	family := map[string]string{"iptables-save": "ip", "ip6tables-save": "ip6"}[save]
	if family == "" || c.before == nil {
		return nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	had := map[string]bool{}
	for _, l := range c.before.IPTables[save] {
		if strings.HasPrefix(l, "*") {
			had[l[1:]] = true
		}
	}
	out, err := exec.Command(save).Output()
	if err != nil {
		return err
	}
	rules := map[string]int{}
	var table string
	for _, l := range lines(out) {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
			rules[table] += 0
		case strings.HasPrefix(l, "-A "):
			rules[table]++
		}
	}
	var errs []error
	for t, n := range rules {
		if had[t] || n > 0 {
			continue
		}
		if err := run("nft", "delete", "table", family, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Cluster) mentionsUs(rule string) bool {
	for _, s := range []string{"-j KUBE-", "-j CNI-", "-j " + guardChain, "-g KUBE-", "-g CNI-",
		" " + c.opts.Bridge + " ", c.opts.PodCIDR, c.opts.ServiceCIDR} {
		if strings.Contains(rule+" ", s) {
			return true
		}
	}
	return false
}

// removeLinks deletes the veths on the bridge (left when a sandbox was not
// stopped) and the bridge, with its routes.
func (c *Cluster) removeLinks() {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", c.opts.Bridge).Output()
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			_ = run("ip", "link", "del", name)
		}
	}
	if _, err := os.Stat("/sys/class/net/" + c.opts.Bridge); err == nil {
		_ = run("ip", "link", "del", c.opts.Bridge)
	}
}

// restoreSysctls writes back the sysctls saved before the cluster started
// (the kubelet sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops;
// the bridge plugin net.ipv4.ip_forward).
func (c *Cluster) restoreSysctls() {
	// ip_forward first: writing it resets every interface's forwarding.
	keys := []string{"net/ipv4/ip_forward"}
	for k := range c.sysctls {
		if k != "net/ipv4/ip_forward" {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		v, ok := c.sysctls[k]
		if !ok {
			continue
		}
		p := filepath.Join("/proc/sys", k)
		if cur, err := os.ReadFile(p); err == nil && string(cur) != v {
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				c.opts.Log("restoring %s: %v", k, err)
			}
		}
	}
}

// removeOutsideFiles removes what appeared under the places the node's
// parts write outside the cluster's directory.
func (c *Cluster) removeOutsideFiles() {
	if c.before == nil {
		return
	}
	for _, root := range outsidePaths {
		old := map[string]bool{}
		for _, p := range c.before.Files[root] {
			old[p] = true
		}
		now := listTree(root)
		sort.Slice(now, func(i, j int) bool { return len(now[i]) > len(now[j]) })
		for _, p := range now {
			if !old[p] {
				_ = os.RemoveAll(p)
			}
		}
	}
}

// mayBeOurs says whether a link, route, mount point or cgroup could be the
// cluster's: anything naming its bridge, a veth, its ranges, its directory,
// the places its parts write to, or a cgroup the kubelet or containerd
// makes.
func (c *Cluster) mayBeOurs(x string) bool {
	for _, m := range []string{c.opts.Bridge, "veth", "cni", c.Dir, "kubepods", "exs-cluster-", "containerd", "kubelet", "netns",
		strings.TrimSuffix(c.opts.PodCIDR, ".0/24"), strings.TrimSuffix(c.opts.ServiceCIDR, ".0/24")} {
		if m != "" && strings.Contains(x, m) {
			return true
		}
	}
	return underOutside(x)
}
