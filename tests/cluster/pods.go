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
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodPIDs returns the host PIDs of a pod's processes, read from the pod's
// cgroup (the images built here have no shell to exec into).
func (c *Cluster) PodPIDs(ctx context.Context, ns, name string) ([]int, error) {
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	qos := ""
	switch pod.Status.QOSClass {
	case corev1.PodQOSBestEffort:
		qos = "besteffort"
	case corev1.PodQOSBurstable:
		qos = "burstable"
	}
	dir := filepath.Join("/sys/fs/cgroup/pids", c.cgroupRoot, "kubepods", qos, "pod"+string(pod.UID))
	var pids []int
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	if len(pids) == 0 {
		return nil, fmt.Errorf("pod %s/%s: no processes in %s (%v)", ns, name, dir, err)
	}
	return pids, nil
}

// PodExecHost runs a host command in a pod's network namespace (nsenter)
// and returns its output: the pod's routes or addresses as the pod sees
// them.
func (c *Cluster) PodExecHost(ctx context.Context, ns, name string, args ...string) (string, error) {
	pids, err := c.PodPIDs(ctx, ns, name)
	if err != nil {
		return "", err
	}
	full := append([]string{"-t", strconv.Itoa(pids[0]), "-n", "--"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nsenter %s: %w: %s", strings.Join(full, " "), err, out)
	}
	return string(out), nil
}

// ContainerPIDs returns the host PIDs of one container of a pod.
func (c *Cluster) ContainerPIDs(ctx context.Context, ns, name, container string) ([]int, error) {
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	id := ""
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == container {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	if id == "" {
		return nil, fmt.Errorf("pod %s/%s has no running container %s", ns, name, container)
	}
	var pids []int
	_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup/pids", c.cgroupRoot), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() || filepath.Base(p) != id {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return filepath.SkipAll
	})
	if len(pids) == 0 {
		return nil, fmt.Errorf("container %s of pod %s/%s: no processes", container, ns, name)
	}
	return pids, nil
}

// HTTPClient returns a client for the tests' requests from the host to the
// cluster's Services by name: names under cluster.local are resolved by
// CoreDNS through its Service address, and the connection goes through
// kube-proxy's rules, as a pod's would.
func (c *Cluster) HTTPClient() *http.Client {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(c.DNSIP.String(), "53"))
	}}
	d := &net.Dialer{Resolver: r, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}
