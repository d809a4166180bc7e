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

// Package generator defines how an ExternalSource's data is produced. The
// reconciler knows only the Generator interface and the Registry; each
// generator type is its own package, registered by one line in
// internal/generator/builtin.
package generator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// Generator produces the data of an ExternalSource. Implementations are
// long-lived and shared by every object of their type (they hold transports
// and caches), so Generate must be safe for concurrent use.
type Generator interface {
	Generate(ctx context.Context, req *Request) (*Result, error)
}

// Request is what a generator is given for one fetch.
type Request struct {
	// Source is the object being reconciled; a generator reads its own
	// field of spec.generator. It must not modify it.
	Source *exsv1beta1.ExternalSource

	// Reader reads objects (Secrets) from the API server, uncached. A
	// generator reads only from Source's namespace.
	Reader client.Reader

	// Previous holds the validators of the response the published artifact
	// was built from. The reconciler sets it only when that artifact is in
	// storage, was built from the current generation, and no forced fetch
	// (reconcile.fluxcd.io/forceAt) is pending: a generator may then answer
	// NotModified without downloading anything. Empty means a full fetch is
	// wanted.
	Previous Validators

	// PreRequest, when set, runs the object's pre-request hooks: a
	// generator that sends requests calls it once with the request it is
	// about to send and sends what it returns instead. The hook contract's
	// request form is HookRequest.
	PreRequest func(ctx context.Context, req *HookRequest) error

	// Secrets collects every value the generator reads from a Secret, the
	// moment it is read and before anything can fail on it: the reconciler
	// redacts them from every condition, event, log line and error. Nil
	// collects nothing (tests of a generator alone).
	Secrets *redact.Set

	// Retry, when set, is asked before a generator retries a request
	// within the fetch, with the wait before that retry; false says no.
	// The reconciler counts every retry it allows against the object's
	// exponential backoff, so that the retries within a fetch and the
	// reconciles after a failed fetch spend one budget. Nil allows them
	// (tests of a generator alone).
	Retry func(wait time.Duration) bool
}

// HookRequest is a request as pre-request hooks read and write it (JSON on
// stdin and stdout): {"url","method","headers","body"}.
type HookRequest struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Validators are the cache validators of a response, used for conditional
// requests.
type Validators struct {
	ETag         string
	LastModified string
}

// IsZero reports whether no validator is known.
func (v Validators) IsZero() bool { return v.ETag == "" && v.LastModified == "" }

// How a generator learned whether the upstream changed; recorded in
// status.changeDetection. Generators of other kinds may use their own
// short words.
const (
	// ChangeDetectionHEAD: a HEAD request returned the recorded ETag;
	// nothing was downloaded.
	ChangeDetectionHEAD = "HEAD"
	// ChangeDetectionConditionalGET: a GET with If-None-Match and/or
	// If-Modified-Since.
	ChangeDetectionConditionalGET = "ConditionalGET"
	// ChangeDetectionGET: a GET without validators; the content digest
	// decides whether the revision changed.
	ChangeDetectionGET = "GET"
)

// Result is the outcome of a fetch.
type Result struct {
	// Body streams the data. Nil when NotModified. The caller closes it.
	Body io.ReadCloser

	// ContentLength is the announced length of Body when known (> 0), so
	// that the reconciler can refuse a body over its size limit before
	// reading it. Zero or negative means unknown.
	ContentLength int64

	// NotModified says the upstream confirmed that the data is the one the
	// published artifact was built from.
	NotModified bool

	// Validators of this response, recorded for the next conditional request.
	Validators Validators

	// ChangeDetection says how the change was detected (see the
	// ChangeDetection constants); recorded in status.changeDetection.
	ChangeDetection string

	// RevisionName names the version of the data in the artifact's
	// revision, "<name>@sha256:<hex>" (e.g. a release tag); empty is
	// "latest". It must not contain whitespace or '@'.
	RevisionName string

	// Record, when set, records in the status what the data was built
	// from (e.g. status.release); the reconciler calls it when it records
	// the data as handled. A NotModified result leaves the status as it is.
	Record func(status *exsv1beta1.ExternalSourceStatus)

	// Archive, when set ("tar", ArchiveTar), says Body is an archive of
	// several files the generator packed (e.g. several release assets):
	// the reconciler unpacks it, as it unpacks spec.extract's archive, and
	// publishes the files under spec.destinationPath. spec.extract,
	// post-request hooks and spec.verify.digest take one fetched file, so
	// the reconciler refuses an object that sets them (InvalidSpec naming
	// the field); a generator need not check them.
	Archive string

	// Warnings are conditions the user must know about although the fetch
	// worked (e.g. TLS verification disabled). The reconciler adds them to
	// Ready's message and emits a Warning event when one appears.
	Warnings []string
}

