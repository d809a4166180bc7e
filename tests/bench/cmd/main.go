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

// Command bench runs the benchmark scenarios of `make bench` one after the
// other, each on a fresh control plane and controller, prints a table and
// writes <out>/<scenario>.json, <out>/summary.json and the plots (copied
// into -docs when set).
//
//	go run ./tests/bench/cmd -scenarios n1000,n5000,large
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/externalsource/externalsource-controller/tests/bench"
)

// scenarios are the named configurations; flags override their knobs. A
// scenario of several configurations (the floor) runs them one after the
// other, each on a fresh control plane.
var scenarios = map[string][]bench.Config{
	"n5":    {{N: 5, PayloadSize: 1 << 10, ETag: true, LatencySamples: 5}},
	"n1000": {{N: 1000, PayloadSize: 1 << 10, ETag: true, LatencySamples: 200}},
	"n5000": {{N: 5000, PayloadSize: 1 << 10, ETag: true, LatencySamples: 200}},
	"large": {{N: 1, PayloadSize: 100 << 20, ETag: true, Backend: "filesystem", Throughput: true, Steady: bench.SteadyRequest}},
	// The floor: the null producer, then the controller; a new revision of
	// every source by a reconcile request after all are Ready.
	"floor1000": floor(1000),
	"floor5000": floor(5000),
	// 10,000 sources on one controller, with a heap profile.
	"n10000":   {{N: 10000, PayloadSize: 1 << 10, ETag: true, HeapProfile: true, ReadyTimeout: 40 * time.Minute}},
	"n10000fs": {{N: 10000, PayloadSize: 1 << 10, ETag: true, Backend: "filesystem", HeapProfile: true, ReadyTimeout: 40 * time.Minute}},
	// A restart with every source Ready, all on one upstream host.
	"restart-fs":  restart(5000, "filesystem"),
	"restart-s3":  restart(5000, "s3"),
	"restart-mem": restart(5000, "memory"),
	// Three shards and the main instance on one bucket; 100 sources move.
	"shard6000": {{N: 6000, PayloadSize: 1 << 10, ETag: true, Backend: "s3", Interval: 10 * time.Minute,
		Steady: bench.SteadyNone, Shards: 3, Moved: 100, ReadyTimeout: 30 * time.Minute}},
	// Hooks: the controller without hooks, then with a jq post-request
	// hook on every source and a yq pre-request hook on one in ten (the
	// bare-exec floor runs first in the hooks run); the upstream pool and
	// the method of floor1000, a steady interval of 1m.
	"hooks1000": hooks(1000),
	"hooks5000": hooks(5000),
	// Ten sources whose upstream answers 500, for ten minutes.
	"failing": {{N: 10, PayloadSize: 1 << 10, Failing: true, FailDuration: 10 * time.Minute, FailWindow: time.Minute}},
}

func floor(n int) []bench.Config {
	var out []bench.Config
	for _, p := range []string{bench.ProducerNull, bench.ProducerNullEvents, bench.ProducerController} {
		out = append(out, bench.Config{Name: fmt.Sprintf("floor%d-%s", n, p), Group: fmt.Sprintf("floor%d", n), Producer: p,
			N: n, PayloadSize: 1 << 10, ETag: true, Steady: bench.SteadyRequest, ChangeFraction: 1, ReadyTimeout: 30 * time.Minute})
	}
	return out
}

func hooks(n int) []bench.Config {
	var out []bench.Config
	for _, h := range []bool{false, true} {
		name := fmt.Sprintf("hooks%d-hookless", n)
		if h {
			name = fmt.Sprintf("hooks%d-hooks", n)
		}
		out = append(out, bench.Config{Name: name, Group: fmt.Sprintf("hooks%d", n), Hooks: h,
			N: n, PayloadSize: 1 << 10, ETag: true, Steady: bench.SteadyInterval, ReadyTimeout: 30 * time.Minute})
	}
	return out
}

