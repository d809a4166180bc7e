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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestAPIRejectsBadInput checks that the API server itself (OpenAPI schema
// and CEL rules of the CRD) refuses bad specs with a message naming the field.
func TestAPIRejectsBadInput(t *testing.T) {
	ns := newNamespace(t)
	tests := []struct {
		name   string
		mutate func(*exsv1beta1.ExternalSource)
		want   []string
	}{
		{"interval-below-1m", func(o *exsv1beta1.ExternalSource) { o.Spec.Interval = metav1.Duration{Duration: 30 * time.Second} },
			[]string{"spec.interval", "must be at least 1m"}},
		{"absolute-destination", func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "/etc/x" },
			[]string{"spec.destinationPath", "must be a relative path"}},
		{"climbing-destination", func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "a/../../b" },
			[]string{"spec.destinationPath", "must not contain '..' segments"}},
		{"dot-destination", func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "./" },
			[]string{"spec.destinationPath", "must name a file"}},
		{"empty-destination", func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "" },
			[]string{"spec.destinationPath"}},
		{"extract-climbing-subpath", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Extract = &exsv1beta1.ExtractSpec{SubPath: "a/../../b"}
		}, []string{"spec.extract.subPath", "must not contain '..' segments"}},
		{"extract-unknown-format", func(o *exsv1beta1.ExternalSource) { o.Spec.Extract = &exsv1beta1.ExtractSpec{Format: "rar"} },
			[]string{"spec.extract.format", `Unsupported value: "rar"`}},
		{"extract-absolute-destination", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Extract = &exsv1beta1.ExtractSpec{}
			o.Spec.DestinationPath = "/abs"
		}, []string{"spec.destinationPath", "must be a relative path"}},
		{"ftp-url", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = "ftp://x" },
			[]string{"spec.generator.http.url", "must be an http or https URL"}},
		{"url-without-host", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = "http://" },
			[]string{"spec.generator.http.url", "must be an http or https URL"}},
		{"unknown-generator-type", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.Type = "ftp" },
			[]string{"spec.generator.type", `Unsupported value: "ftp"`}},
		{"http-without-config", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP = nil },
			[]string{"spec.generator", "http must be set when type is http"}},
		{"unknown-method", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.Method = "DELETE" },
			[]string{"spec.generator.http.method", `Unsupported value: "DELETE"`}},
		{"get-with-body", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.Body = "{}" },
			[]string{"spec.generator.http", "body is not allowed with method GET"}},
		{"zero-timeout", func(o *exsv1beta1.ExternalSource) { o.Spec.Timeout = &metav1.Duration{} },
			[]string{"spec.timeout", "must be greater than 0s"}},
		{"bad-retry-policy", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "h", Command: "jq", RetryPolicy: "sometimes"}}}
		}, []string{"spec.hooks.postRequest[0].retryPolicy", `Unsupported value: "sometimes"`}},
		{"bad-hook-name", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "Bad_Name", Command: "jq"}}}
		}, []string{"spec.hooks.postRequest[0].name"}},
		{"empty-hook-command", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "h", Command: ""}}}
		}, []string{"spec.hooks.postRequest[0].command"}},
		{"too-many-retries", func(o *exsv1beta1.ExternalSource) {
			n := int32(11)
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "h", Command: "jq", MaxRetries: &n}}}
		}, []string{"spec.hooks.postRequest[0].maxRetries"}},
		{"negative-retries", func(o *exsv1beta1.ExternalSource) {
			n := int32(-1)
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "h", Command: "jq", MaxRetries: &n}}}
		}, []string{"spec.hooks.postRequest[0].maxRetries"}},
		{"too-many-hooks", func(o *exsv1beta1.ExternalSource) {
			var hs []exsv1beta1.Hook
			for i := range 17 {
				hs = append(hs, exsv1beta1.Hook{Name: fmt.Sprintf("h%d", i), Command: "jq"})
			}
			o.Spec.Hooks = &exsv1beta1.Hooks{PreRequest: hs}
		}, []string{"spec.hooks.preRequest"}},
		{"empty-secret-name", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{}
		}, []string{"spec.generator.http", "headersSecretRef.name must not be empty"}},
		{"auth-basic-and-bearer", func(o *exsv1beta1.ExternalSource) {
			ref := &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{Name: "s"}}
			o.Spec.Generator.HTTP.Auth = &exsv1beta1.HTTPAuth{Basic: ref, Bearer: ref}
		}, []string{"spec.generator.http.auth", "exactly one of basic, bearer or oauth2 must be set"}},
		{"auth-none", func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.Auth = &exsv1beta1.HTTPAuth{} },
			[]string{"spec.generator.http.auth", "exactly one of basic, bearer or oauth2 must be set"}},
		{"auth-oauth2-ftp-token-url", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Generator.HTTP.Auth = &exsv1beta1.HTTPAuth{OAuth2: &exsv1beta1.OAuth2Auth{TokenURL: "ftp://idp/token",
				SecretRef: &meta.LocalObjectReference{Name: "s"}}}
		}, []string{"spec.generator.http.auth.oauth2.tokenURL", "must be an http or https URL"}},
		{"auth-empty-secret-name", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Generator.HTTP.Auth = &exsv1beta1.HTTPAuth{Bearer: &exsv1beta1.SecretAuth{SecretRef: &meta.LocalObjectReference{}}}
		}, []string{"spec.generator.http.auth.bearer.secretRef", "secretRef.name must not be empty"}},
		{"bad-env-name", func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PreRequest: []exsv1beta1.Hook{{Name: "h", Command: "jq", Env: []exsv1beta1.HookEnvVar{{Name: "A=B"}}}}}
		}, []string{"spec.hooks.preRequest[0].env[0].name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newSource(ns, tt.name, "https://api.example.com/v1")
			tt.mutate(obj)
			err := k8sClient.Create(testCtx, obj)
			g.Expect(err).To(HaveOccurred())
			for _, w := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}

	// The boundary values are accepted.
	g := NewWithT(t)
	ok := newSource(ns, "valid", "https://api.example.com/v1")
	ok.Spec.Interval = metav1.Duration{Duration: time.Minute}
	ok.Spec.DestinationPath = "./data//c.json"
	ok.Spec.Suspend = true
	g.Expect(k8sClient.Create(testCtx, ok)).To(Succeed())
	g.Expect(ok.Spec.Generator.HTTP.Method).To(Equal("GET"), "method defaults to GET")
	g.Expect(ok.Spec.Timeout.Duration).To(Equal(60*time.Second), "timeout defaults to 60s")
}

