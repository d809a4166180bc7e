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
	"time"

	"github.com/externalsource/externalsource-controller/internal/failure"
)

// stalling returns a failure that retrying cannot fix (internal/failure):
// an invalid spec, a generator type without implementation, hooks on a
// controller without a hook executor. The object is Stalled with reason
// until it changes.
func stalling(reason string, err error) error { return failure.NewStalling(err, reason) }

// transient returns a failure worth retrying with backoff: network,
// upstream, storage, API errors. The step has set its condition already;
// the reason goes into Ready and the Warning event.
func transient(reason string, err error) error { return failure.NewGeneric(err, reason) }

// waiting returns a failure whose retry time the upstream named
// (Retry-After): the object is requeued then, with its backoff as floor.
// The steps speak of failures only through stalling, transient and
// waiting.
func waiting(reason string, err error, after time.Duration) error {
	return failure.NewWaiting(err, reason, after)
}
