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
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// conditionMessages joins every condition's type, reason and message.
func conditionMessages(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var out []string
	for _, c := range conds {
		m := c.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v %v: %v", m["type"], m["status"], m["reason"], m["message"]))
	}
	return strings.Join(out, "; ")
}

// volumeUsage is what the kubelet measures of an emptyDir: the blocks its
// files take (du), read from the host.
func volumeUsage(dir string) int64 {
	var sum int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			sum += st.Blocks * 512
		}
		return nil
	})
	return sum
}

// attackUpstream serves what tenants point their sources at: an endless
// body, a body just under --max-response-size, and an archive bomb (a
// tar.gz of a few MiB unpacking to 1 GiB), on the bridge's address.
func attackUpstream(t *testing.T) string {
	t.Helper()
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	const bombSize = 1 << 30
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: bombSize, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for i := 0; i < bombSize/len(zero); i++ {
		_, _ = tw.Write(zero)
	}
	_ = tw.Close()
	_ = zw.Close()
	// A JSON string just under the default --max-response-size (50 MiB).
	big := append(append([]byte(`"`), bytes.Repeat([]byte("a"), 49<<20)...), '"')

	l, err := net.Listen("tcp", net.JoinHostPort(testCluster.NodeIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/endless", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
	mux.HandleFunc("/bomb.tar.gz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bomb.Bytes()) })
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	t.Logf("archive bomb: %d bytes of tar.gz unpacking to %d MiB", bomb.Len(), bombSize>>20)
	return "http://" + l.Addr().String()
}

// TestNoTenantEvictsThePod is scenario e: tenants fill every path they
// control toward the pod's emptyDirs at once: endless upstream bodies and
// bodies just under the size cap (the manager's spool), post-request hooks
// printing without end on top of those (the spool again), an archive bomb
// through spec.extract (the extraction, in the spool), and hooks writing
// file after file in their working directory (the sidecar's hook-tmp).
// Throughout, each emptyDir's usage, measured from the host as the
// kubelet measures it, stays within its sizeLimit by the controller's own
// caps; the kubelet evicts nothing and no container restarts; every attack
// fails with the cap that stopped it.
func TestNoTenantEvictsThePod(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	// Every container running and Ready first: a container an earlier
	// test killed may still be in its restart back-off, and its restart
	// would count here.
	var pod corev1.Pod
	g.Eventually(func() []string {
		pods, err := c.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
		if err != nil {
			return []string{err.Error()}
		}
		if len(pods.Items) != 1 {
			return []string{fmt.Sprintf("%d pods", len(pods.Items))}
		}
		pod = pods.Items[0]
		var waiting []string
		for _, s := range pod.Status.ContainerStatuses {
			if !s.Ready || s.State.Running == nil {
				waiting = append(waiting, s.Name)
			}
		}
		return waiting
	}, 6*time.Minute, time.Second).Should(BeEmpty())
	restarts := func(p *corev1.Pod) map[string]int32 {
		m := map[string]int32{}
		for _, s := range p.Status.ContainerStatuses {
			m[s.Name] = s.RestartCount
		}
		return m
	}
	before := restarts(&pod)
	limits := map[string]int64{}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && (v.Name == "tmp" || v.Name == "hook-tmp") {
			limits[v.Name] = v.EmptyDir.SizeLimit.Value()
		}
	}
	g.Expect(limits).To(HaveLen(2), "the spool and the hooks' volume have sizeLimits")
	volDir := func(name string) string {
		return filepath.Join(c.Dir, "kubelet", "pods", string(pod.UID), "volumes", "kubernetes.io~empty-dir", name)
	}
	for name := range limits {
		_, err := os.Stat(volDir(name))
		g.Expect(err).NotTo(HaveOccurred(), "the kubelet's directory of volume %s", name)
	}

	// The peaks, sampled from the host four times a second.
	var mu sync.Mutex
	peaks := map[string]int64{}
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for name := range limits {
				u := volumeUsage(volDir(name))
				mu.Lock()
				peaks[name] = max(peaks[name], u)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()

	up := attackUpstream(t)
	type attack struct {
		name, spec string
		// stoppedBy is what the source's conditions must say.
		stoppedBy []string
	}
	var attacks []attack
	tenants := []string{createNamespace(t, "tenant-a"), createNamespace(t, "tenant-b"), createNamespace(t, "tenant-c")}
	for _, ns := range tenants {
		attacks = append(attacks,
			attack{ns + "/endless", fmt.Sprintf(`generator: {type: http, http: {url: "%s/endless"}}`, up),
				[]string{"--max-response-size"}},
			attack{ns + "/bomb", fmt.Sprintf(`generator: {type: http, http: {url: "%s/bomb.tar.gz"}}
  extract: {format: tar.gz}`, up),
				// internal/extract's count, or fluxcd/pkg/tar's own cap
				// (set from the same limit) on a tar.gz stream.
				[]string{"--max-extract-size", "max archive size"}},
			attack{ns + "/fill", fmt.Sprintf(`generator: {type: http, http: {url: "%s/big"}}
  hooks:
    postRequest:
      - {name: fill, command: probe, args: [fill, "20", "1024"], timeout: 40s}`, up),
				[]string{"no space left on device"}},
		)
		// Hooks printing without end on top of a body at the cap: the
		// reconcile's spool budget or --hook-max-output stops each. Two
		// per namespace: with the fill, what the memory budget admits at
		// once (the others wait their turn).
		for j := 0; j < 2; j++ {
			attacks = append(attacks, attack{fmt.Sprintf("%s/flood-%d", ns, j), fmt.Sprintf(`generator: {type: http, http: {url: "%s/big"}}
  hooks:
    postRequest:
      - {name: flood, command: jq, args: ["-cn", "range(1e9)"], timeout: 30s}`, up),
				[]string{"output exceeds"}})
		}
	}
	// The attacks stop when the test ends, passed or not: the sources go.
	t.Cleanup(func() {
		for _, a := range attacks {
			ns, name, _ := strings.Cut(a.name, "/")
			_ = dyn(t).Resource(esGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	for _, a := range attacks {
		ns, name, _ := strings.Cut(a.name, "/")
		g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: %s, namespace: %s}
spec:
  interval: 1m
  timeout: 90s
  destinationPath: out
  %s
`, name, ns, a.spec))).To(Succeed(), a.name)
	}
	t.Logf("%d attacking sources in %d namespaces", len(attacks), len(tenants))

	// Every attack is stopped by its cap, in time for the kubelet to have
	// measured the volumes many times (every 10 s).
	start := time.Now()
	stopped := map[string]string{}
	g.Eventually(func() []string {
		var pending []string
		for _, a := range attacks {
			ns, name, _ := strings.Cut(a.name, "/")
			if _, ok := stopped[a.name]; ok {
				continue
			}
			u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				pending = append(pending, a.name+": "+err.Error())
				continue
			}
			msg := conditionMessages(u)
			hit := false
			for _, s := range a.stoppedBy {
				hit = hit || strings.Contains(msg, s)
			}
			if hit {
				stopped[a.name] = msg
				continue
			}
			pending = append(pending, a.name+": "+msg)
		}
		return pending
	}, 5*time.Minute, 2*time.Second).Should(BeEmpty())
	// More rounds of the attacks for the kubelet to measure.
	if d := 60*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	close(stop)
	<-sampled
	for _, a := range attacks {
		t.Logf("%s stopped: %s", a.name, stopped[a.name])
	}
	for name, limit := range limits {
		t.Logf("emptyDir %s: peak %d MiB of its sizeLimit %d MiB", name, peaks[name]>>20, limit>>20)
		// The kubelet evicts a pod whose emptyDir uses more than its
		// sizeLimit; a full tmpfs uses exactly it.
		g.Expect(peaks[name]).To(BeNumerically("<=", limit), "emptyDir %s", name)
	}
	g.Expect(peaks["hook-tmp"]).To(BeNumerically(">", limits["hook-tmp"]/2), "the hooks filled their volume (the attack ran)")

	// The kubelet evicted nothing: the same pod, running, no container
	// restarted, no Evicted event.
	p, err := c.Client.CoreV1().Pods(fluxNS).Get(ctx, pod.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(p.UID).To(Equal(pod.UID))
	g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning), "pod status: %s %s", p.Status.Reason, p.Status.Message)
	g.Expect(p.Status.Reason).NotTo(Equal("Evicted"))
	for _, s := range p.Status.ContainerStatuses {
		if s.RestartCount != before[s.Name] {
			t.Logf("container %s restarted: last state %+v", s.Name, s.LastTerminationState)
		}
	}
	g.Expect(restarts(p)).To(Equal(before), "no container restarted")
	evs, err := c.Client.CoreV1().Events(fluxNS).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, e := range evs.Items {
		g.Expect(e.Reason).NotTo(Equal("Evicted"), "event %s: %s", e.InvolvedObject.Name, e.Message)
	}
}
