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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/iobuf"
	"github.com/externalsource/externalsource-controller/internal/metrics"
)

// reconcileFetch runs the generator and spools the data to a temporary
// file with a size bound, so the data is never held whole in memory.
//
// It decides whether the generator may skip the download: only when the
// published artifact is in storage (checked by reconcileStorage just
// before), was built from this generation, and no forced fetch is pending
// does the generator get the validators of the last response. A skipped
// fetch leaves the status as it was, so the final patch sends nothing.
// A pin or a deferred first check that already decided the upstream need
// not be asked (reconcilePin, reconcileFirstCheck) leaves nothing to do.
func (r *ExternalSourceReconciler) reconcileFetch(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified {
		return nil
	}
	gen, _ := r.Generators.Get(obj.Spec.Generator.Type)

	var prev generator.Validators
	force := meta.ShouldHandleForceRequest(obj)
	// Asking twice answers false the second time (the request is then
	// marked handled): the hooks step reads the answer from here.
	st.forced = force
	if obj.GetArtifact() != nil && obj.Generation == obj.Status.ObservedGeneration && !force {
		prev = generator.Validators{ETag: obj.Status.LastHandledETag, LastModified: obj.Status.LastModified}
	}

	timeout, timeoutLimit := r.fetchTimeout(obj)
	// One deadline for the whole fetch, post-request hooks included.
	st.deadline = time.Now().Add(timeout)
	fctx, cancel := context.WithDeadline(ctx, st.deadline)
	defer cancel()
	// The fetch is recorded once, at the end of the reconcile
	// (recordFetch): its duration is the request's and the download's.
	st.fetched = true
	start := time.Now()
	defer func() { st.fetchDuration = time.Since(start) }()
	// failed names a deadline hit as spec.timeout and says whether to
	// stall or retry.
	failed := func(err error) error {
		if errors.Is(fctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("timeout: the fetch did not complete within %s: %w", timeoutLimit, err)
		}
		return r.fetchFailed(obj, err)
	}

	res, err := gen.Generate(fctx, &generator.Request{Source: obj, Reader: r.APIReader, Previous: prev,
		PreRequest: r.preRequestHooks(obj), Secrets: st.secrets, Retry: r.retryBudget(obj)})
	if err != nil {
		if isHookError(err) {
			return r.hookFailed(obj, err)
		}
		return failed(err)
	}
	st.changeDetection = res.ChangeDetection
	st.warnings = res.Warnings
	if res.NotModified {
		if obj.GetArtifact() == nil {
			return failed(errors.New("upstream answered 'not modified' but no artifact is published"))
		}
		st.notModified = true
		st.validators = res.Validators
		st.fetchResult = metrics.ResultUnchanged
		conditions.Delete(obj, exsv1beta1.FetchFailedCondition)
		return nil
	}
	defer res.Body.Close()
	if res.Archive != "" {
		if err := severalFiles(obj, res.Archive); err != nil {
			return failed(err)
		}
	}
	if res.ContentLength > r.MaxDataSize {
		return failed(fmt.Errorf("response of %d bytes exceeds the maximum size of %d bytes (--max-response-size)",
			res.ContentLength, r.MaxDataSize))
	}

	// One file, not a directory: the steps that need one (hooks,
	// extraction) make it (reconcileState.workDir).
	f, err := os.CreateTemp(r.TempDir, "externalsource-data-")
	if err != nil {
		return failed(fmt.Errorf("spooling the response: %w", err))
	}
	st.spoolFile, st.dataFile = f.Name(), f.Name()
	// Reading one byte past the limit tells "exactly at the limit" from
	// "over it" without reading the rest. The digest is computed while
	// spooling, so the pin costs no second read.
	h := sha256.New()
	n, err := iobuf.Copy(io.MultiWriter(f, h), io.LimitReader(res.Body, r.MaxDataSize+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && fctx.Err() != nil {
		err = fctx.Err()
	}
	if err != nil {
		return failed(fmt.Errorf("reading response: %w", err))
	}
	if n > r.MaxDataSize {
		return failed(fmt.Errorf("response exceeds the maximum size of %d bytes (--max-response-size)", r.MaxDataSize))
	}
	st.inputDigest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if pin := pinnedDigest(obj); pin != "" && st.inputDigest != pin {
		return digestMismatch(obj, pin, st.inputDigest)
	}
	st.dataSize = n
	st.validators = res.Validators
	if strings.ContainsAny(res.RevisionName, "@ \t\r\n") {
		return failed(fmt.Errorf("the generator named the revision %q: it must not contain '@' or whitespace", res.RevisionName))
	}
	st.revisionName, st.record, st.archive = res.RevisionName, res.Record, res.Archive
	r.FetchMetrics.RecordResponseSize(obj.Spec.Generator.Type, n)
	conditions.Delete(obj, exsv1beta1.FetchFailedCondition)
	return nil
}

// severalFiles checks that an object whose generator returned several
// files packed in an archive (generator.Result.Archive) asks nothing that
// takes one fetched file: spec.extract (the generator's archive is
// unpacked instead), post-request hooks, spec.verify.digest.
func severalFiles(obj *exsv1beta1.ExternalSource, format string) error {
	const why = "the %s generator returned several files (spec.generator.%s selects more than one); %s takes one fetched file"
	t := obj.Spec.Generator.Type
	switch {
	case format != generator.ArchiveTar:
		return fmt.Errorf("the %s generator returned an archive of unknown format %q", t, format)
	case obj.Spec.Extract != nil:
		return generator.InvalidSpec("spec.extract", why, t, t, "extract")
	case obj.Spec.Hooks != nil && len(obj.Spec.Hooks.PostRequest) > 0:
		return generator.InvalidSpec("spec.hooks.postRequest", why, t, t, "a post-request hook")
	case obj.Spec.Verify != nil:
		return generator.InvalidSpec("spec.verify.digest", why, t, t, "a digest pin")
	}
	return nil
}

// retryBudget is the generator's permission to retry a request within a
// fetch (generator.Request.Retry). The retries within a fetch and the
// reconciler's own retries after a failed fetch spend one budget, so that a
// failing upstream is not hit by both layers multiplied:
//
//   - a retry within a fetch is allowed only while the object is not in
//     backoff already (its last reconcile did not fail): for a source that
//     keeps failing, the next attempt is the backoff's to time;
//   - an allowed retry counts as one failure of the object's exponential
//     backoff (RetryAfterBackoff), so the requeue after the fetch fails
//     anyway comes twice as late.
//
// A hard-failing upstream thus receives one request per reconcile, and
// the reconciles halve their rate up to --max-retry-delay.
func (r *ExternalSourceReconciler) retryBudget(obj *exsv1beta1.ExternalSource) func(time.Duration) bool {
	return func(time.Duration) bool {
		if r.RetryAfterBackoff == nil {
			return true
		}
		req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)}
		if r.RetryAfterBackoff.NumRequeues(req) > 0 {
			return false
		}
		r.RetryAfterBackoff.When(req)
		return true
	}
}

