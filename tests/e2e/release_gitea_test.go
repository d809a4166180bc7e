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
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/cli"
	"github.com/externalsource/externalsource-controller/internal/generator"
	httpgen "github.com/externalsource/externalsource-controller/internal/generator/http"
	"github.com/externalsource/externalsource-controller/internal/generator/release"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// manifestRelease is a release's assets as a project publishes them:
// install.yaml (a ConfigMap naming the version) and a sha256sum-style
// checksums.txt. A non-empty badSum is written in place of the true sum.
func manifestRelease(tag, badSum string) map[string][]byte {
	y := configMapYAML("app-version", "version", tag)
	sum := strings.TrimPrefix(sha256Of([]byte(y)), "sha256:")
	if badSum != "" {
		sum = badSum
	}
	return map[string][]byte{"install.yaml": []byte(y), "checksums.txt": []byte(sum + "  install.yaml\n")}
}

// giteaSource is an ExternalSource of repo's releases on the suite's Gitea,
// its one asset install.yaml at the artifact's root.
func giteaSource(gt *giteaServer, ns, name, repo string, mutate func(*exsv1beta1.ExternalSource)) *exsv1beta1.ExternalSource {
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: time.Minute},
			DestinationPath: "install.yaml",
			Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeRelease, Release: &exsv1beta1.ReleaseGeneratorSpec{
				Provider: exsv1beta1.ReleaseProviderGitea, URL: gt.URL + "/api/v1", Repository: gt.User + "/" + repo,
				Version: exsv1beta1.ReleaseVersion{SemVer: ">=1.0.0 <2.0.0"}, Assets: []string{"install.yaml"},
			}},
		},
	}
	if mutate != nil {
		mutate(src)
	}
	return src
}

// getSource reads the current object.
func getSource(g Gomega, ns, name string) *exsv1beta1.ExternalSource {
	cur := &exsv1beta1.ExternalSource{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cur)).To(Succeed())
	return cur
}

// waitTag waits until the source is Ready with an artifact of tag and
// returns the object.
func waitTag(g Gomega, ns, name, tag string, within time.Duration) *exsv1beta1.ExternalSource {
	var cur *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		cur = getSource(g, ns, name)
		g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", conditions.Get(cur, meta.ReadyCondition))
		g.Expect(cur.Status.Artifact).ToNot(BeNil())
		g.Expect(cur.Status.Artifact.Revision).To(HavePrefix(tag+"@sha256:"), "%+v", cur.Status)
	}, within, 250*time.Millisecond).Should(Succeed())
	return cur
}

// reconcileNow asks for a reconcile and waits until it is handled.
func reconcileNow(g Gomega, ns, name string) *exsv1beta1.ExternalSource {
	token := annotate(g, &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}})
	var cur *exsv1beta1.ExternalSource
	g.Eventually(func(g Gomega) {
		cur = getSource(g, ns, name)
		g.Expect(cur.Status.LastHandledReconcileAt).To(Equal(token))
	}, timeout).Should(Succeed())
	return cur
}

