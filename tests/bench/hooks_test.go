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

package bench

import (
	"bytes"
	"testing"

	. "github.com/onsi/gomega"
)

// TestHooksRows checks the hooks table's arithmetic on made-up reports
// (no control plane): the ratio of the means, and each hooks run against
// the hookless run of the same repeat plus its own bare floor.
func TestHooksRows(t *testing.T) {
	hookless := func(s float64) *Report {
		return &Report{Config: Config{Group: "hooks1000"}, AllReadySeconds: s}
	}
	hooks := func(s, bare float64) *Report {
		return &Report{Config: Config{Group: "hooks1000", Hooks: true}, AllReadySeconds: s,
			Hooks: &HooksReport{Bare: BareExecReport{Seconds: bare}}}
	}
	for _, tc := range []struct {
		name      string
		reps      []*Report
		ratio     float64
		pairs     []float64
		printPair bool
	}{
		{name: "one pair", reps: []*Report{hookless(10), hooks(24, 10)},
			ratio: 1.2, pairs: []float64{1.2}},
		{name: "two pairs, the second in reverse order, as -repeat runs them",
			reps:  []*Report{hookless(10), hooks(22, 10), hooks(30, 15), hookless(10)},
			ratio: 26.0 / 22.5, pairs: []float64{1.1, 1.2}, printPair: true},
		{name: "a hooks run without its hookless run has no pair",
			reps:  []*Report{hookless(10), hooks(22, 10), hooks(30, 15)},
			ratio: 26.0 / 22.5, pairs: []float64{1.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			rows := HooksRows(tc.reps)
			g.Expect(rows).To(HaveLen(1))
			g.Expect(rows[0].Ratio).To(BeNumerically("~", tc.ratio, 1e-9))
			g.Expect(rows[0].PairRatios).To(HaveLen(len(tc.pairs)))
			for i, p := range tc.pairs {
				g.Expect(rows[0].PairRatios[i]).To(BeNumerically("~", p, 1e-9), "pair %d", i)
			}
			var b bytes.Buffer
			PrintHooks(&b, rows)
			if tc.printPair {
				g.Expect(b.String()).To(ContainSubstring("the ratio pair by pair (each hooks run against the hookless run beside it and its own bare floor): 1.10, 1.20"))
			} else {
				g.Expect(b.String()).NotTo(ContainSubstring("pair by pair"))
			}
		})
	}
}
