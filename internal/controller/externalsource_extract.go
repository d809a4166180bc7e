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
	"github.com/externalsource/externalsource-controller/internal/extract"
)

// reconcileExtract unpacks the fetched data (after the post-request hooks)
// when spec.extract is set, and selects spec.extract.subPath, so that
// reconcileArtifact packs a directory instead of one file; it unpacks the
// same way the archive of several files a generator packed
// (generator.Result.Archive).
//
// A refused or unreadable archive is FetchFailed (reason FetchFailed) and
// retried, not Stalled: the fault is in what the upstream served, and the
// upstream may serve something else on the next attempt; nothing is
// published and the last artifact stays.
func (r *ExternalSourceReconciler) reconcileExtract(_ context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified {
		return nil
	}
	var format, subPath string
	switch {
	case obj.Spec.Extract != nil:
		format, subPath = obj.Spec.Extract.Format, obj.Spec.Extract.SubPath
	case st.archive != "":
		// Several files the generator packed (reconcileFetch refused
		// spec.extract beside them).
		format = st.archive
	default:
		return nil
	}
	work, err := st.workDir(r.TempDir)
	if err != nil {
		return r.extractFailed(obj, fmt.Errorf("spooling the extracted files: %w", err))
	}
	dir := filepath.Join(work, "extracted")
	if err := extract.File(st.dataFile, dir, format, r.extractLimits(st)); err != nil {
		return r.extractFailed(obj, err)
	}
	// The archive is not needed any more: free its share of the spool
	// before the artifact is packed next to the extracted files.
	_ = os.Remove(st.dataFile)
	sel, err := extract.Select(dir, subPath)
	if err != nil {
		return r.extractFailed(obj, err)
	}
	st.extractDir = sel
	return nil
}

// extractLimits are --max-extract-files and --max-extract-size, the size
// bounded further by what the fetched archive leaves of the reconcile's
// spool budget (--max-spool-bytes-per-reconcile), so that concurrent
// extractions stay within the spool volume's sizeLimit.
func (r *ExternalSourceReconciler) extractLimits(st *reconcileState) extract.Limits {
	l := r.ExtractLimits
	if l.MaxSize <= 0 {
		l.MaxSize = extract.DefaultMaxSize
	}
	budget := max(r.HookLimits.spoolBytes(r.MaxDataSize)-st.dataSize, 1)
	l.MaxSize = min(l.MaxSize, budget)
	return l
}

// extractFailed records a refused archive as a fetch failure.
func (r *ExternalSourceReconciler) extractFailed(obj *exsv1beta1.ExternalSource, err error) error {
	err = fmt.Errorf("extracting archive: %w", err)
	conditions.MarkTrue(obj, exsv1beta1.FetchFailedCondition, exsv1beta1.FetchFailedReason, "%s", err.Error())
	return transient(exsv1beta1.FetchFailedReason, err)
}
