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
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// The hooks of the hooks scenarios: every source reshapes its JSON with
// jq after the request; one in ten also adds a header with yq before it
// (HookedSource). Both are allowed by the shipped whitelist as it is.
const (
	// JQFilter is the post-request hook's filter.
	JQFilter = `{source: .source, version: .version, size: (.data | length)}`
	// YQExpression is the pre-request hook's expression.
	YQExpression = `.headers["X-Bench"] = "yes"`
	// PreRequestEvery is how many sources share one pre-request hook.
	PreRequestEvery = 10
)

// jqArgs and yqArgs are the hooks' arguments.
var (
	jqArgs = []string{"-c", JQFilter}
	yqArgs = []string{"-o", "json", YQExpression}
)

// hooksOf returns the hooks of source i of a hooks scenario.
func hooksOf(i int) *exsv1beta1.Hooks {
	h := &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "reshape", Command: "jq", Args: jqArgs}}}
	if i%PreRequestEvery == 0 {
		h.PreRequest = []exsv1beta1.Hook{{Name: "mark", Command: "yq", Args: yqArgs}}
	}
	return h
}

// HooksReport is what a hooks scenario measured of the hook sidecar, and
// the bare-exec floor it is compared with.
type HooksReport struct {
	// SidecarCPUSeconds is the sidecar's own CPU (user+system) over the
	// run; ChildrenCPUSeconds that of the runs it reaped (the
	// trampolines, then jq and yq in their place).
	SidecarCPUSeconds  float64 `json:"sidecarCpuSeconds"`
	ChildrenCPUSeconds float64 `json:"childrenCpuSeconds"`
	SidecarPeakRSSMiB  float64 `json:"sidecarPeakRssMiB"`
	// SidecarOwnPIDs says the sidecar ran as PID 1 of a PID namespace of
	// its own, with its own /proc, as in its pod (root and unshare(1)
	// needed): its watchdog then reads only its own processes, not the
	// host's, and it adopts its runs' orphans as PID 1.
	SidecarOwnPIDs bool `json:"sidecarOwnPids"`
	// RampRuns are the successful hook runs by command from the first
	// create until every source was Ready; SteadyRuns those of the steady
	// window (one interval of every source, or a reconcile request on
	// each); both per source as well.
	RampRuns             map[string]int64 `json:"rampRuns"`
	RampRunsPerSource    float64          `json:"rampRunsPerSource"`
	SteadyRuns           map[string]int64 `json:"steadyRuns"`
	SteadyRunsPerSource  float64          `json:"steadyRunsPerSource"`
	SteadyPostRunsPerSrc float64          `json:"steadyPostRequestRunsPerSource"`
	SteadyPreRunsPerSrc  float64          `json:"steadyPreRequestRunsPerSource"`
	// Phases are the sidecar's mean milliseconds per run in each phase
	// during the ramp (externalsource_hook_run_phase_seconds).
	Phases map[string]PhaseCost `json:"phases"`
	// Bare is the floor: the same commands on the same inputs, exec'd by
	// the harness at the same concurrency, no sidecar.
	Bare BareExecReport `json:"bare"`
}

// MixedReport is the mixed floor (Config.MixedFloor): the hookless
// controller's ramp with the bare-exec loop beside it.
type MixedReport struct {
	// Seconds is from the first create until every source is Ready and
	// the loop is done; BareEndSeconds when the loop was done.
	Seconds        float64        `json:"seconds"`
	BareEndSeconds float64        `json:"bareEndSeconds"`
	Bare           BareExecReport `json:"bare"`
}

// PhaseCost is the sidecar's cost of one phase over a window.
type PhaseCost struct {
	Runs         int64   `json:"runs"`
	MeanMs       float64 `json:"meanMs"`
	TotalSeconds float64 `json:"totalSeconds"`
}

