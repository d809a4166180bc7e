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

// Command monitoring-rules renders config/monitoring/prometheusrule.yaml
// from config/monitoring/rules (the template and its parameters), or, with
// -groups, the plain Prometheus rule file for a Prometheus without the
// operator. -set name=value overrides a parameter.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/externalsource/externalsource-controller/tests/monitoring/rules"
)

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var set setFlags
	out := flag.String("out", rules.PrometheusRulePath, "the file to write; - for standard output")
	groups := flag.Bool("groups", false, "write a plain Prometheus rule file (rule_files), not a PrometheusRule")
	root := flag.String("root", ".", "the repository root")
	flag.Var(&set, "set", "override a parameter of "+rules.ParamsPath+" (name=value, repeatable)")
	flag.Parse()
	if err := run(*root, *out, *groups, set); err != nil {
		fmt.Fprintln(os.Stderr, "monitoring-rules:", err)
		os.Exit(1)
	}
}

func run(root, out string, groups bool, set []string) error {
	p, err := rules.LoadParams(root)
	if err != nil {
		return err
	}
	if p, err = p.With(set...); err != nil {
		return err
	}
	render := rules.PrometheusRule
	if groups {
		render = rules.Groups
	}
	b, err := render(root, p)
	if err != nil {
		return err
	}
	if out == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
