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
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// hookFailedMessage returns the HookFailed condition's message, or "".
func hookFailedMessage(u *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == "HookFailed" && m["status"] == "True" {
			return fmt.Sprint(m["message"])
		}
	}
	return ""
}

// TestSandboxInPod is scenario b: inside the real container (uid 65532,
// read-only root, no capabilities, RuntimeDefault seccomp), a whitelisted
// hook that reads a file outside its run directory fails with the kernel's
// error, and the sidecar's metrics say the sandbox is on. The path comes
// from the one variable the shipped whitelist allows (TZ): no argument
// pattern lets a '/' through, the sandbox is what stops a computed path.
func TestSandboxInPod(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: read-outside, namespace: %s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: out.json
  generator:
    type: http
    http: {url: "%s/flags"}
  hooks:
    postRequest:
      - name: read-hostname
        command: yq
        args: ["-o", "json", 'load_str(strenv(TZ))']
        env: [{name: TZ, value: /etc/hostname}]
`, fluxNS, upstream(t)))).To(Succeed())
	g.Eventually(func() string {
		u, err := dyn(t).Resource(esGVR).Namespace(fluxNS).Get(ctx, "read-outside", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		return hookFailedMessage(u)
	}, 3*time.Minute, time.Second).Should(And(ContainSubstring("read-hostname"), ContainSubstring("permission denied")))

	// The sidecar's metrics, scraped from the host at the pod's address.
	pods, err := c.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pods.Items).NotTo(BeEmpty())
	resp, err := http.Get("http://" + net.JoinHostPort(pods.Items[0].Status.PodIP, "8081") + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	var sandbox []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "externalsource_hook_sandbox") {
			sandbox = append(sandbox, l)
		}
	}
	t.Logf("the sidecar's sandbox metrics on this node: %v", sandbox)
	g.Expect(sandbox).To(ContainElement("externalsource_hook_sandbox_enabled 1"))
	// Which protections this node's kernel gives, one gauge each.
	g.Expect(sandbox).To(ContainElement(HavePrefix("externalsource_hook_sandbox_protection{")))
}

// TestSandboxNetworkInPod is scenario b's TCP row: inside the real
// container, a hook of a whitelist entry with `network: false` that
// connects to a listener on the bridge's address fails with the kernel's
// error (Landlock's EACCES on connect, or the seccomp filter's on socket),
// never a timeout; the same connect from an entry with `network: true`
// reaches the listener (the positive control: the address is reachable
// from the pod, so the refusal is the sandbox's).
func TestSandboxNetworkInPod(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	l, err := net.Listen("tcp", net.JoinHostPort(c.NodeIP.String(), "0"))
	g.Expect(err).NotTo(HaveOccurred())
	defer l.Close()
	got := make(chan string, 16)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				b, _ := io.ReadAll(io.LimitReader(conn, 256))
				got <- strings.TrimSpace(string(b))
			}()
		}
	}()
	// A namespace of their own: the hook memory budget is shared per
	// namespace, and other tests' hooks run in flux-system.
	ns := createNamespace(t, "network")
	source := func(name, command string) string {
		return fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: %s, namespace: %s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: out.txt
  generator:
    type: http
    http: {url: "%s/flags"}
  hooks:
    postRequest:
      - {name: dial, command: %s, args: [connect, "%s"]}
`, name, ns, upstream(t), command, l.Addr().String())
	}
	g.Expect(c.Apply(ctx, source("connect-denied", "probe"))).To(Succeed())
	var msg string
	g.Eventually(func() string {
		u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, "connect-denied", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		msg = hookFailedMessage(u)
		return msg
	}, 3*time.Minute, time.Second).Should(ContainSubstring("spec.hooks.postRequest[0]"))
	t.Logf("network: false: %s", msg)
	g.Expect(msg).To(Or(ContainSubstring("permission denied"), ContainSubstring("operation not permitted")), "the kernel's error")
	g.Expect(msg).NotTo(ContainSubstring("timeout"))
	g.Expect(got).NotTo(Receive(), "nothing reached the listener")
	// Its retries would hold a share of the namespace's hook memory budget,
	// which probe-net (512Mi, the default) needs whole.
	g.Expect(dyn(t).Resource(esGVR).Namespace(ns).Delete(ctx, "connect-denied", metav1.DeleteOptions{})).To(Succeed())

	g.Expect(c.Apply(ctx, source("connect-allowed", "probe-net"))).To(Succeed())
	g.Eventually(func() string {
		u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, "connect-allowed", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		s, m := readyCondition(u)
		return s + ": " + m
	}, 3*time.Minute, time.Second).Should(HavePrefix("True"))
	g.Eventually(got, 10*time.Second).Should(Receive(Equal("hello from a hook")), "network: true reached the listener")
}
