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

// Package failure holds the kinds of reconcile failure and the policy each
// carries: whether it is retried, whether it becomes an event (and of which
// type), and whether it is logged. The reconciler applies the policy in one
// place, so a step only says what went wrong and how bad it is.
//
// The kinds follow source-controller's: Stalling (retrying cannot help: the
// spec must change), Waiting (the upstream named when to come back) and
// Generic (retry with exponential backoff).
package failure

import (
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Config is what the reconciler does with a failure.
type Config struct {
	// Event is the type of the event emitted for it (corev1.EventTypeWarning
	// or corev1.EventTypeNormal); empty emits none. Warning events reach
	// notification-controller too.
	Event string
	// Log says the failure is logged at error level, once, by the
	// reconciler. Failures are never returned to controller-runtime (which
	// would log them a second time), except a failed status patch.
	Log bool
}

// DefaultConfig is the policy of every kind unless a step says otherwise:
// a Warning event and one error log line.
var DefaultConfig = Config{Event: corev1.EventTypeWarning, Log: true}

// Stalling is a failure that retrying cannot fix: an invalid spec, a hook the
// whitelist refuses, a generator type without implementation. The object is
// Stalled with Reason until its spec (or the controller's configuration)
// changes.
type Stalling struct {
	Err    error
	Reason string
	Config Config
}

func (e *Stalling) Error() string { return e.Err.Error() }
func (e *Stalling) Unwrap() error { return e.Err }

// NewStalling returns a Stalling failure with the default policy.
func NewStalling(err error, reason string) *Stalling {
	return &Stalling{Err: err, Reason: reason, Config: DefaultConfig}
}

// Waiting is a failure whose retry time is known: the upstream answered with
// Retry-After. The object is requeued after RequeueAfter (the reconciler
// keeps its exponential backoff as a floor).
type Waiting struct {
	Err          error
	Reason       string
	RequeueAfter time.Duration
	Config       Config
}

func (e *Waiting) Error() string { return e.Err.Error() }
func (e *Waiting) Unwrap() error { return e.Err }

// NewWaiting returns a Waiting failure with the default policy.
func NewWaiting(err error, reason string, after time.Duration) *Waiting {
	return &Waiting{Err: err, Reason: reason, RequeueAfter: after, Config: DefaultConfig}
}

// Generic is a failure worth retrying with exponential backoff: network,
// upstream, storage and API errors.
type Generic struct {
	Err    error
	Reason string
	Config Config
}

func (e *Generic) Error() string { return e.Err.Error() }
func (e *Generic) Unwrap() error { return e.Err }

// NewGeneric returns a Generic failure with the default policy.
func NewGeneric(err error, reason string) *Generic {
	return &Generic{Err: err, Reason: reason, Config: DefaultConfig}
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

// Describe returns the kind, reason and policy of err; an error of no
// kind is Generic with fallbackReason and the default policy.
func Describe(err error, fallbackReason string) (Kind, string, Config) {
	var s *Stalling
	if errors.As(err, &s) {
		return KindStalling, s.Reason, s.Config
	}
	var w *Waiting
	if errors.As(err, &w) {
		return KindWaiting, w.Reason, w.Config
	}
	var g *Generic
	if errors.As(err, &g) {
		return KindGeneric, g.Reason, g.Config
	}
	return KindGeneric, fallbackReason, DefaultConfig
}

// RequeueAfter returns the wait a Waiting failure carries.
func RequeueAfter(err error) (time.Duration, bool) {
	var w *Waiting
	if errors.As(err, &w) {
		return w.RequeueAfter, true
	}
	return 0, false
}
