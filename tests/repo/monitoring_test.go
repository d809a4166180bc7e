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

package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// ksmConfig is the part of kube-state-metrics' CustomResourceStateMetrics
// the check reads.
type ksmConfig struct {
	Kind string `json:"kind"`
	Spec struct {
		Resources []struct {
			GroupVersionKind struct {
				Group, Version, Kind string
			} `json:"groupVersionKind"`
			MetricNamePrefix string `json:"metricNamePrefix"`
			Metrics          []struct {
				Name string `json:"name"`
				Help string `json:"help"`
				Each struct {
					Type string `json:"type"`
					Info struct {
						LabelsFromPath map[string][]string `json:"labelsFromPath"`
					} `json:"info"`
				} `json:"each"`
				LabelsFromPath map[string][]string `json:"labelsFromPath"`
			} `json:"metrics"`
		} `json:"resources"`
	} `json:"spec"`
}

// TestKubeStateMetricsConfig checks config/monitoring's gotk_resource_info
// against the API: the kind it selects is ours, and every label path
// resolves, on a Ready and suspended ExternalSource, to the value the
// object holds, so a renamed field breaks this test and not the users'
// dashboards.
func TestKubeStateMetricsConfig(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "monitoring", "kube-state-metrics-config.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var c ksmConfig
	g.Expect(yaml.UnmarshalStrict(b, &c)).To(Succeed())
	g.Expect(c.Kind).To(Equal("CustomResourceStateMetrics"))
	g.Expect(c.Spec.Resources).To(HaveLen(1))
	res := c.Spec.Resources[0]
	g.Expect(res.GroupVersionKind.Group).To(Equal(exsv1beta1.GroupVersion.Group))
	g.Expect(res.GroupVersionKind.Version).To(Equal(exsv1beta1.GroupVersion.Version))
	g.Expect(res.GroupVersionKind.Kind).To(Equal(exsv1beta1.ExternalSourceKind))
	g.Expect(res.MetricNamePrefix + "_" + res.Metrics[0].Name).To(Equal("gotk_resource_info"))

	obj := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: "team-a"},
		Spec: exsv1beta1.ExternalSourceSpec{Suspend: true, Generator: exsv1beta1.GeneratorSpec{
			Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: "https://api.example.com/?token=secret"}}},
	}
	obj.Status.Conditions = []metav1.Condition{
		{Type: meta.ReconcilingCondition, Status: metav1.ConditionFalse, Reason: "Other"},
		{Type: meta.ReadyCondition, Status: metav1.ConditionTrue, Reason: meta.SucceededReason},
	}
	obj.Status.Artifact = &meta.Artifact{Revision: "latest@sha256:abc"}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).ToNot(HaveOccurred())

	want := map[string]string{
		"name": "pricing", "exported_namespace": "team-a", "ready": "True", "reason": meta.SucceededReason,
		"suspended": "true", "revision": "latest@sha256:abc", "generator": "http",
		// No Stalled condition: kube-state-metrics leaves the label empty.
		"stalled": "",
	}
	got := map[string]string{}
	m := res.Metrics[0]
	for label, path := range m.LabelsFromPath {
		got[label] = resolve(g, u, path)
	}
	for label, path := range m.Each.Info.LabelsFromPath {
		got[label] = resolve(g, u, path)
	}
	g.Expect(got).To(Equal(want))
	for _, v := range got {
		g.Expect(v).ToNot(ContainSubstring("secret"), "no label carries the URL")
	}

	// A Stalled source: the stalled label the ExternalSourceStalled alert
	// selects on.
	obj.Status.Conditions = append(obj.Status.Conditions,
		metav1.Condition{Type: meta.StalledCondition, Status: metav1.ConditionTrue, Reason: exsv1beta1.InvalidSpecReason})
	u, err = runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(resolve(g, u, m.LabelsFromPath["stalled"])).To(Equal("True"))
}

// resolve walks a kube-state-metrics path: map keys, and "[key=value]"
// to select the element of a list whose key has that value. A selector
// that matches no element resolves to "", as kube-state-metrics gives an
// empty label (a condition the object does not have).
func resolve(g Gomega, obj map[string]any, path []string) string {
	var cur any = obj
	for _, p := range path {
		if strings.HasPrefix(p, "[") && strings.HasSuffix(p, "]") {
			k, v, ok := strings.Cut(p[1:len(p)-1], "=")
			g.Expect(ok).To(BeTrue(), "selector %q", p)
			list, ok := cur.([]any)
			g.Expect(ok).To(BeTrue(), "%v: %q selects in a list", path, p)
			var found any
			for _, e := range list {
				if m, ok := e.(map[string]any); ok && fmt.Sprint(m[k]) == v {
					found = m
				}
			}
			if found == nil {
				return ""
			}
			cur = found
			continue
		}
		m, ok := cur.(map[string]any)
		g.Expect(ok).To(BeTrue(), "%v: %q is not under an object", path, p)
		cur, ok = m[p]
		g.Expect(ok).To(BeTrue(), "%v: no field %q", path, p)
	}
	return fmt.Sprint(cur)
}
