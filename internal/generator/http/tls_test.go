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

package http

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestTLS runs against real TLS servers: one with httptest's certificate,
// one that requires a client certificate signed by a CA of the test.
func TestTLS(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		_, _ = io.WriteString(w, "hello "+who)
	})
	tlsSrv := httptest.NewTLSServer(hello)
	defer tlsSrv.Close()
	// A server that answers a TLS client in plain HTTP.
	plainSrv := httptest.NewServer(hello)
	defer plainSrv.Close()
	clientCA := testutil.NewCA(t, "client-ca")
	mtlsSrv := testutil.NewMTLSServer(t, clientCA, hello)
	otherCA := testutil.NewCA(t, "other-ca")
	crt, key := clientCA.IssueClient(t, "externalsource")
	strangerCrt, strangerKey := otherCA.IssueClient(t, "stranger")

	rd := reader(
		secret("ca", map[string][]byte{"ca.crt": testutil.ServerCAPEM(tlsSrv)}),
		secret("wrong-ca", map[string][]byte{"ca.crt": otherCA.PEM}),
		secret("mtls", map[string][]byte{"ca.crt": testutil.ServerCAPEM(mtlsSrv), "tls.crt": crt, "tls.key": key}),
		secret("mtls-stranger", map[string][]byte{"ca.crt": testutil.ServerCAPEM(mtlsSrv), "tls.crt": strangerCrt, "tls.key": strangerKey}),
		secret("mtls-ca-only", map[string][]byte{"ca.crt": testutil.ServerCAPEM(mtlsSrv)}),
		secret("cert-no-key", map[string][]byte{"tls.crt": crt}),
		secret("garbage-ca", map[string][]byte{"ca.crt": []byte("not a certificate")}),
		secret("empty", map[string][]byte{"other": []byte("x")}),
	)
	certRef := func(name string) func(*exsv1beta1.HTTPGeneratorSpec) {
		return func(s *exsv1beta1.HTTPGeneratorSpec) { s.CertSecretRef = &meta.LocalObjectReference{Name: name} }
	}

	tests := []struct {
		name     string
		url      string
		mutate   func(*exsv1beta1.HTTPGeneratorSpec)
		wantBody string
		wantWarn bool
		wantErr  string
	}{
		{name: "CA bundle", url: tlsSrv.URL, mutate: certRef("ca"), wantBody: "hello anonymous"},
		{name: "system pool only", url: tlsSrv.URL, wantErr: "TLS error"},
		{name: "wrong CA", url: tlsSrv.URL, mutate: certRef("wrong-ca"), wantErr: "TLS error"},
		{name: "mTLS", url: mtlsSrv.URL, mutate: certRef("mtls"), wantBody: "hello externalsource"},
		{name: "mTLS without client certificate", url: mtlsSrv.URL, mutate: certRef("mtls-ca-only"), wantErr: "TLS error"},
		{name: "mTLS with a certificate of another CA", url: mtlsSrv.URL, mutate: certRef("mtls-stranger"), wantErr: "TLS error"},
		{name: "plain HTTP instead of a TLS handshake", url: "https://" + plainSrv.Listener.Addr().String(),
			wantErr: "TLS error: http: server gave HTTP response to HTTPS client"},
		{name: "insecureSkipVerify", url: tlsSrv.URL, mutate: func(s *exsv1beta1.HTTPGeneratorSpec) { s.InsecureSkipVerify = true },
			wantBody: "hello anonymous", wantWarn: true},
		{name: "insecureSkipVerify with client certificate", url: mtlsSrv.URL,
			mutate:   func(s *exsv1beta1.HTTPGeneratorSpec) { s.InsecureSkipVerify = true; certRef("mtls")(s) },
			wantBody: "hello externalsource", wantWarn: true},
		{name: "certificate without key", url: tlsSrv.URL, mutate: certRef("cert-no-key"),
			wantErr: `spec.generator.http.certSecretRef: Secret "ns/cert-no-key" has tls.crt but no tls.key`},
		{name: "CA that is no certificate", url: tlsSrv.URL, mutate: certRef("garbage-ca"),
			wantErr: `ca.crt of Secret "ns/garbage-ca" holds no PEM certificate`},
		{name: "Secret without TLS keys", url: tlsSrv.URL, mutate: certRef("empty"),
			wantErr: `Secret "ns/empty" must have ca.crt, or tls.crt and tls.key`},
		{name: "missing Secret", url: tlsSrv.URL, mutate: certRef("nope"),
			wantErr: `spec.generator.http.certSecretRef: Secret "ns/nope" not found`},
	}
	gen := New(fastOptions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			res, err := gen.Generate(context.Background(), &generator.Request{Source: source(tt.url, tt.mutate), Reader: rd})
			if tt.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			g.Expect(string(b)).To(Equal(tt.wantBody))
			if tt.wantWarn {
				g.Expect(res.Warnings).To(ConsistOf(InsecureWarning))
			} else {
				g.Expect(res.Warnings).To(BeEmpty())
			}
		})
	}
}
