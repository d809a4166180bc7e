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

package hook

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestExampleWhitelist holds the shipped example (config/manager) to what
// it promises: jq and yq filters pass, file access and flags do not.
func TestExampleWhitelist(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "manager", "hook-whitelist.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var cm corev1.ConfigMap
	g.Expect(yaml.Unmarshal(b, &cm)).To(Succeed())
	wl, err := Parse([]byte(cm.Data["whitelist.yaml"]))
	g.Expect(err).ToNot(HaveOccurred())

	allowed := []exsv1beta1.Hook{
		{Name: "a", Command: "jq", Args: []string{"-c", ".items[] | {name: .id, price: (.cents * 0.01)}"}},
		{Name: "b", Command: "jq", Args: []string{"-r", `{"apiVersion": "v1", "kind": "ConfigMap", "data": .}`}},
		{Name: "c", Command: "yq", Args: []string{"-P", "."}},
		{Name: "d", Command: "yq", Args: []string{"-o", "json", ".spec"}},
	}
	for _, h := range allowed {
		_, err := wl.Check(h)
		g.Expect(err).ToNot(HaveOccurred(), "%v", h.Args)
	}
	refused := []exsv1beta1.Hook{
		{Name: "e", Command: "jq", Args: []string{"--rawfile", "x", "/etc/passwd"}},
		{Name: "f", Command: "jq", Args: []string{"--slurpfile", "x", "/var/run/secrets/token"}},
		{Name: "g", Command: "jq", Args: []string{"-n", `include "x"; .`}},
		{Name: "h", Command: "jq", Args: []string{"-L", "/tmp"}},
		{Name: "i", Command: "jq", Args: []string{".", "/etc/passwd"}},
		{Name: "j", Command: "yq", Args: []string{"-i", ".a = 1", "/etc/hosts"}},
		{Name: "k", Command: "sh", Args: []string{"-c", "id"}},
		{Name: "l", Command: "jq", Args: []string{".", "../../etc/passwd"}},
	}
	for _, h := range refused {
		_, err := wl.Check(h)
		g.Expect(IsRejected(err)).To(BeTrue(), "%v", h.Args)
	}

	// The sandbox: jq reads its libraries, yq (static) nothing; neither
	// has the network; both have limits below the defaults.
	jq, err := wl.Check(exsv1beta1.Hook{Name: "a", Command: "jq"})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(jq.Sandbox.ReadPaths).To(ConsistOf("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache"))
	yq, err := wl.Check(exsv1beta1.Hook{Name: "b", Command: "yq"})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(yq.Sandbox.ReadPaths).To(BeEmpty())
	for _, p := range []SandboxPolicy{jq.Sandbox, yq.Sandbox} {
		g.Expect(p.Network).To(BeFalse())
		g.Expect(p.Memory).To(BeNumerically("<", DefaultMemory.Value()))
		g.Expect(p.CPU).To(BeNumerically("<", DefaultCPU))
	}
}

// TestSamplesPassTheExampleWhitelist: the hooks of config/samples run with
// the shipped whitelist as they are.
func TestSamplesPassTheExampleWhitelist(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "manager", "hook-whitelist.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var cm corev1.ConfigMap
	g.Expect(yaml.Unmarshal(b, &cm)).To(Succeed())
	wl, err := Parse([]byte(cm.Data["whitelist.yaml"]))
	g.Expect(err).ToNot(HaveOccurred())

	files, err := filepath.Glob(filepath.Join(devenv.Root(), "config", "samples", "source_*.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	hooks := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		g.Expect(err).ToNot(HaveOccurred())
		var obj exsv1beta1.ExternalSource
		g.Expect(yaml.Unmarshal(b, &obj)).To(Succeed())
		if obj.Spec.Hooks == nil {
			continue
		}
		for _, h := range append(obj.Spec.Hooks.PreRequest, obj.Spec.Hooks.PostRequest...) {
			_, err := wl.Check(h)
			g.Expect(err).ToNot(HaveOccurred(), "%s: %s", filepath.Base(f), h.Name)
			hooks++
		}
	}
	g.Expect(hooks).To(BeNumerically(">", 0))
}
