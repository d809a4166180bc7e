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

// scenarios are the named configurations; flags override their knobs.
var scenarios = map[string]bench.Config{
	"n5":    {N: 5, PayloadSize: 1 << 10, ETag: true, LatencySamples: 5},
	"n1000": {N: 1000, PayloadSize: 1 << 10, ETag: true, LatencySamples: 200},
	"n5000": {N: 5000, PayloadSize: 1 << 10, ETag: true, LatencySamples: 200},
	"large": {N: 1, PayloadSize: 100 << 20, ETag: true, Backend: "filesystem", Throughput: true, Steady: bench.SteadyRequest},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	names := flag.String("scenarios", "n1000,n5000,large", "Comma-separated scenarios: n5, n1000, n5000, large.")
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

	var reps []*bench.Report
	for _, name := range strings.Split(*names, ",") {
		cfg, ok := scenarios[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		cfg.Name = name + *suffix
		if *n > 0 {
			cfg.N = *n
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
		cfg.ControllerBin, cfg.OutDir, cfg.Log = *bin, outDir, os.Stdout
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
	bench.PrintTable(os.Stdout, reps)
	sum := bench.Summarize(reps)
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
