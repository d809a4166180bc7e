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
	"net/http"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// writeCounter counts the API writes (POST, PUT, PATCH, DELETE) a client
// sends into one namespace, by verb and resource ("PATCH
// externalsources/status"); events are counted apart, as they are not
// writes to cut.
type writeCounter struct {
	ns     string
	mu     sync.Mutex
	writes map[string]int
	events map[string]int
}

// config returns a copy of cfg whose transport counts.
func (c *writeCounter) config(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			c.count(req)
			return rt.RoundTrip(req)
		})
	})
	return out
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// count records a write into the namespace. A path is
// /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]] or the same
// under /apis/<group>/<version>.
func (c *writeCounter) count(req *http.Request) {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	i := 0
	for i < len(parts) && parts[i] != "namespaces" {
		i++
	}
	// namespaces/<ns>/<resource>[/<name>[/<subresource>]]
	if i+2 >= len(parts) || parts[i+1] != c.ns {
		return
	}
	resource := parts[i+2]
	if i+4 < len(parts) {
		resource += "/" + parts[i+4]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if resource == "events" {
		c.events[req.Method+" "+resource]++
		return
	}
	c.writes[req.Method+" "+resource]++
}

// take returns the counts since the previous take and starts again.
func (c *writeCounter) take() (writes, events map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, events = c.writes, c.events
	c.writes, c.events = map[string]int{}, map[string]int{}
	return writes, events
}

func (c *writeCounter) eventCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.events {
		n += v
	}
	return n
}

// TestWritesPerReconcile counts, through the manager's own client, the API
// writes of a new source, of a new upstream revision and of unchanged
// intervals, against the floor a correct producer needs: finalizer,
// ExternalArtifact create, ExternalArtifact status and ExternalSource
// status for a new source (4); one status write of each for a new
// revision (2); nothing for an unchanged interval, the first after a new
// source or revision included. Events (NewArtifact on both objects) are
// counted apart. Two upstreams: one without validators (every interval a
// GET) and one with ETags (every interval a HEAD).
func TestWritesPerReconcile(t *testing.T) {
	type upstreamCase struct {
		name string
		// start serves "a: 1"; change makes it serve new data.
		start func(t *testing.T) (url string, change func())
	}
	tests := []upstreamCase{
		{name: "no validators", start: func(t *testing.T) (string, func()) {
			up := newUpstream(t, "a: 1\n")
			return up.URL, func() { up.set(http.StatusOK, "a: 2\n") }
		}},
		{name: "ETag and HEAD", start: func(t *testing.T) (string, func()) {
			up := newCountingUpstream(t, "a: 1\n", `"v1"`, "", true)
			return up.URL, func() { up.set("a: 2\n", `"v2"`) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testWritesPerReconcile(t, tt.start)
		})
	}
}

func testWritesPerReconcile(t *testing.T, start func(t *testing.T) (string, func())) {
	g := NewWithT(t)
	ns := newNamespace(t)
	counter := &writeCounter{ns: ns, writes: map[string]int{}, events: map[string]int{}}
	im := startIsolatedManagerOn(t, counter.config(testConfig), "iso-"+ns, 3, ReconcilerOptions{MaxConcurrentReconciles: 2}, nil)
	url, change := start(t)
	obj := im.source(ns, "writes", url)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(conditions.IsReady(getExternalArtifact(g, obj))).To(BeTrue())
	}, timeout).Should(Succeed())
	g.Eventually(counter.eventCount, timeout).Should(Equal(2), "NewArtifact on the ExternalSource and the ExternalArtifact")

	writes, events := counter.take()
	t.Logf("new source: writes %v, events %v", writes, events)
	g.Expect(writes).To(Equal(map[string]int{
		"PATCH externalsources":          1, // the finalizer
		"POST externalartifacts":         1,
		"PATCH externalartifacts/status": 1,
		"PATCH externalsources/status":   1,
	}))
	g.Expect(ready.Finalizers).To(ContainElement(exsv1beta1.Finalizer))
	g.Expect(conditions.Get(ready, meta.ReconcilingCondition)).To(BeNil())

	// The next reconciles run here, through the manager's client, as the
	// requeue after an interval would run them.
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(obj)}
	reconcileOnce := func() {
		res, err := im.r.Reconcile(testCtx, req)
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(res.RequeueAfter).To(BeNumerically(">", 0))
	}
	unchanged := func(when string) {
		reconcileOnce()
		writes, events := counter.take()
		t.Logf("unchanged interval %s: writes %v, events %v", when, writes, events)
		g.Expect(writes).To(BeEmpty(), when)
		g.Expect(events).To(BeEmpty(), when)
	}
	unchanged("after the new source")

	// A new upstream revision.
	change()
	reconcileOnce()
	g.Eventually(counter.eventCount, timeout).Should(Equal(2), "NewArtifact on the ExternalSource and the ExternalArtifact")
	writes, events = counter.take()
	t.Logf("new revision: writes %v, events %v", writes, events)
	g.Expect(writes).To(Equal(map[string]int{
		"PATCH externalartifacts/status": 1,
		"PATCH externalsources/status":   1,
	}))
	cur := getSource(g, obj)
	g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(ready.Status.Artifact.Revision))
	g.Expect(conditions.IsReady(cur)).To(BeTrue())
	g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(cur.Status.Artifact.Revision))
	ea := &sourcev1.ExternalArtifact{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact.Revision).To(Equal(cur.Status.Artifact.Revision))
	}, timeout).Should(Succeed())

	unchanged("after the new revision")
	unchanged("in the steady state")

	// A spec change (a new generation, here with a new revision): shown
	// as Reconciling first, so `kubectl wait` after an edit waits for it
	// (requestedWork), then the result: two status writes.
	cur = getSource(g, obj)
	p := client.MergeFrom(cur.DeepCopy())
	cur.Spec.DestinationPath = "other/path.yaml"
	g.Expect(k8sClient.Patch(testCtx, cur, p)).To(Succeed())
	edited := waitReady(t, obj)
	g.Eventually(func(g Gomega) {
		g.Expect(getExternalArtifact(g, obj).Status.Artifact.Revision).To(Equal(edited.Status.Artifact.Revision))
	}, timeout).Should(Succeed())
	g.Eventually(counter.eventCount, timeout).Should(Equal(2), "NewArtifact on the ExternalSource and the ExternalArtifact")
	writes, events = counter.take()
	t.Logf("new generation: writes %v, events %v", writes, events)
	g.Expect(writes).To(Equal(map[string]int{
		"PATCH externalartifacts/status": 1,
		"PATCH externalsources/status":   2,
	}))
}
