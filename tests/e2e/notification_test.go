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
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// fluxControllerRBAC applies the RBAC a Flux install gives its controllers
// (the crd-controller ClusterRole and its binding, from the flux2 module
// the tools module pins) and returns a kubeconfig with the token of the
// ServiceAccount sa it binds: a controller run with it has exactly what it
// has in a cluster installed by `flux install`.
func fluxControllerRBAC(g Gomega, sa string) string {
	dl := exec.Command("go", "mod", "download", "-json", "github.com/fluxcd/flux2/v2")
	dl.Dir = filepath.Join(devenv.Root(), "tests", "tools", "flux")
	out, err := dl.Output()
	g.Expect(err).ToNot(HaveOccurred(), "downloading the flux2 module")
	var mod struct{ Dir string }
	g.Expect(json.Unmarshal(out, &mod)).To(Succeed())
	b, err := os.ReadFile(filepath.Join(mod.Dir, "manifests", "rbac", "controller.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	g.Expect(objs).To(HaveLen(2), "crd-controller ClusterRole and ClusterRoleBinding")
	apply(g, objs)

	g.Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: runtimeNamespace}}))).To(Succeed())
	cs, err := kubernetes.NewForConfig(restConfig)
	g.Expect(err).ToNot(HaveOccurred())
	tok, err := cs.CoreV1().ServiceAccounts(runtimeNamespace).CreateToken(ctx, sa,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	g.Expect(err).ToNot(HaveOccurred())
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts[sa] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: sa}
	kc.CurrentContext = sa
	path := filepath.Join(workDir, "kubeconfig-"+sa)
	g.Expect(clientcmd.WriteToFile(*kc, path)).To(Succeed())
	return path
}

// applyYAML creates the objects of a YAML stream.
func applyYAML(g Gomega, doc string) {
	for _, part := range strings.Split(doc, "\n---\n") {
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte(part), &u.Object)).To(Succeed())
		g.Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
	}
}

// notifyNS is the namespace of the notification test's objects.
const notifyNS = "notify"

