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

package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestNamespaceShareEndsBeforeTheAPIWrites: the share bounds the steps a
// tenant controls, not the API writes after them. With 4 workers (a share
// of 2) and ExternalArtifact writes made slow, one namespace alone on the
// controller has more reconciles than its share in those writes at once,
// so its other workers are not left idle; while the same namespace's
// fetches never exceed the share (TestOneNamespaceCannotStarveTheOthers
// holds the hanging side).
func TestNamespaceShareEndsBeforeTheAPIWrites(t *testing.T) {
	g := NewWithT(t)
	const concurrent = 4
	share := int32(DefaultMaxConcurrentPerNamespace(concurrent))
	upstream := newPeakUpstream(t, 50*time.Millisecond)
	ns := newNamespace(t)
	shard := "leave-" + ns
	slow := &slowArtifactWrites{delay: 500 * time.Millisecond}
	startIsolatedManager(t, shard, zapLevel(), ReconcilerOptions{MaxConcurrentReconciles: concurrent}, func(r *ExternalSourceReconciler) {
		slow.Client = r.Client
		r.Client = slow
	})

	createShardSources(t, shard, ns, "src", upstream.URL, 12, exsv1beta1.DefaultTimeout)
	g.Eventually(func(g Gomega) int { return readyIn(g, shard, ns) }, timeout, 50*time.Millisecond).Should(Equal(12))
	t.Logf("peak ExternalArtifact writes in flight %d, peak fetches %d, share %d", slow.peak.Load(), upstream.peak.Load(), share)
	g.Expect(slow.peak.Load()).To(BeNumerically(">", share), "the namespace used workers beyond its share for the API writes")
	g.Expect(upstream.peak.Load()).To(BeNumerically("<=", share), "never more fetches than the share")
}
