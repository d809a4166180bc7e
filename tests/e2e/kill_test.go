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

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestControllerKilledMidReconcile: a controller killed (SIGKILL) in the
// middle of a fetch and started again leaves no half-written artifact, and
// publishes exactly one revision.
func TestControllerKilledMidReconcile(t *testing.T) {
	g := NewWithT(t)
	var slow atomic.Bool
	slow.Store(true)
	started := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			return
		}
		if slow.Load() {
			// Headers, a little of the body, then a long stall.
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			fmt.Fprint(w, "kill: ")
			w.(http.Flusher).Flush()
			started <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		fmt.Fprint(w, "kill: survived\n")
	}))
	defer srv.Close()

	dir := t.TempDir()
	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	args := []string{"--watch-label-selector=e2e.externalsource.io/shard=kill",
		"--storage-backend=filesystem", "--storage-path=" + dir,
		"--storage-addr=" + storageAddr, "--storage-adv-addr=" + storageAddr, allowLoopback,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0"}
	first, err := startCmd("kill-controller-1", bin, kubeconfig, args...)
	g.Expect(err).ToNot(HaveOccurred())

	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "killed"}})).To(Succeed())
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "killed", Labels: map[string]string{"e2e.externalsource.io/shard": "kill"}},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			Timeout:         &metav1.Duration{Duration: 2 * time.Minute},
			DestinationPath: "data.yaml",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())

	// Kill it while it is reading the body.
	g.Eventually(started, timeout).Should(Receive())
	g.Expect(first.Process.Signal(syscall.SIGKILL)).To(Succeed())
	_ = first.Wait()

	slow.Store(false)
	second, err := startCmd("kill-controller-2", bin, kubeconfig, args...)
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = second.Process.Signal(syscall.SIGTERM); _ = second.Wait() })

	var rev string
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		// Flux's patcher writes the conditions before the rest of the
		// status: wait for both.
		g.Expect(cur.Status.Artifact).ToNot(BeNil())
		ea := &sourcev1.ExternalArtifact{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact).ToNot(BeNil())
		g.Expect(ea.Status.Artifact.Revision).To(Equal(cur.Status.Artifact.Revision))
		rev = cur.Status.Artifact.Revision
	}, timeout).Should(Succeed())

	// Exactly one artifact on disk, the published one; no partial file.
	var files []string
	g.Expect(filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.HasSuffix(p, ".lock") {
			files = append(files, filepath.Base(p))
		}
		return err
	})).To(Succeed())
	g.Expect(files).To(ConsistOf(strings.TrimPrefix(rev, "latest@sha256:") + ".tar.gz"))

	// One revision, published once.
	var evs corev1.EventList
	g.Expect(k8sClient.List(ctx, &evs, client.InNamespace("killed"))).To(Succeed())
	n := 0
	for _, e := range evs.Items {
		if e.Reason == exsv1beta1.NewArtifactReason && e.InvolvedObject.Kind == exsv1beta1.ExternalSourceKind {
			n += int(max(e.Count, 1))
		}
	}
	g.Expect(n).To(Equal(1))
}
