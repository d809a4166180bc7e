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
	"os"
	"os/exec"
	"path/filepath"
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

// TestHooksMiss checks the split of a miss on made-up reports: each
// component is the hooks run's over the hookless run's and the floor's,
// and the components add up to the whole machine's difference.
func TestHooksMiss(t *testing.T) {
	// 2 CPUs: hookless 10 s (20 CPU-s), floor 8 s (16), hooks 20 s (40).
	hookless := &Report{Config: Config{Group: "hooks1000"}, AllReadySeconds: 10,
		RampCPU:          &RampCPU{Machine: MachineCPU{Busy: 19, Idle: 1}, Controller: 5, Harness: 2, APIServer: 8, Etcd: 3, Rest: 1},
		InitialAPIWrites: APIWrites{"events POST": 400}, NewArtifactEvents: 1500}
	bare := BareExecReport{Seconds: 8, CPUSeconds: 14, HarnessCPUSeconds: 0.5,
		Machine: &MachineCPU{Busy: 15, Idle: 0.5, Steal: 0.5}}
	hooks := &Report{Config: Config{Group: "hooks1000", Hooks: true}, AllReadySeconds: 20,
		Hooks:            &HooksReport{Bare: bare},
		RampCPU:          &RampCPU{Machine: MachineCPU{Busy: 39, Idle: 0.25, Steal: 0.75}, Controller: 6, Sidecar: 2, Runs: 15, Harness: 2.5, APIServer: 9.5, Etcd: 2.5, Rest: 1.5},
		InitialAPIWrites: APIWrites{"events POST": 1100}, NewArtifactEvents: 2000}
	// A second pair: 2 CPU-s more of the controller's, 1 s more of wall.
	hooks2 := &Report{Config: hooks.Config, AllReadySeconds: 21, Hooks: hooks.Hooks, InitialAPIWrites: hooks.InitialAPIWrites,
		NewArtifactEvents: 2000, RampCPU: &RampCPU{Machine: MachineCPU{Busy: 41, Idle: 0.25, Steal: 0.75}, Controller: 8,
			Sidecar: 2, Runs: 15, Harness: 2.5, APIServer: 9.5, Etcd: 2.5, Rest: 1.5}}
	for _, tc := range []struct {
		name  string
		reps  []*Report
		want  *CPUMiss
		pairs []CPUMiss
		print []string
	}{
		{name: "one pair", reps: []*Report{hookless, hooks}, want: &CPUMiss{Pairs: 1, Controller: 1, Sidecar: 2, Runs: 1,
			Harness: 0, APIServer: 1.5, Etcd: -0.5, Rest: 0, Idle: -1.25, Steal: 0.25, Total: 4,
			EventPosts: 700, HooksEventsKept: 2000, HooklessEventsKept: 1500}},
		{name: "two pairs: the mean, and each pair with its ratio", reps: []*Report{hookless, hooks, hooks2, hookless},
			want: &CPUMiss{Pairs: 2, Controller: 2, Sidecar: 2, Runs: 1, Harness: 0, APIServer: 1.5, Etcd: -0.5, Rest: 0,
				Idle: -1.25, Steal: 0.25, Total: 5, EventPosts: 700, HooksEventsKept: 2000, HooklessEventsKept: 1500},
			pairs: []CPUMiss{
				{Pairs: 1, Ratio: 20.0 / 18, Controller: 1, Sidecar: 2, Runs: 1, APIServer: 1.5, Etcd: -0.5, Idle: -1.25, Steal: 0.25, Total: 4,
					EventPosts: 700, HooksEventsKept: 2000, HooklessEventsKept: 1500},
				{Pairs: 1, Ratio: 21.0 / 18, Controller: 3, Sidecar: 2, Runs: 1, APIServer: 1.5, Etcd: -0.5, Idle: -1.25, Steal: 0.25, Total: 6,
					EventPosts: 700, HooksEventsKept: 2000, HooklessEventsKept: 1500},
			},
			print: []string{"pair 1 (ratio 1.11): controller +1.0,", "pair 2 (ratio 1.17): controller +3.0,",
				"total +6.0 (+3.0 s of wall on 2 CPUs)"}},
		{name: "a run without the counters (an older report) has no split",
			reps: []*Report{{Config: Config{Group: "hooks1000"}, AllReadySeconds: 10}, hooks}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			rows := HooksRows(tc.reps)
			g.Expect(rows).To(HaveLen(1))
			var b bytes.Buffer
			PrintHooks(&b, rows)
			if tc.want == nil {
				g.Expect(rows[0].Miss).To(BeNil())
				g.Expect(b.String()).NotTo(ContainSubstring("by who"))
				return
			}
			g.Expect(rows[0].Miss).To(Equal(tc.want))
			g.Expect(rows[0].PairMisses).To(HaveLen(len(tc.pairs)))
			for i, p := range tc.pairs {
				g.Expect(rows[0].PairMisses[i].Ratio).To(BeNumerically("~", p.Ratio, 1e-9), "pair %d", i)
				p.Ratio = rows[0].PairMisses[i].Ratio
				g.Expect(rows[0].PairMisses[i]).To(Equal(p), "pair %d", i)
				// Each pair's components add up to the machine's own
				// difference: 40 (or 42) − 20 − 16 CPU-s.
				g.Expect(p.Total).To(Equal(2 * (rows[0].HooksRuns[i] - 10 - 8)))
			}
			g.Expect(b.String()).To(ContainSubstring("controller +1.0, sidecar +2.0, hook runs over the floor's +1.0, harness +0.0, " +
				"kube-apiserver +1.5, etcd -0.5, kernel +0.0, idle -1.2, steal +0.2; total +4.0"))
			g.Expect(b.String()).To(ContainSubstring("Event POSTs in the window +700; NewArtifact Events kept: hooks 2000, hookless 1500"))
			for _, want := range tc.print {
				g.Expect(b.String()).To(ContainSubstring(want))
			}
		})
	}
}