// TestSamplesAreAccepted applies every sample under config/samples to the
// API server, so the examples in the repository can never rot.
func TestSamplesAreAccepted(t *testing.T) {
	g := NewWithT(t)
	files, err := filepath.Glob(filepath.Join(devenv.Root(), "config", "samples", "source_*.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(files).ToNot(BeEmpty())
	ns := newNamespace(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		g.Expect(err).ToNot(HaveOccurred())
		for _, doc := range strings.Split(string(b), "\n---\n") {
			obj := &exsv1beta1.ExternalSource{}
			g.Expect(yaml.UnmarshalStrict([]byte(doc), obj)).To(Succeed(), f)
			obj.Namespace = ns
			obj.Spec.Suspend = true // examples point at hosts that do not exist here
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed(), f)
		}
	}
}

// TestNoCrossNamespaceReferences: every reference an ExternalSource can
// make is to an object of its own namespace, so a tenant cannot point the
// controller at another namespace's Secret whatever --no-cross-namespace-refs
// says (Flux's flag is accepted for parity, and is always in effect). The
// schema has no namespace field under spec, and the API server refuses one
// on a reference.
func TestNoCrossNamespaceReferences(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "crd", "bases", "source.externalsource.io_externalsources.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	g.Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	g.Expect(crd.Spec.Versions).ToNot(BeEmpty())
	for _, v := range crd.Spec.Versions {
		spec := v.Schema.OpenAPIV3Schema["properties"].(map[string]any)["spec"].(map[string]any)
		var refs []string
		var walk func(path string, schema map[string]any)
		walk = func(path string, schema map[string]any) {
			props, _ := schema["properties"].(map[string]any)
			for name, p := range props {
				g.Expect(name).ToNot(Equal("namespace"), "%s: %s.namespace", v.Name, path)
				if strings.HasSuffix(name, "Ref") {
					refs = append(refs, path+"."+name)
					g.Expect(p.(map[string]any)["properties"]).To(HaveLen(1), "%s.%s has only a name", path, name)
				}
				walk(path+"."+name, p.(map[string]any))
			}
			if items, ok := schema["items"].(map[string]any); ok {
				walk(path+"[]", items)
			}
		}
		walk("spec", spec)
		g.Expect(refs).To(ConsistOf("spec.generator.http.headersSecretRef", "spec.generator.http.certSecretRef",
			"spec.generator.http.proxySecretRef",
			// Reviewed with issue 14: local names, read through getSecret
			// from the object's namespace, indexed for the config watch.
			"spec.generator.http.auth.basic.secretRef", "spec.generator.http.auth.bearer.secretRef",
			"spec.generator.http.auth.oauth2.secretRef",
			// Reviewed with issue 26: a local name, read by the release
			// generator from the object's namespace (readToken), reported
			// through SecretRefs for the config watch.
			"spec.generator.release.secretRef"), "a new reference must be reviewed here")
	}

	// The API server refuses a namespace on a reference.
	ns := newNamespace(t)
	obj := newSource(ns, "cross", "https://api.example.com/v1")
	obj.Spec.Generator.HTTP.HeadersSecretRef = &meta.LocalObjectReference{Name: "token"}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(unstructured.SetNestedField(u, "other-tenant", "spec", "generator", "http", "headersSecretRef", "namespace")).To(Succeed())
	un := &unstructured.Unstructured{Object: u}
	un.SetGroupVersionKind(exsv1beta1.GroupVersion.WithKind(exsv1beta1.ExternalSourceKind))
	err = k8sClient.Create(testCtx, un, client.FieldValidation(metav1.FieldValidationStrict))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring(`unknown field "spec.generator.http.headersSecretRef.namespace"`))
}
