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

package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/generator/builtin"
)

// TestGeneratorTypesMatchTheCRD holds three lists together: the enum the
// API server enforces, v1beta1.GeneratorTypes, and the registered
// implementations. A type the API admits without an implementation fails
// start-up; this test fails first.
func TestGeneratorTypesMatchTheCRD(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("config", "crd", "bases", "source.externalsource.io_externalsources.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	typ := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["generator"].Properties["type"]
	var enum []string
	for _, e := range typ.Enum {
		var s string
		g.Expect(yaml.Unmarshal(e.Raw, &s)).To(Succeed())
		enum = append(enum, s)
	}
	g.Expect(enum).To(ConsistOf(v1.GeneratorTypes))

	r := generator.NewRegistry()
	g.Expect(builtin.Register(r, builtin.Options{})).To(Succeed())
	g.Expect(r.CheckImplements(enum)).To(Succeed())
	g.Expect(r.CheckImplements(append(enum, "ftp"))).To(MatchError(ContainSubstring("[ftp]")))
}

// TestStartupFailsForATypeWithoutImplementation runs the start-up step that
// builds the registry: with the CRD's types it succeeds; when the API
// accepts a type nothing implements, start-up fails naming it.
func TestStartupFailsForATypeWithoutImplementation(t *testing.T) {
	g := NewWithT(t)
	r, err := newGenerators(v1.GeneratorTypes, builtin.Register, builtin.Options{})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(r.Types()).To(ConsistOf(v1.GeneratorTypes))

	_, err = newGenerators(append(slices.Clone(v1.GeneratorTypes), "ftp"), builtin.Register, builtin.Options{})
	g.Expect(err).To(MatchError(ContainSubstring("have no implementation: [ftp]")))

	none := func(*generator.Registry, builtin.Options) error { return nil }
	_, err = newGenerators(v1.GeneratorTypes, none, builtin.Options{})
	g.Expect(err).To(MatchError(ContainSubstring("[http]")))
}

func TestAdvertisedAddress(t *testing.T) {
	g := NewWithT(t)
	host, _ := os.Hostname()
	tests := []struct {
		addr, adv, want string
		wantErr         bool
	}{
		{":9090", "", host + ":9090", false},
		{"127.0.0.1:9090", "svc.ns:80", "svc.ns:80", false},
		{"nonsense", "", "", true},
	}
	for _, tt := range tests {
		got, err := advertisedAddress(tt.addr, tt.adv)
		if tt.wantErr {
			g.Expect(err).To(HaveOccurred())
			continue
		}
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(got).To(Equal(tt.want))
	}
}

// TestPrinterColumns: `kubectl get exs` shows what Flux users read first.
func TestPrinterColumns(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("config", "crd", "bases", "source.externalsource.io_externalsources.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	g.Expect(yaml.Unmarshal(b, &crd)).To(Succeed())
	g.Expect(crd.Spec.Names.ShortNames).To(ContainElement("exs"))
	cols := map[string]string{}
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		cols[c.Name] = c.JSONPath
	}
	g.Expect(cols).To(Equal(map[string]string{
		"Age":      ".metadata.creationTimestamp",
		"Ready":    `.status.conditions[?(@.type=="Ready")].status`,
		"Status":   `.status.conditions[?(@.type=="Ready")].message`,
		"Revision": ".status.artifact.revision",
	}))
	g.Expect(crd.Spec.Versions[0].Subresources.Status).ToNot(BeNil())
}