// notificationObjects are the Providers, Alerts and Receivers of the test,
// as a user writes them (docs/getting-started.md shows the Receivers):
// Alerts and Receivers name the ExternalArtifact, since notification-
// controller's API accepts only Flux kinds there.
func notificationObjects(webhook string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: webhook-token, namespace: %[1]s}
stringData: {token: s3cr3t-t0ken}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: all, namespace: %[1]s}
spec: {type: generic, address: "%[2]s/all"}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata: {name: errors, namespace: %[1]s}
spec: {type: generic, address: "%[2]s/errors"}
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: all, namespace: %[1]s}
spec:
  providerRef: {name: all}
  eventSeverity: info
  eventSources:
    - kind: ExternalArtifact
      name: pricing
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata: {name: errors, namespace: %[1]s}
spec:
  providerRef: {name: errors}
  eventSeverity: error
  eventSources:
    - kind: ExternalArtifact
      name: '*'
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: generic, namespace: %[1]s}
spec:
  type: generic
  secretRef: {name: webhook-token}
  resources:
    - apiVersion: source.toolkit.fluxcd.io/v1
      kind: ExternalArtifact
      name: pricing
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: hmac, namespace: %[1]s}
spec:
  type: generic-hmac
  secretRef: {name: webhook-token}
  resources:
    - apiVersion: source.toolkit.fluxcd.io/v1
      kind: ExternalArtifact
      name: pricing`, notifyNS, webhook)
}

// webhookPath waits until the Receiver is Ready and returns its path.
func webhookPath(g Gomega, name string) string {
	var path string
	g.Eventually(func(g Gomega) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("notification.toolkit.fluxcd.io/v1")
		u.SetKind("Receiver")
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: notifyNS, Name: name}, u)).To(Succeed())
		c := readyCondition(u)
		g.Expect(c).ToNot(BeNil())
		g.Expect(c["status"]).To(Equal("True"), "%v", c)
		path, _, _ = unstructured.NestedString(u.Object, "status", "webhookPath")
		g.Expect(path).To(HavePrefix("/hook/"))
	}, timeout).Should(Succeed())
	return path
}

// TestNotificationController runs the real notification-controller (the
// release the tools module pins) with the RBAC Flux gives it, and one of
// our controllers whose --events-addr points at it:
//   - Alerts selecting our ExternalArtifact receive NewArtifact with the
//     revision, and the failures; an Alert with eventSeverity: error only
//     the failures;
//   - Receivers of type generic and generic-hmac naming the ExternalArtifact
//     trigger a fetch of the ExternalSource (interval 1h) at once.
func TestNotificationController(t *testing.T) {
	g := NewWithT(t)
	ncBin := filepath.Join(devenv.Root(), "bin", "notification-controller")
	if _, err := os.Stat(ncBin); err != nil {
		t.Fatalf("%s not found: run `make tools` first", ncBin)
	}

	// The notifications the Providers forward, by path.
	all, errs := &testutil.EventReceiver{}, &testutil.EventReceiver{}
	mux := http.NewServeMux()
	mux.Handle("/all", all)
	mux.Handle("/errors", errs)
	hooks := httptest.NewServer(mux)
	defer hooks.Close()

	ncKubeconfig := fluxControllerRBAC(g, "notification-controller")
	eventsAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	receiverAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	nc, err := startCmd("notification-controller", ncBin, ncKubeconfig,
		"--events-addr="+eventsAddr, "--receiverAddr="+receiverAddr,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", "--log-encoding=console")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = nc.Process.Signal(os.Interrupt); _ = nc.Wait() })

	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	exs, err := startCmd("notification-externalsource-controller", bin, kubeconfig,
		"--watch-label-selector=e2e.externalsource.io/shard=notification",
		"--storage-backend=memory", "--storage-addr="+storageAddr, "--storage-adv-addr="+storageAddr,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", allowLoopback,
		"--events-addr=http://"+eventsAddr+"/")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = exs.Process.Signal(os.Interrupt); _ = exs.Wait() })

	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: notifyNS}})).To(Succeed())
	applyYAML(g, notificationObjects(hooks.URL))
	// The API accepts only Flux kinds: an Alert or a Receiver naming our
	// ExternalSource kind is refused (hence the ExternalArtifact above).
	for _, doc := range []string{
		`{"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert", "metadata": {"name": "own-kind", "namespace": "` + notifyNS + `"},
		  "spec": {"providerRef": {"name": "all"}, "eventSources": [{"kind": "ExternalSource", "name": "pricing"}]}}`,
		`{"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "own-kind", "namespace": "` + notifyNS + `"},
		  "spec": {"type": "generic", "secretRef": {"name": "webhook-token"}, "resources": [{"apiVersion": "source.externalsource.io/v1beta1", "kind": "ExternalSource", "name": "pricing"}]}}`,
	} {
		u := &unstructured.Unstructured{}
		g.Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
		err := k8sClient.Create(ctx, u)
		g.Expect(err).To(HaveOccurred(), u.GetKind())
		g.Expect(err.Error()).To(ContainSubstring(`Unsupported value: "ExternalSource"`))
	}
	// Ready Receivers: notification-controller runs with its caches synced.
	genericPath, hmacPath := webhookPath(g, "generic"), webhookPath(g, "hmac")

	upstream := &api{price: "1", status: http.StatusOK}
	srv := httptest.NewServer(upstream)
	defer srv.Close()
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: notifyNS,
			Labels: map[string]string{"e2e.externalsource.io/shard": "notification"}},
		Spec: exsv1beta1.ExternalSourceSpec{
			// Only a push can bring a new revision within the test.
			Interval:        metav1.Duration{Duration: time.Hour},
			DestinationPath: "pricing.json",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	first := waitPublished(g, src).Revision

	// push changes the upstream, posts to a Receiver and waits for the new
	// revision; it returns the revision and how long it took.
	push := func(price string, path string, header http.Header, body string) (string, time.Duration) {
		upstream.set(http.StatusOK, price)
		before := revisionNow(g, src)
		start := time.Now()
		req, err := http.NewRequest(http.MethodPost, "http://"+receiverAddr+path, strings.NewReader(body))
		g.Expect(err).ToNot(HaveOccurred())
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).ToNot(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
		var rev string
		g.Eventually(func() string { rev = revisionNow(g, src); return rev }, timeout, 10*time.Millisecond).ShouldNot(Equal(before))
		return rev, time.Since(start)
	}

	// A generic Receiver: the path is the secret.
	second, latency := push("2", genericPath, http.Header{}, "")
	t.Logf("generic Receiver: new revision published %s after the webhook call (interval 1h)", latency.Round(time.Millisecond))
	g.Expect(second).ToNot(Equal(first))
	// The ExternalSource shows the Receiver's request as handled.
	ea := &sourcev1.ExternalArtifact{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
		requested := ea.Annotations[meta.ReconcileRequestAnnotation]
		g.Expect(requested).ToNot(BeEmpty())
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(requested))
	}, timeout).Should(Succeed())

	// The Alert on every event received NewArtifact for the
	// ExternalArtifact, with the revision in its metadata (notification-
	// controller strips the group prefix, and drops the digest key for
	// every kind).
	newArtifact := func(rev string) func(g Gomega) {
		return func(g Gomega) {
			e := findEvent(all.All(), func(e eventv1.Event) bool {
				return e.Reason == exsv1beta1.NewArtifactReason && e.Metadata[eventv1.MetaRevisionKey] == rev
			})
			g.Expect(e).ToNot(BeNil(), "NewArtifact %s among %d notifications", rev, len(all.All()))
			g.Expect(e.InvolvedObject.Kind).To(Equal(sourcev1.ExternalArtifactKind))
			g.Expect(e.InvolvedObject.APIVersion).To(Equal(sourcev1.GroupVersion.String()))
			g.Expect(e.InvolvedObject.Name).To(Equal("pricing"))
			g.Expect(e.InvolvedObject.Namespace).To(Equal(notifyNS))
			g.Expect(e.Severity).To(Equal(eventv1.EventSeverityInfo))
			g.Expect(e.Message).To(ContainSubstring(rev))
			g.Expect(e.ReportingController).To(Equal("externalsource-controller"))
			g.Expect(e.Metadata).ToNot(HaveKey(eventv1.MetaDigestKey))
		}
	}
	g.Eventually(newArtifact(second), timeout).Should(Succeed())

	// A generic-hmac Receiver refuses a request without a valid signature
	// and accepts a signed one (HMAC of the body with the Secret's token,
	// X-Signature: sha256=<hex>).
	body := `{"event": "pricing-changed"}`
	bad, err := http.Post("http://"+receiverAddr+hmacPath, "application/json", strings.NewReader(body))
	g.Expect(err).ToNot(HaveOccurred())
	bad.Body.Close()
	g.Expect(bad.StatusCode).To(Equal(http.StatusBadRequest))
	mac := hmac.New(sha256.New, []byte("s3cr3t-t0ken"))
	mac.Write([]byte(body))
	signed := http.Header{"Content-Type": {"application/json"}, "X-Signature": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}
	third, latency := push("3", hmacPath, signed, body)
	t.Logf("generic-hmac Receiver: new revision published %s after the webhook call (interval 1h)", latency.Round(time.Millisecond))
	g.Expect(third).ToNot(Equal(second))
	g.Eventually(newArtifact(third), timeout).Should(Succeed())

	// The upstream fails; a push makes the failure known at once. Both
	// Alerts receive it, as an error of the ExternalArtifact. (A 404: the
	// controller does not retry it within the fetch, as it does a 5xx for
	// seconds; the notification is the same.)
	upstream.set(http.StatusNotFound, "")
	resp, err := http.Post("http://"+receiverAddr+genericPath, "application/json", nil)
	g.Expect(err).ToNot(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	failure := func(e eventv1.Event) bool {
		return e.Severity == eventv1.EventSeverityError && strings.Contains(e.Message, "404")
	}
	for name, r := range map[string]*testutil.EventReceiver{"all": all, "errors": errs} {
		g.Eventually(func(g Gomega) {
			e := findEvent(r.All(), failure)
			g.Expect(e).ToNot(BeNil(), "Alert %s: the failure", name)
			g.Expect(e.InvolvedObject.Kind).To(Equal(sourcev1.ExternalArtifactKind))
			g.Expect(e.InvolvedObject.Name).To(Equal("pricing"))
			g.Expect(e.Reason).To(Equal(exsv1beta1.FetchFailedReason))
		}, timeout).Should(Succeed())
	}
	// The event is sent before the status is written: wait for it.
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue(), "Ready=False")
		g.Expect(cur.Status.Artifact.Revision).To(Equal(third), "the last good revision stays published")
	}, timeout).Should(Succeed())

	// The error-only Alert received errors only: no NewArtifact.
	for _, e := range errs.All() {
		g.Expect(e.Severity).To(Equal(eventv1.EventSeverityError), "%s: %s", e.Reason, e.Message)
	}
	// Every notification is about the ExternalArtifact: the Alerts cannot
	// select the ExternalSource, whose notifications notification-
	// controller discards.
	for _, e := range append(all.All(), errs.All()...) {
		g.Expect(e.InvolvedObject.Kind).To(Equal(sourcev1.ExternalArtifactKind))
	}
	t.Logf("Alert all: %d notifications, Alert errors: %d", len(all.All()), len(errs.All()))
}

// revisionNow is the ExternalSource's published revision.
func revisionNow(g Gomega, src *exsv1beta1.ExternalSource) string {
	cur := &exsv1beta1.ExternalSource{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
	if cur.Status.Artifact == nil {
		return ""
	}
	return cur.Status.Artifact.Revision
}

// findEvent returns the first event that matches, or nil.
func findEvent(events []eventv1.Event, match func(eventv1.Event) bool) *eventv1.Event {
	for i := range events {
		if match(events[i]) {
			return &events[i]
		}
	}
	return nil
}
