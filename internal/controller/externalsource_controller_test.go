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
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// upstream is an API whose payload the test changes; it counts requests.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	body     string
	status   int
	requests atomic.Int64
}

func newUpstream(t *testing.T, body string) *upstream {
	u := &upstream{body: body, status: http.StatusOK}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		u.mu.Lock()
		defer u.mu.Unlock()
		w.WriteHeader(u.status)
		_, _ = io.WriteString(w, u.body)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) set(status int, body string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status, u.body = status, body
}

var nsCount atomic.Int64

// newNamespace creates a namespace per test so tests never see each other's objects.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("test-%d-%d", time.Now().UnixNano()%100000, nsCount.Add(1))}}
	if err := k8sClient.Create(testCtx, ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// newSource returns an ExternalSource for the memory backend's manager.
func newSource(ns, name, url string) *exsv1beta1.ExternalSource {
	return newSourceOn("memory", ns, name, url)
}

// newSourceOn returns an ExternalSource reconciled by the manager of backend.
func newSourceOn(backend, ns, name, url string) *exsv1beta1.ExternalSource {
	return &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{backendLabel: backend}},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data/pricing.json",
			Generator: exsv1beta1.GeneratorSpec{
				Type: exsv1beta1.GeneratorTypeHTTP,
				HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: url},
			},
		},
	}
}

func getSource(g Gomega, obj *exsv1beta1.ExternalSource) *exsv1beta1.ExternalSource {
	out := &exsv1beta1.ExternalSource{}
	g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), out)).To(Succeed())
	return out
}

// waitReady waits until the object is Ready for its current generation and
// returns it.
func waitReady(t *testing.T, obj *exsv1beta1.ExternalSource) *exsv1beta1.ExternalSource {
	t.Helper()
	g := NewWithT(t)
	var out *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		out = getSource(g, obj)
		g.Expect(conditions.IsReady(out)).To(BeTrue(), "Ready: %v", conditions.Get(out, meta.ReadyCondition))
		g.Expect(out.Status.ObservedGeneration).To(Equal(out.Generation))
		// The patcher may write conditions before the rest of the status.
		g.Expect(out.Status.Artifact).ToNot(BeNil(), "artifact")
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return out
}

// requestReconcile sets reconcile.fluxcd.io/requestedAt and waits until the
// controller has handled it, as `flux reconcile` does.
func requestReconcile(t *testing.T, obj *exsv1beta1.ExternalSource) *exsv1beta1.ExternalSource {
	t.Helper()
	g := NewWithT(t)
	token := time.Now().Format(time.RFC3339Nano)
	g.Eventually(func() error {
		cur := &exsv1beta1.ExternalSource{}
		if err := k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return err
		}
		patch := client.MergeFrom(cur.DeepCopy())
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[meta.ReconcileRequestAnnotation] = token
		return k8sClient.Patch(testCtx, cur, patch)
	}, timeout).Should(Succeed())
	var out *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		out = getSource(g, obj)
		g.Expect(out.Status.LastHandledReconcileAt).To(Equal(token))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return out
}

// download GETs an artifact URL and returns the bytes.
func download(g Gomega, url string) []byte {
	resp, err := http.Get(url)
	g.Expect(err).ToNot(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(resp.ContentLength).To(Equal(int64(len(b))))
	return b
}

// untar returns the regular files of a tar.gz by name.
func untar(g Gomega, b []byte) map[string]string {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	g.Expect(err).ToNot(HaveOccurred())
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		g.Expect(err).ToNot(HaveOccurred())
		d, err := io.ReadAll(tr)
		g.Expect(err).ToNot(HaveOccurred())
		files[h.Name] = string(d)
	}
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func getExternalArtifact(g Gomega, obj *exsv1beta1.ExternalSource) *sourcev1.ExternalArtifact {
	ea := &sourcev1.ExternalArtifact{}
	g.Expect(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), ea)).To(Succeed())
	return ea
}

// TestExternalSourcePublishesArtifact is the walking skeleton's end-to-end
// test, run against every storage backend.
func TestExternalSourcePublishesArtifact(t *testing.T) {
	for _, name := range backendNames {
		t.Run(name, func(t *testing.T) { testPublishesArtifact(t, backends[name]) })
	}
}

