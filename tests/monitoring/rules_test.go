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

// Package monitoring tests config/monitoring: the alerts with promtool's
// unit tests, and the alerts and the dashboard against a live run scraped
// by a real Prometheus, with a real kube-state-metrics reading the API.
package monitoring

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/tests/monitoring/rules"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// renderGroups renders the rule groups with the shipped parameters and the
// overrides.
func renderGroups(g Gomega, overrides ...string) ([]byte, ruleFile) {
	p, err := rules.LoadParams(devenv.Root())
	g.Expect(err).ToNot(HaveOccurred())
	p, err = p.With(overrides...)
	g.Expect(err).ToNot(HaveOccurred())
	b, err := rules.Groups(devenv.Root(), p)
	g.Expect(err).ToNot(HaveOccurred())
	var rf ruleFile
	g.Expect(yaml.UnmarshalStrict(b, &rf)).To(Succeed())
	return b, rf
}

// TestPrometheusRuleCurrent: the shipped PrometheusRule is the template
// rendered with the shipped parameters, so what the tests check is what
// users install.
func TestPrometheusRuleCurrent(t *testing.T) {
	g := NewWithT(t)
	root := devenv.Root()
	p, err := rules.LoadParams(root)
	g.Expect(err).ToNot(HaveOccurred())
	want, err := rules.PrometheusRule(root, p)
	g.Expect(err).ToNot(HaveOccurred())
	got, err := os.ReadFile(filepath.Join(root, rules.PrometheusRulePath))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(string(got)).To(Equal(string(want)), "%s is stale: run `make monitoring-rules`", rules.PrometheusRulePath)
}

// TestRuleParams: an override changes only its parameter, and a name that
// is not a parameter is refused by name.
func TestRuleParams(t *testing.T) {
	g := NewWithT(t)
	_, short := renderGroups(g, "notReadyFor=10s")
	_, shipped := renderGroups(g)
	g.Expect(short.Groups[0].Rules[0].Alert).To(Equal("ExternalSourceNotReady"))
	g.Expect(short.Groups[0].Rules[0].For).To(Equal("10s"))
	g.Expect(shipped.Groups[0].Rules[0].For).To(Equal("15m"))
	g.Expect(short.Groups[0].Rules[0].Expr).To(Equal(shipped.Groups[0].Rules[0].Expr))

	p, err := rules.LoadParams(devenv.Root())
	g.Expect(err).ToNot(HaveOccurred())
	_, err = p.With("notReadyFr=10s")
	g.Expect(err).To(MatchError(ContainSubstring(`parameter "notReadyFr": unknown`)))
}

// TestAlertRules runs promtool's unit tests (testdata/alerts_test.yaml) on
// the rules rendered with the shipped thresholds, and checks that every
// alert has a case where it fires and one where it stays quiet, and that
// its runbook_url points to a section of docs/monitoring.md.
func TestAlertRules(t *testing.T) {
	g := NewWithT(t)
	promtool, err := exec.LookPath("promtool")
	g.Expect(err).ToNot(HaveOccurred(), "promtool not found: install Debian's prometheus package (.ci/run does)")

	groups, rf := renderGroups(g)
	dir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(dir, "rules.yaml"), groups, 0o644)).To(Succeed())
	cases, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), cases, 0o644)).To(Succeed())

	var out bytes.Buffer
	check := exec.Command(promtool, "check", "rules", filepath.Join(dir, "rules.yaml"))
	check.Stdout, check.Stderr = &out, &out
	g.Expect(check.Run()).To(Succeed(), out.String())
	out.Reset()
	test := exec.Command(promtool, "test", "rules", filepath.Join(dir, "alerts_test.yaml"))
	test.Stdout, test.Stderr = &out, &out
	g.Expect(test.Run()).To(Succeed(), out.String())

	// Every alert is tested both ways.
	var tf struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	g.Expect(yaml.Unmarshal(cases, &tf)).To(Succeed())
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	doc, err := os.ReadFile(filepath.Join(devenv.Root(), "docs", "monitoring.md"))
	g.Expect(err).ToNot(HaveOccurred())
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ +(\S+)\s*$`).FindAllStringSubmatch(string(doc), -1) {
		headings[strings.ToLower(m[1])] = true
	}
	n := 0
	for _, grp := range rf.Groups {
		for _, r := range grp.Rules {
			n++
			g.Expect(r.Alert).To(HavePrefix("ExternalSource"))
			g.Expect(fires).To(HaveKey(r.Alert), "%s has no promtool case where it fires", r.Alert)
			g.Expect(quiet).To(HaveKey(r.Alert), "%s has no promtool case where it stays quiet", r.Alert)
			g.Expect(r.Labels).To(HaveKey("severity"), r.Alert)
			g.Expect(r.Annotations).To(HaveKey("summary"), r.Alert)
			g.Expect(r.Annotations).To(HaveKey("description"), r.Alert)
			anchor := strings.ToLower(r.Alert)
			g.Expect(r.Annotations["runbook_url"]).To(HaveSuffix("docs/monitoring.md#"+anchor), r.Alert)
			g.Expect(headings).To(HaveKey(anchor), "docs/monitoring.md has no section %q for %s", r.Alert, r.Alert)
		}
	}
	g.Expect(n).To(BeNumerically(">=", 20))
}
