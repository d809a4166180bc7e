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
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestTLSSources runs sources against real TLS servers: a CA bundle from a
// Secret, a wrong CA (a TLS error, retried, never Stalled), mutual TLS, and
// insecureSkipVerify (works, and says so in Ready and a Warning event).
func TestTLSSources(t *testing.T) {
	// failing makes the server answer 500 on /failing, for the insecure
	// source's last step.
	var failing atomic.Bool
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/failing" && failing.Load() {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		who := "anonymous"
		if len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		_, _ = io.WriteString(w, "client: "+who+"\n")
	})
	srv := httptest.NewTLSServer(hello)
	t.Cleanup(srv.Close)
	clientCA := testutil.NewCA(t, "client-ca")
	mtls := testutil.NewMTLSServer(t, clientCA, hello)
	crt, key := clientCA.IssueClient(t, "externalsource")

	ns := newNamespace(t)
	g := NewWithT(t)
	for name, data := range map[string]map[string][]byte{
		"ca":       {"ca.crt": testutil.ServerCAPEM(srv)},
		"wrong-ca": {"ca.crt": testutil.NewCA(t, "other").PEM},
		"mtls":     {"ca.crt": testutil.ServerCAPEM(mtls), "tls.crt": crt, "tls.key": key},
	} {
		g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data})).To(Succeed())
	}
	certRef := func(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: name} }
	}

	tests := []struct {
		name     string
		url      string
		mutate   func(*exsv1beta1.HTTPGeneratorSpec)
		wantData string
		wantErr  string
		insecure bool
	}{
		{name: "ca-bundle", url: srv.URL, mutate: certRef("ca"), wantData: "client: anonymous\n"},
		{name: "wrong-ca", url: srv.URL, mutate: certRef("wrong-ca"), wantErr: "TLS error"},
		{name: "mtls", url: mtls.URL, mutate: certRef("mtls"), wantData: "client: externalsource\n"},
		{name: "insecure", url: srv.URL + "/failing", mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.InsecureSkipVerify = true },
			wantData: "client: anonymous\n", insecure: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newSource(ns, tt.name, tt.url)
			tt.mutate(obj.Spec.Generator.HTTP)
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			if tt.wantErr != "" {
				g.Eventually(func(g Gomega) {
					cur := getSource(g, obj)
					g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
					g.Expect(conditions.IsStalled(cur)).To(BeFalse())
					g.Expect(conditions.IsTrue(cur, exsv1beta1.FetchFailedCondition)).To(BeTrue())
					g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(tt.wantErr))
					g.Expect(conditions.GetReason(cur, meta.ReconcilingCondition)).To(Equal(meta.ProgressingWithRetryReason))
				}, timeout).Should(Succeed())
				g.Eventually(func(g Gomega) {
					g.Expect(warningEvents(g, ns, obj.Name, tt.wantErr)).ToNot(BeEmpty())
				}, timeout).Should(Succeed())
				return
			}
			ready := waitReady(t, obj)
			g.Expect(untar(g, download(g, ready.Status.Artifact.URL))).To(Equal(map[string]string{"data/pricing.json": tt.wantData}))
			msg := conditions.GetMessage(ready, meta.ReadyCondition)
			if !tt.insecure {
				g.Expect(msg).ToNot(ContainSubstring("insecureSkipVerify"))
				g.Expect(warningEvents(g, ns, obj.Name, "")).To(BeEmpty())
				return
			}
			g.Expect(msg).To(ContainSubstring("warning: " + httpgen.InsecureWarning))
			var warned []corev1.Event
			g.Eventually(func(g Gomega) {
				warned = warningEvents(g, ns, obj.Name, httpgen.InsecureWarning)
				g.Expect(warned).To(HaveLen(1))
				g.Expect(warned[0].Reason).To(Equal(exsv1beta1.GeneratorWarningReason))
			}, timeout).Should(Succeed())
			// The warning is an event when it appears, not on every
			// reconcile. Events are written asynchronously, in the order
			// they are recorded: a failure recorded after the two
			// reconciles is a barrier, once it is written any repeated
			// warning would have been too.
			requestReconcile(t, obj)
			requestReconcile(t, obj)
			g.Expect(conditions.GetMessage(getSource(g, obj), meta.ReadyCondition)).To(ContainSubstring(httpgen.InsecureWarning))
			failing.Store(true)
			requestReconcile(t, obj)
			g.Eventually(func(g Gomega) {
				g.Expect(warningEvents(g, ns, obj.Name, "failing on purpose")).ToNot(BeEmpty())
			}, timeout).Should(Succeed())
			g.Consistently(func(g Gomega) {
				again := warningEvents(g, ns, obj.Name, httpgen.InsecureWarning)
				g.Expect(again).To(HaveLen(1))
				g.Expect(again[0].Count).To(Equal(warned[0].Count))
			}, 2*time.Second, 100*time.Millisecond).Should(Succeed())
		})
	}
}