func testPublishesArtifact(t *testing.T, b *backend) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, `{"price": 42}`)

	obj := newSourceOn(b.name, ns, "pricing", up.URL+"/v1/pricing")
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)

	// Ready names the revision; the artifact is a content-addressed revision.
	a := ready.Status.Artifact
	g.Expect(a).ToNot(BeNil())
	g.Expect(a.Revision).To(MatchRegexp(`^latest@sha256:[0-9a-f]{64}$`))
	g.Expect(a.Revision).To(Equal("latest@" + a.Digest))
	g.Expect(conditions.GetMessage(ready, meta.ReadyCondition)).To(ContainSubstring(a.Revision))
	if b.store.Ephemeral() {
		g.Expect(conditions.GetMessage(ready, meta.ReadyCondition)).To(ContainSubstring("do not survive a controller restart"))
	} else {
		g.Expect(conditions.GetMessage(ready, meta.ReadyCondition)).ToNot(ContainSubstring("restart"))
	}
	g.Expect(b.list(ns, obj.Name)).To(ConsistOf(a.Path))
	g.Expect(conditions.IsTrue(ready, exsv1beta1.ArtifactInStorageCondition)).To(BeTrue())
	g.Expect(ready.Finalizers).To(ContainElement(exsv1beta1.Finalizer))

	// The ExternalArtifact is ours, points back at us and carries the artifact.
	ea := getExternalArtifact(g, obj)
	owner := metav1.GetControllerOf(ea)
	g.Expect(owner).ToNot(BeNil())
	g.Expect(owner.UID).To(Equal(ready.UID))
	g.Expect(owner.Kind).To(Equal(exsv1beta1.ExternalSourceKind))
	g.Expect(ea.Spec.SourceRef).To(Equal(&meta.NamespacedObjectKindReference{
		APIVersion: exsv1beta1.GroupVersion.String(), Kind: exsv1beta1.ExternalSourceKind, Name: obj.Name, Namespace: ns,
	}))
	g.Expect(ea.Status.Artifact).To(Equal(a))
	g.Expect(conditions.IsReady(ea)).To(BeTrue())

	// The URL serves exactly the artifact: digest and size match, and the
	// archive holds only the data at destinationPath.
	data := download(g, a.URL)
	g.Expect(sha256Digest(data)).To(Equal(a.Digest))
	g.Expect(a.Size).ToNot(BeNil())
	g.Expect(int64(len(data))).To(Equal(*a.Size))
	g.Expect(untar(g, data)).To(Equal(map[string]string{"data/pricing.json": `{"price": 42}`}))

	// An unchanged upstream: fetched again on request, same revision,
	// nothing stored, no write to the ExternalArtifact.
	before := up.requests.Load()
	stored := b.list(ns, obj.Name)
	eaVersion := ea.ResourceVersion
	again := requestReconcile(t, obj)
	g.Expect(up.requests.Load()).To(BeNumerically(">", before))
	g.Expect(again.Status.Artifact).To(Equal(a))
	g.Expect(b.list(ns, obj.Name)).To(Equal(stored))
	g.Expect(getExternalArtifact(g, obj).ResourceVersion).To(Equal(eaVersion))

	// A changed upstream, on a reconcile request (the interval is 10m, so
	// only the request can trigger it): a new revision and URL, published.
	up.set(http.StatusOK, `{"price": 43}`)
	var changed *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		changed = requestReconcile(t, obj)
		g.Expect(changed.Status.Artifact.Revision).ToNot(Equal(a.Revision))
	}, timeout).Should(Succeed())
	g.Expect(changed.Status.Artifact.URL).ToNot(Equal(a.URL))
	g.Eventually(func(g Gomega) {
		g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(changed.Status.Artifact))
	}, timeout).Should(Succeed())
	g.Expect(untar(g, download(g, changed.Status.Artifact.URL))).To(Equal(map[string]string{"data/pricing.json": `{"price": 43}`}))
	// The previous artifact is kept for in-flight downloads.
	g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))

	// Deletion removes the ExternalArtifact and every stored artifact.
	g.Expect(k8sClient.Delete(testCtx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), &exsv1beta1.ExternalSource{}))
	}, timeout).Should(BeTrue())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(testCtx, client.ObjectKeyFromObject(obj), &sourcev1.ExternalArtifact{}))).To(BeTrue())
	for _, u := range []string{a.URL, changed.Status.Artifact.URL} {
		resp, err := http.Get(u)
		g.Expect(err).ToNot(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound))
	}
	g.Expect(b.list(ns, obj.Name)).To(BeEmpty())
}

