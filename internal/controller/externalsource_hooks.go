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

package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// defaultMaxRetries is a hook's maxRetries under the retry policy when unset.
const defaultMaxRetries = 3

// hookStepError marks an error that came from a hook (or the hook
// executor), so that the fetch step reports it as HookFailed, not
// FetchFailed, even when it surfaces through the generator.
type hookStepError struct{ err error }

func (e *hookStepError) Error() string { return e.err.Error() }
func (e *hookStepError) Unwrap() error { return e.err }

// checkHooks checks every hook of obj, pre- and post-request, against the
// whitelist before anything runs or any request is sent: a refused hook
// late in the chain must not let the earlier hooks run, nor the upstream
// be called (a POST with side effects), only to stall afterwards. A
// refusal that stands stalls the object (HookRejected) naming the exact
// spec field; a refusal while the controller and the hook executor enforce
// different whitelist generations is retried soon instead. The runner
// checks each hook again when it runs (the whitelist may change between).
func (r *ExternalSourceReconciler) checkHooks(ctx context.Context, obj *exsv1beta1.ExternalSource) error {
	if obj.Spec.Hooks == nil || r.HookRunner == nil {
		return nil
	}
	c, ok := r.HookRunner.(hook.Checker)
	if !ok {
		return nil
	}
	lists := []struct {
		field string
		hooks []exsv1beta1.Hook
	}{
		{"spec.hooks.preRequest", obj.Spec.Hooks.PreRequest},
		{"spec.hooks.postRequest", obj.Spec.Hooks.PostRequest},
	}
	for _, l := range lists {
		for i, h := range l.hooks {
			if err := c.Check(ctx, h); err != nil {
				field := fmt.Sprintf("%s[%d]", l.field, i)
				var fe *hook.FieldError
				if errors.As(err, &fe) {
					field += fe.Field
				}
				return r.hookFailed(obj, fmt.Errorf("%s: %w", field, err))
			}
		}
	}
	return nil
}

// preRequestHooks returns the generator's PreRequest callback: the request
// as JSON through each pre-request hook in order. Each hook's output is
// read into a buffer that stops at --max-pre-request-output: a hook that
// prints more fails without the controller holding more than the cap.
func (r *ExternalSourceReconciler) preRequestHooks(obj *exsv1beta1.ExternalSource) func(context.Context, *generator.HookRequest) error {
	if obj.Spec.Hooks == nil || len(obj.Spec.Hooks.PreRequest) == 0 {
		return nil
	}
	limit := r.HookLimits.preRequestOutput()
	return func(ctx context.Context, req *generator.HookRequest) error {
		data, err := json.Marshal(req)
		if err != nil {
			return err
		}
		for i, h := range obj.Spec.Hooks.PreRequest {
			field := fmt.Sprintf("spec.hooks.preRequest[%d]", i)
			var out bytes.Buffer
			ignored, err := r.runWithPolicy(ctx, obj, h, func() error {
				out.Reset()
				w := &cappedWriter{w: &out, max: limit}
				err := r.HookRunner.Run(ctx, h, bytes.NewReader(data), w)
				if w.exceeded {
					return &hook.ExecError{Hook: h.Name, ExitCode: -1,
						Reason: fmt.Sprintf("output exceeds the limit of %d bytes (--max-pre-request-output)", limit)}
				}
				return err
			})
			if err != nil {
				return &hookStepError{fmt.Errorf("%s: %w", field, err)}
			}
			if ignored {
				continue
			}
			var next generator.HookRequest
			if err := json.Unmarshal(out.Bytes(), &next); err != nil {
				return &hookStepError{fmt.Errorf("%s: hook %q: its output is not a request as JSON ({\"url\",\"method\",\"headers\",\"body\"}): %w", field, h.Name, err)}
			}
			if next.URL == "" {
				return &hookStepError{fmt.Errorf("%s: hook %q: its output has no url", field, h.Name)}
			}
			data = out.Bytes()
			*req = next
		}
		return nil
	}
}

// reconcileHooks runs the post-request hooks on the fetched data, in order,
// each reading the previous one's output from a file and writing the next:
// the data streams through and is never held whole in memory. A hook's
// input is removed as soon as the hook has consumed it, so a reconcile
// holds at most two files in the spool at once (the running hook's input
// and output), and their sum is capped by --max-spool-bytes-per-reconcile.
func (r *ExternalSourceReconciler) reconcileHooks(ctx context.Context, _ *objectPatcher,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified || obj.Spec.Hooks == nil || len(obj.Spec.Hooks.PostRequest) == 0 {
		return nil
	}
	// The hooks share the fetch's deadline: spec.timeout bounds both.
	hctx, cancel := context.WithDeadline(ctx, st.deadline)
	defer cancel()
	spoolMax := r.HookLimits.spoolBytes(r.MaxDataSize)
	for i, h := range obj.Spec.Hooks.PostRequest {
		// Every failure names the hook's field, as for the rest of the
		// spec.
		field := fmt.Sprintf("spec.hooks.postRequest[%d]", i)
		in, inSize := st.dataFile, st.dataSize
		if inSize >= spoolMax {
			return r.hookFailed(obj, fmt.Errorf("%s: hook %q: its input of %d bytes leaves nothing of the reconcile's spool budget of %d bytes (--max-spool-bytes-per-reconcile)",
				field, h.Name, inSize, spoolMax))
		}
		// The output may take what the input leaves of the spool budget,
		// and never more than one fetch may produce.
		limit, flagName := spoolMax-inSize, "--max-spool-bytes-per-reconcile"
		if r.MaxDataSize <= limit {
			limit, flagName = r.MaxDataSize, "--max-response-size"
		}
		dir, err := st.workDir(r.TempDir)
		if err != nil {
			return r.hookFailed(obj, fmt.Errorf("%s: hook %q: spooling its output: %w", field, h.Name, err))
		}
		outPath := filepath.Join(dir, fmt.Sprintf("hook-%d", i))
		var written int64
		ignored, err := r.runWithPolicy(hctx, obj, h, func() error {
			src, err := os.Open(in)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := os.Create(outPath)
			if err != nil {
				return err
			}
			w := &cappedWriter{w: dst, max: limit}
			err = r.HookRunner.Run(hctx, h, src, w)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
			written = w.n
			if w.exceeded {
				return &hook.ExecError{Hook: h.Name, ExitCode: -1, Reason: spoolLimitReason(flagName, limit, spoolMax, inSize)}
			}
			return err
		})
		if err != nil || ignored {
			// A failed or ignored hook's output is nobody's input.
			_ = os.Remove(outPath)
		}
		if err != nil {
			return r.hookFailed(obj, fmt.Errorf("%s: %w", field, err))
		}
		if ignored {
			continue
		}
		// The input is consumed: nothing reads it again (a later hook
		// reads this one's output, the archive the last output).
		if err := os.Remove(in); err != nil {
			return r.hookFailed(obj, fmt.Errorf("%s: removing its consumed input: %w", field, err))
		}
		st.dataFile, st.dataSize = outPath, written
	}
	conditions.Delete(obj, exsv1beta1.HookFailedCondition)
	return nil
}

