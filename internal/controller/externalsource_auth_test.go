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
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/storage"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// Credentials of the auth tests: long and distinctive, so that a leak is
// found by substring.
const (
	authUser         = "auth-user-5b1c"
	authPassword     = "auth-PASSWORD-9e7d21"
	authWrongPwd     = "auth-WRONGPWD-44c0aa"
	authBearer       = "auth-BEARER-token-c3f81b"
	authWrongBearer  = "auth-WRONGBEARER-1d9e02"
	authClientID     = "auth-client-id-77"
	authClientSecret = "auth-CLIENTSECRET-a0b1c2"
	authWrongSecret  = "auth-WRONGSECRET-d3e4f5"
	authRotated      = "auth-ROTATEDSECRET-6a7b8c"
)

func basicAuth(name string) *exsv1beta1.HTTPAuth {
	return &exsv1beta1.HTTPAuth{Basic: &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{Name: name}}}
}

func bearerAuth(name string) *exsv1beta1.HTTPAuth {
	return &exsv1beta1.HTTPAuth{Bearer: &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{Name: name}}}
}

func oauth2Auth(tokenURL, name string) *exsv1beta1.HTTPAuth {
	return &exsv1beta1.HTTPAuth{OAuth2: &exsv1beta1.OAuth2Auth{TokenURL: tokenURL, Scopes: []string{"read"},
		EndpointParams: map[string][]string{"audience": {"api"}}, SecretRef: &meta.LocalObjectReference{Name: name}}}
}

func createSecret(g Gomega, ns, name string, data map[string]string) {
	g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		StringData: data})).To(Succeed())
}

