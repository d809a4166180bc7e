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

// Package hook runs the whitelisted commands of an ExternalSource's hooks.
// The reconciler talks to a Runner; the runner that executes commands lives
// in the hook-executor sidecar, reached over a Unix socket.
package hook

import (
	"context"
	"errors"
	"io"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// Runner runs one hook: stdin is streamed to the command and its stdout is
// written to stdout. Implementations check the whitelist before running.
type Runner interface {
	Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error
}

// Checker is a Runner that can check a hook against the whitelist it
// enforces without running anything. The reconciler checks every hook of
// an object before the first one runs or any request is sent, so that a
// refused hook late in the chain does not let the earlier ones run, nor
// the upstream be called (a POST with side effects), for nothing.
//
// Check returns nil, a *RejectedError wrapped in a *FieldError (a refusal
// that stands: the object stalls until its spec or the whitelist changes)
// or a *GenerationError (the controller and the hook executor enforce
// different whitelists: retry soon). A runner with no whitelist of its own
// returns nil: whatever runs it checks at run time.
type Checker interface {
	Check(ctx context.Context, h exsv1beta1.Hook) error
}

// GenerationReporter is a Runner that can say which whitelist generation
// the hook executor behind it enforces (the Client asks the sidecar).
type GenerationReporter interface {
	WhitelistGeneration(ctx context.Context) (string, error)
}

// Checked returns a Runner that checks every hook against the whitelist
// before handing it to next. The controller checks, so that a refused hook
// stalls its object without a round trip; the sidecar checks again.
//
// A refusal by either side stands only when both enforce the same
// whitelist generation: when next can report the sidecar's generation
// (GenerationReporter) and it differs from the controller's, the refusal
// is a *GenerationError, which the reconciler retries instead of stalling.
// A sidecar that cannot be asked leaves the controller's refusal standing:
// the controller's own reloads requeue the objects with hooks.
func Checked(whitelist func() *Whitelist, next Runner) Runner {
	return checked{whitelist: whitelist, next: next}
}

type checked struct {
	whitelist func() *Whitelist
	next      Runner
}

var (
	_ Checker            = checked{}
	_ GenerationReporter = checked{}
)

// Check implements Checker.
func (c checked) Check(ctx context.Context, h exsv1beta1.Hook) error {
	_, err := c.check(ctx, h)
	return err
}

// check checks h and returns the generation of the whitelist that allowed
// it, for Run to compare with the sidecar's should the sidecar refuse.
func (c checked) check(ctx context.Context, h exsv1beta1.Hook) (string, error) {
	wl := c.whitelist()
	gen := wl.Generation()
	_, err := wl.Check(h)
	if err == nil {
		return gen, nil
	}
	if theirs, ok := c.executorGeneration(ctx); ok && theirs != gen {
		return gen, generationError(h.Name, gen, theirs, err)
	}
	return gen, &FieldError{Field: RejectedField(wl, h), Err: err}
}

// Run implements Runner.
func (c checked) Run(ctx context.Context, h exsv1beta1.Hook, stdin io.Reader, stdout io.Writer) error {
	gen, err := c.check(ctx, h)
	if err != nil {
		return err
	}
	err = c.next.Run(ctx, h, stdin, stdout)
	var er *ExecutorRejectedError
	if errors.As(err, &er) && er.Generation != gen {
		return generationError(h.Name, gen, er.Generation, err)
	}
	return err
}

// WhitelistGeneration implements GenerationReporter by asking next.
func (c checked) WhitelistGeneration(ctx context.Context) (string, error) {
	if r, ok := c.next.(GenerationReporter); ok {
		return r.WhitelistGeneration(ctx)
	}
	return "", errors.New("the hook runner cannot report its whitelist generation")
}

// executorGeneration asks the sidecar for its generation; ok is false when
// it cannot be asked (no reporter, or unreachable).
func (c checked) executorGeneration(ctx context.Context) (string, bool) {
	r, ok := c.next.(GenerationReporter)
	if !ok {
		return "", false
	}
	gen, err := r.WhitelistGeneration(ctx)
	return gen, err == nil
}

func generationError(hook, controller, executor string, refusal error) error {
	generationMismatches.Inc()
	return &GenerationError{Hook: hook, Controller: controller, Executor: executor, Refusal: refusal}
}

func asGenerationError(err error) (*GenerationError, bool) {
	var g *GenerationError
	ok := errors.As(err, &g)
	return g, ok
}