// TestGiteaReleaseSemver runs the release generator against a real Gitea:
// a semver range across five releases (one a prerelease) selects the
// highest stable one, and a Kustomization applies its install.yaml; a
// release outside the range changes nothing; a new matching release
// becomes the revision within one interval, and at once with a reconcile
// request.
func TestGiteaReleaseSemver(t *testing.T) {
	g := NewWithT(t)
	gt := gitea(t)
	const ns, repo = "gitea-semver", "semver-app"
	createNamespace(g, ns)
	g.Expect(gt.createRepo(repo, false)).To(Succeed())
	for _, tag := range []string{"v0.9.0", "v1.1.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0"} {
		g.Expect(gt.publishRelease(repo, tag, strings.Contains(tag, "-"), manifestRelease(tag, ""))).To(Succeed())
	}

	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "stable", repo, nil))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "preview", repo, func(s *exsv1beta1.ExternalSource) {
		s.Spec.Generator.Release.Prereleases = true
	}))).To(Succeed())
	ks := kustomization(ns, "stable", "stable")
	g.Expect(unstructured.SetNestedField(ks.Object, ns, "spec", "targetNamespace")).To(Succeed())
	g.Expect(k8sClient.Create(ctx, ks)).To(Succeed())

	stable := waitTag(g, ns, "stable", "v1.2.0", timeout)
	g.Expect(stable.Status.Release).ToNot(BeNil())
	g.Expect(stable.Status.Release.Tag).To(Equal("v1.2.0"))
	g.Expect(stable.Status.Release.URL).To(Equal(gt.URL + "/" + gt.User + "/" + repo + "/releases/tag/v1.2.0"))
	g.Expect(stable.Status.Release.PublishedAt).ToNot(BeNil())
	g.Expect(stable.Status.LastHandledETag).To(HavePrefix("release-fingerprint:"), "Gitea sends no ETag for its list")
	g.Expect(stable.Status.ChangeDetection).To(Equal(release.ChangeDetectionReleaseList))
	preview := waitTag(g, ns, "preview", "v1.3.0-rc.1", timeout)
	g.Expect(preview.Status.Release.Tag).To(Equal("v1.3.0-rc.1"))
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "app-version")).To(Equal(map[string]string{"version": "v1.2.0"}))
		rev, _, _ := unstructured.NestedString(getKustomization(g, ns, "stable").Object, "status", "lastAppliedRevision")
		g.Expect(rev).To(Equal(stable.Status.Artifact.Revision))
	}, timeout).Should(Succeed())

	// A release outside the range: a reconcile finds nothing new.
	g.Expect(gt.publishRelease(repo, "v2.1.0", false, manifestRelease("v2.1.0", ""))).To(Succeed())
	after := reconcileNow(g, ns, "stable")
	g.Expect(conditions.IsReady(after)).To(BeTrue())
	g.Expect(after.Status.Artifact).To(Equal(stable.Status.Artifact))
	g.Expect(after.Status.Release.Tag).To(Equal("v1.2.0"))

	// A new matching release, nobody asking: the next interval publishes
	// it (one interval, one minute, and Flux's 5% jitter).
	published := time.Now()
	g.Expect(gt.publishRelease(repo, "v1.4.0", false, manifestRelease("v1.4.0", ""))).To(Succeed())
	next := waitTag(g, ns, "stable", "v1.4.0", time.Minute+30*time.Second)
	t.Logf("v1.4.0 published by the interval %s after its release", time.Since(published).Round(time.Second))
	g.Expect(next.Status.Release.Tag).To(Equal("v1.4.0"))
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "app-version")).To(Equal(map[string]string{"version": "v1.4.0"}))
	}, timeout).Should(Succeed())

	// Another, with a reconcile request: at once.
	g.Expect(gt.publishRelease(repo, "v1.5.0", false, manifestRelease("v1.5.0", ""))).To(Succeed())
	asked := time.Now()
	reconcileNow(g, ns, "stable")
	latest := waitTag(g, ns, "stable", "v1.5.0", timeout)
	t.Logf("v1.5.0 published %s after the reconcile request", time.Since(asked).Round(time.Millisecond))

	// The tag is in the revision, where `flux get sources external` shows
	// it (as it shows a GitRepository's v1.2.3@sha1:...), and our plugin.
	g.Eventually(func(g Gomega) {
		var ea sourcev1.ExternalArtifact
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "stable"}, &ea)).To(Succeed())
		g.Expect(ea.Status.Artifact).To(Equal(latest.Status.Artifact))
	}, timeout).Should(Succeed())
	out, err := fluxCLI(t, "get", "sources", "external", "-n", ns)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(out).To(MatchRegexp(`(?m)^stable\s+v1\.5\.0@sha256:[0-9a-f]{8}\s+ExternalSource/` + ns + `/stable\s+True\s`))
	// preview (prereleases too) had v1.3.0-rc.1, and its own interval may
	// have passed since v1.4.0 and v1.5.0 were published (on a loaded
	// machine the stable source's wait above can outlast it).
	g.Expect(out).To(MatchRegexp(`(?m)^preview\s+v1\.(3\.0-rc\.1|4\.0|5\.0)@sha256:[0-9a-f]{8}\s+ExternalSource/` + ns + `/preview\s+True\s`))
	plugin := filepath.Join(t.TempDir(), cli.PluginName)
	g.Expect(os.Symlink(bin, plugin)).To(Succeed())
	r := runPlugin(t, plugin, "get", "-n", ns)
	g.Expect(r.code).To(Equal(cli.ExitOK), r.stderr)
	g.Expect(r.stdout).To(MatchRegexp(`(?m)^stable\s+%s\s+False\s+True\s`, regexp.QuoteMeta(latest.Status.Artifact.Revision)))
	g.Expect(latest.Status.Artifact.Revision).To(MatchRegexp(`^v1\.5\.0@sha256:[0-9a-f]{64}$`))
}

