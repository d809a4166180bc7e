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
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"net/http"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// releaseFiles is a release asset: manifests in nested directories and a chart.
var releaseFiles = map[string]string{
	"release/kustomization.yaml":           "resources: [deploy/app.yaml, deploy/svc/svc.yaml]\n",
	"release/deploy/app.yaml":              "kind: Deployment\n",
	"release/deploy/svc/svc.yaml":          "kind: Service\n",
	"release/charts/app/Chart.yaml":        "name: app\nversion: 1.2.3\n",
	"release/charts/app/templates/cm.yaml": "kind: ConfigMap\n",
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func testTarGz(g Gomega, files map[string]string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	g.Expect(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "release/", Mode: 0o755})).To(Succeed())
	for _, n := range sortedNames(files) {
		g.Expect(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Size: int64(len(files[n])), Mode: 0o600,
			ModTime: time.Now(), Uid: 1000})).To(Succeed())
		_, err := tw.Write([]byte(files[n]))
		g.Expect(err).ToNot(HaveOccurred())
	}
	g.Expect(tw.Close()).To(Succeed())
	g.Expect(zw.Close()).To(Succeed())
	return buf.String()
}

func testZip(g Gomega, files map[string]string) string {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	names := sortedNames(files)
	// Another order than the tar's: the revision must not care.
	for i := len(names) - 1; i >= 0; i-- {
		w, err := zw.Create(names[i])
		g.Expect(err).ToNot(HaveOccurred())
		_, err = w.Write([]byte(files[names[i]]))
		g.Expect(err).ToNot(HaveOccurred())
	}
	g.Expect(zw.Close()).To(Succeed())
	return buf.String()
}

// TestExtractPublishesArchiveFiles: a .tar.gz and a .zip of the same
// manifests publish the same files, and the same revision; subPath and
// destinationPath place one directory of the archive.
func TestExtractPublishesArchiveFiles(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	want := map[string]string{}
	for n, b := range releaseFiles {
		want[n] = b
	}
	tests := []struct {
		name, body, format, subPath, dest string
		want                              map[string]string
	}{
		{name: "tar-gz", body: testTarGz(g, releaseFiles), format: "auto", want: want},
		{name: "zip", body: testZip(g, releaseFiles), format: "zip", want: want},
		{name: "subpath", body: testTarGz(g, releaseFiles), format: "tar.gz", subPath: "release/charts/app/",
			want: map[string]string{"Chart.yaml": "name: app\nversion: 1.2.3\n", "templates/cm.yaml": "kind: ConfigMap\n"}},
		{name: "subpath-dest", body: testZip(g, releaseFiles), subPath: "release/deploy", dest: "manifests/prod",
			want: map[string]string{"manifests/prod/app.yaml": "kind: Deployment\n", "manifests/prod/svc/svc.yaml": "kind: Service\n"}},
	}
	revisions := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newUpstream(t, tt.body)
			obj := newSource(ns, tt.name, up.URL+"/download/asset")
			obj.Spec.DestinationPath = tt.dest
			obj.Spec.Extract = &exsv1beta1.ExtractSpec{Format: tt.format, SubPath: tt.subPath}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			ready := waitReady(t, obj)
			g.Expect(untar(g, download(g, ready.Status.Artifact.URL))).To(Equal(tt.want))
			revisions[tt.name] = ready.Status.Artifact.Revision
		})
	}
	g.Expect(revisions["zip"]).To(Equal(revisions["tar-gz"]), "same files, same revision, whatever the archive")
}

// TestExtractFailures: a hostile archive and a missing subPath are
// FetchFailed naming the entry or the subPath, retried (not Stalled), and
// the last artifact stays published.
func TestExtractFailures(t *testing.T) {
	ns := newNamespace(t)
	var slip bytes.Buffer
	zw := zip.NewWriter(&slip)
	w, _ := zw.Create("../../etc/cron.d/evil")
	_, _ = w.Write([]byte("* * * * * root sh"))
	_ = zw.Close()
	tests := []struct {
		name, body, subPath, want string
	}{
		{name: "zip-slip", body: slip.String(), want: `entry "../../etc/cron.d/evil": '..' segments are not allowed`},
		{name: "missing-subpath", subPath: "release/nope", want: `spec.extract.subPath "release/nope": no such directory in the archive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			up := newUpstream(t, testTarGz(g, releaseFiles))
			obj := newSource(ns, tt.name, up.URL)
			obj.Spec.DestinationPath = ""
			obj.Spec.Extract = &exsv1beta1.ExtractSpec{}
			g.Expect(k8sClient.Create(testCtx, obj)).To(Succeed())
			ready := waitReady(t, obj)
			rev := ready.Status.Artifact.Revision

			if tt.body != "" {
				up.set(http.StatusOK, tt.body)
			} else {
				cur := getSource(g, obj)
				cur.Spec.Extract.SubPath = tt.subPath
				g.Expect(k8sClient.Update(testCtx, cur)).To(Succeed())
			}
			if tt.body != "" {
				requestReconcileAsync(g, obj)
			}
			g.Eventually(func(g Gomega) {
				cur := getSource(g, obj)
				g.Expect(conditions.IsTrue(cur, exsv1beta1.FetchFailedCondition)).To(BeTrue())
				g.Expect(conditions.GetReason(cur, exsv1beta1.FetchFailedCondition)).To(Equal(exsv1beta1.FetchFailedReason))
				g.Expect(conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition)).To(ContainSubstring(tt.want))
				g.Expect(conditions.IsFalse(cur, meta.ReadyCondition)).To(BeTrue())
				g.Expect(conditions.IsStalled(cur)).To(BeFalse(), "retried: the upstream may change")
				g.Expect(cur.Status.Artifact.Revision).To(Equal(rev), "the last artifact stays")
			}, timeout, 100*time.Millisecond).Should(Succeed())
		})
	}
}
