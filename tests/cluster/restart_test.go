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
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// hooklessSource creates a source without hooks and returns its artifact's
// URL once it is Ready.
func hooklessSource(t *testing.T, name string) string {
	t.Helper()
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(testCluster.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: %s, namespace: %s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: flags.json
  generator:
    type: http
    http: {url: "%s/flags"}
`, name, fluxNS, upstream(t)))).To(Succeed())
	var url string
	g.Eventually(func() string {
		u, err := dyn(t).Resource(esGVR).Namespace(fluxNS).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		url, _, _ = unstructured.NestedString(u.Object, "status", "artifact", "url")
		s, m := readyCondition(u)
		return s + ": " + m
	}, 3*time.Minute, time.Second).Should(HavePrefix("True"))
	return url
}

// download fetches an artifact through the Service, as Flux's controllers
// do, and says why it failed.
func download(hc *http.Client, url string) error {
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// TestManagerKilled is scenario d's first half: the manager container is
// killed (SIGKILL, as the OOM killer would); the kubelet restarts it, the
// pod is Ready again and the artifact is served again. The times are
// logged.
func TestManagerKilled(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	url := hooklessSource(t, "restart-probe")
	hc := c.HTTPClient()
	g.Eventually(func() error { return download(hc, url) }, time.Minute, time.Second).Should(Succeed())

	pods, err := c.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pods.Items).To(HaveLen(1))
	pod := pods.Items[0].Name
	restarts := func() int32 {
		p, err := c.Client.CoreV1().Pods(fluxNS).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return -1
		}
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == "manager" {
				return s.RestartCount
			}
		}
		return -1
	}
	before := restarts()
	pids, err := c.ContainerPIDs(ctx, fluxNS, pod, "manager")
	g.Expect(err).NotTo(HaveOccurred())
	start := time.Now()
	for _, p := range pids {
		g.Expect(syscall.Kill(p, syscall.SIGKILL)).To(Succeed())
	}
	g.Eventually(restarts, time.Minute, 200*time.Millisecond).Should(BeNumerically(">", before))
	g.Eventually(func() bool {
		p, err := c.Client.CoreV1().Pods(fluxNS).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == "Ready" {
				return cond.Status == "True"
			}
		}
		return false
	}, 2*time.Minute, 200*time.Millisecond).Should(BeTrue())
	ready := time.Since(start)
	g.Eventually(func() error { return download(hc, url) }, 2*time.Minute, 200*time.Millisecond).Should(Succeed())
	t.Logf("manager killed: pod Ready again after %s, the artifact served again after %s",
		ready.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}
