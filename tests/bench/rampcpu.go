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
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MachineCPU is the whole machine's CPU over a window, from the first line
// of /proc/stat, in CPU-seconds (all CPUs together). Busy, Idle and Steal
// add up to the window's wall time times the CPUs: the split of a window
// into who ran, nobody and the hypervisor is exact, which lets a
// difference in wall time between two runs be split the same way.
type MachineCPU struct {
	// Busy is user, nice, system, irq and softirq time.
	Busy float64 `json:"busy"`
	// Idle is idle and iowait time: a CPU nothing was ready to run on.
	Idle float64 `json:"idle"`
	// Steal is time the hypervisor ran something else on a CPU that
	// had work: the machine, not the code, was slower.
	Steal float64 `json:"steal"`
}

// readMachineCPU reads the machine's CPU counters since boot.
func readMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("unexpected first line of /proc/stat: %q", line)
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user).
	v := make([]float64, 8)
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat field %d: %w", i+1, err)
		}
	}
	return MachineCPU{
		Busy:  (v[0] + v[1] + v[2] + v[5] + v[6]) / clockTicks,
		Idle:  (v[3] + v[4]) / clockTicks,
		Steal: v[7] / clockTicks,
	}, nil
}

func (m MachineCPU) sub(o MachineCPU) MachineCPU {
	return MachineCPU{Busy: m.Busy - o.Busy, Idle: m.Idle - o.Idle, Steal: m.Steal - o.Steal}
}

// RampCPU is the CPU of the ramp (the first create to all-Ready), the
// machine's and that of each process the harness knows. Rest is the
// machine's busy time none of those used: kube-apiserver, etcd and the
// kernel's own threads (the bench machine runs nothing else) when the
// control plane's processes could not be told apart, else the kernel's
// threads alone.
type RampCPU struct {
	Machine MachineCPU `json:"machine"`
	// Controller is every controller process's own CPU.
	Controller float64 `json:"controller"`
	// Sidecar is the hook sidecar's own CPU, Runs that of the hook runs
	// it reaped (hooks scenarios).
	Sidecar float64 `json:"sidecar"`
	Runs    float64 `json:"runs"`
	// Harness is this process's own: the upstream, the creates and the
	// watches that time them.
	Harness float64 `json:"harness"`
	// APIServer and Etcd are the control plane's (the harness's children
	// of those names).
	APIServer float64 `json:"apiserver"`
	Etcd      float64 `json:"etcd"`
	Rest      float64 `json:"rest"`
}

// cpuPoint is the counters RampCPU is the difference of.
type cpuPoint struct {
	machine                                             MachineCPU
	controller, sidecar, runs, harness, apiserver, etcd float64
}

// cpuNow reads the counters of the machine and of the run's processes.
func (r *run) cpuNow() (cpuPoint, error) {
	var p cpuPoint
	var err error
	if p.machine, err = readMachineCPU(); err != nil {
		return p, err
	}
	for _, c := range r.procs {
		s, err := ReadProc(c.pid)
		if err != nil {
			return p, err
		}
		p.controller += s.CPUSeconds
	}
	if r.sidecar != nil {
		s, err := ReadProc(r.sidecar.pid)
		if err != nil {
			return p, err
		}
		p.sidecar, p.runs = s.CPUSeconds, s.ChildCPUSeconds
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		return p, err
	}
	p.harness = s.CPUSeconds
	p.apiserver, p.etcd = controlPlaneCPU(os.Getpid())
	return p, nil
}

// controlPlaneCPU is the CPU of the kube-apiserver and etcd processes
// that are children of pid (envtest starts them so); 0 for one not found.
func controlPlaneCPU(pid int) (apiserver, etcd float64) {
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		st, ok := parseStat(b)
		if !ok || st.ppid != pid {
			continue
		}
		switch st.comm {
		case "etcd":
			etcd += st.cpu
		case "kube-apiserver":
			apiserver += st.cpu
		}
	}
	return apiserver, etcd
}

// rampCPU is what was used between p0 and p1.
func rampCPU(p0, p1 cpuPoint) *RampCPU {
	c := &RampCPU{
		Machine:    p1.machine.sub(p0.machine),
		Controller: p1.controller - p0.controller,
		Sidecar:    p1.sidecar - p0.sidecar,
		Runs:       p1.runs - p0.runs,
		Harness:    p1.harness - p0.harness,
		APIServer:  p1.apiserver - p0.apiserver,
		Etcd:       p1.etcd - p0.etcd,
	}
	c.Rest = c.Machine.Busy - c.Controller - c.Sidecar - c.Runs - c.Harness - c.APIServer - c.Etcd
	return c
}
