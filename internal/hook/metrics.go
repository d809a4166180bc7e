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
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

var hookDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "externalsource_hook_duration_seconds",
	Help:    "Duration of hook runs, by whitelist command and result (success, failure, timeout, rejected, unavailable).",
	Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
}, []string{"command", "result"})

// generationMismatches counts refusals that were not final because the
// controller and the hook executor enforced different whitelists.
var generationMismatches = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "externalsource_hook_whitelist_generation_mismatches_total",
	Help: "Hook refusals retried instead of stalled because the controller and the hook executor enforced different whitelist generations.",
})

// runPhases splits the sidecar's cost of a run into its phases, so that
// an operator (and the benchmark's hooks scenarios) can tell what a run
// spends its time on besides the command itself: budget (waiting for the
// memory budget), prepare (the checks, the run's directory, the pipes),
// start (fork and exec: of the trampoline; with a direct start, of the
// command, the child's confinement included), sandbox (the trampoline's
// own start-up, Landlock, seccomp and rlimits, until it execs the
// command; with a direct start, the ruleset, filter and limits the
// sidecar prepares before the clone),
// exec (the command running while its stdin streams in and its stdout
// out, until both are done) and cleanup (the process group and the
// directory removed). Recorded by the sidecar, per phase only: its
// labels are bounded.
var runPhases = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "externalsource_hook_run_phase_seconds",
	Help:    "Time hook runs spend in each phase in the sidecar (budget, prepare, start, sandbox, exec, cleanup).",
	Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
}, []string{"phase"})

// Phases of a hook run (runPhases).
const (
	PhaseBudget  = "budget"
	PhasePrepare = "prepare"
	PhaseStart   = "start"
	PhaseSandbox = "sandbox"
	PhaseExec    = "exec"
	PhaseCleanup = "cleanup"
)

// observePhase records that a run spent from..to in phase; a zero from
// (a phase that did not happen) records nothing.
func observePhase(phase string, from, to time.Time) {
	if from.IsZero() || to.Before(from) {
		return
	}
	runPhases.WithLabelValues(phase).Observe(to.Sub(from).Seconds())
}

func init() {
	metrics.Registry.MustRegister(hookDuration, generationMismatches, runPhases)
}

// Instrumented wraps a Runner and records every run's duration and result
// by command. Commands are whitelist names, so the label set is bounded by
// the whitelist (a rejected command is recorded as "<rejected>").
func Instrumented(r Runner) Runner {
	return instrumented{r}
}

type instrumented struct{ r Runner }

var (
	_ Checker            = instrumented{}
	_ GenerationReporter = instrumented{}
)

// Check implements Checker for a wrapped Checker, recording a refusal as a
// rejected run: a hook refused up front never reaches Run. A wrapped
// runner that cannot check allows everything here.
func (i instrumented) Check(ctx context.Context, h exsv1beta1.Hook) error {
	c, ok := i.r.(Checker)
	if !ok {
		return nil
	}
	start := time.Now()
	err := c.Check(ctx, h)
	if err != nil {
		command, result := h.Command, Result(err)
		if result == "rejected" {
			command = "<rejected>"
		}
		hookDuration.WithLabelValues(command, result).Observe(time.Since(start).Seconds())
	}
	return err
}

// WhitelistGeneration implements GenerationReporter for a wrapped one.
func (i instrumented) WhitelistGeneration(ctx context.Context) (string, error) {
	if r, ok := i.r.(GenerationReporter); ok {
		return r.WhitelistGeneration(ctx)
	}
	return "", errors.New("the hook runner cannot report its whitelist generation")
}

func (i instrumented) Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error {
	start := time.Now()
	err := i.r.Run(ctx, h, stdin, stdout)
	command, result := h.Command, Result(err)
	if result == "rejected" {
		command = "<rejected>"
	}
	hookDuration.WithLabelValues(command, result).Observe(time.Since(start).Seconds())
	return err
}

// Result names the outcome of a run for metrics and events. A refusal
// while the whitelists disagree is "unavailable": it says nothing about
// the hook, only that the two sides have not both reloaded yet.
func Result(err error) string {
	var ee *ExecError
	switch {
	case err == nil:
		return "success"
	case IsGenerationError(err):
		return "unavailable"
	case IsRejected(err):
		return "rejected"
	case errors.As(err, &ee) && ee.TimedOut():
		return "timeout"
	case errors.As(err, &ee):
		return "failure"
	default:
		return "unavailable"
	}
}
