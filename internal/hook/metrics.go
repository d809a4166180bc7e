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

func init() {
	metrics.Registry.MustRegister(hookDuration, generationMismatches)
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
