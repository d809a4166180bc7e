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
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/hook/sandboxtest"
)

const fluxNS = "flux-system"

var (
	imagesOnce sync.Once
	images     []Image
	imagesErr  error
	installMu  sync.Mutex
	installed  bool
	installErr string
)

// projectImages builds the project's images once per run and imports them
// into the node.
func projectImages(t *testing.T) []Image {
	t.Helper()
	imagesOnce.Do(func() {
		dir, err := os.MkdirTemp(testCluster.Dir, "images-")
		if err != nil {
			imagesErr = err
			return
		}
		if images, imagesErr = ProjectImages(testCluster.opts.Root, dir); imagesErr != nil {
			return
		}
		var tools Image
		for _, img := range images {
			if img.Name == HookExecutorImage {
				tools, imagesErr = ToolsImage(testCluster.opts.Root, dir, img)
			}
		}
		if imagesErr != nil {
			return
		}
		images = append(images, tools)
		if imagesErr = testCluster.ImportImages(context.Background(), images...); imagesErr != nil {
			return
		}
		flux, err := FluxImages(testCluster.opts.Root)
		if err != nil {
			imagesErr = err
			return
		}
		imagesErr = testCluster.ImportImages(context.Background(), flux...)
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return images
}

// overlay is what a user writes to install: the shipped Flux component
// (config/flux, which includes config/default) over Flux's
// kustomize-controller and helm-controller, with the images' names changed and the hook
// whitelist replaced by the admin's (whitelist.yaml: the shipped entries
// and the probe's, a tool of their own in their hook executor image,
// ToolsHookExecutorImage).
func overlay(component string) string {
	return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - flux.yaml
components:
  - %s
images:
  - {name: ghcr.io/externalsource/externalsource-controller, newName: %s, newTag: %s}
  - {name: ghcr.io/externalsource/externalsource-hook-executor, newName: %s, newTag: %s}
  - {name: fluxcd/kustomize-controller, newName: %s, newTag: %s}
  - {name: fluxcd/helm-controller, newName: %s, newTag: %s}
patches:
  - path: whitelist.yaml
`, fluxNS, component,
		refName(ControllerImage), refTag(ControllerImage),
		refName(ToolsHookExecutorImage), refTag(ToolsHookExecutorImage),
		refName(KustomizeControllerImage), refTag(KustomizeControllerImage),
		refName(HelmControllerImage), refTag(HelmControllerImage))
}

// whitelistPatch is the admin's whitelist: the shipped one with the
// probe's entries (probe: no network, fileSize 1Mi; probe-net: network).
func whitelistPatch(t *testing.T) string {
	t.Helper()
	wl, err := sandboxtest.ShippedWhitelist("/usr/bin/yq", ProbePath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "externalsource-hook-whitelist"},
		"data":     map[string]any{"whitelist.yaml": wl},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func refName(ref string) string { return ref[:strings.LastIndex(ref, ":")] }
func refTag(ref string) string  { return ref[strings.LastIndex(ref, ":")+1:] }

// fluxControllers are Flux's controllers (kustomize-controller, helm-controller) as their
// own modules' config/manager describes them, with the service
// accounts and the cluster-admin binding Flux's install gives them.
func fluxControllers(t *testing.T) string {
	t.Helper()
	var docs []string
	for _, m := range []struct{ mod, name string }{
		{"github.com/fluxcd/kustomize-controller", "kustomize-controller"},
		{"github.com/fluxcd/helm-controller", "helm-controller"},
	} {
		// The version the node runs is the one its image is built from.
		ver, err := devenv.ToolModuleVersion(m.name, m.mod)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := moduleDir(testCluster.opts.Root, m.mod, ver)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "config", "manager", "deployment.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := yaml.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		spec := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["serviceAccountName"] = m.name
		out, _ := yaml.Marshal(d)
		docs = append(docs, string(out), fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s}
`, m.name), fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: exs-test-%[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: ServiceAccount, name: %[1]s, namespace: %[2]s}
`, m.name, fluxNS))
	}
	return strings.Join(docs, "---\n")
}

// install applies the Flux CRDs and the overlay once per run and waits for
// the three Deployments.
func install(t *testing.T) {
	t.Helper()
	installMu.Lock()
	defer installMu.Unlock()
	if installed {
		return
	}
	if installErr != "" {
		t.Fatal("the install failed in an earlier test: " + installErr)
	}
	// A failure below is recorded for the tests after this one.
	installErr = "see the first test that installed"
	projectImages(t)
	c := testCluster
	ctx := context.Background()
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   fluxNS,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"crds", "crds-e2e"} {
		files, _ := filepath.Glob(filepath.Join(c.opts.Root, "bin", d, "*.yaml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Apply(ctx, string(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Apply(ctx, buildOverlay(t, "", nil)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"externalsource-controller", "kustomize-controller", "helm-controller"} {
		if err := c.waitFor(ctx, d+" ready", 4*time.Minute, func(ctx context.Context) (bool, error) {
			dep, err := c.Client.AppsV1().Deployments(fluxNS).Get(ctx, d, metav1.GetOptions{})
			return err == nil && deploymentReady(dep), nil
		}); err != nil {
			describePods(t, fluxNS)
			t.Fatal(err)
		}
	}
	installed, installErr = true, ""
}

// buildOverlay writes the user's overlay (overlay(), with extra appended
// to its kustomization, which ends in its list of patches, and files
// beside it) and returns what kustomize
// builds from it.
func buildOverlay(t *testing.T, extra string, files map[string]string) string {
	t.Helper()
	c := testCluster
	dir := t.TempDir()
	// kustomize takes no absolute path to a component: a relative one.
	component, err := filepath.Rel(dir, filepath.Join(c.opts.Root, "config", "flux"))
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		"kustomization.yaml": overlay(component) + extra,
		"flux.yaml":          fluxControllers(t),
		"whitelist.yaml":     whitelistPatch(t),
	}
	for k, v := range files {
		all[k] = v
	}
	for name, content := range all {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	rm, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// describePods logs the pods' states and events, for a failed wait.
func describePods(t *testing.T, ns string) {
	ctx := context.Background()
	pods, _ := testCluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			t.Logf("pod %s container %s ready=%v restarts=%d state=%+v last=%+v", p.Name, s.Name, s.Ready, s.RestartCount, s.State, s.LastTerminationState)
		}
	}
	evs, _ := testCluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	for _, e := range evs.Items {
		t.Logf("event %s %s: %s %s", e.InvolvedObject.Name, e.Type, e.Reason, e.Message)
	}
}

func moduleDir(root, mod, ver string) (string, error) {
	gomodcache := os.Getenv("GOMODCACHE")
	if gomodcache == "" {
		out, err := goEnv(root, "GOMODCACHE")
		if err != nil {
			return "", err
		}
		gomodcache = out
	}
	esc := strings.Builder{}
	for _, r := range mod {
		if r >= 'A' && r <= 'Z' {
			esc.WriteString("!" + strings.ToLower(string(r)))
		} else {
			esc.WriteRune(r)
		}
	}
	d := filepath.Join(gomodcache, esc.String()+"@"+ver)
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("%s@%s is not in the module cache (hack/tools.sh crds downloads it): %w", mod, ver, err)
	}
	return d, nil
}

var (
	esGVR  = schema.GroupVersionResource{Group: "source.externalsource.io", Version: "v1beta1", Resource: "externalsources"}
	ksGVR  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	eaGVR  = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "externalartifacts"}
	upOnce sync.Once
	upURL  string
)

// upstream is the HTTP API the sources fetch, served on the bridge's
// address (on this machine; pods reach it over the bridge). /flags wants
// the header a pre-request hook adds.
func upstream(t *testing.T) string {
	t.Helper()
	upOnce.Do(func() {
		l, err := net.Listen("tcp", net.JoinHostPort(testCluster.NodeIP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/flags", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"flags":[{"name":"dark-mode","enabled":true},{"name":"beta","enabled":false}]}`)
		})
		mux.HandleFunc("/signed", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Xexs") != "yq" {
				http.Error(w, "the pre-request hook did not run", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, "signed: true\n")
		})
		go func() { _ = http.Serve(l, mux) }()
		upURL = "http://" + l.Addr().String()
	})
	return upURL
}

