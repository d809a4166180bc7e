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
	"github.com/fluxcd/pkg/runtime/patch"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/hook"
)

// defaultMaxRetries is a hook's maxRetries under the retry policy when unset.
const defaultMaxRetries = 3

// hookStepError marks an error that came from a hook (or the hook
// executor), so that the fetch step reports it as HookFailed, not
// FetchFailed, even when it surfaces through the generator.
type hookStepError struct{ err error }

func (e *hookStepError) Error() string { return e.err.Error() }
func (e *hookStepError) Unwrap() error { return e.err }

// preRequestHooks returns the generator's PreRequest callback: the request
// as JSON through each pre-request hook in order.
func (r *ExternalSourceReconciler) preRequestHooks(obj *v1.ExternalSource) func(context.Context, *generator.HookRequest) error {
	if obj.Spec.Hooks == nil || len(obj.Spec.Hooks.PreRequest) == 0 {
		return nil
	}
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
				return r.HookRunner.Run(ctx, h, bytes.NewReader(data), &out)
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
// the data streams through and is never held whole in memory.
func (r *ExternalSourceReconciler) reconcileHooks(ctx context.Context, _ *patch.SerialPatcher,
	obj *v1.ExternalSource, st *reconcileState) error {
	if st.notModified || obj.Spec.Hooks == nil || len(obj.Spec.Hooks.PostRequest) == 0 {
		return nil
	}
	// The hooks share the fetch's deadline: spec.timeout bounds both.
	hctx, cancel := context.WithDeadline(ctx, st.deadline)
	defer cancel()
	for i, h := range obj.Spec.Hooks.PostRequest {
		// Every failure names the hook's field, as for the rest of the
		// spec.
		field := fmt.Sprintf("spec.hooks.postRequest[%d]", i)
		in := st.dataFile
		outPath := filepath.Join(st.tmpDir, fmt.Sprintf("hook-%d", i))
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
			err = r.HookRunner.Run(hctx, h, src, dst)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return r.hookFailed(obj, fmt.Errorf("%s: %w", field, err))
		}
		if ignored {
			continue
		}
		fi, err := os.Stat(outPath)
		if err != nil {
			return r.hookFailed(obj, fmt.Errorf("%s: %w", field, err))
		}
		if fi.Size() > r.MaxDataSize {
			return r.hookFailed(obj, fmt.Errorf("%s: hook %q: output of %d bytes exceeds the maximum size of %d bytes (--max-response-size)",
				field, h.Name, fi.Size(), r.MaxDataSize))
		}
		st.dataFile, st.dataSize = outPath, fi.Size()
	}
	conditions.Delete(obj, v1.HookFailedCondition)
	return nil
}

// runWithPolicy runs a hook under its retry policy: fail (once), retry
// (up to maxRetries more times with exponential backoff, within ctx), or
// ignore (a failure is logged and reported, and the input passes on).
// A hook refused by the whitelist is never retried nor ignored: the spec
// must change.
func (r *ExternalSourceReconciler) runWithPolicy(ctx context.Context, obj *v1.ExternalSource, h v1.Hook, run func() error) (ignored bool, err error) {
	attempts := 1
	if h.RetryPolicy == v1.HookRetryPolicyRetry {
		attempts += defaultMaxRetries
		if h.MaxRetries != nil {
			attempts = 1 + int(*h.MaxRetries)
		}
	}
	wait := 200 * time.Millisecond
	for i := 0; i < attempts; i++ {
		if err = run(); err == nil || hook.IsRejected(err) {
			return false, err
		}
		if i == attempts-1 {
			break
		}
		ctrl.LoggerFrom(ctx).V(1).Info("hook failed, retrying", "hook", h.Name, "attempt", i+1, "error", err.Error())
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("%w (retries stopped by spec.timeout)", err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	if h.RetryPolicy == v1.HookRetryPolicyIgnore && ctx.Err() == nil {
		ctrl.LoggerFrom(ctx).Info("hook failed, ignored by its retry policy", "hook", h.Name, "error", err.Error())
		r.Eventf(obj, nil, corev1.EventTypeWarning, v1.HookFailedReason, "Reconcile",
			"%s (ignored: retryPolicy is ignore, its input is passed on)", err.Error())
		return true, nil
	}
	return false, err
}

// hookFailed records a hook failure: HookFailed=True naming the hook, its
// exit code and the end of its stderr; Stalled when the whitelist refused
// it (retrying cannot help until the spec or the whitelist changes).
func (r *ExternalSourceReconciler) hookFailed(obj *v1.ExternalSource, err error) error {
	if hook.IsRejected(err) {
		conditions.MarkTrue(obj, v1.HookFailedCondition, v1.HookRejectedReason, "%s", err.Error())
		return stalling(v1.HookRejectedReason, err)
	}
	conditions.MarkTrue(obj, v1.HookFailedCondition, v1.HookFailedReason, "%s", err.Error())
	return transient(v1.HookFailedReason, err)
}

// isHookError reports whether a fetch error came from a pre-request hook.
func isHookError(err error) bool {
	var h *hookStepError
	return errors.As(err, &h)
}
