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
	"os"
	"time"
	"unicode/utf8"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/metrics"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// reconcileState carries what one step hands to the next.
type reconcileState struct {
	// secrets are the Secret values read by this reconcile: every message
	// that leaves it goes through them (internal/redact).
	secrets *redact.Set
	// spoolFile is the response as spooled by the fetch; removed at the
	// end, if a step did not remove it first.
	spoolFile string
	// tmpDir holds the hooks' outputs and the extracted files: made by
	// the first step that needs it (workDir), removed at the end.
	tmpDir string
	// dataFile is the data to publish (the spooled response, then each
	// hook's output) and dataSize its length.
	dataFile string
	dataSize int64
	// deadline ends the fetch and the hooks (spec.timeout from the start).
	deadline time.Time
	// validators of the response the data came from.
	validators generator.Validators
	// extractDir is the directory of files to publish when spec.extract
	// is set (its subPath already selected); "" otherwise.
	extractDir string
	// notModified says the upstream confirmed the published data, or the
	// fetched data was the input of the published artifact
	// (inputUnchanged): nothing is packaged, stored or published.
	notModified bool
	// inputDigest is the sha256 of the fetched data, before the hooks.
	inputDigest string
	// forced says the fetch handled a force request
	// (reconcile.fluxcd.io/forceAt): the hooks run whatever their input.
	forced bool
	// changeDetection says how the generator detected the change.
	changeDetection string
	// revisionName, record and archive are the generator's
	// (generator.Result): archive is the format of a data file that packs
	// several files, unpacked by reconcileExtract.
	revisionName string
	record       func(*exsv1beta1.ExternalSourceStatus)
	archive      string
	// warnings of the generator, for Ready's message.
	warnings []string
	// fetched says this reconcile asked the upstream (or the pin answered
	// for it): it records one fetch result, at its end (recordFetch).
	fetched bool
	// fetchResult is the fetch's result (metrics.Result*) once a step
	// knows it: unchanged when the upstream or the digest confirmed the
	// published data, changed when a new revision was stored. A fetched
	// reconcile that fails before either is an error, whichever step
	// failed (the request, a hook, the extraction, the store).
	fetchResult string
	// fetchDuration is how long the fetch took (request and download).
	fetchDuration time.Duration
	// newArtifact says this reconcile stored a new revision.
	newArtifact bool
	// progressPatched says Reconciling was already written in this
	// reconcile, so a later step does not write it again.
	progressPatched bool
	// prevReadyMessage is Ready's message before this reconcile, to emit a
	// warning event only when a warning appears.
	prevReadyMessage string
	// start is when the reconcile began.
	start time.Time
	// requeueAfter is when the object is reconciled again; summarize
	// alone sets it.
	requeueAfter time.Duration
	// firstInProcess says this is the object's first reconcile in this
	// process (firstChecks).
	firstInProcess bool
	// artifactRequested says the ExternalArtifact carried a new reconcile
	// request (externalsource_requests.go): the upstream is checked now.
	artifactRequested bool
	// lost is the published artifact storage had lost, refetched by this
	// reconcile (externalsource_storage.go).
	lost *lostArtifact
	// leaveShare gives the namespace's share slot back (fairshare.go)
	// once the steps its tenant controls are over; idempotent.
	leaveShare func()
	// checkAfter, when set, is when the upstream check this reconcile
	// deferred is due (firstChecks): Ready is kept as it was, and the
	// object is requeued then instead of after its interval.
	checkAfter time.Duration
}

// maxMessageLength bounds a condition or event message: what an upstream
// or a hook controls (status texts, stderr) must not fill the object; the
// CRD allows 32768 bytes per condition message.
const maxMessageLength = 4096

// message is the text of a failure as it may leave the reconcile:
// redacted, then bounded.
func (st *reconcileState) message(err error) string {
	return truncate(st.secrets.String(err.Error()), maxMessageLength)
}

// truncate cuts s to at most n bytes on a rune boundary, saying so.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " ... (truncated)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func (st *reconcileState) cleanup() {
	if st.spoolFile != "" {
		_ = os.Remove(st.spoolFile)
	}
	if st.tmpDir != "" {
		_ = os.RemoveAll(st.tmpDir)
	}
}

// workDir returns the reconcile's temporary directory under base ("" is
// the system's), made on first use: most reconciles publish a response
// as it came and never need one, and a directory made and removed at
// every new revision cost more system calls than the rest of the
// pipeline.
func (st *reconcileState) workDir(base string) (string, error) {
	if st.tmpDir == "" {
		dir, err := os.MkdirTemp(base, "externalsource-")
		if err != nil {
			return "", err
		}
		st.tmpDir = dir
	}
	return st.tmpDir, nil
}

// lostArtifact is the published artifact that storage no longer had when
// this reconcile began: a memory store after a restart, a wiped volume or
// bucket, a corrupt file removed. The data is fetched again in full; when
// it packs to the same bytes, they are stored again and the artifact, its
// time and its ArtifactInStorage condition are kept as published. At
// thousands of sources on a memory store, announcing each as new cost two
// writes and two NewArtifact events per source at every restart, and every
// consumer saw a new artifact time for the same revision.
type lostArtifact struct {
	artifact  *meta.Artifact
	inStorage *metav1.Condition
}

// restoredBy says the artifact just stored is the lost one: same digest
// at the same path.
func (l *lostArtifact) restoredBy(stored meta.Artifact) bool {
	return l != nil && l.artifact.Digest == stored.Digest && l.artifact.Path == stored.Path
}

// pinnedDigest is spec.verify.digest, or "" for a source without a pin.
func pinnedDigest(obj *exsv1beta1.ExternalSource) string {
	if obj.Spec.Verify == nil {
		return ""
	}
	return obj.Spec.Verify.Digest
}

// recordFetchResult updates the conditional-request record and how the
// change was detected, once the fetch is known to be handled.
func recordFetchResult(obj *exsv1beta1.ExternalSource, st *reconcileState) {
	// The upstream chose these: one echoing a Secret value in them is not
	// recorded (the next request is then unconditional).
	obj.Status.LastHandledETag = st.secrets.Unless(st.validators.ETag)
	obj.Status.LastModified = st.secrets.Unless(st.validators.LastModified)
	obj.Status.ChangeDetection = st.changeDetection
	if st.record != nil {
		st.record(&obj.Status)
	}
	// The pin the data was verified against (a skipped fetch keeps it).
	obj.Status.LastHandledDigest = pinnedDigest(obj)
	// The post-request hooks' input, when they ran on fetched data (a
	// skipped fetch, or hooks skipped for the same input, keep it).
	if st.inputDigest != "" && !st.notModified {
		obj.Status.LastHandledInputDigest = ""
		if hasPostRequestHooks(obj) {
			obj.Status.LastHandledInputDigest = st.inputDigest
		}
	}
}

// recordFetch records the reconcile's fetch once, from its state: the
// result a step set, or an error when a step after the request failed
// before the result was known. A reconcile that did not fetch (a
// deferred first check, a stalled spec) records nothing.
func (r *ExternalSourceReconciler) recordFetch(obj *exsv1beta1.ExternalSource, st *reconcileState) {
	if !st.fetched || r.FetchMetrics == nil {
		return
	}
	result := st.fetchResult
	if result == "" {
		result = metrics.ResultError
	}
	r.FetchMetrics.RecordFetch(obj.Spec.Generator.Type, result, st.fetchDuration)
}
