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
	"net"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNodeServesPods checks the node end to end: a pod runs from an image
// imported here, resolves a Service name through CoreDNS, reaches the API
// server through the kubernetes Service (kube-proxy's DNAT), and has no
// default route (its traffic cannot leave the machine).
func TestNodeServesPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := testCluster
	ns := createNamespace(t, "node")
	// The images built here have no shell, so the probe is CoreDNS's own
	// image on another port; its routes are read from the host in its
	// network namespace.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "dns", Image: CoreDNSImage, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-dns.port=1053"},
			}},
		},
	}
	_, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() corev1.PodPhase {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "probe", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return p.Status.Phase
	}, 2*time.Minute, time.Second).Should(Equal(corev1.PodRunning))

	// CoreDNS, through the kube-dns Service (kube-proxy's rules), resolves
	// the kubernetes Service to its ClusterIP.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(c.DNSIP.String(), "53"))
	}}
	g.Eventually(func() ([]string, error) {
		return r.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
	}, time.Minute, time.Second).Should(ConsistOf(apiServiceIP(c)))

	// The pod's routes, read in its network namespace: the bridge's subnet
	// and the service range only.
	routes, err := c.PodExecHost(ctx, ns, "probe", "ip", "-4", "route", "show")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(routes).NotTo(ContainSubstring("default"))
	g.Expect(routes).To(ContainSubstring(c.opts.ServiceCIDR + " via " + c.NodeIP.String()))
}

func apiServiceIP(c *Cluster) string {
	ip, _, _ := nthIP(c.opts.ServiceCIDR, 1)
	return ip.String()
}

// createNamespace makes a namespace for one test, deleted after it.
func createNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := testCluster.Client.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = testCluster.Client.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}