// BareExecReport is the bare-exec floor: N jq runs and N/10 yq runs on the
// inputs the hooks get, Concurrency at a time.
type BareExecReport struct {
	Runs        int     `json:"runs"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	CPUSeconds  float64 `json:"cpuSeconds"`
	// Machine is the whole machine's CPU over the floor, HarnessCPUSeconds
	// the harness's own (starting the commands, feeding and reading them).
	Machine           *MachineCPU `json:"machine,omitempty"`
	HarnessCPUSeconds float64     `json:"harnessCpuSeconds"`
	// No resident size per run: the rusage of a child Go starts (clone
	// with CLONE_VM until its exec) counts the harness's own pages
	// (docs/hooks.md has the runs' sizes, measured with /usr/bin/time).
}

// hookRunConcurrency is how many hooks the controller runs at once with
// --concurrent workers, all sources in one namespace: the hooks run inside
// the namespace's share of the workers (half of them by default).
func hookRunConcurrency(concurrent int) int {
	if concurrent <= 0 {
		concurrent = 10 // the controller's default
	}
	return max(1, concurrent/2)
}

// hookTools returns jq's and yq's paths: jq is Debian's (/usr/bin/jq, as in
// the hook-executor image), yq the tool cache's (bin/yq, `make tools`),
// resolved so that the sandbox's read paths name the real file.
func hookTools() (jq, yq string, err error) {
	jq = "/usr/bin/jq"
	if _, err := os.Stat(jq); err != nil {
		return "", "", fmt.Errorf("the hooks scenarios need jq at /usr/bin/jq (apt-get install jq): %w", err)
	}
	yq, err = filepath.EvalSymlinks(filepath.Join(devenv.Root(), "bin", "yq"))
	if err != nil {
		return "", "", fmt.Errorf("the hooks scenarios need yq in bin/ (make tools, or hack/tools.sh yq): %w", err)
	}
	return jq, yq, nil
}

// writeWhitelist writes the shipped whitelist (config/manager's ConfigMap)
// to path, with yq's path the tool cache's: the entries, arguments,
// limits and read paths are the shipped ones.
func writeWhitelist(path, yq string) error {
	b, err := os.ReadFile(filepath.Join(devenv.Root(), "config", "manager", "hook-whitelist.yaml"))
	if err != nil {
		return err
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return fmt.Errorf("the shipped whitelist: %w", err)
	}
	wl, ok := cm.Data["whitelist.yaml"]
	if !ok {
		return errors.New("the shipped whitelist ConfigMap has no whitelist.yaml")
	}
	if !strings.Contains(wl, "path: /usr/bin/yq") {
		return errors.New("the shipped whitelist has no yq at /usr/bin/yq to replace")
	}
	wl = strings.Replace(wl, "path: /usr/bin/yq", "path: "+yq, 1)
	return os.WriteFile(path, []byte(wl), 0o644)
}

// sidecar is the hook-executor process of a hooks scenario.
type sidecar struct {
	// pid is the sidecar's, as the host sees it.
	pid       int
	ownPIDs   bool
	socket    string
	whitelist string
	metrics   string
	stop      func()
	exited    chan struct{}
	log       string
}

// OwnPIDNamespaceTool returns unshare(1) and whether the harness can start
// the hook-executor in a PID namespace of its own through it: as root,
// and with /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN), from
// which onlyChild learns the hook-executor's pid.
func OwnPIDNamespaceTool() (string, bool) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		return "", false
	}
	self := os.Getpid()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", self, self)); err != nil {
		return "", false
	}
	return unshare, true
}

// onlyChild waits for the child of pid (unshare's, which it forks once
// it has made the namespaces) and returns its pid.
func onlyChild(pid int, exited <-chan struct{}) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	path := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for {
		b, err := os.ReadFile(path)
		if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
			return strconv.Atoi(f[0])
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("unshare exited before starting the hook executor")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("unshare started no hook executor within 10s (%s)", path)
		}
	}
}

// startSidecar starts the controller binary's hook-executor with the
// shipped whitelist on a Unix socket in the output directory, as the
// Deployment runs it.
func (r *run) startSidecar(ctx context.Context) error {
	cfg := r.cfg
	_, yq, err := hookTools()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-hooks-")
	if err != nil {
		return err
	}
	sc := &sidecar{socket: filepath.Join(dir, "hook.sock"), whitelist: filepath.Join(cfg.OutDir, cfg.Name+"-whitelist.yaml"),
		exited: make(chan struct{}), log: filepath.Join(cfg.OutDir, cfg.Name+"-hook-executor.log")}
	if err := writeWhitelist(sc.whitelist, yq); err != nil {
		return err
	}
	if sc.metrics, err = devenv.FreeAddr(); err != nil {
		return err
	}
	logFile, err := os.Create(sc.log)
	if err != nil {
		return err
	}
	// The trampoline of the image (--hook-sandbox-trampoline, as
	// config/manager's Deployment passes it): without it every run starts
	// the whole controller binary to confine itself.
	tramp, err := buildTrampoline(ctx, dir)
	if err != nil {
		return err
	}
	args := append([]string{"hook-executor", "--socket=" + sc.socket, "--hook-whitelist=" + sc.whitelist,
		"--hook-sandbox-trampoline=" + tramp, "--metrics-addr=" + sc.metrics, "--log-level=error"}, cfg.SidecarArgs...)
	cmd := exec.Command(cfg.ControllerBin, args...)
	unshare, canOwn := OwnPIDNamespaceTool()
	if sc.ownPIDs = canOwn && !cfg.SidecarHostPIDs; sc.ownPIDs {
		// As in its pod: PID 1 of its own PID namespace, whose /proc
		// (mounted by unshare in a mount namespace of its own) holds its
		// processes alone. unshare forks it and kills it when it dies.
		cmd = exec.Command(unshare, append([]string{"--pid", "--mount-proc", "--kill-child", cfg.ControllerBin}, args...)...)
	}
	// The environment config/manager gives the hook-executor container:
	// none (GOGC=50 is the manager's, whose heap is the informer cache).
	cmd.Env = []string{}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the hook executor: %w", err)
	}
	go func() { _ = cmd.Wait(); logFile.Close(); close(sc.exited) }()
	sc.pid = cmd.Process.Pid
	if sc.ownPIDs {
		if sc.pid, err = onlyChild(cmd.Process.Pid, sc.exited); err != nil {
			_ = cmd.Process.Kill()
			return err
		}
	}
	var once sync.Once
	sc.stop = func() {
		once.Do(func() {
			// The sidecar itself (its host pid): as a PID 1 it gets
			// only the signals it handles, as in its pod.
			_ = syscall.Kill(sc.pid, syscall.SIGTERM)
			select {
			case <-sc.exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-sc.exited
			}
			_ = os.RemoveAll(dir)
		})
	}
	r.sidecar = sc
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := readSidecarPhases(ctx, sc.metrics); err == nil {
			if _, err := os.Stat(sc.socket); err == nil {
				return nil
			}
		}
		select {
		case <-sc.exited:
			return fmt.Errorf("the hook executor exited at start-up; see %s", sc.log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			sc.stop()
			return fmt.Errorf("the hook executor did not come up within 30s; see %s", sc.log)
		}
	}
}

// buildTrampoline builds the hook sandbox's trampoline
// (internal/hook/sandbox/trampoline, hook-sandbox in the image) into dir.
func buildTrampoline(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "hook-sandbox")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./internal/hook/sandbox/trampoline")
	cmd.Dir = devenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the hook sandbox trampoline: %v\n%s", err, b)
	}
	return out, nil
}

// phaseSums are a histogram's sums and counts by phase.
type phaseSums map[string]PhaseCost

// readSidecarPhases reads externalsource_hook_run_phase_seconds from the
// sidecar's metrics endpoint.
func readSidecarPhases(ctx context.Context, addr string) (phaseSums, error) {
	const name = "externalsource_hook_run_phase_seconds"
	series, err := scrapeProm(ctx, addr, func(n string) bool { return n == name+"_sum" || n == name+"_count" })
	if err != nil {
		return nil, err
	}
	out := phaseSums{}
	for _, s := range series {
		p := out[s.labels["phase"]]
		if s.name == name+"_sum" {
			p.TotalSeconds = s.value
		} else {
			p.Runs = int64(s.value)
		}
		out[s.labels["phase"]] = p
	}
	return out, nil
}

// sub returns the phases' costs between two readings, with their means.
func (p phaseSums) sub(o phaseSums) map[string]PhaseCost {
	out := map[string]PhaseCost{}
	for k, v := range p {
		d := PhaseCost{Runs: v.Runs - o[k].Runs, TotalSeconds: v.TotalSeconds - o[k].TotalSeconds}
		if d.Runs > 0 {
			d.MeanMs = 1000 * d.TotalSeconds / float64(d.Runs)
		}
		out[k] = d
	}
	return out
}

// readHookRuns reads the controller's successful hook runs by command
// (externalsource_hook_duration_seconds_count{result="success"}).
func readHookRuns(ctx context.Context, metricsAddr string) (map[string]int64, error) {
	series, err := scrapeProm(ctx, metricsAddr, func(n string) bool { return n == "externalsource_hook_duration_seconds_count" })
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range series {
		if s.labels["result"] == "success" {
			out[s.labels["command"]] += int64(s.value)
		}
	}
	return out, nil
}

func subRuns(a, b map[string]int64) (map[string]int64, int64) {
	out := map[string]int64{}
	var total int64
	for k, v := range a {
		if d := v - b[k]; d != 0 {
			out[k] = d
			total += d
		}
	}
	return out, total
}

// BareExec is the floor of the hooks scenarios: it execs the hooks'
// commands on the inputs they get (the payload of endpoint i for jq, the
// request of source i for yq), as the hooks scenario runs them (N jq,
// N/10 yq), concurrency at a time, with no sidecar, no sandbox and no
// controller, and times the whole.
func BareExec(ctx context.Context, n, size, concurrency int, url func(int) string) (BareExecReport, error) {
	jq, yq, err := hookTools()
	if err != nil {
		return BareExecReport{}, err
	}
	type job struct {
		path  string
		args  []string
		input []byte
	}
	var jobs []job
	for i := range n {
		jobs = append(jobs, job{jq, jqArgs, Payload(i, 0, size)})
		if i%PreRequestEvery == 0 {
			in := fmt.Sprintf(`{"url":%q,"method":"GET","headers":{}}`, url(i))
			jobs = append(jobs, job{yq, yqArgs, []byte(in)})
		}
	}
	rep := BareExecReport{Runs: len(jobs), Concurrency: concurrency}
	var mu sync.Mutex
	var cpu time.Duration
	m0, mErr := readMachineCPU()
	self0, sErr := ReadProc(os.Getpid())
	start := time.Now()
	err = parallel(ctx, len(jobs), concurrency, func(k int) error {
		j := jobs[k]
		cmd := exec.CommandContext(ctx, j.path, j.args...)
		cmd.Stdin = bytes.NewReader(j.input)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %q: %v: %s", j.path, j.args, err, stderr.String())
		}
		mu.Lock()
		defer mu.Unlock()
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.CPUSeconds = cpu.Seconds()
	if m1, err := readMachineCPU(); err == nil && mErr == nil {
		m := m1.sub(m0)
		rep.Machine = &m
	}
	if self1, err := ReadProc(os.Getpid()); err == nil && sErr == nil {
		rep.HarnessCPUSeconds = self1.CPUSeconds - self0.CPUSeconds
	}
	return rep, nil
}

// fmtPhases lists the phases' mean milliseconds in the order of a run.
func fmtPhases(p map[string]PhaseCost) string {
	var parts []string
	for _, k := range phaseOrder {
		if c, ok := p[k]; ok && c.Runs > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, c.MeanMs))
		}
	}
	return strings.Join(parts, ", ")
}

// phaseOrder is the order of a run's phases.
var phaseOrder = []string{"budget", "prepare", "start", "sandbox", "exec", "cleanup"}

// HooksRow compares, at one N, the controller with hooks, the controller
// without them, and the bare-exec floor of the hooks' commands.
type HooksRow struct {
	Group string `json:"group"`
	N     int    `json:"n"`
	// HooklessSeconds, HooksSeconds: the times to all-Ready (means of the
	// runs, each listed); BareSeconds the bare-exec floor's time.
	HooklessSeconds float64   `json:"hooklessSeconds"`
	HooklessRuns    []float64 `json:"hooklessRuns"`
	HooksSeconds    float64   `json:"hooksSeconds"`
	HooksRuns       []float64 `json:"hooksRuns"`
	BareSeconds     float64   `json:"bareSeconds"`
	// Target is 1.2 × (hookless + bare); Ratio is hooks / (hookless +
	// bare), met at 1.2 or below.
	Target float64 `json:"target"`
	Ratio  float64 `json:"ratio"`
	// PairRatios are the ratios pair by pair: the i-th hooks run against
	// the i-th hookless run (with -repeat, the one run right before or
	// after it) plus its own bare floor. Ratio compares the means; these
	// show how far one run from the next moves it.
	PairRatios []float64 `json:"pairRatios,omitempty"`
	// Miss splits what the hooks runs took over the sum by who used the
	// CPU: the mean over the pairs that measured it (nil for none).
	Miss *CPUMiss `json:"miss,omitempty"`
	// PairMisses are the pairs' own splits, in the order of PairRatios.
	PairMisses []CPUMiss `json:"pairMisses,omitempty"`
	// MixedSeconds is the mixed floor's mean time (with -mixed-floor):
	// the hookless controller with the bare-exec loop beside it, until
	// both are done; MixedRatio is hooks / mixed, MixedPairRatios the
	// same pair by pair. A diagnostic: it times the two kinds of work on
	// the CPUs at once, as the hooks run does, where the target's sum
	// times them apart.
	MixedSeconds    float64   `json:"mixedSeconds,omitempty"`
	MixedRuns       []float64 `json:"mixedRuns,omitempty"`
	MixedRatio      float64   `json:"mixedRatio,omitempty"`
	MixedPairRatios []float64 `json:"mixedPairRatios,omitempty"`
	// Hooks is the first hooks run's report.
	Hooks *HooksReport `json:"hooks"`
}

// HooksRows pairs the hookless and the hooks runs of each group.
func HooksRows(reps []*Report) []HooksRow {
	var rows []HooksRow
	type pair struct{ hookless, hooks, mixed []*Report }
	byGroup := map[string]*pair{}
	var order []string
	for _, r := range reps {
		if r.Config.Group == "" || r.Config.nullProducer() {
			continue
		}
		p, ok := byGroup[r.Config.Group]
		if !ok {
			p = &pair{}
			byGroup[r.Config.Group] = p
			order = append(order, r.Config.Group)
		}
		switch {
		case r.Mixed != nil:
			p.mixed = append(p.mixed, r)
		case r.Hooks != nil:
			p.hooks = append(p.hooks, r)
		default:
			p.hookless = append(p.hookless, r)
		}
	}
	mean := func(rs []*Report) (float64, []float64) {
		var sum float64
		var all []float64
		for _, r := range rs {
			sum += r.AllReadySeconds
			all = append(all, r.AllReadySeconds)
		}
		return sum / float64(len(rs)), all
	}
	for _, g := range order {
		p := byGroup[g]
		if len(p.hooks) == 0 || len(p.hookless) == 0 {
			continue
		}
		row := HooksRow{Group: g, N: p.hooks[0].Config.N, Hooks: p.hooks[0].Hooks}
		row.HooklessSeconds, row.HooklessRuns = mean(p.hookless)
		row.HooksSeconds, row.HooksRuns = mean(p.hooks)
		var bare float64
		for _, r := range p.hooks {
			bare += r.Hooks.Bare.Seconds
		}
		row.BareSeconds = bare / float64(len(p.hooks))
		row.Target = 1.2 * (row.HooklessSeconds + row.BareSeconds)
		if d := row.HooklessSeconds + row.BareSeconds; d > 0 {
			row.Ratio = row.HooksSeconds / d
		}
		var misses []CPUMiss
		for i := range min(len(p.hooks), len(p.hookless)) {
			var ratio float64
			if d := p.hookless[i].AllReadySeconds + p.hooks[i].Hooks.Bare.Seconds; d > 0 {
				ratio = p.hooks[i].AllReadySeconds / d
				row.PairRatios = append(row.PairRatios, ratio)
			}
			if m, ok := pairMiss(p.hooks[i], p.hookless[i]); ok {
				m.Ratio = ratio
				misses = append(misses, m)
			}
		}
		row.Miss = meanMiss(misses)
		if len(p.mixed) > 0 {
			for _, m := range p.mixed {
				row.MixedRuns = append(row.MixedRuns, m.Mixed.Seconds)
				row.MixedSeconds += m.Mixed.Seconds / float64(len(p.mixed))
			}
			row.MixedRatio = row.HooksSeconds / row.MixedSeconds
			for i := range min(len(p.hooks), len(p.mixed)) {
				row.MixedPairRatios = append(row.MixedPairRatios, p.hooks[i].AllReadySeconds/p.mixed[i].Mixed.Seconds)
			}
		}
		if len(misses) > 1 {
			row.PairMisses = misses
		}
		rows = append(rows, row)
	}
	return rows
}

// CPUMiss is hooks − (hookless + bare) in CPU-seconds of the ramps (the
// floor's whole run), split by who used them. On a machine whose CPUs
// are busy through the ramps, the components add up to the CPUs times the
// difference in wall time: Total / CPUs is the miss in wall seconds.
type CPUMiss struct {
	Pairs int `json:"pairs"`
	// Ratio is the pair's ratio (0 in a mean).
	Ratio float64 `json:"ratio,omitempty"`
	// Controller: the controller's CPU over the hookless run's.
	Controller float64 `json:"controller"`
	// Sidecar: the sidecar's own CPU (there is none without hooks).
	Sidecar float64 `json:"sidecar"`
	// Runs: the hook runs' CPU over the floor's: the same commands on
	// the same inputs, beside the control plane instead of alone.
	Runs float64 `json:"runs"`
	// Harness: the harness's own CPU over the two others'.
	Harness float64 `json:"harness"`
	// APIServer, Etcd: the control plane's over the hookless run's.
	APIServer float64 `json:"apiserver"`
	Etcd      float64 `json:"etcd"`
	// Rest: the kernel's threads (and the control plane, for reports
	// that did not tell it apart), over the two others'.
	Rest float64 `json:"rest"`
	// Idle and Steal: CPU time nothing ran, and that the hypervisor
	// took, over the two others'.
	Idle  float64 `json:"idle"`
	Steal float64 `json:"steal"`
	// Total is the sum of the above.
	Total float64 `json:"total"`
	// EventPosts are the Event POSTs inside the hooks run's window over
	// those inside the hookless run's; HooksEventsKept and
	// HooklessEventsKept the NewArtifact Events each run's API server
	// held at its end. Events one run dropped are work the other did.
	EventPosts         float64 `json:"eventPosts"`
	HooksEventsKept    float64 `json:"hooksEventsKept"`
	HooklessEventsKept float64 `json:"hooklessEventsKept"`
}

// String is the split as the hooks table prints it.
func (m CPUMiss) String() string {
	return fmt.Sprintf("controller %+.1f, sidecar %+.1f, hook runs over the floor's %+.1f, harness %+.1f, kube-apiserver %+.1f, etcd %+.1f, "+
		"kernel %+.1f, idle %+.1f, steal %+.1f; total %+.1f (%+.1f s of wall on %d CPUs); Event POSTs in the window %+.0f; "+
		"NewArtifact Events kept: hooks %.0f, hookless %.0f",
		m.Controller, m.Sidecar, m.Runs, m.Harness, m.APIServer, m.Etcd, m.Rest, m.Idle, m.Steal, m.Total,
		m.Total/float64(runtime.NumCPU()), runtime.NumCPU(), m.EventPosts, m.HooksEventsKept, m.HooklessEventsKept)
}

// pairMiss splits one hooks run's CPU over that of the hookless run beside
// it and its own floor; false when a report lacks the counters.
func pairMiss(hooks, hookless *Report) (CPUMiss, bool) {
	h, l, b := hooks.RampCPU, hookless.RampCPU, hooks.Hooks.Bare
	if h == nil || l == nil || b.Machine == nil {
		return CPUMiss{}, false
	}
	bareRest := b.Machine.Busy - b.CPUSeconds - b.HarnessCPUSeconds
	m := CPUMiss{
		Pairs:      1,
		Controller: h.Controller - l.Controller,
		Sidecar:    h.Sidecar,
		Runs:       h.Runs - b.CPUSeconds,
		Harness:    h.Harness - l.Harness - b.HarnessCPUSeconds,
		APIServer:  h.APIServer - l.APIServer,
		Etcd:       h.Etcd - l.Etcd,
		Rest:       h.Rest - l.Rest - bareRest,
		Idle:       h.Machine.Idle - l.Machine.Idle - b.Machine.Idle,
		Steal:      h.Machine.Steal - l.Machine.Steal - b.Machine.Steal,
	}
	m.Total = m.Controller + m.Sidecar + m.Runs + m.Harness + m.APIServer + m.Etcd + m.Rest + m.Idle + m.Steal
	m.EventPosts = float64(hooks.InitialAPIWrites["events POST"] - hookless.InitialAPIWrites["events POST"])
	m.HooksEventsKept, m.HooklessEventsKept = float64(hooks.NewArtifactEvents), float64(hookless.NewArtifactEvents)
	return m, true
}

// meanMiss is the mean of the pairs' splits, nil for none.
func meanMiss(ms []CPUMiss) *CPUMiss {
	if len(ms) == 0 {
		return nil
	}
	var s CPUMiss
	for _, m := range ms {
		s.Controller += m.Controller
		s.Sidecar += m.Sidecar
		s.Runs += m.Runs
		s.Harness += m.Harness
		s.APIServer += m.APIServer
		s.Etcd += m.Etcd
		s.Rest += m.Rest
		s.Idle += m.Idle
		s.Steal += m.Steal
		s.Total += m.Total
		s.EventPosts += m.EventPosts
		s.HooksEventsKept += m.HooksEventsKept
		s.HooklessEventsKept += m.HooklessEventsKept
	}
	n := float64(len(ms))
	return &CPUMiss{Pairs: len(ms), Controller: s.Controller / n, Sidecar: s.Sidecar / n, Runs: s.Runs / n,
		Harness: s.Harness / n, APIServer: s.APIServer / n, Etcd: s.Etcd / n, Rest: s.Rest / n, Idle: s.Idle / n, Steal: s.Steal / n, Total: s.Total / n,
		EventPosts: s.EventPosts / n, HooksEventsKept: s.HooksEventsKept / n, HooklessEventsKept: s.HooklessEventsKept / n}
}

// PrintHooks writes the hooks table.
func PrintHooks(w io.Writer, rows []HooksRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nHooks: time to all-Ready with a jq post-request hook on every source and a yq pre-request hook on one in ten")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\thookless s\tbare exec s\thooks s\ttarget s\tratio\tsidecar CPU s\truns' CPU s\tsidecar peak MiB\truns/source ramp\tsteady post\tsteady pre\t")
	for _, r := range rows {
		h := r.Hooks
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t\n", r.N, r.HooklessSeconds, r.BareSeconds,
			r.HooksSeconds, r.Target, r.Ratio, h.SidecarCPUSeconds, h.ChildrenCPUSeconds, h.SidecarPeakRSSMiB,
			h.RampRunsPerSource, h.SteadyPostRunsPerSrc, h.SteadyPreRunsPerSrc)
	}
	_ = tw.Flush()
	for _, r := range rows {
		h := r.Hooks
		fmt.Fprintf(w, "  %d sources, runs to all-Ready: hookless %v s, hooks %v s; bare exec: %d runs, %d at a time, %.1f s (%.1f s CPU)\n",
			r.N, r.HooklessRuns, r.HooksRuns, h.Bare.Runs, h.Bare.Concurrency, h.Bare.Seconds, h.Bare.CPUSeconds)
		if len(r.PairRatios) > 1 {
			var parts []string
			for _, x := range r.PairRatios {
				parts = append(parts, fmt.Sprintf("%.2f", x))
			}
			fmt.Fprintf(w, "  %d sources, the ratio pair by pair (each hooks run against the hookless run beside it and its own bare floor): %s\n",
				r.N, strings.Join(parts, ", "))
		}
		if m := r.Miss; m != nil {
			fmt.Fprintf(w, "  %d sources, hooks − (hookless + bare) in CPU-seconds, by who (mean of %d pairs): %s\n", r.N, m.Pairs, m)
		}
		if r.MixedSeconds > 0 {
			var parts []string
			for _, x := range r.MixedPairRatios {
				parts = append(parts, fmt.Sprintf("%.2f", x))
			}
			fmt.Fprintf(w, "  %d sources, the mixed floor (the hookless controller with the bare-exec loop beside it): %v s; hooks / mixed %.2f (pair by pair: %s)\n",
				r.N, r.MixedRuns, r.MixedRatio, strings.Join(parts, ", "))
		}
		for i, m := range r.PairMisses {
			fmt.Fprintf(w, "    pair %d (ratio %.2f): %s\n", i+1, m.Ratio, m)
		}
		fmt.Fprintf(w, "  %d sources, the sidecar's mean ms per run during the ramp: %s\n", r.N, fmtPhases(h.Phases))
		where := "the harness's PID namespace (-sidecar-host-pids, or not root, no unshare or no /proc children file)"
		if h.SidecarOwnPIDs {
			where = "a PID namespace of its own, as in its pod"
		}
		fmt.Fprintf(w, "  %d sources, the sidecar ran in %s\n", r.N, where)
	}
}
