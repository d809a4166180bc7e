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
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSickSidecar is scenario c: the hook executor is killed in a loop;
// throughout, the artifact of a source without hooks keeps downloading
// through the Service (which is why the Service publishes the pod's address
// whatever its readiness: config/manager/service.yaml), and a source with a
// hook reports HookFailed with the reason.
func TestSickSidecar(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster
	url := hooklessSource(t, "sick-probe")
	hc := c.HTTPClient()
	g.Eventually(func() error { return download(hc, url) }, time.Minute, time.Second).Should(Succeed())
	pods, err := c.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
	g.Expect(err).NotTo(HaveOccurred())
	pod := pods.Items[0].Name

	stop := time.Now().Add(60 * time.Second)
	kills, downloads, failures := 0, 0, 0
	var firstErr error
	next := time.Now()
	hookFailed := ""
	created := false
	for time.Now().Before(stop) {
		if kills == 2 && !created {
			// A source with a hook, created while the executor is down.
			g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: sick-hook, namespace: %s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: flags.json
  generator:
    type: http
    http: {url: "%s/flags"}
  hooks:
    postRequest:
      - {name: compact, command: jq, args: ["-c", "."]}
`, fluxNS, upstream(t)))).To(Succeed())
			created = true
		}
		if created && hookFailed == "" {
			if u, err := dyn(t).Resource(esGVR).Namespace(fluxNS).Get(ctx, "sick-hook", metav1.GetOptions{}); err == nil {
				hookFailed = hookFailedMessage(u)
			}
		}
		if time.Now().After(next) {
			if pids, err := c.ContainerPIDs(ctx, fluxNS, pod, "hook-executor"); err == nil {
				for _, p := range pids {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
				kills++
			}
			next = time.Now().Add(3 * time.Second)
		}
		downloads++
		if err := download(hc, url); err != nil {
			failures++
			if firstErr == nil {
				firstErr = err
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("hook executor killed %d times; %d downloads, %d failed (first: %v); the hook source said: %s",
		kills, downloads, failures, firstErr, hookFailed)
	g.Expect(kills).To(BeNumerically(">", 3))
	g.Expect(failures).To(BeZero())
	g.Expect(hookFailed).To(ContainSubstring("spec.hooks.postRequest[0]: hook executor unreachable"), "the hook source reported HookFailed with the reason")
}