// TestMissingSecretsRetry: every Secret reference of the http generator
// names the missing Secret in Ready, is retried (not Stalled), and recovers
// when the Secret appears. Secret values never reach status or events.
func TestMissingSecretsRetry(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "auth: %q\n", r.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(upstream.Close)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "tls: true\n")
	}))
	t.Cleanup(tlsSrv.Close)
	proxy := testutil.NewProxy(t, strings.TrimPrefix(upstream.URL, "http://"), "proxy-user", "proxy-s3cret")

	tests := []struct {
		name   string
		url    string
		field  string
		mutate func(*exsv1beta1.HTTPGeneratorSpec)
		secret map[string][]byte
		want   string
	}{
		{name: "headers", url: upstream.URL, field: "spec.generator.http.headersSecretRef",
			mutate: func(s *exsv1beta1.HTTPGeneratorSpec) {
				s.HeadersSecretRef = &meta.LocalObjectReference{Name: "headers"}
			},
			secret: map[string][]byte{"X-Api-Key": []byte("k3y-s3cret")}, want: "auth: \"k3y-s3cret\"\n"},
		{name: "cert", url: tlsSrv.URL, field: "spec.generator.http.certSecretRef",
			mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: "cert"} },
			secret: map[string][]byte{"ca.crt": testutil.ServerCAPEM(tlsSrv)}, want: "tls: true\n"},
		{name: "proxy", url: "http://api.externalsource.invalid/", field: "spec.generator.http.proxySecretRef",
			mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.ProxySecretRef = &meta.LocalObjectReference{Name: "proxy"} },
			secret: map[string][]byte{"address": []byte(proxy.URL), "username": []byte("proxy-user"), "password": []byte("proxy-s3cret")},
			want:   "auth: \"\"\n"},
	}
	ns := newNamespace(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newSource(ns, tt.name, tt.url)
			tt.mutate(obj.Spec.Generator.HTTP)
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
				g.Expect(conditions.IsStalled(cur)).To(BeFalse())
				g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(
					fmt.Sprintf(`%s: Secret "%s/%s" not found`, tt.field, ns, tt.name)))
			}, timeout).Should(Succeed())

			g.Expect(k8sClient.Create(testCtx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns}, Data: tt.secret})).To(Succeed())
			ready := waitReady(t, obj)
			g.Expect(untar(g, download(g, ready.Status.Artifact.URL))).To(Equal(map[string]string{"data/pricing.json": tt.want}))

			// No Secret value in status or events (the data itself may hold
			// whatever the upstream returns; here it echoes the header).
			var list corev1.EventList
			g.Expect(k8sClient.List(testCtx, &list)).To(Succeed())
			for _, e := range list.Items {
				g.Expect(e.Message).ToNot(ContainSubstring("s3cret"))
			}
			for _, c := range ready.Status.Conditions {
				g.Expect(c.Message).ToNot(ContainSubstring("s3cret"))
			}
		})
	}
	g := NewWithT(t)
	g.Expect(proxy.Requests.Load()).To(BeNumerically(">=", 1))
}
