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

// Package hookexecutor is the `hook-executor` program of the binary: the
// sidecar that runs hook commands for the controller over a Unix socket,
// each confined by the hook sandbox (internal/hook).
package hookexecutor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/fluxcd/pkg/runtime/pprof"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	flag "github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/externalsource/externalsource-controller/internal/cmd"
	"github.com/externalsource/externalsource-controller/internal/hook"
)

// Subcommand is the first argument that runs this program
// (`externalsource-controller hook-executor`).
const Subcommand = "hook-executor"

// flags holds what the sidecar binds, so that tests and the flag
// reference (docs/flags.md) read the same flag set the sidecar parses.
type flags struct {
	socket, whitelist, sandbox, metricsAddr, trampoline string
	start                                               string
	memoryBudget, memoryPerNamespace                    string
	maxOutput                                           int64
	maxLandlockABI                                      int
	logOptions                                          logger.Options
}

func (f *flags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.socket, "socket", "/var/run/hooks/hook.sock", "The Unix socket to listen on.")
	fs.StringVar(&f.whitelist, "hook-whitelist", "", "The hook whitelist file (from a ConfigMap); reloaded on change.")
	fs.Int64Var(&f.maxOutput, "hook-max-output", hook.DefaultMaxOutput, "The most bytes a hook may write on stdout.")
	fs.StringVar(&f.sandbox, "hook-sandbox", string(hook.SandboxLandlock),
		"How hook runs are confined: landlock (every protection docs/hooks.md promises, by Landlock and a seccomp filter; "+
			"runs this node cannot confine so are refused with a message naming the missing protection) or none "+
			"(rlimits and the watchdog only: hooks can read what the sidecar can read; logged and exported as 0 protections).")
	fs.IntVar(&f.maxLandlockABI, "hook-sandbox-max-landlock-abi", -1,
		"Confine hook runs as on a kernel whose Landlock ABI is at most this (0: no Landlock); -1 is the kernel's own. "+
			"For tests, and to see what an older node would give.")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "0",
		"The address the sidecar serves its metrics on (/metrics: externalsource_hook_sandbox_protection, whitelist reloads, run phases) "+
			"and Go's profiles (/debug/pprof/, as the controller's metrics address); 0 disables.")
	fs.StringVar(&f.start, "hook-sandbox-start", "",
		"How a hook run is confined before its command is exec'd: direct (the sidecar's child applies Landlock, the rlimits and the seccomp filter "+
			"between clone and exec; the default on linux/amd64 and linux/arm64) or trampoline (the child execs --hook-sandbox-trampoline, "+
			"which applies them and execs the command: the same layers, one more program start per run; the default elsewhere).")
	fs.StringVar(&f.trampoline, "hook-sandbox-trampoline", "",
		"With --hook-sandbox-start=trampoline, the binary that confines each hook run before exec'ing it (hook-sandbox in the image: "+
			"it starts in a millisecond); empty is this binary, whose start-up costs tens of milliseconds per run.")
	fs.StringVar(&f.memoryBudget, "hook-memory-budget", hook.DefaultMemoryBudget.String(),
		"The memory all running hooks may reserve together, by their limits: the sidecar container's memory limit less "+
			hook.SidecarReserve.String()+"; a run waits up to 10s for its limit to fit, then fails naming the budget. 0 admits every run.")
	fs.StringVar(&f.memoryPerNamespace, "hook-memory-per-namespace", hook.DefaultMemoryPerNamespace.String(),
		"The share of --hook-memory-budget the running hooks of one namespace may reserve together.")
	f.logOptions.BindFlags(fs)
}

// budget parses the memory budget flags.
func (f *flags) budget() (*hook.Budget, error) {
	total, err := resource.ParseQuantity(f.memoryBudget)
	if err != nil {
		return nil, fmt.Errorf("--hook-memory-budget %q: %w", f.memoryBudget, err)
	}
	share, err := resource.ParseQuantity(f.memoryPerNamespace)
	if err != nil {
		return nil, fmt.Errorf("--hook-memory-per-namespace %q: %w", f.memoryPerNamespace, err)
	}
	return &hook.Budget{Total: total.Value(), PerNamespace: share.Value()}, nil
}

