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
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/hook"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
	"github.com/externalsource/externalsource-controller/internal/metrics"
)

// reconcileHooks runs the post-request hooks on the fetched data, in order,
// each reading the previous one's output from a file and writing the next:
// the data streams through and is never held whole in memory. A hook's
// input is removed as soon as the hook has consumed it, so a reconcile
// holds at most two files in the spool at once (the running hook's input
// and output), and their sum is capped by --max-spool-bytes-per-reconcile.
func (r *ExternalSourceReconciler) reconcileHooks(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified || !hasPostRequestHooks(obj) {
		return nil
	}
	if inputUnchanged(obj, st) {
		// The published artifact was built from these very bytes by
		// these very hooks: running them again could only produce a
		// revision the upstream did not make (a hook that reads the
		// clock), at the cost of a sandboxed exec per hook per interval.
		st.notModified = true
		st.fetchResult = metrics.ResultUnchanged
		conditions.Delete(obj, exsv1beta1.HookFailedCondition)
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
			w := &iobuf.CappedWriter{W: dst, Max: limit}
			err = r.HookRunner.Run(hook.WithNamespace(hctx, obj.Namespace), h, src, w)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
			written = w.Written()
			if w.Exceeded() {
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