// TestRampCPU checks the ramp's split on made-up counters, and that the
// machine's counters parse and do not go back.
func TestRampCPU(t *testing.T) {
	g := NewWithT(t)
	p0 := cpuPoint{machine: MachineCPU{Busy: 100, Idle: 50, Steal: 1}, controller: 3, sidecar: 1, runs: 10, harness: 4, apiserver: 20, etcd: 5}
	p1 := cpuPoint{machine: MachineCPU{Busy: 140, Idle: 51, Steal: 2}, controller: 8, sidecar: 3, runs: 30, harness: 6, apiserver: 27, etcd: 7}
	g.Expect(rampCPU(p0, p1)).To(Equal(&RampCPU{Machine: MachineCPU{Busy: 40, Idle: 1, Steal: 1},
		Controller: 5, Sidecar: 2, Runs: 20, Harness: 2, APIServer: 7, Etcd: 2, Rest: 2}))

	m0, err := readMachineCPU()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m0.Busy).To(BeNumerically(">", 0))
	g.Expect(m0.Idle + m0.Busy).To(BeNumerically(">", m0.Busy))
	m1, err := readMachineCPU()
	g.Expect(err).NotTo(HaveOccurred())
	d := m1.sub(m0)
	g.Expect(d.Busy).To(BeNumerically(">=", 0))
	g.Expect(d.Idle).To(BeNumerically(">=", 0))
	g.Expect(d.Steal).To(BeNumerically(">=", 0))
}

