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

package generator

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

type nopGenerator struct{}

func (nopGenerator) Generate(context.Context, *Request) (*Result, error) { return &Result{}, nil }

func TestRegistry(t *testing.T) {
	g := NewWithT(t)
	r := NewRegistry()
	g.Expect(r.Types()).To(BeEmpty())
	g.Expect(r.CheckImplements([]string{"http"})).To(MatchError(ContainSubstring("[http]")))

	g.Expect(r.Register("http", nopGenerator{})).To(Succeed())
	g.Expect(r.Register("a", nopGenerator{})).To(Succeed())
	g.Expect(r.Register("http", nopGenerator{})).To(MatchError(ContainSubstring("twice")))
	g.Expect(r.Register("", nopGenerator{})).ToNot(Succeed())
	g.Expect(r.Register("b", nil)).ToNot(Succeed())

	g.Expect(r.Types()).To(Equal([]string{"a", "http"}))
	_, ok := r.Get("http")
	g.Expect(ok).To(BeTrue())
	_, ok = r.Get("ftp")
	g.Expect(ok).To(BeFalse())
	g.Expect(r.CheckImplements([]string{"http", "a"})).To(Succeed())
	g.Expect(r.CheckImplements([]string{"http", "ftp", "s3"})).To(MatchError(ContainSubstring("[ftp s3]")))
}

func TestInvalidSpecError(t *testing.T) {
	g := NewWithT(t)
	err := InvalidSpec("spec.generator.http.url", "bad %s", "x")
	g.Expect(err.Error()).To(Equal("spec.generator.http.url: bad x"))
}

// referencing is a generator type that references the Secrets named in
// its object's annotations.
type referencing struct{ nopGenerator }

func (referencing) SecretRefs(obj *exsv1beta1.ExternalSource) []string {
	return []string{obj.Annotations["secret"]}
}

func TestRegistrySecretRefs(t *testing.T) {
	r := NewRegistry()
	NewWithT(t).Expect(r.Register("refs", referencing{})).To(Succeed())
	NewWithT(t).Expect(r.Register("none", nopGenerator{})).To(Succeed())
	tests := []struct {
		typ  string
		want []string
	}{
		{typ: "refs", want: []string{"s1"}},
		{typ: "none"},
		{typ: "unregistered"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			obj := &exsv1beta1.ExternalSource{}
			obj.Annotations = map[string]string{"secret": "s1"}
			obj.Spec.Generator.Type = tt.typ
			NewWithT(t).Expect(r.SecretRefs(obj)).To(Equal(tt.want))
		})
	}
}
