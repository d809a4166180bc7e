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
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"

	runtimectrl "github.com/fluxcd/pkg/runtime/controller"

	controllercmd "github.com/externalsource/externalsource-controller/internal/cmd/controller"
	"github.com/externalsource/externalsource-controller/internal/cmd/hookexecutor"
)

// docRow is a table row of docs/flags.md that documents a flag.
var docRow = regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\|")

// documentedFlags returns the flags docs/flags.md documents under each
// "## " section heading.
func documentedFlags(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "flags.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, sec := range strings.Split(string(b), "\n## ")[1:] {
		heading, body, _ := strings.Cut(sec, "\n")
		for _, m := range docRow.FindAllStringSubmatch(body, -1) {
			out[heading] = append(out[heading], m[1])
		}
	}
	return out
}

// TestFlagsAreDocumented reads each program's real flag set: every flag
// --help prints has its row in docs/flags.md, under its program, and no
// row names a flag that does not exist. A flag added anywhere fails here
// until it is documented.
func TestFlagsAreDocumented(t *testing.T) {
	docs := documentedFlags(t)
	tests := []struct {
		section string
		flags   *flag.FlagSet
	}{
		{"Controller", controllercmd.FlagSet()},
		{"Hook executor sidecar", hookexecutor.FlagSet()},
	}
	for _, tt := range tests {
		t.Run(tt.section, func(t *testing.T) {
			g := NewWithT(t)
			var have []string
			tt.flags.VisitAll(func(f *flag.Flag) { have = append(have, f.Name) })
			sort.Strings(have)
			g.Expect(have).ToNot(BeEmpty())
			documented := docs[tt.section]
			g.Expect(documented).To(ConsistOf(have),
				"docs/flags.md, section %q: a row for every flag of --help, and for nothing else", tt.section)
		})
	}
}

// metricName is a metric of this project as the code names it: a string
// literal of its own prefix or Flux's.
var metricName = regexp.MustCompile(`"((?:externalsource|gotk)_[a-z_]+)"`)

// metricRow is a table row of docs/metrics.md that documents a metric.
var metricRow = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")

// kubeStateMetrics are documented metrics that kube-state-metrics exports
// from config/monitoring, not the controller (TestKubeStateMetricsConfig
// checks their configuration).
var kubeStateMetrics = []string{"gotk_resource_info"}

// TestMetricsAreDocumented reads the metric names the controller and the
// sidecar define (the string literals of internal/, tests excluded) and
// the table rows of docs/metrics.md: every metric defined is documented,
// and every documented metric is defined (or exported by kube-state-metrics).
func TestMetricsAreDocumented(t *testing.T) {
	g := NewWithT(t)
	defined := map[string]bool{}
	err := filepath.WalkDir(filepath.Join("..", "..", "internal"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricName.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(defined).To(HaveKey("externalsource_fetch_total"), "the scan finds the metrics")

	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	g.Expect(err).ToNot(HaveOccurred())
	documented := map[string]bool{}
	for _, m := range metricRow.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	for name := range defined {
		g.Expect(documented).To(HaveKey(name), "docs/metrics.md has no row for %s", name)
	}
	for name := range documented {
		if slices.Contains(kubeStateMetrics, name) {
			continue
		}
		g.Expect(defined).To(HaveKey(name), "docs/metrics.md documents %s, which no code defines", name)
	}
}

// layoutPath is a backticked path in the first cell of a row of
// docs/dev/development.md's layout table.
var layoutPath = regexp.MustCompile("`([^`]+)`")

// TestLayoutIsDocumented reads the layout table of docs/dev/development.md:
// every directory of internal/, hack/ and tests/ that holds Go files is in
// it, as a row of its own or named in the row of a parent (`http/` in the
// row of internal/generator), so that a new package fails here until the
// table says what it is for.
func TestLayoutIsDocumented(t *testing.T) {
	g := NewWithT(t)
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "dev", "development.md"))
	g.Expect(err).ToNot(HaveOccurred())
	_, table, ok := strings.Cut(string(b), "\n## Layout\n")
	g.Expect(ok).To(BeTrue(), "development.md has a Layout section")
	table, _, _ = strings.Cut(table, "\n## ")
	type row struct {
		paths []string
		text  string
	}
	var rows []row
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		r := row{text: line}
		for _, m := range layoutPath.FindAllStringSubmatch(cells[1], -1) {
			r.paths = append(r.paths, strings.TrimSuffix(m[1], "/"))
		}
		rows = append(rows, r)
	}
	g.Expect(rows).ToNot(BeEmpty())

	documented := func(dir string) bool {
		for _, r := range rows {
			for _, p := range r.paths {
				if ok, _ := filepath.Match(p, dir); ok || p == dir {
					return true
				}
				rest, ok := strings.CutPrefix(dir, p+"/")
				if !ok {
					continue
				}
				first, _, _ := strings.Cut(rest, "/")
				if strings.Contains(r.text, "`"+first+"/") || strings.Contains(r.text, "/"+first+"`") {
					return true
				}
			}
		}
		return false
	}
	var missing []string
	for _, top := range []string{"internal", "hack", "tests"} {
		err := filepath.WalkDir(filepath.Join("..", "..", top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.Contains(p, "testdata") {
				return err
			}
			dir, _ := filepath.Rel(filepath.Join("..", ".."), filepath.Dir(p))
			if !documented(filepath.ToSlash(dir)) && !slices.Contains(missing, dir) {
				missing = append(missing, dir)
			}
			return nil
		})
		g.Expect(err).ToNot(HaveOccurred())
	}
	g.Expect(missing).To(BeEmpty(), "directories docs/dev/development.md's layout table does not name")
}

// envRead is an environment variable the programs read: a string literal
// given to os.Getenv, os.LookupEnv or envOr, or Flux's runtime namespace.
var envRead = regexp.MustCompile(`(?:os\.Getenv|os\.LookupEnv|envOr)\("([A-Z_]+)"|(runtimectrl\.EnvRuntimeNamespace)`)

// TestEnvIsDocumented reads the programs' wiring (internal/cmd, main.go):
// every environment variable they read is named in docs/flags.md.
func TestEnvIsDocumented(t *testing.T) {
	g := NewWithT(t)
	var files []string
	err := filepath.WalkDir(filepath.Join("..", "..", "internal", "cmd"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return err
	})
	g.Expect(err).ToNot(HaveOccurred())
	read := map[string]bool{}
	for _, f := range append(files, filepath.Join("..", "..", "main.go")) {
		b, err := os.ReadFile(f)
		g.Expect(err).ToNot(HaveOccurred())
		for _, m := range envRead.FindAllStringSubmatch(string(b), -1) {
			if m[2] != "" {
				m[1] = runtimectrl.EnvRuntimeNamespace
			}
			read[m[1]] = true
		}
	}
	g.Expect(read).To(HaveKey("METRICS_ADDR"), "the scan finds what the programs read")
	g.Expect(read).To(HaveKey("RUNTIME_NAMESPACE"))
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "flags.md"))
	g.Expect(err).ToNot(HaveOccurred())
	for name := range read {
		g.Expect(string(doc)).To(ContainSubstring("`"+name+"`"), "docs/flags.md does not name the environment variable %s", name)
	}
}
