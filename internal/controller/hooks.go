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
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
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
				w := &iobuf.CappedWriter{W: &out, Max: limit}
				err := r.HookRunner.Run(hook.WithNamespace(ctx, obj.Namespace), h, bytes.NewReader(data), w)
				if w.Exceeded() {
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

// hasPostRequestHooks says obj has post-request hooks.
func hasPostRequestHooks(obj *exsv1beta1.ExternalSource) bool {
	return obj.Spec.Hooks != nil && len(obj.Spec.Hooks.PostRequest) > 0
}

// inputUnchanged says the fetched data is the input the published
// artifact was built from (status.lastHandledInputDigest), for the same
// generation (the same hooks), with the artifact in storage and no forced
// reconcile: the conditions under which a fetch may skip the download
// (reconcileFetch), applied to the data when the upstream gave no
// validator, or gave a new one for the same bytes.
func inputUnchanged(obj *exsv1beta1.ExternalSource, st *reconcileState) bool {
	return st.inputDigest != "" && st.inputDigest == obj.Status.LastHandledInputDigest &&
		obj.GetArtifact() != nil && st.lost == nil &&
		obj.Generation == obj.Status.ObservedGeneration && !st.forced
}