// TestGiteaPrivateRepositoryToken: a private repository's releases are
// read with a token Secret (assets downloaded from Gitea's own origin,
// token sent there only); without it Gitea hides the repository; a wrong
// token is an authentication failure. Neither token appears in any status,
// event or log line of the controller.
func TestGiteaPrivateRepositoryToken(t *testing.T) {
	g := NewWithT(t)
	gt := gitea(t)
	const ns, repo = "gitea-private", "private-app"
	const wrongToken = "0123456789abcdef0123456789abcdef01234567"
	createNamespace(g, ns)
	g.Expect(gt.createRepo(repo, true)).To(Succeed())
	g.Expect(gt.publishRelease(repo, "v1.0.0", false, manifestRelease("v1.0.0", ""))).To(Succeed())
	for name, tok := range map[string]string{"gitea-token": gt.Token, "wrong-token": wrongToken} {
		g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			StringData: map[string]string{"token": tok}})).To(Succeed())
	}
	withSecret := func(name string) func(*exsv1beta1.ExternalSource) {
		return func(s *exsv1beta1.ExternalSource) {
			s.Spec.Generator.Release.SecretRef = &meta.LocalObjectReference{Name: name}
		}
	}
	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "with-token", repo, withSecret("gitea-token")))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "without-token", repo, nil))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "wrong-token", repo, withSecret("wrong-token")))).To(Succeed())

	ok := waitTag(g, ns, "with-token", "v1.0.0", timeout)
	g.Expect(ok.Status.Release.Tag).To(Equal("v1.0.0"))
	failing := map[string]string{"without-token": "404 Not Found", "wrong-token": "401 Unauthorized"}
	for name, status := range failing {
		g.Eventually(func(g Gomega) {
			cur := getSource(g, ns, name)
			g.Expect(conditions.IsReady(cur)).To(BeFalse())
			g.Expect(conditions.GetMessage(cur, exsv1beta1.FetchFailedCondition)).To(ContainSubstring(status))
			g.Expect(cur.Status.Artifact).To(BeNil())
		}, timeout).Should(Succeed(), name)
	}

	// Everything the controller wrote about them: the objects, their
	// ExternalArtifacts, the Kubernetes events, the forwarded events and
	// the controller's log (debug level).
	var seen []string
	for _, name := range []string{"with-token", "without-token", "wrong-token"} {
		b, err := json.Marshal(getSource(g, ns, name))
		g.Expect(err).ToNot(HaveOccurred())
		seen = append(seen, string(b))
	}
	var eas sourcev1.ExternalArtifactList
	g.Expect(k8sClient.List(ctx, &eas, client.InNamespace(ns))).To(Succeed())
	g.Expect(eas.Items).ToNot(BeEmpty())
	var evs corev1.EventList
	g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
	g.Expect(evs.Items).ToNot(BeEmpty())
	for _, v := range []any{eas, evs, events.All()} {
		b, err := json.Marshal(v)
		g.Expect(err).ToNot(HaveOccurred())
		seen = append(seen, string(b))
	}
	log, err := os.ReadFile(filepath.Join(workDir, "externalsource-controller.log"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(log)).To(ContainSubstring("gitea-private"), "the log covers these objects")
	seen = append(seen, string(log))
	for _, s := range seen {
		g.Expect(s).ToNot(ContainSubstring(gt.Token))
		g.Expect(s).ToNot(ContainSubstring(wrongToken))
	}
}

// TestGiteaChecksumsMismatch: a release whose checksums asset disagrees
// with the bytes Gitea serves is DigestMismatch (Stalled, a Warning event)
// and the last artifact stays published.
func TestGiteaChecksumsMismatch(t *testing.T) {
	g := NewWithT(t)
	gt := gitea(t)
	const ns, repo = "gitea-checksums", "checked-app"
	createNamespace(g, ns)
	g.Expect(gt.createRepo(repo, false)).To(Succeed())
	g.Expect(gt.publishRelease(repo, "v1.0.0", false, manifestRelease("v1.0.0", ""))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "checked", repo, nil))).To(Succeed())
	good := waitTag(g, ns, "checked", "v1.0.0", timeout)

	g.Expect(gt.publishRelease(repo, "v1.1.0", false, manifestRelease("v1.1.0", strings.Repeat("ab", 32)))).To(Succeed())
	reconcileNow(g, ns, "checked")
	g.Eventually(func(g Gomega) {
		cur := getSource(g, ns, "checked")
		g.Expect(conditions.IsStalled(cur)).To(BeTrue(), "%v", cur.Status.Conditions)
		g.Expect(conditions.GetReason(cur, meta.ReadyCondition)).To(Equal(exsv1beta1.DigestMismatchReason))
		g.Expect(conditions.GetMessage(cur, meta.ReadyCondition)).To(And(ContainSubstring("v1.1.0"), ContainSubstring("checksums.txt")))
		g.Expect(cur.Status.Artifact).To(Equal(good.Status.Artifact), "the last artifact stays")
		g.Expect(cur.Status.Release.Tag).To(Equal("v1.0.0"))
		var evs corev1.EventList
		g.Expect(k8sClient.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
		found := false
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "checked" && e.Type == corev1.EventTypeWarning && e.Reason == exsv1beta1.DigestMismatchReason {
				found = true
			}
		}
		g.Expect(found).To(BeTrue(), "a Warning event DigestMismatch: %v", evs.Items)
	}, timeout).Should(Succeed())
	var ea sourcev1.ExternalArtifact
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "checked"}, &ea)).To(Succeed())
	g.Expect(ea.Status.Artifact).To(Equal(good.Status.Artifact))
}

