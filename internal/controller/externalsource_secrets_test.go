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
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// The values a tenant put into Secrets (and a URL query): none of them may
// reach a condition, an event, a log line (at the most verbose level) or a
// metric label, whichever failure path fires.
const (
	secretAPIKey   = "hdr-S3CRET-apikey-7f3a"
	secretBearer   = "Bearer tok-S3CRET-bearer-91c2"
	secretQuery    = "qry-S3CRET-query-55d1"
	secretProxyPwd = "prx-S3CRET-password-0b8e"
)

var allSecrets = []string{secretAPIKey, secretBearer, strings.TrimPrefix(secretBearer, "Bearer "), secretQuery, secretProxyPwd}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestSecretsNeverLeave makes every failure path fire for sources that
// carry secret header values, proxy credentials and a URL query secret, and
// reads everything the controller wrote for others: the object's status,
// the events, the log at trace level and the metrics.
func TestSecretsNeverLeave(t *testing.T) {
	g := NewWithT(t)
	// The reconciler's own metrics on a registry of the test's own, so
	// that their labels are read too (and seen to be recorded at all).
	reg := prometheus.NewRegistry()
	fetches := metrics.NewIsolatedRecorder()
	reg.MustRegister(fetches.Collectors()...)
	im := startIsolated(t, -5 /* trace: the most verbose */, func(r *ExternalSourceReconciler) {
		r.HookRunner = backends["memory"].hooks
		r.FetchMetrics = fetches
	})
	ns := newNamespace(t)

	g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth", Namespace: ns},
		StringData: map[string]string{"X-Api-Key": secretAPIKey, "Authorization": secretBearer}})).To(Succeed())
	g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "proxy", Namespace: ns},
		StringData: map[string]string{"address": "http://" + closedAddr(t), "username": "proxyuser", "password": secretProxyPwd}})).To(Succeed())

	// An upstream that answers 401 echoing what it was sent, as some do.
	echo401 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, "bad key %s / %s for %s", r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"), r.URL)
	}))
	defer echo401.Close()
	// An upstream that redirects to a closed port, the query secret in
	// the Location.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+closedAddr(t)+"/next?api_key="+secretQuery, http.StatusFound)
	}))
	defer redirect.Close()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer plain.Close()

	withQuery := func(base string) string { return base + "/v1?api_key=" + secretQuery }
	preHook := func(filter string, policy string) *exsv1beta1.Hooks {
		return &exsv1beta1.Hooks{PreRequest: []exsv1beta1.Hook{{Name: "leak", Command: "jq", Args: []string{"-c", filter}, RetryPolicy: policy}}}
	}
	tests := []struct {
		name  string
		url   string
		hooks *exsv1beta1.Hooks
		proxy bool
		// failed says the failure is reported (an ignored hook failure
		// is an event, and the fetch goes on).
		failed bool
		// redacted says Ready's message carried a secret, now replaced by
		// the placeholder: the positive control that this path would
		// have leaked it.
		redacted bool
	}{
		{name: "hook-error", url: withQuery(plain.URL), hooks: preHook(`.headers["X-Api-Key"]|error`, ""), failed: true, redacted: true},
		{name: "hook-tostring", url: withQuery(plain.URL), hooks: preHook(`.headers|tostring|error`, ""), failed: true, redacted: true},
		{name: "hook-tonumber", url: withQuery(plain.URL), hooks: preHook(`.headers.Authorization|tonumber`, ""), failed: true, redacted: true},
		{name: "hook-url-error", url: withQuery(plain.URL), hooks: preHook(`.url|error`, ""), failed: true, redacted: true},
		{name: "hook-ignored", url: withQuery(plain.URL), hooks: preHook(`.headers["X-Api-Key"]|error`, exsv1beta1.HookRetryPolicyIgnore)},
		{name: "connection-refused", url: withQuery("http://" + closedAddr(t)), failed: true},
		{name: "tls-error", url: withQuery(strings.Replace(plain.URL, "http://", "https://", 1)), failed: true},
		{name: "unauthorized-echo", url: withQuery(echo401.URL), failed: true, redacted: true},
		{name: "redirect", url: withQuery(redirect.URL), failed: true},
		{name: "proxy-refused", url: withQuery(plain.URL), proxy: true, failed: true},
	}
	for _, tt := range tests {
		obj := im.source(ns, tt.name, tt.url)
		obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"}
		if tt.proxy {
			obj.Spec.Generator.HTTP.ProxySecretRef = &meta.LocalObjectReference{Name: "proxy"}
		}
		obj.Spec.Hooks = tt.hooks
		obj.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Second}
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed(), tt.name)
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns}}
			// Wait until the failure path fired and was reported.
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				if tt.failed {
					g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue(), "%v", cur.Status.Conditions)
				} else {
					g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
				}
				var evs corev1.EventList
				g.Expect(k8sClient.List(testCtx, &evs, client.InNamespace(ns))).To(Succeed())
				var mine int
				for _, e := range evs.Items {
					if e.InvolvedObject.Name == tt.name && e.Type == corev1.EventTypeWarning {
						mine++
					}
				}
				g.Expect(mine).To(BeNumerically(">", 0), "a Warning event")
			}, timeout, 200*time.Millisecond).Should(Succeed())

			cur := getSource(g, obj)
			status, err := json.Marshal(cur.Status)
			g.Expect(err).ToNot(HaveOccurred())
			t.Logf("Ready: %s", conditions.GetMessage(cur, meta.ReadyCondition))
			for _, s := range allSecrets {
				g.Expect(string(status)).ToNot(ContainSubstring(s), "status")
			}
			// The failure is still explained: the message is not empty.
			if tt.failed {
				g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).ToNot(BeEmpty())
			}
			if tt.redacted {
				g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(ContainSubstring(redact.Placeholder),
					"a secret was on this path and was replaced")
			}
		})
	}

	// Events, log lines and metrics, all at once.
	var evs corev1.EventList
	g.Expect(k8sClient.List(testCtx, &evs, client.InNamespace(ns))).To(Succeed())
	g.Expect(evs.Items).ToNot(BeEmpty())
	for _, e := range evs.Items {
		for _, s := range allSecrets {
			g.Expect(e.Message).ToNot(ContainSubstring(s), "event %s/%s", e.InvolvedObject.Name, e.Reason)
		}
	}
	logs := im.logs.String()
	g.Expect(logs).To(ContainSubstring("leak"), "the log was captured")
	for _, s := range allSecrets {
		g.Expect(logs).ToNot(ContainSubstring(s), "log")
	}
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	own, err := reg.Gather()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(value(g, reg, metrics.FetchTotalName, map[string]string{"result": metrics.ResultError})).To(BeNumerically(">", 0),
		"the failures were recorded on the test's registry")
	g.Expect(value(g, reg, metrics.ReconcileTotalName, map[string]string{"result": metrics.ReconcileFailure})).To(BeNumerically(">", 0))
	for _, f := range append(families, own...) {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, s := range allSecrets {
					g.Expect(l.GetValue()).ToNot(ContainSubstring(s), "metric %s label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
}