func TestExternalSourceSuspend(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "a: 1\n")
	obj := newSource(ns, "suspended", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	rev := ready.Status.Artifact.Revision

	patch := client.MergeFrom(ready.DeepCopy())
	ready.Spec.Suspend = true
	g.Expect(k8sClient.Patch(testCtx, ready, patch)).To(Succeed())

	// Changes upstream and reconcile requests fetch nothing while suspended.
	up.set(http.StatusOK, "a: 2\n")
	before := up.requests.Load()
	handled := requestReconcile(t, obj)
	g.Expect(up.requests.Load()).To(Equal(before))
	g.Expect(handled.Status.Artifact.Revision).To(Equal(rev))

	// Resuming fetches the change.
	cur := getSource(g, obj)
	patch = client.MergeFrom(cur.DeepCopy())
	cur.Spec.Suspend = false
	g.Expect(k8sClient.Patch(testCtx, cur, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getSource(g, obj).Status.Artifact.Revision).ToNot(Equal(rev))
	}, timeout).Should(Succeed())
	g.Expect(up.requests.Load()).To(BeNumerically(">", before))
}

func TestExternalSourceFailuresKeepTheArtifact(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "v: 1\n")
	obj := newSource(ns, "flaky", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	ready := waitReady(t, obj)
	a := ready.Status.Artifact

	up.set(http.StatusServiceUnavailable, "maintenance window")
	requestReconcile(t, obj)
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.IsTrue(cur, exsv1beta1.FetchFailedCondition)).To(BeTrue())
		msg := conditions.GetMessage(cur, meta.ReadyCondition)
		g.Expect(msg).To(ContainSubstring("503"))
		g.Expect(msg).To(ContainSubstring("maintenance window"))
		g.Expect(cur.Status.Artifact).To(Equal(a))
	}, timeout).Should(Succeed())
	// Still published and downloadable.
	g.Expect(getExternalArtifact(g, obj).Status.Artifact).To(Equal(a))
	g.Expect(sha256Digest(download(g, a.URL))).To(Equal(a.Digest))
	var events corev1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.List(testCtx, &events, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range events.Items {
			if e.InvolvedObject.Name == obj.Name && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "503") {
				found = true
			}
		}
		g.Expect(found).To(BeTrue(), "a Warning event with the failure")
	}, timeout).Should(Succeed())

	// It recovers by itself (controller-runtime backoff), without a request.
	up.set(http.StatusOK, "v: 1\n")
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(conditions.Has(cur, exsv1beta1.FetchFailedCondition)).To(BeFalse())
		g.Expect(cur.Status.Artifact).To(Equal(a))
	}, timeout).Should(Succeed())
}

