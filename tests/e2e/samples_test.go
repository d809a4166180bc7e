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
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// readSample decodes one sample of config/samples strictly into obj, so a
// sample with a misspelt field fails here.
func readSample(g Gomega, name string, obj any) {
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "samples", name))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(yaml.UnmarshalStrict(b, obj)).To(Succeed(), name)
}

// servedFrom points a sample's URL at the test upstream, keeping its path:
// the upstream serves the asset the sample names.
func servedFrom(g Gomega, src *exsv1beta1.ExternalSource, upstream string) string {
	u, err := url.Parse(src.Spec.Generator.HTTP.URL)
	g.Expect(err).ToNot(HaveOccurred())
	src.Spec.Generator.HTTP.URL = upstream + u.Path
	return u.Path
}

// TestSamplesDeployReleaseAssets applies the release-asset samples of
// config/samples as they are, but for the URL (the test upstream's), the
// pinned digest (of what the test upstream serves) and Helm's waiting
// (nothing runs pods here): the Kustomization applies the manifests of the
// pinned tarball's subPath, the HelmRelease installs the chart.
func TestSamplesDeployReleaseAssets(t *testing.T) {
	g := NewWithT(t)
	start := time.Now()
	assets, srv := newReleaseAssets(t)

	manifests := &exsv1beta1.ExternalSource{}
	readSample(g, "source_v1beta1_externalsource_release_asset.yaml", manifests)
	g.Expect(manifests.Spec.Extract).ToNot(BeNil())
	g.Expect(manifests.Spec.Verify).ToNot(BeNil())
	tarball := packTarGz(g, manifestsRelease)
	assets.publish(servedFrom(g, manifests, srv.URL), tarball)
	manifests.Spec.Verify.Digest = sha256Of(tarball)

	ks := &unstructured.Unstructured{}
	readSample(g, "kustomize_v1_kustomization_release_asset.yaml", &ks.Object)
	g.Expect(ks.GroupVersionKind().Kind).To(Equal("Kustomization"))
	target, _, _ := unstructured.NestedString(ks.Object, "spec", "targetNamespace")
	g.Expect(target).ToNot(BeEmpty())

	chart := &exsv1beta1.ExternalSource{}
	readSample(g, "source_v1beta1_externalsource_chart.yaml", chart)
	g.Expect(chart.Spec.Extract).ToNot(BeNil())
	assets.publish(servedFrom(g, chart, srv.URL), packTarGz(g, chartFiles(chart.Spec.Extract.SubPath, "1.2.3", "hello")))

	hr := &helmv2.HelmRelease{}
	readSample(g, "helm_v2_helmrelease_chart.yaml", hr)
	g.Expect(hr.Spec.ChartRef.Name).To(Equal(chart.Name))
	noWait(hr)

	createNamespace(g, target) // the HelmRelease's createNamespace is for clusters without it
	for _, obj := range []client.Object{manifests, ks, chart, hr} {
		g.Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "%T %s", obj, obj.GetName())
	}

	// The Kustomization: the manifests of subPath, nested directories
	// included, and not the examples beside it.
	for name, data := range map[string]map[string]string{
		"settings": {"level": "info"}, "limits": {"cpu": "500m"}, "quotas": {"pods": "10"}, "features": {"beta": "true"},
	} {
		g.Eventually(func(g Gomega) { g.Expect(configMapData(g, target, name)).To(Equal(data)) }, timeout).Should(Succeed())
	}
	published := waitPublished(g, manifests)
	g.Eventually(func(g Gomega) {
		k := getKustomization(g, ks.GetNamespace(), ks.GetName())
		g.Expect(readyCondition(k)).To(HaveKeyWithValue("status", "True"))
		rev, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
		g.Expect(rev).To(Equal(published.Revision))
		entries, _, _ := unstructured.NestedSlice(k.Object, "status", "inventory", "entries")
		g.Expect(entries).To(HaveLen(4))
	}, timeout).Should(Succeed())
	cur := &exsv1beta1.ExternalSource{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(manifests), cur)).To(Succeed())
	g.Expect(cur.Status.LastHandledDigest).To(Equal(sha256Of(tarball)), "verified against the pin")

	// The HelmRelease: the chart's ConfigMap with the sample's values.
	chartVersion := trackedChartVersion("1.2.3", waitPublished(g, chart).Revision)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, target, chart.Spec.Extract.SubPath+"-greeting")).To(Equal(map[string]string{
			"greeting": "hello from flux-system", "color": "blue", "chartVersion": chartVersion}))
	}, timeout).Should(Succeed())
	waitHelmRelease(g, client.ObjectKeyFromObject(hr), chartVersion, 1)
	t.Logf("samples deployed in %s", time.Since(start).Round(time.Millisecond))
}
