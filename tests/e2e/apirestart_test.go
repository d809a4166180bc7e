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
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestAPIServerRestart runs the controller binary (leader election on, as
// deployed) against a control plane of its own, kills kube-apiserver (as
// a crash does; etcd and its data stay), keeps it away for a few seconds
// and starts it again. The controller process keeps running and keeps
// serving the published artifact during the outage, and afterwards it
// handles a change as usual: its watches and its lease came back by
// themselves.
//
// Then an outage longer than --leader-election-renew-deadline: the leader
// exits non-zero, as every Flux controller does.
func TestAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	env, err := devenv.Start()
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(env.WriteKubeconfig(kc)).To(Succeed())
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	g.Expect(err).ToNot(HaveOccurred())
	for _, ns := range []string{runtimeNamespace, "restarts"} {
		g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}

	var data atomic.Value
	data.Store("version: 1\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, data.Load().(string))
	}))
	defer srv.Close()

	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	// Lease timings shortened from Flux's defaults (35s, 30s, 5s) so that
	// the test can outlast the renew deadline, yet long enough that the
	// first outage (4s plus a kube-apiserver start on a loaded machine)
	// stays well within it.
	const renewDeadline = 15 * time.Second
	startController := func(name string) (exited chan error) {
		proc, err := startCmd(name, bin, kc,
			"--enable-leader-election",
			"--leader-election-lease-duration=20s",
			fmt.Sprintf("--leader-election-renew-deadline=%s", renewDeadline),
			"--leader-election-retry-period=2s",
			"--storage-backend=memory",
			"--storage-addr="+storageAddr, "--storage-adv-addr="+storageAddr,
			"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", allowLoopback)
		g.Expect(err).ToNot(HaveOccurred())
		exited = make(chan error, 1)
		go func() { exited <- proc.Wait() }()
		t.Cleanup(func() {
			_ = proc.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				_ = proc.Process.Kill()
			}
		})
		return exited
	}
	exited := startController("apirestart-controller")

	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: "restarts"},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data.yaml",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL}},
		},
	}
	g.Expect(c.Create(ctx, src)).To(Succeed())
	published := func(g Gomega) *meta.Artifact {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", conditions.Get(cur, meta.ReadyCondition))
		g.Expect(cur.Status.Artifact).ToNot(BeNil())
		ea := &sourcev1.ExternalArtifact{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact).ToNot(BeNil())
		g.Expect(ea.Status.Artifact.Revision).To(Equal(cur.Status.Artifact.Revision))
		return cur.Status.Artifact
	}
	var first *meta.Artifact
	g.Eventually(func(g Gomega) { first = published(g) }, timeout).Should(Succeed())

	// The API server goes away; etcd keeps the data.
	g.Expect(env.KillAPIServer()).To(Succeed())
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = env.StartAPIServer()
		}
	})
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), &exsv1beta1.ExternalSource{})).ToNot(Succeed(), "the API server is down")
	// For several seconds: the process stays up and keeps serving the
	// artifact Flux consumers have been told about.
	g.Consistently(func(g Gomega) {
		g.Expect(exited).ToNot(Receive(), "the controller exited")
		resp, err := http.Get(first.URL)
		g.Expect(err).ToNot(HaveOccurred())
		defer resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		b, err := io.ReadAll(resp.Body)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(fmt.Sprintf("sha256:%x", sha256.Sum256(b))).To(Equal(first.Digest))
	}, 4*time.Second, 500*time.Millisecond).Should(Succeed())

	g.Expect(env.StartAPIServer()).To(Succeed())
	stopped = false

	// Back: the etcd data is there, and a change upstream plus a reconcile
	// request is published as usual by the same process.
	cur := &exsv1beta1.ExternalSource{}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
	g.Expect(cur.Status.Artifact).To(Equal(first))
	data.Store("version: 2\n")
	token := time.Now().Format(time.RFC3339Nano)
	g.Eventually(func() error {
		cur := &exsv1beta1.ExternalSource{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(src), cur); err != nil {
			return err
		}
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Annotations = map[string]string{meta.ReconcileRequestAnnotation: token}
		return c.Patch(ctx, cur, patch)
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		a := published(g)
		g.Expect(a.Revision).ToNot(Equal(first.Revision))
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(token))
	}, timeout).Should(Succeed())
	g.Expect(exited).ToNot(Receive(), "the controller exited")

	// An outage longer than the renew deadline: the leader gives up and
	// exits (it cannot know whether another replica took over), as Flux's
	// controllers do.
	// (Left down: env.Stop copes with a stopped API server.)
	g.Expect(env.KillAPIServer()).To(Succeed())
	var exitErr error
	g.Eventually(exited, renewDeadline+timeout).Should(Receive(&exitErr))
	g.Expect(exitErr).To(HaveOccurred(), "a leader that lost its lease exits non-zero")
	// The kubelet would restart it; a restart loses nothing (the restart
	// and kill tests).
}
