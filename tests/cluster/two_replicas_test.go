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
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// haPatches are what a user adds to run two replicas on S3: the replicas,
// the s3 backend's flags (as config/s3 sets them) and its credentials'
// Secret. serviceDrain adds what the handover needs besides (docs/install.md,
// "Two replicas"): the Service routes only to Ready pods, so a deleted pod
// leaves it at once, and the manager keeps serving for a few seconds after
// that (a preStop sleep) while kube-proxy catches up; the other replica
// covers for a pod whose hook executor is sick.
func haPatches(endpoint string, serviceDrain bool) string {
	p := fmt.Sprintf(`  - target: {kind: Deployment, name: externalsource-controller}
    patch: |
      - {op: replace, path: /spec/replicas, value: 2}
      - {op: replace, path: /spec/template/spec/containers/0/args/4, value: --storage-backend=s3}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --s3-endpoint=%s}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --s3-bucket=artifacts}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --s3-region=us-east-1}
      - {op: add, path: /spec/template/spec/containers/0/args/-, value: --s3-insecure}
      - {op: add, path: /spec/template/spec/containers/0/envFrom, value: [{secretRef: {name: externalsource-s3}}]}
`, endpoint)
	if serviceDrain {
		p += `  - target: {kind: Deployment, name: externalsource-controller}
    patch: |
      - {op: add, path: /spec/template/spec/containers/0/lifecycle, value: {preStop: {sleep: {seconds: 5}}}}
  - target: {kind: Service, name: externalsource-controller}
    patch: |
      - {op: replace, path: /spec/publishNotReadyAddresses, value: false}
`
	}
	return p
}

// haPods returns the controller's pods, once there are want of them, all
// Ready and none terminating.
func haPods(t *testing.T, want int) []corev1.Pod {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	var pods []corev1.Pod
	g.Eventually(func() string {
		l, err := testCluster.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
		if err != nil {
			return err.Error()
		}
		pods = l.Items
		var states []string
		ready := 0
		for _, p := range pods {
			ok := p.DeletionTimestamp == nil
			found := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					found = c.Status == corev1.ConditionTrue
				}
			}
			if ok && found {
				ready++
			}
			states = append(states, fmt.Sprintf("%s ready=%v deleting=%v", p.Name, found, !ok))
		}
		if ready == want && len(pods) == want {
			return ""
		}
		return strings.Join(states, ", ")
	}, 4*time.Minute, time.Second).Should(BeEmpty())
	return pods
}

// leader returns the pod holding the controller's lease.
func leader(ctx context.Context) string {
	leases, err := testCluster.Client.CoordinationV1().Leases(fluxNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, l := range leases.Items {
		if strings.HasPrefix(l.Name, "externalsource-controller") && l.Spec.HolderIdentity != nil {
			id, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
			return id
		}
	}
	return ""
}

// handover deletes the leader pod while one loop downloads the artifacts
// at a steady rate (every 100 ms) through the Service's ClusterIP, and
// another watches the sources' Ready conditions. It returns the time until
// the other pod held the lease, the downloads and their failures, and the
// sources seen Ready=False.
func handover(t *testing.T, urls []string, watched map[string]string) (time.Duration, int, int, []string) {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	c := testCluster
	pods := haPods(t, 2)
	old := ""
	// After a rollout the lease may name a pod that is gone until it
	// expires: wait for one of these pods to hold it.
	g.Eventually(func() string { old = leader(ctx); return old }, 2*time.Minute, time.Second).Should(
		BeElementOf(pods[0].Name, pods[1].Name), "the lease's holder is one of the pods")
	hc := c.HTTPClient()
	for _, u := range urls {
		g.Eventually(func() error { return download(hc, u) }, time.Minute, time.Second).Should(Succeed())
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	downloads, failures := 0, 0
	var notReady []string
	var firstErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			err := download(hc, urls[i%len(urls)])
			mu.Lock()
			downloads++
			if err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
			}
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for name, ns := range watched {
				u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				if s, m := readyCondition(u); s == "False" {
					mu.Lock()
					notReady = append(notReady, fmt.Sprintf("%s/%s %s: %s", ns, name, s, m))
					mu.Unlock()
				}
			}
		}
	}()
	// The leader's last words, for a slow hand-over.
	var logs bytes.Buffer
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		r, err := c.Client.CoreV1().Pods(fluxNS).GetLogs(old, &corev1.PodLogOptions{Container: "manager", Follow: true, SinceSeconds: ptr(int64(1))}).Stream(ctx)
		if err != nil {
			return
		}
		defer r.Close()
		_, _ = io.Copy(&logs, io.LimitReader(r, 1<<20))
	}()
	time.Sleep(3 * time.Second)
	start := time.Now()
	g.Expect(c.Client.CoreV1().Pods(fluxNS).Delete(ctx, old, metav1.DeleteOptions{})).To(Succeed())
	var took time.Duration
	g.Eventually(func() string {
		l := leader(ctx)
		if l != old && l != "" {
			took = time.Since(start)
		}
		return l
	}, 2*time.Minute, 100*time.Millisecond).ShouldNot(Or(Equal(old), BeEmpty()))
	// On until the Deployment has replaced the pod and a while after.
	haPods(t, 2)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	select {
	case <-logsDone:
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "Stopping") || strings.Contains(l, "leader") || strings.Contains(l, "lease") ||
				strings.Contains(l, "rror") || strings.Contains(l, "shutdown") || strings.Contains(l, "Wait completed") {
				t.Logf("old leader: %.300s", l)
			}
		}
	case <-time.After(time.Second):
	}
	t.Logf("leader %s deleted: the other pod led after %s; %d downloads, %d failed (first: %v); Ready=False seen: %d",
		old, took.Round(100*time.Millisecond), downloads, failures, firstErr, len(notReady))
	return took, downloads, failures, notReady
}

