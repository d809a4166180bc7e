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
	"path/filepath"
	"slices"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// build renders a kustomization directory of the repository.
func build(g Gomega, dir string) []*unstructured.Unstructured {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(devenv.Root(), dir))
	g.Expect(err).ToNot(HaveOccurred(), dir)
	var out []*unstructured.Unstructured
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		g.Expect(err).ToNot(HaveOccurred())
		u := &unstructured.Unstructured{}
		g.Expect(u.UnmarshalJSON(b)).To(Succeed())
		out = append(out, u)
	}
	return out
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func args(g Gomega, d *unstructured.Unstructured, container string) []string {
	cs, _, err := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	g.Expect(err).ToNot(HaveOccurred())
	for _, c := range cs {
		m := c.(map[string]any)
		if m["name"] == container {
			a, _, _ := unstructured.NestedStringSlice(m, "args")
			return a
		}
	}
	return nil
}

// apply server-side applies the objects, cluster-scoped kinds first, so
// that the rendered install is proven valid against a real API server.
func apply(g Gomega, objs []*unstructured.Unstructured) {
	order := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			return 0
		}
		return 1
	}
	sorted := slices.Clone(objs)
	slices.SortStableFunc(sorted, func(a, b *unstructured.Unstructured) int { return order(a) - order(b) })
	for _, o := range sorted {
		o = o.DeepCopy()
		g.Expect(k8sClient.Patch(ctx, o, client.Apply, client.FieldOwner("e2e-install"), client.ForceOwnership)).
			To(Succeed(), "%s %s", o.GetKind(), o.GetName())
	}
}

// TestInstallOverlays builds every install overlay with kustomize and
// applies what it renders to the API server.
func TestInstallOverlays(t *testing.T) {
	tests := []struct {
		dir     string
		backend string
		check   func(g Gomega, objs []*unstructured.Unstructured)
	}{
		{dir: "config/default", backend: "--storage-backend=memory"},
		{dir: "config/filesystem", backend: "--storage-backend=filesystem", check: func(g Gomega, objs []*unstructured.Unstructured) {
			g.Expect(find(objs, "PersistentVolumeClaim", "externalsource-controller-data")).ToNot(BeNil())
		}},
		{dir: "config/s3", backend: "--storage-backend=s3", check: func(g Gomega, objs []*unstructured.Unstructured) {
			a := args(g, find(objs, "Deployment", "externalsource-controller"), "manager")
			g.Expect(a).To(ContainElements("--s3-bucket=my-flux-artifacts", "--s3-endpoint=s3.eu-west-1.amazonaws.com"))
		}},
		{dir: "tests/testdata/flux-system", backend: "--storage-backend=memory", check: func(g Gomega, objs []*unstructured.Unstructured) {
			for _, name := range []string{"kustomize-controller", "helm-controller"} {
				d := find(objs, "Deployment", name)
				g.Expect(d).ToNot(BeNil(), name)
				g.Expect(args(g, d, "manager")).To(ContainElement("--feature-gates=ExternalArtifact=true"), name)
			}
			// Alerts need our events at notification-controller, as Flux's own.
			g.Expect(args(g, find(objs, "Deployment", "externalsource-controller"), "manager")).
				To(ContainElement("--events-addr=http://notification-controller.flux-system.svc.cluster.local./"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			g := NewWithT(t)
			objs := build(g, tt.dir)
			d := find(objs, "Deployment", "externalsource-controller")
			g.Expect(d).ToNot(BeNil())
			g.Expect(d.GetNamespace()).To(Equal("flux-system"))
			g.Expect(args(g, d, "manager")).To(ContainElement(tt.backend))
			g.Expect(args(g, d, "hook-executor")).To(ContainElement("hook-executor"))
			for _, kind := range []string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ServiceAccount", "Service", "NetworkPolicy", "ConfigMap"} {
				found := false
				for _, o := range objs {
					found = found || o.GetKind() == kind
				}
				g.Expect(found).To(BeTrue(), kind)
			}
			// Flux owns the ExternalArtifact CRD: the install never ships one.
			g.Expect(find(objs, "CustomResourceDefinition", "externalartifacts.source.toolkit.fluxcd.io")).To(BeNil())
			if tt.check != nil {
				tt.check(g, objs)
			}
			apply(g, objs)
		})
	}
}