// FlagSet returns the sidecar's flags with their defaults, as --help
// prints them: the flag reference test reads it.
func FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	new(flags).bind(fs)
	return fs
}

// Run is the `hook-executor` program; args are the arguments after the
// subcommand. --help prints the usage and returns nil.
func Run(args []string) error {
	var f flags
	fs := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	f.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // --help printed the usage: not a failure
		}
		return err
	}
	ctrl.SetLogger(logger.NewLogger(f.logOptions))
	if f.whitelist == "" {
		return errors.New("--hook-whitelist is required")
	}
	log := ctrl.Log.WithName("hook-executor")
	mode := hook.SandboxMode(f.sandbox)
	node, err := hook.CheckSandbox(mode, f.maxLandlockABI)
	if err != nil {
		return fmt.Errorf("--hook-sandbox: %w", err)
	}
	start, err := hook.ParseStartMode(f.start)
	if err != nil {
		return err
	}
	// One line, whatever the kernel: the sidecar serves in any case.
	switch {
	case mode == hook.SandboxNone:
		log.Info("WARNING: --hook-sandbox=none: hook runs are not confined by Landlock nor seccomp; a hook can read every file "+
			"and open every connection the sidecar can (only the rlimits and the watchdog apply)", "protections", node.Protections)
	case node.Refusal() != "":
		log.Info("WARNING: hook sandbox: "+node.Refusal(), "landlockABI", node.LandlockABI, "kernelLandlockABI", node.KernelLandlockABI,
			"seccomp", node.Seccomp, "protections", node.Protections)
	default:
		log.Info("hook sandbox enabled", "sandbox", mode, "start", start, "landlockABI", node.LandlockABI, "kernelLandlockABI", node.KernelLandlockABI,
			"seccomp", node.Seccomp, "protections", node.Protections)
	}
	// What a run leaves behind when its parent exits comes to this
	// process, which waits for it (hook.AdoptOrphans); in the pod it is
	// the container's PID 1 and would receive it anyway.
	if err := hook.AdoptOrphans(); err != nil {
		log.Info("WARNING: cannot adopt the orphans of hook runs; the processes a run leaves behind are waited for by whoever adopts them", "error", err.Error())
	}
	wl, err := hook.NewStore(f.whitelist, log)
	if err != nil {
		return fmt.Errorf("--hook-whitelist: %w", err)
	}
	// Hooks run in directories of this process's spool, which the next
	// start removes if this one is killed.
	sp, err := cmd.NewSpool(log)
	if err != nil {
		return err
	}
	defer cmd.CloseSpool(log, sp)
	ctx := ctrl.SetupSignalHandler()
	if f.metricsAddr != "0" && f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		msrv := &http.Server{Handler: metricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = msrv.Serve(ln) }()
		defer msrv.Close()
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	go func() {
		if err := wl.Watch(ctx); err != nil {
			log.Error(err, "watching the hook whitelist")
		}
	}()
	budget, err := f.budget()
	if err != nil {
		return err
	}
	srv := &hook.Server{Socket: f.socket, Log: log, Budget: budget,
		Executor: &hook.Executor{Whitelist: wl.Get, MaxOutput: f.maxOutput, TempDir: sp.Path(), Sandbox: mode,
			StartMode: start, Trampoline: f.trampoline,
			Protected: []string{f.whitelist}, Node: &node}}
	return srv.Serve(ctx)
}

// metricsHandler serves /metrics and, as the controller's metrics server
// does (fluxcd/pkg/runtime/pprof), Go's profiles under /debug/pprof/: the
// sidecar is where every hook run's CPU goes, and sizing it needs its
// profile, not a guess (docs/benchmarks.md, "Hooks").
func metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))
	for path, h := range pprof.GetHandlers() {
		mux.Handle(path, h)
	}
	return mux
}
