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
	"math/rand/v2"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// firstChecks spreads the first upstream check of the objects a process
// finds Ready when it starts (a restart, a new leader, a shard taking
// over). The informer's initial list queues every object at once, and
// without this each would be fetched at once: at thousands of sources of
// one API, a burst of as many requests as there are workers, in the first
// seconds, then again at every interval, as the interval requeues keep
// the phase. A Ready object whose artifact is still stored and whose spec
// was handled has nothing urgent to learn from its upstream: its first
// reconcile in the process verifies the stored artifact, publishes what
// is missing, and schedules the upstream check at a random point of what
// is left of its interval.
type firstChecks struct {
	seen sync.Map // client.ObjectKey -> struct{}
	// rand returns a uniform value in [0, n); nil is math/rand/v2.
	rand func(n int64) int64
}

// first says whether this is the object's first reconcile in the process,
// and remembers that it is not any more. A nil firstChecks (a reconciler
// not set up by SetupWithManager) spreads nothing.
func (f *firstChecks) first(key client.ObjectKey) bool {
	if f == nil {
		return false
	}
	_, seen := f.seen.LoadOrStore(key, struct{}{})
	return !seen
}

// forget drops an object that is gone.
func (f *firstChecks) forget(key client.ObjectKey) {
	if f != nil {
		f.seen.Delete(key)
	}
}

// minFirstCheckDelay is the shortest deferral worth a reconcile of its
// own; a check due sooner is made at once.
const minFirstCheckDelay = time.Second

// delay returns when to check the upstream of obj, a Ready object seen
// for the first time at now, or 0 to check it at once. Checks are taken
// to have run every interval since the artifact was stored, so the next
// one is due at the end of the current interval counted from
// status.artifact.lastUpdateTime; the check is made at a uniformly random
// point before that, so that the objects of one start are spread over
// their intervals and none waits longer than it would have without the
// restart.
func (f *firstChecks) delay(obj *exsv1beta1.ExternalSource, now time.Time) time.Duration {
	if f == nil || !deferrable(obj) {
		return 0
	}
	interval := obj.GetRequeueAfter()
	if interval <= 0 {
		return 0
	}
	elapsed := now.Sub(obj.Status.Artifact.LastUpdateTime.Time)
	if obj.Status.Artifact.LastUpdateTime.IsZero() || elapsed < 0 {
		elapsed = 0
	}
	remaining := interval - elapsed%interval
	rnd := f.rand
	if rnd == nil {
		rnd = rand.Int64N
	}
	d := time.Duration(rnd(int64(remaining)))
	if d < minFirstCheckDelay {
		return 0
	}
	return d
}

// deferrable says the object's upstream check can wait: it is Ready with
// a stored artifact (reconcileStorage just verified it, or forgot it) for
// its current generation, and nobody asked for a reconcile or a forced
// fetch that is not handled yet.
func deferrable(obj *exsv1beta1.ExternalSource) bool {
	if obj.GetArtifact() == nil || obj.Generation != obj.Status.ObservedGeneration || !conditions.IsReady(obj) {
		return false
	}
	if v, ok := meta.ReconcileAnnotationValue(obj.GetAnnotations()); ok && v != obj.Status.LastHandledReconcileAt {
		return false
	}
	return !meta.ShouldHandleForceRequest(obj)
}