// TestControlPlaneCPU checks that the control plane's CPU is read from the
// harness's children of its processes' names only: a busy child named
// etcd (a copy of yes(1), a stand-in) counts, the same program under
// another name does not.
func TestControlPlaneCPU(t *testing.T) {
	g := NewWithT(t)
	yes, err := exec.LookPath("yes") // coreutils
	g.Expect(err).NotTo(HaveOccurred())
	b, err := os.ReadFile(yes)
	g.Expect(err).NotTo(HaveOccurred())
	dir := t.TempDir()
	for _, name := range []string{"etcd", "other"} {
		g.Expect(os.WriteFile(filepath.Join(dir, name), b, 0o755)).To(Succeed())
	}
	_, etcd0 := controlPlaneCPU(os.Getpid())
	var cmds []*exec.Cmd
	for _, name := range []string{"etcd", "other"} {
		cmd := exec.Command(filepath.Join(dir, name))
		g.Expect(cmd.Start()).To(Succeed())
		cmds = append(cmds, cmd)
	}
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	g.Eventually(func() float64 { _, e := controlPlaneCPU(os.Getpid()); return e - etcd0 }, "20s", "50ms").Should(BeNumerically(">", 0))
	api, _ := controlPlaneCPU(os.Getpid())
	g.Expect(api).To(BeZero())
	// Only children of the pid asked about: "other" has none (PID 1
	// could, with other packages' control planes running beside this one).
	g.Expect(controlPlaneCPU(cmds[1].Process.Pid)).To(BeZero())
}

// TestHooksRowsMixed checks that a mixed floor's run is compared with the
// hooks runs and not taken for a hookless one.
func TestHooksRowsMixed(t *testing.T) {
	g := NewWithT(t)
	mixed := func(s float64) *Report {
		return &Report{Config: Config{Group: "hooks1000", MixedFloor: true}, AllReadySeconds: s - 1, Mixed: &MixedReport{Seconds: s}}
	}
	reps := []*Report{
		{Config: Config{Group: "hooks1000"}, AllReadySeconds: 10},
		{Config: Config{Group: "hooks1000", Hooks: true}, AllReadySeconds: 24, Hooks: &HooksReport{Bare: BareExecReport{Seconds: 10}}},
		mixed(20),
		mixed(30),
		{Config: Config{Group: "hooks1000", Hooks: true}, AllReadySeconds: 33, Hooks: &HooksReport{Bare: BareExecReport{Seconds: 10}}},
		{Config: Config{Group: "hooks1000"}, AllReadySeconds: 10},
	}
	rows := HooksRows(reps)
	g.Expect(rows).To(HaveLen(1))
	r := rows[0]
	g.Expect(r.HooklessRuns).To(Equal([]float64{10, 10}))
	g.Expect(r.PairRatios).To(HaveLen(2))
	g.Expect(r.PairRatios[0]).To(BeNumerically("~", 1.2, 1e-9))
	g.Expect(r.MixedRuns).To(Equal([]float64{20, 30}))
	g.Expect(r.MixedSeconds).To(Equal(25.0))
	g.Expect(r.MixedRatio).To(BeNumerically("~", 28.5/25, 1e-9))
	g.Expect(r.MixedPairRatios).To(HaveLen(2))
	g.Expect(r.MixedPairRatios[0]).To(BeNumerically("~", 1.2, 1e-9))
	g.Expect(r.MixedPairRatios[1]).To(BeNumerically("~", 1.1, 1e-9))
	var b bytes.Buffer
	PrintHooks(&b, rows)
	g.Expect(b.String()).To(ContainSubstring("the mixed floor (the hookless controller with the bare-exec loop beside it): [20 30] s; hooks / mixed 1.14 (pair by pair: 1.20, 1.10)"))
}

// TestParseStat parses /proc/<pid>/stat lines, command names with spaces
// and parentheses included.
func TestParseStat(t *testing.T) {
	tail := " S 42 1 1 0 -1 0 0 0 0 0 150 50 30 20 20 0 1 0 100 0 0"
	for _, tc := range []struct {
		name, line string
		want       procStat
		ok         bool
	}{
		{name: "plain", line: "7 (etcd)" + tail, want: procStat{comm: "etcd", ppid: 42, cpu: 2, childCPU: 0.5}, ok: true},
		{name: "spaces and parentheses", line: "7 (a (b) c)" + tail, want: procStat{comm: "a (b) c", ppid: 42, cpu: 2, childCPU: 0.5}, ok: true},
		{name: "short", line: "7 (etcd) S 42 1", ok: false},
		{name: "no name", line: "7 etcd" + tail, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			st, ok := parseStat([]byte(tc.line))
			g.Expect(ok).To(Equal(tc.ok))
			g.Expect(st).To(Equal(tc.want))
		})
	}
}
