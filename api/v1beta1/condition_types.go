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

package v1beta1

// Finalizer is set on every ExternalSource so that its stored artifacts and
// its ExternalArtifact are removed before the object goes. It is Flux's
// finalizer name, so Flux tooling recognises it.
const Finalizer = "finalizers.fluxcd.io"

// Condition types, besides Flux's Ready, Reconciling and Stalled. The names
// are source-controller's, so dashboards and alerts written for Flux sources
// read ours the same way.
const (
	// FetchFailedCondition is True (negative polarity) while the generator
	// cannot fetch the data: network errors, non-2xx answers, missing Secrets.
	FetchFailedCondition string = "FetchFailed"

	// HookFailedCondition is True (negative polarity) while a pre- or
	// post-request hook fails or is refused by the whitelist.
	HookFailedCondition string = "HookFailed"

	// StorageOperationFailedCondition is True (negative polarity) while the
	// artifact storage cannot be read or written.
	StorageOperationFailedCondition string = "StorageOperationFailed"

	// ArtifactInStorageCondition is True when the artifact of
	// status.artifact exists in storage and matches its digest.
	ArtifactInStorageCondition string = "ArtifactInStorage"

	// PublishFailedCondition is True (negative polarity) while the
	// ExternalArtifact cannot be created or updated.
	PublishFailedCondition string = "PublishFailed"
)

// Condition reasons specific to ExternalSource; Flux's generic reasons
// (Succeeded, Failed, Progressing, ...) come from fluxcd/pkg/apis/meta.
const (
	// FetchFailedReason: the generator could not produce the data.
	FetchFailedReason string = "FetchFailed"

	// AuthenticationFailedReason: the credentials of spec.generator.http.auth
	// were refused: the token endpoint failed, or the upstream answered 401
	// or 403 to fresh credentials. Retried with backoff like any fetch
	// failure (a rotated Secret or a recovered endpoint fixes it).
	AuthenticationFailedReason string = "AuthenticationFailed"

	// DigestMismatchReason: the fetched bytes do not have the digest pinned
	// in spec.verify.digest; the message names both. Nothing is published,
	// the last artifact stays, and the object is Stalled until the spec
	// changes.
	DigestMismatchReason string = "DigestMismatch"

	// InvalidSpecReason: a spec field holds a value the controller cannot use;
	// the message names the field. The object is Stalled until the spec changes.
	InvalidSpecReason string = "InvalidSpec"

	// UnsupportedGeneratorReason: spec.generator.type has no implementation
	// in this controller.
	UnsupportedGeneratorReason string = "UnsupportedGenerator"

	// HooksDisabledReason: the object has hooks but this controller runs
	// without a hook executor.
	HooksDisabledReason string = "HooksDisabled"

	// GeneratorWarningReason: the fetch worked, but the generator reports a
	// condition the user must know about (e.g. TLS verification disabled).
	// It is also in Ready's message.
	GeneratorWarningReason string = "GeneratorWarning"

	// HookFailedReason: a hook exited non-zero, timed out, wrote too much,
	// or the hook executor could not be reached.
	HookFailedReason string = "HookFailed"

	// HookRejectedReason: the whitelist refused a hook before it ran; the
	// object is Stalled until its spec or the whitelist changes.
	HookRejectedReason string = "HookRejected"

	// ArchiveOperationFailedReason: the data could not be packaged.
	ArchiveOperationFailedReason string = "ArchiveOperationFailed"

	// ArtifactVerificationFailedReason: the stored artifact's bytes do not
	// match its digest; it is removed and fetched again.
	ArtifactVerificationFailedReason string = "ArtifactVerificationFailed"

	// StatOperationFailedReason: the stored artifact could not be checked.
	StatOperationFailedReason string = "StatOperationFailed"

	// WriteOperationFailedReason: the artifact could not be written.
	WriteOperationFailedReason string = "WriteOperationFailed"

	// NewArtifactReason: a new revision was stored and published.
	NewArtifactReason string = "NewArtifact"

	// GarbageCollectionFailedReason: the artifacts of a deleted object could
	// not be removed.
	GarbageCollectionFailedReason string = "GarbageCollectionFailed"

	// PublishFailedReason: the ExternalArtifact could not be written.
	PublishFailedReason string = "PublishFailed"

	// ArtifactOwnedByOtherReason: an ExternalArtifact of the same name is
	// controlled by another owner and is not adopted.
	ArtifactOwnedByOtherReason string = "ArtifactOwnedByOther"
)