func updateSecret(g Gomega, ns, name string, data map[string]string) {
	s := &corev1.Secret{}
	g.Expect(k8sClient.Get(testCtx, client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	s.StringData = data
	g.Expect(k8sClient.Update(testCtx, s)).To(Succeed())
}

// waitAuthFailed waits until the object reports FetchFailed with reason
// AuthenticationFailed and returns it.
func waitAuthFailed(t *testing.T, obj *exsv1beta1.ExternalSource) *exsv1beta1.ExternalSource {
	t.Helper()
	var out *exsv1beta1.ExternalSource
	NewWithT(t).Eventually(func(g Gomega) {
		out = getSource(g, obj)
		g.Expect(conditions.GetReason(out, exsv1beta1.FetchFailedCondition)).To(Equal(exsv1beta1.AuthenticationFailedReason),
			"%v", out.Status.Conditions)
		g.Expect(conditions.IsFalse(out, meta.ReadyCondition)).To(BeTrue())
	}, timeout, 100*time.Millisecond).Should(Succeed())
	return out
}

// TestAuthMethodsAgainstCheckingUpstream: each method against an upstream
// that checks the credentials is Ready with the artifact; the wrong
// credentials (the Secret changed) are FetchFailed/AuthenticationFailed and
// the artifact stays published.
func TestAuthMethodsAgainstCheckingUpstream(t *testing.T) {
	ns := newNamespace(t)
	ts := testutil.NewTokenServer(authClientID, authClientSecret, "read", 3600)
	defer ts.Close()
	basicHeader := "Basic " + base64.StdEncoding.EncodeToString([]byte(authUser+":"+authPassword))
	up := testutil.NewAuthUpstream(`{"price": 42}`, func(a string) bool {
		return a == basicHeader || a == "Bearer "+authBearer || ts.Valid(a)
	})
	defer up.Close()

	tests := []struct {
		name        string
		auth        *exsv1beta1.HTTPAuth
		good, wrong map[string]string
	}{
		{name: "basic", auth: basicAuth("basic"),
			good:  map[string]string{"username": authUser, "password": authPassword},
			wrong: map[string]string{"username": authUser, "password": authWrongPwd}},
		{name: "bearer", auth: bearerAuth("bearer"),
			good: map[string]string{"token": authBearer}, wrong: map[string]string{"token": authWrongBearer}},
		{name: "oauth2", auth: oauth2Auth(ts.URL, "oauth2"),
			good:  map[string]string{"clientID": authClientID, "clientSecret": authClientSecret},
			wrong: map[string]string{"clientID": authClientID, "clientSecret": authWrongSecret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			createSecret(g, ns, tt.name, tt.good)
			obj := newSource(ns, tt.name, up.URL)
			obj.Spec.Generator.HTTP.Auth = tt.auth
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			ready := waitReady(t, obj)
			rev := ready.Status.Artifact.Revision
			g.Expect(rev).ToNot(BeEmpty())

			updateSecret(g, ns, tt.name, tt.wrong)
			requestReconcileAsync(g, obj)
			failed := waitAuthFailed(t, obj)
			msg := conditions.GetMessage(failed, exsv1beta1.FetchFailedCondition)
			t.Logf("FetchFailed: %s", msg)
			if tt.name == "oauth2" {
				g.Expect(msg).To(ContainSubstring("token endpoint " + ts.URL))
			} else {
				g.Expect(msg).To(ContainSubstring(up.URL))
			}
			g.Expect(failed.Status.Artifact).ToNot(BeNil())
			g.Expect(failed.Status.Artifact.Revision).To(Equal(rev), "the artifact is kept")
			for _, s := range []string{authPassword, authWrongPwd, authBearer, authWrongBearer, authClientSecret, authWrongSecret} {
				g.Expect(msg).ToNot(ContainSubstring(s))
			}
		})
	}
}

// TestOAuth2TokensAcrossIntervals drives the reconciles of one object
// itself, on a generator whose token cache runs on a fake clock: 10
// intervals of an unchanged upstream with tokens living 3 intervals, a
// token revoked mid-run (401, one new token, one retry), a rotated client
// secret used at the next reconcile, and the token dropped with the
// object.
func TestOAuth2TokensAcrossIntervals(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const interval = 10 * time.Minute
	// Lifetime of 3 intervals, counted on the fake clock.
	ts := testutil.NewTokenServer(authClientID, authClientSecret, "read", int((3 * interval).Seconds()))
	defer ts.Close()
	up := testutil.NewAuthUpstream(`{"price": 1}`, ts.Valid)
	defer up.Close()

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	gen := httpgen.New(httpgen.Options{RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 100 * time.Millisecond,
		URLPolicy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, Now: clock})
	reg := generator.NewRegistry()
	g.Expect(reg.Register(exsv1beta1.GeneratorTypeHTTP, gen)).To(Succeed())
	r := &ExternalSourceReconciler{
		Client:         k8sClient,
		Recorder:       events.NewFakeRecorder(64, false),
		APIReader:      k8sClient,
		ControllerName: "externalsource-controller",
		Generators:     reg,
		Storage:        memoryStore(),
		MaxDataSize:    1 << 20,
		Retention:      storage.DefaultRetention,
	}

	createSecret(g, ns, "client", map[string]string{"clientID": authClientID, "clientSecret": authClientSecret})
	obj := newSource(ns, "tokens", up.URL)
	obj.Labels = map[string]string{isolatedLabel: "auth-" + ns} // no manager reconciles it
	obj.Spec.Interval = metav1.Duration{Duration: interval}
	obj.Spec.Generator.HTTP.Auth = oauth2Auth(ts.URL, "client")
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	key := client.ObjectKeyFromObject(obj)
	reconcile := func() *exsv1beta1.ExternalSource {
		t.Helper()
		_, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: key})
		g.Expect(err).ToNot(HaveOccurred())
		return getSource(g, obj)
	}

	for i := range 10 {
		before := up.Served.Load()
		cur := reconcile()
		g.Expect(conditions.IsReady(cur)).To(BeTrue(), "interval %d: %v", i, cur.Status.Conditions)
		g.Expect(up.Served.Load()-before).To(Equal(int64(1)), "interval %d: one request upstream", i)
		advance(interval)
	}
	tokens := ts.Requests.Load()
	g.Expect(tokens).To(BeNumerically("<=", 4))
	g.Expect(tokens).To(BeNumerically(">=", 1))
	g.Expect(up.Refused.Load()).To(BeZero())
	t.Logf("10 intervals, token lifetime 3 intervals: %d token requests, %d upstream requests", tokens, up.Served.Load())

	// Mid-run, the provider revokes its tokens: the upstream's 401 is
	// answered by exactly one new token and one retry.
	ts.RevokeAll()
	cur := reconcile()
	g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
	g.Expect(ts.Requests.Load()).To(Equal(tokens + 1))
	g.Expect(up.Refused.Load()).To(BeNumerically(">=", 1))

	// Rotation: the provider and the Secret get a new client secret; the
	// next reconcile uses it (a new token, although the old one is valid).
	ts.SetClientSecret(authRotated)
	updateSecret(g, ns, "client", map[string]string{"clientID": authClientID, "clientSecret": authRotated})
	issued := ts.Issued.Load()
	cur = reconcile()
	g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
	g.Expect(ts.Issued.Load()).To(Equal(issued + 1))

	// Deleted, the object's token goes with it.
	g.Expect(gen.Tokens()).To(Equal(1))
	g.Expect(k8sClient.Delete(testCtx, obj)).To(Succeed())
	_, err := r.Reconcile(testCtx, ctrl.Request{NamespacedName: key})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(gen.Tokens()).To(BeZero())
}

