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
	"errors"
)

// stallingError is a failure that retrying cannot fix: an invalid spec, a
// generator type without implementation, hooks on a controller without a
// hook executor. The object is marked Stalled with the reason and is not
// requeued until it changes.
type stallingError struct {
	reason string
	err    error
}

func (e *stallingError) Error() string { return e.err.Error() }
func (e *stallingError) Unwrap() error { return e.err }

// transientError is a failure worth retrying with backoff: network,
// upstream, storage, API errors. The condition it sets is already on the
// object; the reason goes into Ready and the Warning event.
type transientError struct {
	reason string
	err    error
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func stalling(reason string, err error) error  { return &stallingError{reason: reason, err: err} }
func transient(reason string, err error) error { return &transientError{reason: reason, err: err} }

// reasonOf returns the reason carried by err, or fallback.
func reasonOf(err error, fallback string) string {
	var s *stallingError
	if errors.As(err, &s) {
		return s.reason
	}
	var t *transientError
	if errors.As(err, &t) {
		return t.reason
	}
	return fallback
}