// ArchiveTar is Result.Archive for a tar stream.
const ArchiveTar = "tar"

// InvalidSpecError says that the object's spec cannot be used as it is. The
// reconciler marks the object Stalled until the spec changes, instead of
// retrying. Field names the offending field, e.g. spec.generator.http.url.
type InvalidSpecError struct {
	Field string
	Err   error
}

func (e *InvalidSpecError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *InvalidSpecError) Unwrap() error { return e.Err }

// InvalidSpec returns an InvalidSpecError for field.
func InvalidSpec(field, format string, args ...any) error {
	return &InvalidSpecError{Field: field, Err: fmt.Errorf(format, args...)}
}

// RetryAfterError says that the upstream asked not to be contacted again
// before After (the HTTP Retry-After of the last answer). The reconciler
// requeues no sooner, so that a rate-limited API is not called back
// sooner than it asked.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the wait an error carries (RetryAfterError), if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return ra.After, true
	}
	return 0, false
}

// Registry maps generator types to their implementations.
type Registry struct {
	mu   sync.RWMutex
	gens map[string]Generator
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{gens: map[string]Generator{}}
}

// Register adds the implementation of a type; registering a type twice is
// a programming error and fails.
func (r *Registry) Register(typ string, g Generator) error {
	if typ == "" || g == nil {
		return errors.New("generator type and implementation are required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.gens[typ]; ok {
		return fmt.Errorf("generator type %q registered twice", typ)
	}
	r.gens[typ] = g
	return nil
}

// Get returns the implementation of a type.
func (r *Registry) Get(typ string) (Generator, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g, ok := r.gens[typ]
	return g, ok
}

// Types returns the registered types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.gens))
	for t := range r.gens {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// CheckImplements fails unless every type in types has an implementation.
// The controller calls it at start-up with the types the CRD accepts, so a
// type that the API server admits can never reach a controller that cannot
// run it.
func (r *Registry) CheckImplements(types []string) error {
	have := r.Types()
	var missing []string
	for _, t := range types {
		if !slices.Contains(have, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("generator types accepted by the API have no implementation: %v", missing)
	}
	return nil
}

// AuthError says that the upstream refused the request's credentials, or
// that they could not be obtained (an OAuth2 token endpoint failed). The
// reconciler reports it as FetchFailed with reason AuthenticationFailed and
// retries with backoff like any fetch failure. Its message names the token
// endpoint or the upstream, never a credential.
type AuthError struct {
	Err error
}

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// IsAuthError reports whether err is, or wraps, an AuthError.
func IsAuthError(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae)
}

// DigestMismatchError says that fetched bytes are not the ones the upstream
// declared (an asset digest or a checksums file). Retrying cannot make them
// match, so the reconciler reports DigestMismatch, keeps the last artifact
// and stalls until the spec changes.
type DigestMismatchError struct {
	Err error
}

func (e *DigestMismatchError) Error() string { return e.Err.Error() }
func (e *DigestMismatchError) Unwrap() error { return e.Err }

// SecretReferencer is implemented by generators whose spec references
// Secrets: SecretRefs returns their names, in the object's namespace. The
// reconciler indexes them so that a change of one of those Secrets
// (--watch-configs-label-selector) reconciles the object at once; a
// Secret a generator reads but does not report here is only read again at
// the next interval.
type SecretReferencer interface {
	SecretRefs(obj *exsv1beta1.ExternalSource) []string
}

// SecretRefs returns the names of the Secrets obj's generator references:
// none for a type without an implementation or without references.
func (r *Registry) SecretRefs(obj *exsv1beta1.ExternalSource) []string {
	g, ok := r.Get(obj.Spec.Generator.Type)
	if !ok {
		return nil
	}
	sr, ok := g.(SecretReferencer)
	if !ok {
		return nil
	}
	return sr.SecretRefs(obj)
}

// Forgetter is implemented by generators that keep state per object (e.g.
// cached OAuth2 tokens): the reconciler calls Forget when the object is
// deleted, so that nothing of it outlives it.
type Forgetter interface {
	Forget(namespace, name string)
}
