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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// NoGeneration is the generation of no whitelist at all.
const NoGeneration = "none"

// Generation identifies what a whitelist enforces: a hash of its parsed
// entries, not of the file's bytes, so that the controller and the hook
// executor, which parse the same ConfigMap each on its own, compute the
// same value exactly when they enforce the same rules (a comment or a
// reordering of keys changes nothing). It is what the two compare to tell
// a refusal that stands from one that only says they have not both
// reloaded yet.
func (wl *Whitelist) Generation() string {
	if wl == nil {
		return NoGeneration
	}
	if wl.generation != "" {
		return wl.generation
	}
	return wl.computeGeneration()
}

func (wl *Whitelist) computeGeneration() string {
	// Every field an entry has (and any the whitelist gains) is exported
	// with a JSON name: it is what the admin wrote, parsed.
	b, err := json.Marshal(wl.Commands)
	if err != nil {
		// Not reachable with the entry types: no channel, func or cycle.
		return "unknown"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Generation is the generation of the whitelist in force.
func (s *Store) Generation() string { return s.Get().Generation() }

// ExecutorRejectedError is a refusal by the hook executor's own check of
// its whitelist, with the generation of the whitelist it enforced. It
// unwraps to the RejectedError: a caller that does not compare generations
// sees a plain refusal.
type ExecutorRejectedError struct {
	Rejected   *RejectedError
	Generation string
}

func (e *ExecutorRejectedError) Error() string { return e.Rejected.Error() }
func (e *ExecutorRejectedError) Unwrap() error { return e.Rejected }

// GenerationError says a hook was refused while the controller and the
// hook executor enforce different whitelists: one of them has not reloaded
// the changed file yet. The refusal is not final, so the object must not
// stall on it (nothing would requeue it when the late one reloads): the
// reconciler retries soon instead. It deliberately does not unwrap to the
// refusal, so IsRejected is false.
type GenerationError struct {
	Hook       string
	Controller string
	Executor   string
	// Refusal is what the side that refused said.
	Refusal error
}

func (e *GenerationError) Error() string {
	return fmt.Sprintf("hook %q: hook whitelist generations differ (controller %s, hook executor %s): retrying; %v",
		e.Hook, e.Controller, e.Executor, e.Refusal)
}

// IsGenerationError reports whether err is (or wraps) a GenerationError.
func IsGenerationError(err error) bool {
	_, ok := asGenerationError(err)
	return ok
}

// FieldError locates a refusal in the hook: Field is relative to the hook
// (".command", ".args[2]", ".env[0]"), for the reconciler to name the
// exact spec field. It unwraps to the refusal.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// RejectedField names the part of h that wl refuses, relative to the hook,
// or "" when wl allows h. It asks wl about each part on its own (the
// command alone, then each argument, then each environment variable), so
// it needs nothing of the whitelist but Check.
func RejectedField(wl *Whitelist, h exsv1beta1.Hook) string {
	if _, err := wl.Check(h); err == nil {
		return ""
	}
	base := exsv1beta1.Hook{Name: h.Name, Command: h.Command}
	if _, err := wl.Check(base); err != nil {
		return ".command"
	}
	for i, a := range h.Args {
		probe := base
		probe.Args = []string{a}
		if _, err := wl.Check(probe); err != nil {
			return fmt.Sprintf(".args[%d]", i)
		}
	}
	for i, e := range h.Env {
		probe := base
		probe.Env = []exsv1beta1.HookEnvVar{e}
		if _, err := wl.Check(probe); err != nil {
			return fmt.Sprintf(".env[%d]", i)
		}
	}
	return ""
}
