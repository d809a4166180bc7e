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
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// heapPeak samples the heap in use every few milliseconds until stop is
// called, which returns the highest sample above the first one. It
// measures, it does not time anything: a test bounds it generously.
func heapPeak() (stop func() uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
					peak.Store(ms.HeapAlloc - base)
				}
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// TestHugeSecretRefused is issue 23's attack 1: a headersSecretRef Secret
// of many keys of 8-byte values (the API server's 1 MiB limit counts
// values only) and ten ExternalSources pointing at it. The 90,000
// keys make a request etcd refuses at its default --max-request-bytes
// (1.5 MiB: "etcdserver: request is too large"), which this suite's etcd
// keeps; 40,000 keys is what it stores, 39 times the bound (the
// generator's TestSecretBound and BenchmarkSecretReconcile use 90,000
// through a stand-in reader). Each source is
// refused with FetchFailed naming the Secret and the limit, and the heap
// stays far from the manager's 1Gi limit (before the fix, two
// reconciles of it at once held hundreds of MiB).
func TestHugeSecretRefused(t *testing.T) {
	g := NewWithT(t)
	im := startIsolated(t, zapcore.InfoLevel, nil)
	ns := newNamespace(t)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer upstream.Close()

	const keys = 40000
	data := make(map[string][]byte, keys)
	for i := range keys {
		data["k"+strconv.FormatInt(int64(i), 36)] = []byte(fmt.Sprintf("%08x", i))
	}
	huge := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "huge", Namespace: ns}, Data: data}
	// The API server accepts it, slowly (its field manager tracks every
	// key): on a loaded machine the create may time out on the client's
	// side while the server completes it.
	if err := k8sClient.Create(testCtx, huge); err != nil {
		t.Logf("creating the Secret of %d keys: %v; waiting for the API server to complete it", keys, err)
		g.Eventually(func() error {
			return k8sClient.Get(testCtx, client.ObjectKeyFromObject(huge), &metav1.PartialObjectMetadata{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}})
		}, 3*time.Minute, time.Second).Should(Succeed(), "the API server accepts a Secret of %d keys", keys)
	}
	data, huge = nil, nil

	stop := heapPeak()
	for i := range 10 {
		obj := im.source(ns, fmt.Sprintf("huge-%d", i), upstream.URL)
		obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "huge"}
		g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	}
	for i := range 10 {
		obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("huge-%d", i), Namespace: ns}}
		g.Eventually(func(g Gomega) {
			cur := getSource(g, obj)
			c := conditions.Get(cur, exsv1beta1.FetchFailedCondition)
			g.Expect(c).ToNot(BeNil(), "%v", cur.Status.Conditions)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(exsv1beta1.FetchFailedReason))
			g.Expect(c.Message).To(ContainSubstring(`spec.generator.http.headersSecretRef: Secret "` + ns + `/huge" refused: a source may use at most 1024 Secret values, this one would make 40000`))
			g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
			g.Expect(cur.GetArtifact()).To(BeNil())
		}, timeout, 200*time.Millisecond).Should(Succeed())
	}
	// A few more reconciles of each (they back off), then the peak.
	time.Sleep(2 * time.Second)
	peak := stop()
	t.Logf("heap peak above the baseline while ten sources were refused: %.1f MiB", float64(peak)/(1<<20))
	g.Expect(peak).To(BeNumerically("<", 256<<20), "heap peak above the baseline")
}

// TestUpstreamEchoNeverInStatus is issue 23's attack 4: an upstream (on
// loopback) answering with the X-Api-Key value it was sent as its ETag
// and Last-Modified. The artifact is published; neither validator is
// recorded (a redacted validator would be useless in a conditional
// request), and no status field holds the value.
func TestUpstreamEchoNeverInStatus(t *testing.T) {
	g := NewWithT(t)
	im := startIsolated(t, zapcore.InfoLevel, nil)
	ns := newNamespace(t)
	const key = "echo-S3CRET-apikey-4c1d"
	g.Expect(k8sClient.Create(testCtx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth", Namespace: ns},
		StringData: map[string]string{"X-Api-Key": key}})).To(Succeed())
	tests := []struct {
		name    string
		headers func(w http.ResponseWriter, key string)
		// etag and lastModified are what status must record.
		etag, lastModified string
	}{
		{name: "etag", headers: func(w http.ResponseWriter, key string) {
			w.Header().Set("ETag", `"`+key+`"`)
			w.Header().Set("Last-Modified", "Mon, 07 Dec 2026 04:00:00 GMT")
		}, lastModified: "Mon, 07 Dec 2026 04:00:00 GMT"},
		{name: "weak-etag-base64", headers: func(w http.ResponseWriter, key string) {
			w.Header().Set("ETag", `W/"v1-`+b64(key)+`"`)
		}},
		{name: "last-modified", headers: func(w http.ResponseWriter, key string) {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Last-Modified", key)
		}, etag: `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tt.headers(w, r.Header.Get("X-Api-Key"))
				_, _ = w.Write([]byte(`{"price":1}`))
			}))
			defer up.Close()
			obj := im.source(ns, tt.name, up.URL)
			obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "auth"}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
				g.Expect(cur.GetArtifact()).ToNot(BeNil())
			}, timeout, 200*time.Millisecond).Should(Succeed())
			cur := getSource(g, obj)
			status, err := json.Marshal(cur.Status)
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(string(status)).ToNot(ContainSubstring(key))
			g.Expect(string(status)).ToNot(ContainSubstring(b64(key)))
			g.Expect(cur.Status.LastHandledETag).To(Equal(tt.etag))
			g.Expect(cur.Status.LastModified).To(Equal(tt.lastModified))
		})
	}
	g.Expect(im.logs.String()).ToNot(ContainSubstring(key))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestOAuth2PairNeverInReady is issue 23's attack 5 through the
// controller: an identity provider stand-in on loopback answers every
// token request with the Basic pair of the client's first attempt
// (base64(clientID:clientSecret), url-encoded first) as its OAuth2 error
// code. Ready's message says the endpoint refused, with the pair redacted.
func TestOAuth2PairNeverInReady(t *testing.T) {
	g := NewWithT(t)
	im := startIsolated(t, zapcore.InfoLevel, nil)
	ns := newNamespace(t)
	const id, secret = "tenant/client", "pair S3CRET+value&="
	pair := b64(url.QueryEscape(id) + ":" + url.QueryEscape(secret))
	var first atomic.Value
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.CompareAndSwap(nil, strings.TrimPrefix(r.Header.Get("Authorization"), "Basic "))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": first.Load().(string)})
	}))
	defer idp.Close()
	createSecret(g, ns, "client", map[string]string{"clientID": id, "clientSecret": secret})
	obj := im.source(ns, "pair", idp.URL+"/data")
	obj.Spec.Generator.HTTP.Auth = oauth2Auth(idp.URL+"/token", "client")
	g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
	cur := waitAuthFailed(t, obj)
	g.Expect(first.Load()).To(Equal(pair), "the IdP saw the pair it echoes")
	msg := conditions.GetMessage(cur, meta.ReadyCondition)
	t.Logf("Ready: %s", msg)
	g.Expect(msg).To(ContainSubstring(`(error "***")`))
	status, err := json.Marshal(cur.Status)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(status)).ToNot(ContainSubstring(pair))
	g.Expect(string(status)).ToNot(ContainSubstring(secret))
}