func dyn(t *testing.T) dynamic.Interface {
	d, err := dynamic.NewForConfig(testCluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readyCondition returns the Ready condition's status and message.
func readyCondition(u *unstructured.Unstructured) (string, string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == "Ready" {
			return fmt.Sprint(m["status"]), fmt.Sprint(m["message"])
		}
	}
	return "", ""
}

// TestInstalled is scenario a: the shipped install, applied unchanged but
// for image names into a restricted namespace, runs both containers Ready;
// sources with a jq post-request hook and a yq pre-request hook publish;
// kustomize-controller's pod downloads an artifact through the Service's DNS
// name and applies it.
func TestInstalled(t *testing.T) {
	g := NewWithT(t)
	install(t)
	ctx := context.Background()
	c := testCluster

	pods, err := c.Client.CoreV1().Pods(fluxNS).List(ctx, metav1.ListOptions{LabelSelector: "app=externalsource-controller"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pods.Items).To(HaveLen(1))
	var ready []string
	for _, s := range pods.Items[0].Status.ContainerStatuses {
		if s.Ready {
			ready = append(ready, s.Name)
		}
	}
	g.Expect(ready).To(ConsistOf("manager", "hook-executor"))

	up := upstream(t)
	apps := createNamespace(t, "apps")
	d := dyn(t)
	g.Expect(c.Apply(ctx, fmt.Sprintf(`apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: flags-jq, namespace: %[1]s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: flags.yaml
  generator:
    type: http
    http: {url: "%[2]s/flags"}
  hooks:
    postRequest:
      - name: to-configmap
        command: jq
        args: ["-c", '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "feature-flags", "namespace": "%[3]s"}, "data": (.flags | map({key: .name, value: (.enabled | tostring)}) | from_entries)}']
---
apiVersion: source.externalsource.io/v1beta1
kind: ExternalSource
metadata: {name: signed-yq, namespace: %[1]s}
spec:
  interval: 1m
  timeout: 30s
  destinationPath: signed.yaml
  generator:
    type: http
    http: {url: "%[2]s/signed"}
  hooks:
    preRequest:
      - name: sign
        command: yq
        args: ["-o", "json", '.headers.Xexs = "yq"']
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: flags, namespace: %[1]s}
spec:
  interval: 1m
  prune: true
  sourceRef: {kind: ExternalArtifact, name: flags-jq}
  path: ./
`, fluxNS, up, apps))).To(Succeed())

	for _, name := range []string{"flags-jq", "signed-yq"} {
		g.Eventually(func() string {
			u, err := d.Resource(esGVR).Namespace(fluxNS).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err.Error()
			}
			s, m := readyCondition(u)
			return s + ": " + m
		}, 3*time.Minute, time.Second).Should(HavePrefix("True"), name)
		ea, err := d.Resource(eaGVR).Namespace(fluxNS).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		url, _, _ := unstructured.NestedString(ea.Object, "status", "artifact", "url")
		g.Expect(url).To(HavePrefix("http://externalsource-controller.flux-system.svc.cluster.local./"), name)
	}

	// kustomize-controller's pod fetched the artifact through the Service's
	// DNS name (CoreDNS, kube-proxy) and applied it.
	g.Eventually(func() map[string]string {
		cm, err := c.Client.CoreV1().ConfigMaps(apps).Get(ctx, "feature-flags", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return cm.Data
	}, 3*time.Minute, time.Second).Should(Equal(map[string]string{"dark-mode": "true", "beta": "false"}))
}
