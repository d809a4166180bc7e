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
	"fmt"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestNoGoroutineGrowth runs 1,000 reconciles of one source (unchanged
// upstream answered by HEAD, and a new revision every 100) and checks that
// the number of goroutines does not grow with them: no leaked transports,
// watchers or timers per reconcile.
func TestNoGoroutineGrowth(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newCountingUpstream(t, `{"v": 0}`, `"v0"`, "", true)
	obj := newSource(ns, "goroutines", up.URL)
	obj.Labels = map[string]string{isolatedLabel: "goroutines"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())

	// Warm up: finalizer, first artifact, connection pools.
	for range 20 {
		reconcileOnce(t, obj)
	}
	settle := func() int {
		var n int
		for range 20 {
			runtime.GC()
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	before := settle()
	for i := 1; i <= 1000; i++ {
		if i%100 == 0 {
			up.set(fmt.Sprintf(`{"v": %d}`, i), fmt.Sprintf(`"v%d"`, i))
		}
		reconcileOnce(t, obj)
	}
	after := settle()
	t.Logf("goroutines: %d before, %d after 1,000 reconciles", before, after)
	// The suite's managers run beside this test, so a few goroutines come
	// and go; a leak per reconcile would add hundreds.
	g.Expect(after).To(BeNumerically("<=", before+20))
	g.Expect(getSource(g, obj).Status.Artifact.Revision).ToNot(BeEmpty())
}
