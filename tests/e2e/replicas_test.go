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
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// replica is a controller process started with leader election.
type replica struct {
	name    string
	health  string
	storage string
	metrics string
	stop    func()
}

// reconciles returns the replica's count of ExternalSource reconciles, from
// its metrics endpoint.
func (r replica) reconciles(g Gomega) float64 {
	resp, err := http.Get("http://" + r.metrics + "/metrics")
	g.Expect(err).ToNot(HaveOccurred())
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).ToNot(HaveOccurred())
	var total float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "controller_runtime_reconcile_total{") && strings.Contains(line, `controller="externalsource"`) {
			var v float64
			_, _ = fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			total += v
		}
	}
	return total
}

// ready reports whether the replica's /readyz answers 200.
func (r replica) ready() bool {
	resp, err := http.Get("http://" + r.health + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startReplicas starts two controller processes with leader election on
// their own shard (a label selector nothing matches, so they reconcile
// nothing of the other tests), with short lease timings.
func startReplicas(t *testing.T, shard string, storageArgs ...string) []replica {
	t.Helper()
	var out []replica
	for i := range 2 {
		health, err := devenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		storage, err := devenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		metrics, err := devenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{
			"--enable-leader-election",
			"--leader-election-lease-duration=4s",
			"--leader-election-renew-deadline=3s",
			"--leader-election-retry-period=500ms",
			"--watch-label-selector=e2e.externalsource.io/shard=" + shard,
			"--storage-addr=" + storage,
			"--storage-adv-addr=" + storage,
			"--health-addr=" + health,
			"--metrics-addr=" + metrics,
			allowLoopback,
		}, storageArgs...)
		name := fmt.Sprintf("replica-%s-%d", shard, i)
		cmd, err := startCmd(name, bin, kubeconfig, args...)
		if err != nil {
			t.Fatal(err)
		}
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		t.Cleanup(stop)
		out = append(out, replica{name: name, health: health, storage: storage, metrics: metrics, stop: stop})
	}
	return out
}

func countReady(rs []replica) int {
	n := 0
	for _, r := range rs {
		if r.ready() {
			n++
		}
	}
	return n
}

// TestLeaderServesWithMemoryStorage: with a store only the leader holds,
// only the leader is ready (its artifact server serves), and readiness
// moves with the leadership.
func TestLeaderServesWithMemoryStorage(t *testing.T) {
	g := NewWithT(t)
	rs := startReplicas(t, "memory", "--storage-backend=memory")
	g.Eventually(func() int { return countReady(rs) }, timeout, 200*time.Millisecond).Should(Equal(1))
	g.Consistently(func() int { return countReady(rs) }, 3*time.Second, 300*time.Millisecond).Should(Equal(1), "never two leaders")

	leader, follower := rs[0], rs[1]
	if !leader.ready() {
		leader, follower = follower, leader
	}
	leader.stop() // releases the lease on the way out
	g.Eventually(follower.ready, timeout, 200*time.Millisecond).Should(BeTrue(), "the follower takes over")
}

// TestHighAvailabilityWithS3: two replicas share one bucket. Every replica
// is ready and serves every artifact; only the leader reconciles; a leader
// change loses nothing and republishes nothing.
func TestHighAvailabilityWithS3(t *testing.T) {
	g := NewWithT(t)
	srv := s3test.Start(t)
	g.Expect(srv.MakeBucket(ctx, "shared")).To(Succeed())
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	// Both advertise the Service, as in a cluster (the later flag wins).
	rs := startReplicas(t, "s3", "--storage-backend=s3", "--s3-endpoint="+srv.Endpoint, "--s3-bucket=shared", "--s3-insecure",
		"--storage-adv-addr=externalsource-controller.flux-system.svc.cluster.local.")
	g.Eventually(func() int { return countReady(rs) }, timeout, 200*time.Millisecond).Should(Equal(2))

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"ha-1"`)
		if r.Method == http.MethodHead || r.Header.Get("If-None-Match") == `"ha-1"` {
			if r.Method != http.MethodHead {
				w.WriteHeader(http.StatusNotModified)
			}
			return
		}
		fmt.Fprint(w, "ha: true\n")
	}))
	defer up.Close()
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ha"}})).To(Succeed())
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "ha", Namespace: "ha", Labels: map[string]string{"e2e.externalsource.io/shard": "s3"}},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data.yaml",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: up.URL}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	a := waitPublished(g, src)

	// Both replicas serve the artifact.
	for _, r := range rs {
		resp, err := http.Get("http://" + r.storage + "/" + a.Path)
		g.Expect(err).ToNot(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), r.name)
	}
	// Only the leader reconciled.
	leader, follower := rs[0], rs[1]
	if leader.reconciles(g) == 0 {
		leader, follower = follower, leader
	}
	g.Expect(leader.reconciles(g)).To(BeNumerically(">", 0))
	g.Expect(follower.reconciles(g)).To(BeZero())

	// A leader change: the new leader reconciles the object again and finds
	// everything in place (HEAD, same ETag), so nothing is republished.
	leader.stop()
	g.Eventually(func() float64 { return follower.reconciles(g) }, timeout, 200*time.Millisecond).Should(BeNumerically(">", 0))
	g.Consistently(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(cur.Status.Artifact).To(Equal(a))
	}, 3*time.Second, 500*time.Millisecond).Should(Succeed())
	raw, err := srv.Client()
	g.Expect(err).ToNot(HaveOccurred())
	objects := 0
	for o := range raw.ListObjects(ctx, "shared", minio.ListObjectsOptions{Recursive: true}) {
		g.Expect(o.Err).ToNot(HaveOccurred())
		objects++
	}
	g.Expect(objects).To(Equal(1), "one artifact in the bucket")
	var evs corev1.EventList
	g.Expect(k8sClient.List(ctx, &evs, client.InNamespace("ha"))).To(Succeed())
	published := 0
	for _, e := range evs.Items {
		if e.Reason == exsv1beta1.NewArtifactReason && e.InvolvedObject.Kind == exsv1beta1.ExternalSourceKind {
			published += int(max(e.Count, 1))
		}
	}
	g.Expect(published).To(Equal(1), "published once")
}