// TestBadInputBeyondTheSchema: input the API server cannot judge (it
// depends on Secrets, the whitelist, the URL policy or the controller's
// configuration) fails with a message naming the field. What only a spec
// change can fix is Stalled; what a Secret or the network can fix is
// retried with backoff, since Secrets are not watched.
func TestBadInputBeyondTheSchema(t *testing.T) {
	ns := newNamespace(t)
	up := newUpstream(t, "x")
	g := NewWithT(t)
	for name, data := range map[string]map[string]string{
		"garbage-ca":  {"ca.crt": "not a certificate"},
		"bad-header":  {"X-Token": "line one\nline two"},
		"no-address":  {"username": "u"},
		"cert-no-key": {"tls.crt": "-----BEGIN CERTIFICATE-----"},
	} {
		g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data})).To(Succeed())
	}
	ref := func(name string) *meta.LocalObjectReference { return &meta.LocalObjectReference{Name: name} }
	tests := []struct {
		name    string
		manager string
		mutate  func(*exsv1beta1.ExternalSource)
		stalled bool
		reason  string
		message []string
	}{
		{name: "hooks-without-executor", manager: "no-hooks", stalled: true, reason: exsv1beta1.HooksDisabledReason,
			mutate: func(o *exsv1beta1.ExternalSource) {
				o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "to-yaml", Command: "yq"}}}
			},
			message: []string{"spec.hooks: hooks are disabled on this controller"}},
		{name: "hook-not-whitelisted", manager: "memory", stalled: true, reason: exsv1beta1.HookRejectedReason,
			mutate: func(o *exsv1beta1.ExternalSource) {
				withHooks(o, nil, []exsv1beta1.Hook{sh("copy", "cat"), {Name: "net", Command: "nc", Args: []string{"-l"}}})
			},
			message: []string{`spec.hooks.postRequest[1].command: hook "net" rejected by the whitelist: command "nc" is not on the whitelist`}},
		// The URL policy judges the address dialled, after DNS: retried,
		// as a name may resolve elsewhere later.
		{name: "metadata-address", manager: "memory", reason: exsv1beta1.FetchFailedReason,
			mutate: func(o *exsv1beta1.ExternalSource) {
				o.Spec.Generator.HTTP.URL = "http://169.254.169.254/latest/meta-data/"
			},
			message: []string{"GET http://169.254.169.254/latest/meta-data/", "is a link-local address", "denied by the URL policy"}},
		// A Secret's content: retried, so that fixing the Secret is enough.
		{name: "ca-not-a-certificate", manager: "memory", reason: exsv1beta1.FetchFailedReason,
			mutate:  func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.CertSecretRef = ref("garbage-ca") },
			message: []string{fmt.Sprintf(`spec.generator.http.certSecretRef: ca.crt of Secret "%s/garbage-ca" holds no PEM certificate`, ns)}},
		{name: "certificate-without-key", manager: "memory", reason: exsv1beta1.FetchFailedReason,
			mutate:  func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.CertSecretRef = ref("cert-no-key") },
			message: []string{fmt.Sprintf(`spec.generator.http.certSecretRef: Secret "%s/cert-no-key" has tls.crt but no tls.key`, ns)}},
		{name: "header-value-with-newline", manager: "memory", reason: exsv1beta1.FetchFailedReason,
			mutate:  func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.HeadersSecretRef = ref("bad-header") },
			message: []string{fmt.Sprintf(`spec.generator.http.headersSecretRef: Secret "%s/bad-header": the value of key "X-Token" is not a valid header value`, ns)}},
		{name: "proxy-without-address", manager: "memory", reason: exsv1beta1.FetchFailedReason,
			mutate:  func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.ProxySecretRef = ref("no-address") },
			message: []string{"spec.generator.http.proxySecretRef:", "key 'address' not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newSourceOn(tt.manager, ns, tt.name, up.URL)
			tt.mutate(obj)
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
				g.Expect(conditions.IsStalled(cur)).To(Equal(tt.stalled))
				g.Expect(conditions.GetReason(cur, meta.ReadyCondition)).To(Equal(tt.reason))
				for _, m := range tt.message {
					g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(m))
				}
				if tt.stalled {
					g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
				}
				g.Expect(cur.Status.Artifact).To(BeNil(), "nothing was published")
			}, timeout).Should(Succeed())
		})
	}
}

func TestExternalSourceMissingSecretRetries(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var auth atomic.Value
	auth.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, "ok: true\n")
	}))
	t.Cleanup(srv.Close)
	obj := newSource(ns, "auth", srv.URL)
	obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "api-auth"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.IsStalled(cur)).To(BeFalse())
		g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(fmt.Sprintf(`Secret "%s/api-auth" not found`, ns)))
	}, timeout).Should(Succeed())

	// Creating the Secret is enough: the failure was retried with backoff.
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api-auth", Namespace: ns},
		StringData: map[string]string{"Authorization": "Bearer s3cr3t"}}
	g.Expect(k8sClient.Create(testCtx, secret)).To(Succeed())
	ready := waitReady(t, obj)
	g.Expect(auth.Load()).To(Equal("Bearer s3cr3t"))
	g.Expect(conditions.GetMessage(ready, meta.ReadyCondition)).ToNot(ContainSubstring("s3cr3t"))
}

func TestExternalArtifactOwnedByAnotherIsNotAdopted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := newUpstream(t, "x: 1\n")
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns}}
	g.Expect(k8sClient.Create(testCtx, other)).To(Succeed())
	isController := true
	foreign := &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{
		Name: "taken", Namespace: ns,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: other.UID, Controller: &isController}},
	}}
	g.Expect(k8sClient.Create(testCtx, foreign)).To(Succeed())

	obj := newSource(ns, "taken", up.URL)
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(conditions.GetReason(cur, meta.ReadyCondition)).To(Equal(exsv1beta1.ArtifactOwnedByOtherReason))
		g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring("refusing to adopt"))
	}, timeout).Should(Succeed())
	ea := getExternalArtifact(g, obj)
	g.Expect(ea.Status.Artifact).To(BeNil())
	g.Expect(metav1.GetControllerOf(ea).UID).To(Equal(other.UID))
}