// TestGiteaNeedsTheAllowedRange: Gitea serves on loopback, which the
// controller denies by default; the suite's controller reaches it only
// because it runs with --allowed-address-ranges=127.0.0.0/8, as a user
// allows an address range. The release generator with the default policy
// refuses the same server.
func TestGiteaNeedsTheAllowedRange(t *testing.T) {
	gt := gitea(t)
	g := NewWithT(t)
	const repo = "policy-app"
	g.Expect(gt.createRepo(repo, false)).To(Succeed())
	g.Expect(gt.publishRelease(repo, "v1.0.0", false, manifestRelease("v1.0.0", ""))).To(Succeed())
	src := giteaSource(gt, "default", "policy", repo, nil)
	for _, tt := range []struct {
		name   string
		policy *httpgen.URLPolicy
		denied bool
	}{
		{name: "default policy", policy: &httpgen.URLPolicy{}, denied: true},
		{name: "loopback allowed", policy: &httpgen.URLPolicy{AllowedRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			gen := release.New(release.Options{Sender: httpgen.New(httpgen.Options{URLPolicy: tt.policy}).Sender(), TempDir: t.TempDir()})
			res, err := gen.Generate(context.Background(), &generator.Request{Source: src, Reader: k8sClient, Secrets: &redact.Set{}})
			if tt.denied {
				g.Expect(err).To(HaveOccurred())
				g.Expect(errors.Is(err, httpgen.ErrDenied)).To(BeTrue(), "%v", err)
				g.Expect(err.Error()).To(ContainSubstring("127.0.0.1"))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(res.RevisionName).To(Equal("v1.0.0"))
			g.Expect(res.Body.Close()).To(Succeed())
		})
	}
}

// TestGiteaReleaseChart: helm-controller installs a chart published as a
// .tgz asset of a Gitea release (extract + subPath), and upgrades it when
// the project publishes a newer matching release.
func TestGiteaReleaseChart(t *testing.T) {
	g := NewWithT(t)
	gt := gitea(t)
	const ns, repo = "gitea-helm", "chart-app"
	createNamespace(g, ns)
	g.Expect(gt.createRepo(repo, false)).To(Succeed())
	chartRelease := func(version, greeting string) map[string][]byte {
		tgz := packTarGz(g, chartFiles("mychart", version, greeting))
		name := "mychart-" + version + ".tgz"
		return map[string][]byte{name: tgz, name + ".sha256": []byte(strings.TrimPrefix(sha256Of(tgz), "sha256:") + "\n")}
	}
	g.Expect(gt.publishRelease(repo, "v1.2.3", false, chartRelease("1.2.3", "hello"))).To(Succeed())
	src := giteaSource(gt, ns, "mychart", repo, func(s *exsv1beta1.ExternalSource) {
		s.Spec.DestinationPath = "mychart"
		s.Spec.Extract = &exsv1beta1.ExtractSpec{Format: "tar.gz", SubPath: "mychart/"}
		s.Spec.Generator.Release.Assets = []string{"mychart-*.tgz"}
	})
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	hr := &helmv2.HelmRelease{
		ObjectMeta: metav1.ObjectMeta{Name: "mychart", Namespace: ns},
		Spec: helmv2.HelmReleaseSpec{
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			ChartRef: &helmv2.CrossNamespaceSourceReference{Kind: sourcev1.ExternalArtifactKind, Name: src.Name},
		},
	}
	noWait(hr)
	g.Expect(k8sClient.Create(ctx, hr)).To(Succeed())

	first := waitTag(g, ns, "mychart", "v1.2.3", timeout)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "mychart-greeting")).To(Equal(map[string]string{
			"greeting": "hello", "color": "blue", "chartVersion": trackedChartVersion("1.2.3", first.Status.Artifact.Revision)}))
	}, timeout).Should(Succeed())
	waitHelmRelease(g, client.ObjectKeyFromObject(hr), trackedChartVersion("1.2.3", first.Status.Artifact.Revision), 1)

	// The project releases 1.3.0; a reconcile request publishes it and
	// helm-controller upgrades.
	g.Expect(gt.publishRelease(repo, "v1.3.0", false, chartRelease("1.3.0", "hello again"))).To(Succeed())
	reconcileNow(g, ns, "mychart")
	second := waitTag(g, ns, "mychart", "v1.3.0", timeout)
	g.Eventually(func(g Gomega) {
		g.Expect(configMapData(g, ns, "mychart-greeting")).To(Equal(map[string]string{
			"greeting": "hello again", "color": "blue", "chartVersion": trackedChartVersion("1.3.0", second.Status.Artifact.Revision)}))
	}, timeout).Should(Succeed())
	upgraded := waitHelmRelease(g, client.ObjectKeyFromObject(hr), trackedChartVersion("1.3.0", second.Status.Artifact.Revision), 2)
	g.Expect(upgraded.Status.History[1].Status).To(Equal("superseded"))
}

