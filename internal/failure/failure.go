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

// Package failure holds the kinds of reconcile failure: whether and when a
// failure is retried. The reconciler acts on the kind in one place
// (summarize), so a step only says what went wrong and how bad it is;
// every kind becomes one Warning event and one error log line there.
//
// The kinds follow source-controller's: Stalling (retrying cannot help: the
// spec must change), Waiting (the upstream named when to come back) and
// Generic (retry with exponential backoff).
package failure

import (
	"errors"
	"time"
)

// Stalling is a failure that retrying cannot fix: an invalid spec, a hook the
// whitelist refuses, a generator type without implementation. The object is
// Stalled with Reason until its spec (or the controller's configuration)
// changes.
type Stalling struct {
	Err    error
	Reason string
}

func (e *Stalling) Error() string { return e.Err.Error() }
func (e *Stalling) Unwrap() error { return e.Err }

// NewStalling returns a Stalling failure.
func NewStalling(err error, reason string) *Stalling {
	return &Stalling{Err: err, Reason: reason}
}

// Waiting is a failure whose retry time is known: the upstream answered with
// Retry-After. The object is requeued after RequeueAfter (the reconciler
// keeps its exponential backoff as a floor).
type Waiting struct {
	Err          error
	Reason       string
	RequeueAfter time.Duration
}

func (e *Waiting) Error() string { return e.Err.Error() }
func (e *Waiting) Unwrap() error { return e.Err }

// NewWaiting returns a Waiting failure.
func NewWaiting(err error, reason string, after time.Duration) *Waiting {
	return &Waiting{Err: err, Reason: reason, RequeueAfter: after}
}

// Generic is a failure worth retrying with exponential backoff: network,
// upstream, storage and API errors.
type Generic struct {
	Err    error
	Reason string
}

func (e *Generic) Error() string { return e.Err.Error() }
func (e *Generic) Unwrap() error { return e.Err }

// NewGeneric returns a Generic failure.
func NewGeneric(err error, reason string) *Generic {
	return &Generic{Err: err, Reason: reason}
}

// Kind is what a failure is, as the reconciler acts on it.
type Kind int

const (
	// KindGeneric is retried with backoff.
	KindGeneric Kind = iota
	// KindWaiting is retried after the time the upstream named.
	KindWaiting
	// KindStalling is not retried.
	KindStalling
)

// Describe returns the kind and reason of err; an error of no kind is
// Generic with fallbackReason.
func Describe(err error, fallbackReason string) (Kind, string) {
	var s *Stalling
	if errors.As(err, &s) {
		return KindStalling, s.Reason
	}
	var w *Waiting
	if errors.As(err, &w) {
		return KindWaiting, w.Reason
	}
	var g *Generic
	if errors.As(err, &g) {
		return KindGeneric, g.Reason
	}
	return KindGeneric, fallbackReason
}

// RequeueAfter returns the wait a Waiting failure carries.
func RequeueAfter(err error) (time.Duration, bool) {
	var w *Waiting
	if errors.As(err, &w) {
		return w.RequeueAfter, true
	}
	return 0, false
}
