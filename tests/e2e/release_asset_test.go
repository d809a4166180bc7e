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
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// releaseAssets is a release page: asset bytes by URL path, replaced as the
// project publishes new versions.
type releaseAssets struct {
	mu     sync.Mutex
	assets map[string][]byte
}

func newReleaseAssets(t *testing.T) (*releaseAssets, *httptest.Server) {
	a := &releaseAssets{assets: map[string][]byte{}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *releaseAssets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	b, ok := a.assets[r.URL.Path]
	a.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

func (a *releaseAssets) publish(path string, b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.assets[path] = b
}

// assetNames are the names of files, sorted.
func assetNames(files map[string]string) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// packTarGz packs files the way `helm package` and most release tooling
// do: regular files only, no directory entries, the packer's owner and the
// time of packing.
func packTarGz(g Gomega, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, n := range assetNames(files) {
		g.Expect(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(files[n])),
			Mode: 0o644, ModTime: time.Now(), Uid: 1001, Gid: 121, Uname: "runner"})).To(Succeed())
		_, err := io.WriteString(tw, files[n])
		g.Expect(err).ToNot(HaveOccurred())
	}
	g.Expect(tw.Close()).To(Succeed())
	g.Expect(zw.Close()).To(Succeed())
	return buf.Bytes()
}