// spoolLimitReason says which limit a post-request hook's output went
// over: the per-fetch size, or what its input left of the spool budget.
func spoolLimitReason(flagName string, limit, spoolMax, inSize int64) string {
	if flagName == "--max-response-size" {
		return fmt.Sprintf("output exceeds the maximum size of %d bytes (--max-response-size)", limit)
	}
	return fmt.Sprintf("output exceeds the %d bytes its input of %d bytes leaves of the reconcile's spool budget of %d bytes (--max-spool-bytes-per-reconcile)",
		limit, inSize, spoolMax)
}

// runWithPolicy runs a hook under its retry policy: fail (once), retry
// (up to maxRetries more times with exponential backoff, within ctx), or
// ignore (a failure is logged and reported, and the input passes on).
// A hook refused by the whitelist is never retried nor ignored: the spec
// must change. Nor is a refusal while the whitelists of the controller and
// the hook executor disagree: the reconcile fails and is retried whole.
func (r *ExternalSourceReconciler) runWithPolicy(ctx context.Context, obj *exsv1beta1.ExternalSource, h exsv1beta1.Hook, run func() error) (ignored bool, err error) {
	attempts := 1
	if h.RetryPolicy == exsv1beta1.HookRetryPolicyRetry {
		attempts += defaultMaxRetries
		if h.MaxRetries != nil {
			attempts = 1 + int(*h.MaxRetries)
		}
	}
	// Hook stderr may echo a header value from a Secret: whatever this
	// writes for others to read goes through the reconcile's redaction.
	secrets := redact.FromContext(ctx)
	wait := 200 * time.Millisecond
	for i := 0; i < attempts; i++ {
		if err = run(); err == nil || hook.IsRejected(err) || hook.IsGenerationError(err) {
			return false, err
		}
		if i == attempts-1 {
			break
		}
		ctrl.LoggerFrom(ctx).V(1).Info("hook failed, retrying", "hook", h.Name, "attempt", i+1, "error", secrets.String(err.Error()))
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w (retries stopped by spec.timeout)", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	if h.RetryPolicy == exsv1beta1.HookRetryPolicyIgnore && ctx.Err() == nil {
		msg := secrets.String(err.Error())
		ctrl.LoggerFrom(ctx).Info("hook failed, ignored by its retry policy", "hook", h.Name, "error", msg)
		r.Eventf(obj, nil, corev1.EventTypeWarning, exsv1beta1.HookFailedReason, "Reconcile",
			"%s (ignored: retryPolicy is ignore, its input is passed on)", msg)
		return true, nil
	}
	return false, err
}

// hookFailed records a hook failure: HookFailed=True naming the hook, its
// exit code and the end of its stderr; Stalled when the whitelist refused
// it (retrying cannot help until the spec or the whitelist changes).
//
// A refusal while the controller and the hook executor enforce different
// whitelist generations is HookRejected but not Stalled: it is retried
// with backoff (the first retries come within milliseconds), so no object
// stays stalled on a whitelist one side has not reloaded yet.
func (r *ExternalSourceReconciler) hookFailed(obj *exsv1beta1.ExternalSource, err error) error {
	if hook.IsRejected(err) {
		conditions.MarkTrue(obj, exsv1beta1.HookFailedCondition, exsv1beta1.HookRejectedReason, "%s", err.Error())
		return stalling(exsv1beta1.HookRejectedReason, err)
	}
	if hook.IsGenerationError(err) {
		conditions.MarkTrue(obj, exsv1beta1.HookFailedCondition, exsv1beta1.HookRejectedReason, "%s", err.Error())
		return transient(exsv1beta1.HookRejectedReason, err)
	}
	conditions.MarkTrue(obj, exsv1beta1.HookFailedCondition, exsv1beta1.HookFailedReason, "%s", err.Error())
	return transient(exsv1beta1.HookFailedReason, err)
}

// isHookError reports whether a fetch error came from a pre-request hook.
func isHookError(err error) bool {
	var h *hookStepError
	return errors.As(err, &h)
}