// digestMismatch refuses data that is not the pinned data. Retrying cannot
// fix it (the pin says exactly which bytes are wanted), so the object
// stalls until its spec changes; the step returns before packaging, so the
// last artifact stays published.
func digestMismatch(obj *exsv1beta1.ExternalSource, want, got string) error {
	err := fmt.Errorf("fetch failed: the fetched data has digest %s, spec.verify.digest pins %s", got, want)
	conditions.MarkTrue(obj, exsv1beta1.FetchFailedCondition, exsv1beta1.DigestMismatchReason, "%s", err.Error())
	return stalling(exsv1beta1.DigestMismatchReason, err)
}

// fetchFailed records a generator failure: FetchFailed=True with the
// message, and Stalled for a spec that cannot work as it is.
func (r *ExternalSourceReconciler) fetchFailed(obj *exsv1beta1.ExternalSource, err error) error {
	var inv *generator.InvalidSpecError
	if errors.As(err, &inv) {
		conditions.MarkTrue(obj, exsv1beta1.FetchFailedCondition, exsv1beta1.InvalidSpecReason, "%s", err.Error())
		return stalling(exsv1beta1.InvalidSpecReason, err)
	}
	var dm *generator.DigestMismatchError
	if errors.As(err, &dm) {
		err = fmt.Errorf("fetch failed: %w", err)
		conditions.MarkTrue(obj, exsv1beta1.FetchFailedCondition, exsv1beta1.DigestMismatchReason, "%s", err.Error())
		return stalling(exsv1beta1.DigestMismatchReason, err)
	}
	err = fmt.Errorf("fetch failed: %w", err)
	// Refused credentials have their own reason, so that alerts can tell
	// them from an upstream that is down; they back off the same way.
	reason := exsv1beta1.FetchFailedReason
	if generator.IsAuthError(err) {
		reason = exsv1beta1.AuthenticationFailedReason
	}
	conditions.MarkTrue(obj, exsv1beta1.FetchFailedCondition, reason, "%s", err.Error())
	if wait, ok := generator.RetryAfter(err); ok {
		return waiting(reason, err, wait)
	}
	return transient(reason, err)
}

// fetchTimeout is how long one fetch, hooks included, may take:
// spec.timeout, capped by the controller's MaxTimeout (exsv1beta1.MaxTimeout
// when unset) for objects stored before the API server enforced the
// maximum or when an admin wants a lower one. limit names what set it,
// for the timeout's error message.
func (r *ExternalSourceReconciler) fetchTimeout(obj *exsv1beta1.ExternalSource) (timeout time.Duration, limit string) {
	timeout = obj.GetTimeout()
	maxTimeout := r.MaxTimeout
	if maxTimeout <= 0 {
		maxTimeout = exsv1beta1.MaxTimeout
	}
	if timeout > maxTimeout {
		return maxTimeout, fmt.Sprintf("--max-fetch-timeout (%s, which caps spec.timeout %s)", maxTimeout, timeout)
	}
	return timeout, fmt.Sprintf("spec.timeout (%s)", timeout)
}