// packZip packs files as another tool would: the reverse order, directory
// entries, other modes and an old mtime. The published revision must not
// see the difference.
func packZip(g Gomega, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := assetNames(files)
	dirs := map[string]bool{}
	for i := len(names) - 1; i >= 0; i-- {
		n := names[i]
		if d := n[:strings.LastIndex(n, "/")+1]; d != "" && !dirs[d] {
			dirs[d] = true
			_, err := zw.Create(d)
			g.Expect(err).ToNot(HaveOccurred())
		}
		fh := &zip.FileHeader{Name: n, Method: zip.Deflate, Modified: time.Date(2019, 4, 1, 0, 0, 0, 0, time.UTC)}
		fh.SetMode(0o600)
		w, err := zw.CreateHeader(fh)
		g.Expect(err).ToNot(HaveOccurred())
		_, err = io.WriteString(w, files[n])
		g.Expect(err).ToNot(HaveOccurred())
	}
	g.Expect(zw.Close()).To(Succeed())
	return buf.Bytes()
}

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// chartFiles is a chart as `helm create` lays it out and `helm package`
// packs it: every file under the chart's directory. Its one template is a
// ConfigMap, which an API server without nodes can hold.
func chartFiles(name, version, greeting string) map[string]string {
	return map[string]string{
		name + "/Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: %s\ndescription: A chart served as a release asset\n"+
			"type: application\nversion: %s\nappVersion: %q\n", name, version, version),
		name + "/values.yaml": fmt.Sprintf("greeting: %q\ncolor: blue\n", greeting),
		name + "/templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Chart.Name }}-greeting
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  color: {{ .Values.color | quote }}
  chartVersion: {{ .Chart.Version | quote }}
`,
		name + "/.helmignore": "*.swp\n",
	}
}

func createNamespace(g Gomega, name string) {
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

func configMapData(g Gomega, ns, name string) map[string]string {
	var cm corev1.ConfigMap
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm)).To(Succeed())
	return cm.Data
}

// trackedChartVersion is the version helm-controller gives a chart loaded
// from an ExternalArtifact: the chart's own, with the first 12 hex digits
// of the artifact's digest as build metadata, so that new bytes under an
// unchanged Chart.yaml version are upgraded too (unless helm-controller runs
// with --disable-chart-digest-tracking).
func trackedChartVersion(version, revision string) string {
	hex := revision[strings.LastIndex(revision, ":")+1:]
	return version + "+" + hex[:12]
}

// waitHelmRelease waits until the HelmRelease is Ready for its generation
// with the latest release of the history at chart version chartVersion and
// Helm release version version, and returns it.
func waitHelmRelease(g Gomega, key client.ObjectKey, chartVersion string, version int) *helmv2.HelmRelease {
	hr := &helmv2.HelmRelease{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, key, hr)).To(Succeed())
		g.Expect(conditions.IsReady(hr)).To(BeTrue(), "%v", conditions.Get(hr, meta.ReadyCondition))
		g.Expect(hr.Status.ObservedGeneration).To(Equal(hr.Generation))
		latest := hr.Status.History.Latest()
		g.Expect(latest).ToNot(BeNil())
		g.Expect(latest.ChartVersion).To(Equal(chartVersion))
		g.Expect(latest.Version).To(Equal(version))
		g.Expect(latest.Status).To(Equal("deployed"))
	}, timeout).Should(Succeed())
	return hr
}

// noWait is what an API server without nodes needs: nothing would ever
// report the workloads ready.
func noWait(hr *helmv2.HelmRelease) {
	if hr.Spec.Install == nil {
		hr.Spec.Install = &helmv2.Install{}
	}
	hr.Spec.Install.DisableWait, hr.Spec.Install.DisableWaitForJobs = true, true
	if hr.Spec.Upgrade == nil {
		hr.Spec.Upgrade = &helmv2.Upgrade{}
	}
	hr.Spec.Upgrade.DisableWait, hr.Spec.Upgrade.DisableWaitForJobs = true, true
}

// TestHelmReleaseInstallsChartFromReleaseAsset: a chart published as a .tgz
// release asset is installed by a real helm-controller from our
// ExternalArtifact, and upgraded when the project publishes the next
// version and the source is asked to reconcile.
func TestHelmReleaseInstallsChartFromReleaseAsset(t *testing.T) {
	g := NewWithT(t)
	start := time.Now()
	const ns = "release-helm"
	createNamespace(g, ns)
	assets, srv := newReleaseAssets(t)
	const asset = "/example/mychart/releases/latest/download/mychart.tgz"
	assets.publish(asset, packTarGz(g, chartFiles("mychart", "1.2.3", "hello")))

	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "mychart", Namespace: ns},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			// helm-controller loads the artifact as a packaged chart: the
			// chart in a top directory.
			DestinationPath: "mychart",
			Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL + asset}},
			Extract:         &exsv1beta1.ExtractSpec{Format: "auto", SubPath: "mychart/"},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	hr := &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "mychart", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			ChartRef: &helmv2.CrossNamespaceSourceReference{Kind: sourcev1.ExternalArtifactKind, Name: src.Name},
			Values:   &apiextensionsv1.JSON{Raw: []byte(`{"color": "green"}`)},
		},
	}
	noWait(hr)
	g.Expect(k8sClient.Create(ctx, hr)).To(Succeed())

	// Installed: the chart's values, the HelmRelease's override, and the
	// chart version tracking our revision's digest.
	first := waitPublished(g, src)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "mychart-greeting")).To(Equal(map[string]string{
			"greeting": "hello", "color": "green", "chartVersion": trackedChartVersion("1.2.3", first.Revision)}))
	}, timeout).Should(Succeed())
	installed := waitHelmRelease(g, client.ObjectKeyFromObject(hr), trackedChartVersion("1.2.3", first.Revision), 1)
	g.Expect(installed.Status.History.Latest().ChartName).To(Equal("mychart"))
	t.Logf("installed chart 1.2.3 from %s after %s", first.Revision, time.Since(start).Round(time.Millisecond))

	// The project publishes the next chart version at the same URL; a
	// reconcile request publishes it, and helm-controller upgrades.
	upgradeStart := time.Now()
	assets.publish(asset, packTarGz(g, chartFiles("mychart", "1.3.0", "hello again")))
	token := annotate(g, &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: src.Name, Namespace: ns}})
	var second string
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(token))
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(cur.Status.Artifact.Revision).ToNot(Equal(first.Revision))
		second = cur.Status.Artifact.Revision
	}, timeout).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "mychart-greeting")).To(Equal(map[string]string{
			"greeting": "hello again", "color": "green", "chartVersion": trackedChartVersion("1.3.0", second)}))
	}, timeout).Should(Succeed())
	upgraded := waitHelmRelease(g, client.ObjectKeyFromObject(hr), trackedChartVersion("1.3.0", second), 2)
	g.Expect(upgraded.Status.History).To(HaveLen(2))
	g.Expect(upgraded.Status.History[1].ChartVersion).To(Equal(trackedChartVersion("1.2.3", first.Revision)))
	g.Expect(upgraded.Status.History[1].Status).To(Equal("superseded"))
	t.Logf("upgraded to chart 1.3.0 %s after the reconcile request", time.Since(upgradeStart).Round(time.Millisecond))
}

// manifestsRelease is a release asset of manifests in nested directories,
// beside files that are not manifests and examples that must not be
// deployed when subPath selects deploy/.
var manifestsRelease = map[string]string{
	"app-1.2.3/README.md":                    "# app 1.2.3\n\nkubectl apply -R -f deploy/\n",
	"app-1.2.3/LICENSE":                      "Apache-2.0\n",
	"app-1.2.3/deploy/settings.yaml":         configMapYAML("settings", "level", "info"),
	"app-1.2.3/deploy/base/limits.yaml":      configMapYAML("limits", "cpu", "500m") + "---\n" + configMapYAML("quotas", "pods", "10"),
	"app-1.2.3/deploy/base/nested/flag.yaml": configMapYAML("features", "beta", "true"),
	"app-1.2.3/examples/demo.yaml":           configMapYAML("demo", "example", "yes"),
}

func configMapYAML(name, key, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  %s: %q\n", name, key, value)
}

// TestKustomizationAppliesReleaseAssets: a .tar.gz and a .zip of manifests
// in nested directories are applied by a real kustomize-controller, whole
// or one directory of them (subPath), GitHub's `git archive` "Source code"
// asset too; the same files give the same revision whichever packer made
// the archive.
func TestKustomizationAppliesReleaseAssets(t *testing.T) {
	g := NewWithT(t)
	start := time.Now()
	const ns = "release-kustomize"
	createNamespace(g, ns)
	assets, srv := newReleaseAssets(t)
	assets.publish("/download/v1.2.3/manifests.tar.gz", packTarGz(g, manifestsRelease))
	assets.publish("/download/v1.2.3/manifests.zip", packZip(g, manifestsRelease))
	// GitHub's "Source code (tar.gz)" asset: real `git archive`, whose
	// tar starts with a pax global header.
	assets.publish("/archive/refs/tags/v1.2.3.tar.gz", gitArchive(t, g, manifestsRelease, "app-1.2.3/", "tar.gz"))

	all := map[string]map[string]string{
		"settings": {"level": "info"}, "limits": {"cpu": "500m"}, "quotas": {"pods": "10"},
		"features": {"beta": "true"}, "demo": {"example": "yes"},
	}
	deployOnly := map[string]map[string]string{}
	for k, v := range all {
		if k != "demo" {
			deployOnly[k] = v
		}
	}
	tests := []struct {
		name, asset, format, subPath string
		want                         map[string]map[string]string
	}{
		{name: "tar-gz", asset: "manifests.tar.gz", want: all},
		{name: "tar-gz-subpath", asset: "manifests.tar.gz", format: "tar.gz", subPath: "app-1.2.3/deploy", want: deployOnly},
		{name: "zip", asset: "manifests.zip", format: "zip", want: all},
		{name: "zip-subpath", asset: "manifests.zip", subPath: "app-1.2.3/deploy/", want: deployOnly},
		{name: "git-archive-subpath", asset: "/archive/refs/tags/v1.2.3.tar.gz", subPath: "app-1.2.3/deploy", want: deployOnly},
	}
	// Created together, checked in turn: the controllers work on all of
	// them at once.
	for _, tt := range tests {
		createNamespace(g, "asset-"+tt.name)
		src := &exsv1beta1.ExternalSource{
			ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns},
			Spec: exsv1beta1.ExternalSourceSpec{
				Interval:  metav1.Duration{Duration: 10 * time.Minute},
				Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: assetURL(srv.URL, tt.asset)}},
				Extract:   &exsv1beta1.ExtractSpec{Format: tt.format, SubPath: tt.subPath},
			},
		}
		g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
		ks := kustomization(ns, tt.name, tt.name)
		g.Expect(unstructured.SetNestedField(ks.Object, "asset-"+tt.name, "spec", "targetNamespace")).To(Succeed())
		g.Expect(k8sClient.Create(ctx, ks)).To(Succeed())
	}
	revisions := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			target := "asset-" + tt.name
			for name, data := range tt.want {
				g.Eventually(func(g Gomega) { g.Expect(configMapData(g, target, name)).To(Equal(data)) }, timeout).Should(Succeed())
			}
			a := waitPublished(g, &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: tt.name, Namespace: ns}})
			revisions[tt.name] = a.Revision
			g.Eventually(func(g Gomega) {
				k := getKustomization(g, ns, tt.name)
				g.Expect(readyCondition(k)).To(HaveKeyWithValue("status", "True"))
				rev, _, _ := unstructured.NestedString(k.Object, "status", "lastAppliedRevision")
				g.Expect(rev).To(Equal(a.Revision))
				// Exactly the manifests of the selected directories.
				entries, _, _ := unstructured.NestedSlice(k.Object, "status", "inventory", "entries")
				g.Expect(entries).To(HaveLen(len(tt.want)))
			}, timeout).Should(Succeed())
			if _, ok := tt.want["demo"]; !ok {
				err := k8sClient.Get(ctx, client.ObjectKey{Namespace: target, Name: "demo"}, &corev1.ConfigMap{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "examples/ is outside subPath: %v", err)
			}
		})
	}
	g.Expect(revisions["zip"]).To(Equal(revisions["tar-gz"]), "same files, same revision, whatever the packer")
	g.Expect(revisions["zip-subpath"]).To(Equal(revisions["tar-gz-subpath"]))
	g.Expect(revisions["git-archive-subpath"]).To(Equal(revisions["tar-gz-subpath"]))
	g.Expect(revisions["tar-gz-subpath"]).ToNot(Equal(revisions["tar-gz"]))
	t.Logf("%d release assets applied in %s", len(tests), time.Since(start).Round(time.Millisecond))
}

// assetURL is the URL of an asset of the release download directory, or
// of the absolute path asset.
func assetURL(upstream, asset string) string {
	if strings.HasPrefix(asset, "/") {
		return upstream + asset
	}
	return upstream + "/download/v1.2.3/" + asset
}

// gitArchive commits files (their paths without prefix) to a new
// repository and returns `git archive --prefix` of it, as GitHub builds a
// release's "Source code" assets.
func gitArchive(t *testing.T, g Gomega, files map[string]string, prefix, format string) []byte {
	repo := t.TempDir()
	for n, b := range files {
		p := filepath.Join(repo, filepath.FromSlash(strings.TrimPrefix(n, prefix)))
		g.Expect(os.MkdirAll(filepath.Dir(p), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(p, []byte(b), 0o644)).To(Succeed())
	}
	var out []byte
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "v1.2.3"},
		{"archive", "--format=" + format, "--prefix=" + prefix, "HEAD"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "HOME="+repo, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t",
			"GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		var err error
		out, err = cmd.Output()
		g.Expect(err).ToNot(HaveOccurred(), "git %v", args)
	}
	return out
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestReleaseAssetBombPublishesNothing: a 1 GiB-unpacked archive of about
// 1 MiB on the wire is refused naming the entry, and nothing is published:
// no artifact, no ExternalArtifact for a consumer to pick up.
func TestReleaseAssetBombPublishesNothing(t *testing.T) {
	g := NewWithT(t)
	start := time.Now()
	const ns = "release-bomb"
	createNamespace(g, ns)
	var bomb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	g.Expect(err).ToNot(HaveOccurred())
	tw := tar.NewWriter(zw)
	g.Expect(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "deploy/bomb.yaml", Size: 1 << 30, Mode: 0o644})).To(Succeed())
	_, err = io.CopyN(tw, zeros{}, 1<<30)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(tw.Close()).To(Succeed())
	g.Expect(zw.Close()).To(Succeed())
	t.Logf("bomb: %d bytes on the wire for 1 GiB unpacked, built in %s", bomb.Len(), time.Since(start).Round(time.Millisecond))
	g.Expect(bomb.Len()).To(BeNumerically("<", 2<<20))

	assets, srv := newReleaseAssets(t)
	assets.publish("/bomb.tar.gz", bomb.Bytes())
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "bomb", Namespace: ns},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:  metav1.Duration{Duration: 10 * time.Minute},
			Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: srv.URL + "/bomb.tar.gz"}},
			Extract:   &exsv1beta1.ExtractSpec{},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	var msg string
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsTrue(cur, exsv1beta1.FetchFailedCondition)).To(BeTrue())
		msg = conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition)
		g.Expect(msg).To(ContainSubstring(`"deploy/bomb.yaml"`))
		g.Expect(msg).To(ContainSubstring("max archive size"))
		g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
		g.Expect(cur.Status.Artifact).To(BeNil())
	}, timeout).Should(Succeed())
	t.Logf("refused after %s: %s", time.Since(start).Round(time.Millisecond), msg)
	err = k8sClient.Get(ctx, client.ObjectKeyFromObject(src), &sourcev1.ExternalArtifact{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no ExternalArtifact: %v", err)
}
