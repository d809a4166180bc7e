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

package monitoring

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/tests/monitoring/rules"
)

// TestKustomization builds config/monitoring as a user applies it and
// checks it against the shipped Deployment and the rules: one PodMonitor
// per metrics port of the Deployment, selecting its pods and labelled as
// Flux's monitoring example selects monitors; job labels
// (<namespace>/<monitor>) as the alerts select them; the PrometheusRule's
// groups are the rendered template; the dashboard ConfigMap, for Grafana's
// sidecar loader, holds the dashboard file as it is.
func TestKustomization(t *testing.T) {
	g := NewWithT(t)
	root := devenv.Root()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, "config", "monitoring"))
	g.Expect(err).ToNot(HaveOccurred())

	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "deployment.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var dep appsv1.Deployment
	g.Expect(yaml.Unmarshal(b, &dep)).To(Succeed())
	ports := map[string]string{} // port name: container
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			ports[p.Name] = c.Name
		}
	}
	g.Expect(ports).To(HaveKeyWithValue("http-prom", "manager"))
	g.Expect(ports).To(HaveKeyWithValue("hook-prom", "hook-executor"))

	p, err := rules.LoadParams(root)
	g.Expect(err).ToNot(HaveOccurred())
	fluxLabels := map[string]string{"app.kubernetes.io/part-of": "flux", "app.kubernetes.io/component": "monitoring"}
	jobs := map[string]string{} // job label: port
	var ruleSpec, dashboard string
	for _, r := range rm.Resources() {
		m, err := r.Map()
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(r.GetNamespace()).To(Equal(p["namespace"]), "%s/%s", r.GetKind(), r.GetName())
		switch r.GetKind() {
		case "PodMonitor":
			g.Expect(r.GetLabels()).To(Equal(fluxLabels), r.GetName())
			var pm struct {
				Spec struct {
					Selector struct {
						MatchLabels map[string]string `json:"matchLabels"`
					} `json:"selector"`
					NamespaceSelector struct {
						MatchNames []string `json:"matchNames"`
					} `json:"namespaceSelector"`
					PodMetricsEndpoints []struct {
						Port string `json:"port"`
					} `json:"podMetricsEndpoints"`
				} `json:"spec"`
			}
			y, err := r.AsYAML()
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(yaml.Unmarshal(y, &pm)).To(Succeed())
			for k, v := range pm.Spec.Selector.MatchLabels {
				g.Expect(dep.Spec.Template.Labels).To(HaveKeyWithValue(k, v), "%s selects the controller's pods", r.GetName())
			}
			g.Expect(pm.Spec.Selector.MatchLabels).ToNot(BeEmpty())
			g.Expect(pm.Spec.NamespaceSelector.MatchNames).To(Equal([]string{p["namespace"]}))
			g.Expect(pm.Spec.PodMetricsEndpoints).To(HaveLen(1))
			jobs[r.GetNamespace()+"/"+r.GetName()] = pm.Spec.PodMetricsEndpoints[0].Port
		case "PrometheusRule":
			g.Expect(r.GetLabels()).To(Equal(fluxLabels))
			spec, err := yaml.Marshal(m["spec"])
			g.Expect(err).ToNot(HaveOccurred())
			ruleSpec = string(spec)
		case "ConfigMap":
			if r.GetName() == "externalsource-grafana-dashboard" {
				g.Expect(r.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
				data, _ := m["data"].(map[string]any)
				dashboard, _ = data["externalsource.json"].(string)
			}
		}
	}
	// The job labels the alerts and the live test use.
	g.Expect(jobs).To(Equal(map[string]string{managerJob: "http-prom", sidecarJob: "hook-prom"}))

	groups, err := rules.Groups(root, p)
	g.Expect(err).ToNot(HaveOccurred())
	var want any
	g.Expect(yaml.Unmarshal(groups, &want)).To(Succeed())
	wantSpec, err := yaml.Marshal(want)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(ruleSpec).To(Equal(string(wantSpec)))

	file, err := os.ReadFile(filepath.Join(root, "config", "monitoring", "dashboards", "externalsource.json"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(dashboard).To(Equal(string(file)))
}