// TestLeaderHandover is scenario d's second half: two replicas with leader
// election and the S3 backend (versitygw on the host, bound to the bridge's
// address only), installed with the overlay a user writes. The leader pod
// is deleted; the other leads within the lease duration, no source goes
// Ready=False, and no download through the Service fails.
//
// It runs last (its file sorts last): it leaves the install at two
// replicas.
func TestLeaderHandover(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	s3, err := s3test.StartOn(t.TempDir(), c.NodeIP.String(), t.Logf)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(s3.Stop)
	g.Expect(s3.MakeBucket(ctx, "artifacts")).To(Succeed())
	g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: externalsource-s3, namespace: %s}
stringData: {AWS_ACCESS_KEY_ID: %s, AWS_SECRET_ACCESS_KEY: %s}
`, fluxNS, s3test.AccessKey, s3test.SecretKey))).To(Succeed())
	installMu.Lock()
	installErr = "TestLeaderHandover changed the install to two replicas (it runs last)"
	installed = false
	installMu.Unlock()

	// First as a user would write it with only replicas and S3 changed:
	// the Service still publishes not-ready (and terminating) pods.
	g.Expect(c.Apply(ctx, buildOverlay(t, haPatches(s3.Endpoint, false), nil))).To(Succeed())
	haPods(t, 2)

	ns := createNamespace(t, "handover")
	watched := map[string]string{}
	var urls []string
	for i := range 3 {
		name := fmt.Sprintf("handover-%d", i)
		g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: %s, namespace: %s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: flags.json
  generator:
    type: http
    http: {url: "%s/flags"}
`, name, ns, upstream(t)))).To(Succeed())
		watched[name] = ns
	}
	for name := range watched {
		g.Eventually(func() string {
			u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err.Error()
			}
			s, m := readyCondition(u)
			if s == "True" {
				url, _, _ := unstructured.NestedString(u.Object, "status", "artifact", "url")
				urls = append(urls, url)
			}
			return s + ": " + m
		}, 3*time.Minute, time.Second).Should(HavePrefix("True"), name)
	}

	took, n, failed, notReady := handover(t, urls, watched)
	t.Logf("publishNotReadyAddresses: true, no preStop: handover %s, %d of %d downloads failed, Ready=False %v",
		took.Round(100*time.Millisecond), failed, n, notReady)

	// With the Service routing to Ready pods only and a drain before the
	// manager stops.
	g.Expect(c.Apply(ctx, buildOverlay(t, haPatches(s3.Endpoint, true), nil))).To(Succeed())
	haPods(t, 2)
	took, n, failed, notReady = handover(t, urls, watched)
	t.Logf("publishNotReadyAddresses: false, preStop sleep 5s: handover %s, %d of %d downloads failed, Ready=False %v",
		took.Round(100*time.Millisecond), failed, n, notReady)
	g.Expect(took).To(BeNumerically("<", 35*time.Second), "within the lease duration (--leader-election-lease-duration, 35s)")
	g.Expect(n).To(BeNumerically(">", 100))
	g.Expect(failed).To(BeZero())
	g.Expect(notReady).To(BeEmpty())
}

func ptr[T any](v T) *T { return &v }
