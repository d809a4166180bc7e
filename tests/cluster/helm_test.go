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

package cluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/externalsource/externalsource-controller/internal/testutil/releaseapi"
)

var hrGVR = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}

// chartTgz is a chart packed as `helm package` packs it (the chart's
// directory at the top of a .tgz); its one template is a ConfigMap.
func chartTgz(t *testing.T, name, version string) []byte {
	t.Helper()
	files := map[string]string{
		name + "/Chart.yaml":  fmt.Sprintf("apiVersion: v2\nname: %s\ntype: application\nversion: %s\n", name, version),
		name + "/values.yaml": "greeting: hello\ncolor: blue\n",
		name + "/templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}-greeting
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  color: {{ .Values.color | quote }}
`,
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestHelmChartFromReleaseAsset is the chart scenario of a: a project's
// release carries its chart as a .tgz asset; the release generator reads
// the release list from a GitHub API STAND-IN (internal/testutil/releaseapi,
// not GitHub) served on the bridge's address, downloads and verifies the
// asset, and publishes the chart's directory; the helm-controller pod
// downloads the artifact through the Service and installs the chart.
func TestHelmChartFromReleaseAsset(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster

	api := releaseapi.New(t, releaseapi.Options{Unstarted: true, Releases: []releaseapi.Release{{
		Tag:     "v1.2.3",
		Assets:  map[string][]byte{"mychart-1.2.3.tgz": chartTgz(t, "mychart", "1.2.3")},
		Digests: map[string]string{"mychart-1.2.3.tgz": releaseapi.DigestRight},
	}}})
	for _, s := range []interface{ Close() error }{api.API.Listener, api.CDN.Listener} {
		_ = s.Close()
	}
	for _, l := range []*net.Listener{&api.API.Listener, &api.CDN.Listener} {
		nl, err := net.Listen("tcp", net.JoinHostPort(c.NodeIP.String(), "0"))
		g.Expect(err).NotTo(HaveOccurred())
		*l = nl
	}
	api.Start()

	ns := createNamespace(t, "charts")
	g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: mychart, namespace: %[1]s}
spec:
  interval: 1m
  timeout: 60s
  # helm-controller loads the artifact as a packaged chart: the chart in a
  # top directory.
  destinationPath: mychart
  generator:
    type: release
    release:
      provider: github
      url: %[2]s
      repository: %[3]s
      version: {semver: ">=1.0.0"}
      assets: ["mychart-*.tgz"]
  extract: {format: auto, subPath: mychart/}
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: mychart, namespace: %[1]s}
spec:
  interval: 1m
  chartRef: {kind: ExternalArtifact, name: mychart}
  values: {color: green}
`, ns, api.API.URL, api.Repository()))).To(Succeed())

	g.Eventually(func() string {
		u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, "mychart", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		s, m := readyCondition(u)
		return s + ": " + m
	}, 3*time.Minute, time.Second).Should(HavePrefix("True"))
	// helm-controller's pod downloaded the artifact through the Service and
	// installed the chart, with the HelmRelease's value over the chart's.
	g.Eventually(func() map[string]string {
		cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, "mychart-greeting", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return cm.Data
	}, 4*time.Minute, time.Second).Should(Equal(map[string]string{"greeting": "hello", "color": "green"}))
	g.Eventually(func() string {
		u, err := dyn(t).Resource(hrGVR).Namespace(ns).Get(ctx, "mychart", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		s, m := readyCondition(u)
		return s + ": " + m
	}, 2*time.Minute, time.Second).Should(HavePrefix("True"))
	u, err := dyn(t).Resource(esGVR).Namespace(ns).Get(ctx, "mychart", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tag, _, _ := unstructured.NestedString(u.Object, "status", "release", "tag")
	g.Expect(tag).To(Equal("v1.2.3"))
	g.Expect(api.Counts().Downloads).To(BeNumerically(">", 0))
}