func restart(n int, backend string) []bench.Config {
	return []bench.Config{{N: n, PayloadSize: 1 << 10, ETag: true, Backend: backend, Steady: bench.SteadyRequest,
		Restart: true, Listeners: 1, ReadyTimeout: 30 * time.Minute}}
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	names := flag.String("scenarios", "floor1000,n10000,restart-fs,shard6000",
		"Comma-separated scenarios: n5, n1000, n5000, large, floor1000, floor5000, hooks1000, hooks5000, n10000, n10000fs, restart-fs, restart-s3, restart-mem, shard6000, failing.")
	out := flag.String("out", "tests/bench/out", "The output directory.")
	docs := flag.String("docs", "", "A directory the plots are copied into (e.g. docs/benchmarks).")
	bin := flag.String("controller-bin", "", "The controller binary; built from this checkout when empty.")
	suffix := flag.String("suffix", "", "Appended to each scenario name (e.g. -qps50).")
	n := flag.Int("n", 0, "Override the number of sources.")
	concurrent := flag.Int("concurrent", 0, "--concurrent of the controller (0: its default).")
	qps := flag.Float64("qps", 0, "--kube-api-qps of the controller (0: its default).")
	burst := flag.Int("burst", 0, "--kube-api-burst of the controller (0: its default).")
	steady := flag.String("steady", "", "Steady-state mode: interval (wait spec.interval) or request (annotate).")
	etag := flag.String("etag", "", "Override ETags: on or off.")
	change := flag.Float64("change-fraction", -1, "Fraction of upstreams changed before the steady-state window.")
	samples := flag.Int("latency-samples", -1, "Upstream changes timed in the latency phase.")
	rate := flag.Float64("latency-rate", 0, "Reconcile requests per second in the latency phase (default 5).")
	moved := flag.Int("moved", -1, "Sources moved between shards (shard scenarios).")
	ctrlArgs := flag.String("controller-args", "", "Extra flags of the controller processes (not the null producer), space-separated.")
	sidecarArgs := flag.String("sidecar-args", "", "Extra flags of the hook-executor of the hooks scenarios, space-separated.")
	sidecarHostPIDs := flag.Bool("sidecar-host-pids", false, "Run the hooks scenarios' hook-executor in the harness's PID namespace, not in one of its own as in its pod.")
	repeat := flag.Int("repeat", 1, "Run each scenario's configurations this many times, in reverse order every other time (the floor's null/controller alternate).")
	cpuProf := flag.Duration("cpu-profile", 0, "Take a CPU profile of the controller (and of the hook sidecar, in a hooks scenario) for this long from the first create.")
	upDelay := flag.Duration("upstream-delay", 0, "Added before every upstream answer (a slow host).")
	failFor := flag.Duration("fail-duration", 0, "How long the failing scenario counts requests (default 10m).")
	mixedFloor := flag.Bool("mixed-floor", false, "Add to each hooks scenario the mixed floor: the hookless controller with the bare-exec loop beside it, both from the first create.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if *bin == "" {
		fmt.Println("bench: building the controller")
		if *bin, err = bench.BuildController(ctx, outDir); err != nil {
			return err
		}
	}
	fmt.Println("bench: building the null producer")
	nullBin, err := bench.BuildNullProducer(ctx, outDir)
	if err != nil {
		return err
	}

	var reps []*bench.Report
	var cfgs []bench.Config
	for _, name := range strings.Split(*names, ",") {
		group, ok := scenarios[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		if *mixedFloor && len(group) > 0 && group[len(group)-1].Hooks {
			m := group[0] // the hookless run
			m.Name = strings.TrimSuffix(m.Name, "-hookless") + "-mixed"
			m.MixedFloor = true
			group = append(append([]bench.Config(nil), group...), m)
		}
		for k := range max(1, *repeat) {
			for j := range group {
				cfg := group[j]
				if k%2 == 1 {
					cfg = group[len(group)-1-j]
				}
				if cfg.Name == "" {
					cfg.Name = name
				}
				if k > 0 {
					cfg.Name += fmt.Sprintf("-run%d", k+1)
				}
				cfgs = append(cfgs, cfg)
			}
		}
	}
	for _, cfg := range cfgs {
		cfg.Name += *suffix
		if cfg.Group != "" {
			cfg.Group += *suffix
		}
		if *n > 0 {
			cfg.N = *n
		}
		if *ctrlArgs != "" && cfg.Producer != bench.ProducerNull && cfg.Producer != bench.ProducerNullEvents {
			cfg.ExtraArgs = append(cfg.ExtraArgs, strings.Fields(*ctrlArgs)...)
		}
		if *sidecarArgs != "" && cfg.Hooks {
			cfg.SidecarArgs = append(cfg.SidecarArgs, strings.Fields(*sidecarArgs)...)
		}
		if *sidecarHostPIDs {
			cfg.SidecarHostPIDs = true
		}
		if *moved >= 0 {
			cfg.Moved = *moved
		}
		if *cpuProf > 0 {
			cfg.CPUProfile = *cpuProf
		}
		if *upDelay > 0 {
			cfg.UpstreamDelay = *upDelay
		}
		if *failFor > 0 {
			cfg.FailDuration = *failFor
		}
		cfg.Concurrent, cfg.QPS, cfg.Burst = *concurrent, *qps, *burst
		if *steady != "" {
			cfg.Steady = *steady
		}
		switch *etag {
		case "on":
			cfg.ETag = true
		case "off":
			cfg.ETag = false
		}
		if *change >= 0 {
			cfg.ChangeFraction = *change
		}
		if *samples >= 0 {
			cfg.LatencySamples = *samples
		}
		if *rate > 0 {
			cfg.LatencyRate = *rate
		}
		cfg.ControllerBin, cfg.NullProducerBin, cfg.OutDir, cfg.Log = *bin, nullBin, outDir, os.Stdout
		start := time.Now()
		rep, err := bench.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", cfg.Name, err)
		}
		fmt.Printf("bench: scenario %s took %s\n", cfg.Name, time.Since(start).Round(time.Second))
		reps = append(reps, rep)
		if *docs != "" {
			if err := copyPlots(rep.Plots, *docs); err != nil {
				return err
			}
		}
	}

	fmt.Println()
	var plain []*bench.Report
	for _, r := range reps {
		if r.Config.Group == "" && r.Failing == nil && r.Sharding == nil {
			plain = append(plain, r)
		}
	}
	if len(plain) > 0 {
		bench.PrintTable(os.Stdout, plain)
	}
	sum := bench.Summarize(reps)
	bench.PrintFloor(os.Stdout, sum.Floor)
	bench.PrintHooks(os.Stdout, sum.Hooks)
	bench.PrintScale(os.Stdout, reps)
	bench.PrintRestart(os.Stdout, reps)
	bench.PrintSharding(os.Stdout, reps)
	bench.PrintFailing(os.Stdout, reps)
	if sum.RSSGrowthKiBPerSource != 0 {
		fmt.Printf("\nRSS growth per source between %d and %d sources: %.1f KiB\n", sum.FromN, sum.ToN, sum.RSSGrowthKiBPerSource)
	}
	return bench.WriteJSON(filepath.Join(outDir, "summary"+*suffix+".json"), sum)
}

func copyPlots(plots []string, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range plots {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
