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
	"bytes"
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// sampleCount returns how many runs were recorded for command and result.
func sampleCount(t *testing.T, command, result string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := hookDuration.WithLabelValues(command, result).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestInstrumented(t *testing.T) {
	g := NewWithT(t)
	r := Instrumented(newExecutor(t, 0))
	ctx := context.Background()
	runs := []struct {
		hook            exsv1beta1.Hook
		command, result string
	}{
		{exsv1beta1.Hook{Name: "a", Command: "jq", Args: []string{"."}}, "jq", "success"},
		{exsv1beta1.Hook{Name: "b", Command: "jq", Args: []string{".["}}, "jq", "failure"},
		{exsv1beta1.Hook{Name: "c", Command: "curl"}, "<rejected>", "rejected"},
	}
	for _, run := range runs {
		before := sampleCount(t, run.command, run.result)
		_ = r.Run(ctx, run.hook, strings.NewReader("{}"), &bytes.Buffer{})
		g.Expect(sampleCount(t, run.command, run.result)).To(Equal(before+1), run.result)
	}
}

// phaseCount returns how many runs recorded phase.
func phaseCount(t *testing.T, phase string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := runPhases.WithLabelValues(phase).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestRunPhasesAreRecorded: a run of a real command through the sandbox
// records each of its phases once; a refused run records none after the
// refusal.
func TestRunPhasesAreRecorded(t *testing.T) {
	g := NewWithT(t)
	e := newExecutor(t, 0)
	phases := []string{PhasePrepare, PhaseStart, PhaseSandbox, PhaseExec, PhaseCleanup}
	before := map[string]uint64{}
	for _, p := range phases {
		before[p] = phaseCount(t, p)
	}
	var out bytes.Buffer
	g.Expect(e.Run(context.Background(), exsv1beta1.Hook{Name: "a", Command: "jq", Args: []string{"-c", "."}},
		strings.NewReader(`{"a": 1}`), &out)).To(Succeed())
	g.Expect(out.String()).To(Equal("{\"a\":1}\n"))
	for _, p := range phases {
		g.Expect(phaseCount(t, p)).To(Equal(before[p]+1), p)
	}
	// Not on the whitelist: refused before anything starts.
	g.Expect(e.Run(context.Background(), exsv1beta1.Hook{Name: "b", Command: "nope"}, strings.NewReader(""), &out)).NotTo(Succeed())
	for _, p := range phases[1:] {
		g.Expect(phaseCount(t, p)).To(Equal(before[p]+1), p)
	}
}