// countingProxy forwards to Gitea and counts the requests by path.
type countingProxy struct {
	mu     sync.Mutex
	byPath map[string]int
	proxy  *httputil.ReverseProxy
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.byPath[r.URL.Path]++
	p.mu.Unlock()
	p.proxy.ServeHTTP(w, r)
}

func (p *countingProxy) take() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.byPath
	p.byPath = map[string]int{}
	return out
}

// downloadCounts are Gitea's download counters of a release's assets.
func (s *giteaServer) downloadCounts(g Gomega, repo, tag string) map[string]int {
	var rel struct {
		Assets []struct {
			Name          string `json:"name"`
			DownloadCount int    `json:"download_count"`
		} `json:"assets"`
	}
	g.Expect(s.api(http.MethodGet, "/repos/"+s.User+"/"+repo+"/releases/tags/"+tag, nil, http.StatusOK, &rel)).To(Succeed())
	out := map[string]int{}
	for _, a := range rel.Assets {
		out[a.Name] = a.DownloadCount
	}
	return out
}

// TestGiteaUnchangedReleaseCost counts what an unchanged release costs per
// interval against a real Gitea, which sends no ETag for its release list:
// one request (the list's first page, through a counting proxy) and no
// download (Gitea's own download counters). Each reconcile request stands
// for an interval: it runs the same check.
func TestGiteaUnchangedReleaseCost(t *testing.T) {
	g := NewWithT(t)
	gt := gitea(t)
	const ns, repo = "gitea-cost", "cost-app"
	createNamespace(g, ns)
	g.Expect(gt.createRepo(repo, false)).To(Succeed())
	g.Expect(gt.publishRelease(repo, "v1.0.0", false, manifestRelease("v1.0.0", ""))).To(Succeed())
	target, err := url.Parse(gt.URL)
	g.Expect(err).ToNot(HaveOccurred())
	counter := &countingProxy{byPath: map[string]int{}, proxy: httputil.NewSingleHostReverseProxy(target)}
	proxy := httptest.NewServer(counter)
	defer proxy.Close()

	g.Expect(k8sClient.Create(ctx, giteaSource(gt, ns, "cost", repo, func(s *exsv1beta1.ExternalSource) {
		s.Spec.Interval = metav1.Duration{Duration: time.Hour}
		s.Spec.Generator.Release.URL = proxy.URL + "/api/v1"
	}))).To(Succeed())
	first := waitTag(g, ns, "cost", "v1.0.0", timeout)
	listPath := "/api/v1/repos/" + gt.User + "/" + repo + "/releases"
	g.Expect(counter.take()).To(Equal(map[string]int{listPath: 1}), "the first fetch: the list (assets from Gitea's own origin)")
	downloads := gt.downloadCounts(g, repo, "v1.0.0")
	g.Expect(downloads).To(Equal(map[string]int{"install.yaml": 1, "checksums.txt": 1}))

	const checks = 3
	for range checks {
		cur := reconcileNow(g, ns, "cost")
		g.Expect(conditions.IsReady(cur)).To(BeTrue())
		g.Expect(cur.Status.Artifact).To(Equal(first.Status.Artifact))
		g.Expect(cur.Status.ChangeDetection).To(Equal(release.ChangeDetectionReleaseList))
	}
	g.Expect(counter.take()).To(Equal(map[string]int{listPath: checks}), "one request per check")
	g.Expect(gt.downloadCounts(g, repo, "v1.0.0")).To(Equal(downloads), "no download while the release is unchanged")
	t.Logf("%d unchanged checks: %d list requests, 0 downloads", checks, checks)
}
