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
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// replica is a controller process started with leader election.
type replica struct {
	name   string
	health string
	stop   func()
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
		health, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		storage, err := freeAddr()
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
			"--metrics-addr=127.0.0.1:0",
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
		out = append(out, replica{name: name, health: health, stop: stop})
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

// TestEveryReplicaServesWithS3: with S3 every replica can serve every
// artifact, so every replica is ready, leader or not.
func TestEveryReplicaServesWithS3(t *testing.T) {
	g := NewWithT(t)
	srv := s3test.Start(t)
	g.Expect(srv.MakeBucket(ctx, "shared")).To(Succeed())
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	rs := startReplicas(t, "s3", "--storage-backend=s3", "--s3-endpoint="+srv.Endpoint, "--s3-bucket=shared", "--s3-insecure")
	g.Eventually(func() int { return countReady(rs) }, timeout, 200*time.Millisecond).Should(Equal(2))
}