// TestAuthCredentialsNeverLeave: with upstreams and a token endpoint that
// echo what they are sent, no password, token, client secret or encoded
// basic pair reaches a condition, event or log line (trace level).
func TestAuthCredentialsNeverLeave(t *testing.T) {
	g := NewWithT(t)
	im := startIsolated(t, -5, nil)
	ns := newNamespace(t)
	basicEncoded := base64.StdEncoding.EncodeToString([]byte(authUser + ":" + authPassword))
	leaks := []string{authPassword, authBearer, authClientSecret, basicEncoded}

	// Upstream answering 401 with everything it was sent.
	echo401 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprintf(w, "refused %q", r.Header.Get("Authorization"))
	}))
	defer echo401.Close()
	// Token endpoint refusing with the request echoed, as some do.
	var issued sync.Map
	echoIdP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/issue" {
			tok := fmt.Sprintf("auth-ISSUEDTOKEN-%d", time.Now().UnixNano())
			issued.Store(tok, true)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":"invalid_client","error_description":"got %s %s"}`, r.Header.Get("Authorization"), b)
	}))
	defer echoIdP.Close()

	createSecret(g, ns, "basic", map[string]string{"username": authUser, "password": authPassword})
	createSecret(g, ns, "bearer", map[string]string{"token": authBearer})
	createSecret(g, ns, "client", map[string]string{"clientID": authClientID, "clientSecret": authClientSecret})
	tests := []struct {
		name string
		auth *exsv1beta1.HTTPAuth
	}{
		{name: "basic", auth: basicAuth("basic")},
		{name: "bearer", auth: bearerAuth("bearer")},
		{name: "oauth2-idp-refuses", auth: oauth2Auth(echoIdP.URL+"/refuse", "client")},
		{name: "oauth2-upstream-refuses", auth: oauth2Auth(echoIdP.URL+"/issue", "client")},
	}
	for _, tt := range tests {
		obj := im.source(ns, tt.name, echo401.URL)
		obj.Spec.Generator.HTTP.Auth = tt.auth
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	}
	for _, tt := range tests {
		obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns}}
		cur := waitAuthFailed(t, obj)
		status, err := json.Marshal(cur.Status)
		g.Expect(err).ToNot(HaveOccurred())
		t.Logf("%s: %s", tt.name, conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition))
		for _, s := range leaks {
			g.Expect(string(status)).ToNot(ContainSubstring(s), "%s: status", tt.name)
		}
	}
	issued.Range(func(k, _ any) bool {
		leaks = append(leaks, k.(string))
		return true
	})
	g.Expect(len(leaks)).To(BeNumerically(">", 4), "a token was issued")

	var evs corev1.EventList
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.List(testCtx, &evs, client.InNamespace(ns))).To(Succeed())
		g.Expect(evs.Items).ToNot(BeEmpty())
	}, timeout).Should(Succeed())
	for _, e := range evs.Items {
		for _, s := range leaks {
			g.Expect(e.Message).ToNot(ContainSubstring(s), "event %s/%s", e.InvolvedObject.Name, e.Reason)
		}
	}
	logs := im.logs.String()
	g.Expect(logs).To(ContainSubstring("AuthenticationFailed"), "the log was captured")
	for _, s := range leaks {
		g.Expect(logs).ToNot(ContainSubstring(s), "log")
	}
	for _, tt := range tests {
		cur := getSource(g, &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns}})
		for _, s := range leaks {
			g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).ToNot(ContainSubstring(s))
		}
	}
}

// TestAuthWithAuthorizationHeaderStalls: the API server cannot see that the
// headersSecretRef Secret has an Authorization key too; the controller
// stalls the object naming both fields, and nothing is sent upstream.
func TestAuthWithAuthorizationHeaderStalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	up := testutil.NewAuthUpstream(`{}`, func(string) bool { return true })
	defer up.Close()
	createSecret(g, ns, "bearer", map[string]string{"token": authBearer})
	createSecret(g, ns, "headers", map[string]string{"Authorization": "Bearer " + authBearer, "X-Team": "a"})
	obj := newSource(ns, "both", up.URL)
	obj.Spec.Generator.HTTP.Auth = bearerAuth("bearer")
	obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "headers"}
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := getSource(g, obj)
		g.Expect(conditions.IsStalled(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
		g.Expect(conditions.GetReason(cur, exsv1beta1.FetchFailedCondition)).To(Equal(exsv1beta1.InvalidSpecReason))
		msg := conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition)
		g.Expect(msg).To(ContainSubstring("spec.generator.http.auth"))
		g.Expect(msg).To(ContainSubstring("spec.generator.http.headersSecretRef"))
		g.Expect(msg).ToNot(ContainSubstring(authBearer))
	}, timeout, 100*time.Millisecond).Should(Succeed())
	g.Expect(up.Served.Load() + up.Refused.Load()).To(BeZero())
}
