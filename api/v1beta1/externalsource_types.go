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

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
)

// ExternalSourceKind is the kind of ExternalSource objects.
const ExternalSourceKind = "ExternalSource"

// Generator types. Each value must also be listed in the Enum marker of
// GeneratorSpec.Type and have an implementation registered with the
// controller; a test holds the three together.
const (
	// GeneratorTypeHTTP fetches the data with one HTTP request.
	GeneratorTypeHTTP = "http"
	// GeneratorTypeRelease publishes assets of a GitHub, GitLab or
	// Gitea/Forgejo release.
	GeneratorTypeRelease = "release"
)

// GeneratorTypes lists every generator type the CRD accepts.
var GeneratorTypes = []string{GeneratorTypeHTTP, GeneratorTypeRelease}

// Hook retry policies.
const (
	// HookRetryPolicyFail fails the reconciliation when the hook fails.
	HookRetryPolicyFail = "fail"
	// HookRetryPolicyRetry runs the hook again, up to maxRetries times.
	HookRetryPolicyRetry = "retry"
	// HookRetryPolicyIgnore passes the hook's input on unchanged when it fails.
	HookRetryPolicyIgnore = "ignore"
)

// DefaultTimeout bounds a whole fetch, hooks included, when spec.timeout is unset.
const DefaultTimeout = 60 * time.Second

// MaxTimeout is the largest spec.timeout the API server admits (the CEL rule
// on Timeout says the same). A fetch holds one of the controller's workers
// for as long as it runs, so an unbounded timeout lets one object hold a
// worker indefinitely; ten minutes is far beyond any API answer worth
// waiting for, and the controller's --max-fetch-timeout can lower it.
const MaxTimeout = 10 * time.Minute

// ExternalSourceSpec defines where the data comes from, how often it is
// fetched and where it lands in the artifact.
// +kubebuilder:validation:XValidation:rule="has(self.extract) || (has(self.destinationPath) && self.destinationPath.split('/').exists(s, size(s) > 0 && s != '.'))",message="spec.destinationPath must name a file (it may be empty only with spec.extract)",fieldPath=".destinationPath"
type ExternalSourceSpec struct {
	// Interval at which the data is fetched. At least one minute.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="must be at least 1m"
	// +required
	Interval metav1.Duration `json:"interval"`

	// Timeout bounds a whole fetch, hooks included. Defaults to 60s, at
	// most 10m; the controller may cap it lower (--max-fetch-timeout).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be greater than 0s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('10m')",message="must be at most 10m"
	// +kubebuilder:default="60s"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Suspend tells the controller to stop fetching; the published artifact stays.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DestinationPath is the path of the data inside the artifact: relative,
	// without '..' segments. It is cleaned ('a/./b' is 'a/b'). Without
	// extract it names a file and is required; with extract it names the
	// directory the archive's files go to, and "" (or absent) is the
	// artifact root.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="must be a relative path"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="must not contain '..' segments"
	// +optional
	DestinationPath string `json:"destinationPath,omitempty"`

	// Generator says how the data is produced.
	// +required
	Generator GeneratorSpec `json:"generator"`

	// Hooks are whitelisted commands run before the request and on the data.
	// +optional
	Hooks *Hooks `json:"hooks,omitempty"`

	// Extract says the fetched data (after the post-request hooks) is an
	// archive whose files are published, instead of one file.
	// +optional
	Extract *ExtractSpec `json:"extract,omitempty"`

	// Verify pins the fetched data. A pinned source is not fetched again
	// while its spec is unchanged and its artifact is in storage.
	// +optional
	Verify *VerifySpec `json:"verify,omitempty"`
}

// ExtractSpec selects the archive format and the part of it to publish.
type ExtractSpec struct {
	// Format of the archive: auto (sniffs the first bytes: gzip, zip or
	// the ustar magic; never the URL), tar, tar.gz or zip.
	// +kubebuilder:validation:Enum=auto;tar;tar.gz;zip
	// +kubebuilder:default=auto
	// +optional
	Format string `json:"format,omitempty"`

	// SubPath selects one directory of the archive (trailing '/'
	// optional); its content is placed at destinationPath. A subPath
	// missing from the archive fails the fetch, naming it.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="must be a relative path"
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="must not contain '..' segments"
	// +optional
	SubPath string `json:"subPath,omitempty"`
}

// VerifySpec pins what the upstream must answer.
type VerifySpec struct {
	// Digest is the sha256 of the fetched bytes (before the post-request
	// hooks), as 'sha256:<64 lowercase hex>'. A mismatch publishes nothing,
	// keeps the last artifact and stalls (DigestMismatch) until the spec
	// changes: retrying cannot make other bytes match.
	// +kubebuilder:validation:Pattern="^sha256:[a-f0-9]{64}$"
	// +required
	Digest string `json:"digest"`
}

// GeneratorSpec selects a generator type and holds its configuration; each
// type has its own field named after it.
// +kubebuilder:validation:XValidation:rule="self.type != 'http' || has(self.http)",message="http must be set when type is http"
// +kubebuilder:validation:XValidation:rule="self.type != 'release' || has(self.release)",message="release must be set when type is release"
type GeneratorSpec struct {
	// Type of the generator.
	// +kubebuilder:validation:Enum=http;release
	// +required
	Type string `json:"type"`

	// HTTP configures the http generator.
	// +optional
	HTTP *HTTPGeneratorSpec `json:"http,omitempty"`

	// Release configures the release generator.
	// +optional
	Release *ReleaseGeneratorSpec `json:"release,omitempty"`
}

// Release providers.
const (
	// ReleaseProviderGitHub is GitHub and GitHub Enterprise (REST API v3).
	ReleaseProviderGitHub = "github"
	// ReleaseProviderGitLab is gitlab.com and self-hosted GitLab (API v4).
	ReleaseProviderGitLab = "gitlab"
	// ReleaseProviderGitea is Gitea and Forgejo (API v1), e.g. Codeberg.
	ReleaseProviderGitea = "gitea"
)

// Release checksum policies.
const (
	// ReleaseChecksumsAuto verifies every selected asset: against the
	// provider's asset digest when it gives one, else against a checksums
	// asset of the release.
	ReleaseChecksumsAuto = "auto"
	// ReleaseChecksumsNone verifies nothing.
	ReleaseChecksumsNone = "none"
)

// ReleaseGeneratorSpec selects a release of a repository and some of its
// assets.
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || size(self.secretRef.name) > 0",message="secretRef.name must not be empty"
type ReleaseGeneratorSpec struct {
	// Provider is the API the release list is read from: github, gitlab,
	// or gitea (Gitea and Forgejo share one API).
	// +kubebuilder:validation:Enum=github;gitlab;gitea
	// +required
	Provider string `json:"provider"`

	// URL is the base of the provider's API, http or https, e.g.
	// https://github.example.com/api/v3 for GitHub Enterprise. Empty is
	// the provider's public API (api.github.com, gitlab.com/api/v4,
	// gitea.com/api/v1).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="must be an http or https URL"
	// +optional
	URL string `json:"url,omitempty"`

	// Repository is owner/name, or for GitLab the project's path
	// (group/subgroup/name).
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern="^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$"
	// +required
	Repository string `json:"repository"`

	// Version selects the release.
	// +required
	Version ReleaseVersion `json:"version"`

	// Prereleases lets semver and latest select a prerelease.
	// +optional
	Prereleases bool `json:"prereleases,omitempty"`

	// Assets are glob patterns (path.Match) of the release's asset names;
	// each must match exactly one asset.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +required
	Assets []string `json:"assets"`

	// Checksums says how the downloaded assets are verified: auto (the
	// provider's asset digest when given, else a checksums asset of the
	// release) or none.
	// +kubebuilder:validation:Enum=auto;none
	// +kubebuilder:default=auto
	// +optional
	Checksums string `json:"checksums,omitempty"`

	// SecretRef names a Secret in the same namespace whose token key
	// authenticates to the provider's API.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`
}

// ReleaseVersion is exactly one way of selecting a release.
// +kubebuilder:validation:XValidation:rule="(has(self.semver) ? 1 : 0) + (has(self.tag) ? 1 : 0) + (has(self.latest) && self.latest ? 1 : 0) == 1",message="exactly one of semver, tag or latest must be set"
type ReleaseVersion struct {
	// SemVer is a range (Masterminds/semver, as Flux writes them); the
	// highest matching release is selected.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	SemVer string `json:"semver,omitempty"`

	// Tag is the exact tag of the release.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Tag string `json:"tag,omitempty"`

	// Latest selects the most recently published non-draft release.
	// +optional
	Latest bool `json:"latest,omitempty"`
}

// HTTPGeneratorSpec configures a request to an HTTP API.
// +kubebuilder:validation:XValidation:rule="!has(self.body) || self.method != 'GET'",message="body is not allowed with method GET"
// +kubebuilder:validation:XValidation:rule="!has(self.headersSecretRef) || size(self.headersSecretRef.name) > 0",message="headersSecretRef.name must not be empty"
// +kubebuilder:validation:XValidation:rule="!has(self.certSecretRef) || size(self.certSecretRef.name) > 0",message="certSecretRef.name must not be empty"
// +kubebuilder:validation:XValidation:rule="!has(self.proxySecretRef) || size(self.proxySecretRef.name) > 0",message="proxySecretRef.name must not be empty"
type HTTPGeneratorSpec struct {
	// URL of the API, http or https.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="must be an http or https URL"
	// +required
	URL string `json:"url"`

	// Method of the request.
	// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH
	// +kubebuilder:default=GET
	// +optional
	Method string `json:"method,omitempty"`

	// Body of the request, for methods other than GET.
	// +optional
	Body string `json:"body,omitempty"`

	// HeadersSecretRef names a Secret in the same namespace whose every key
	// becomes a request header.
	// +optional
	HeadersSecretRef *meta.LocalObjectReference `json:"headersSecretRef,omitempty"`

	// CertSecretRef names a Secret in the same namespace with a CA bundle
	// (ca.crt) and/or a client certificate (tls.crt and tls.key).
	// +optional
	CertSecretRef *meta.LocalObjectReference `json:"certSecretRef,omitempty"`

	// InsecureSkipVerify disables TLS certificate verification. Never the
	// default; reported in the Ready message and a Warning event.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// ProxySecretRef names a Secret in the same namespace with the proxy to
	// use: address (http, https or socks5 URL) and optionally username and
	// password. Without it, HTTPS_PROXY, HTTP_PROXY and NO_PROXY of the
	// controller apply.
	// +optional
	ProxySecretRef *meta.LocalObjectReference `json:"proxySecretRef,omitempty"`

	// Auth authenticates the request with credentials from a Secret: basic
	// auth, a bearer token, or an OAuth2 client credentials grant. It sets
	// the Authorization header, so the Secret of headersSecretRef must not
	// have an Authorization key as well.
	// +optional
	Auth *HTTPAuth `json:"auth,omitempty"`
}

// HTTPAuth is exactly one authentication method.
// +kubebuilder:validation:XValidation:rule="(has(self.basic) ? 1 : 0) + (has(self.bearer) ? 1 : 0) + (has(self.oauth2) ? 1 : 0) == 1",message="exactly one of basic, bearer or oauth2 must be set"
type HTTPAuth struct {
	// Basic sends the username and password keys of the Secret as HTTP
	// basic authentication.
	// +optional
	Basic *SecretAuth `json:"basic,omitempty"`

	// Bearer sends the token key of the Secret as a bearer token.
	// +optional
	Bearer *SecretAuth `json:"bearer,omitempty"`

	// OAuth2 obtains a bearer token with the client credentials grant.
	// +optional
	OAuth2 *OAuth2Auth `json:"oauth2,omitempty"`
}

// SecretAuth names the Secret holding the credentials of a method.
type SecretAuth struct {
	// SecretRef names a Secret in the same namespace.
	// +kubebuilder:validation:XValidation:rule="size(self.name) > 0",message="secretRef.name must not be empty"
	// +required
	SecretRef *meta.LocalObjectReference `json:"secretRef"`
}

// OAuth2Auth is an OAuth2 client credentials grant (RFC 6749, 4.4). The
// token request uses the TLS settings, proxy and URL policy of the request
// itself.
type OAuth2Auth struct {
	// TokenURL is the token endpoint, http or https.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="must be an http or https URL"
	// +required
	TokenURL string `json:"tokenURL"`

	// Scopes requested.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=256
	// +optional
	Scopes []string `json:"scopes,omitempty"`

	// EndpointParams are additional form parameters of the token request,
	// e.g. audience.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	EndpointParams map[string][]string `json:"endpointParams,omitempty"`

	// SecretRef names a Secret in the same namespace with the keys
	// clientID and clientSecret.
	// +kubebuilder:validation:XValidation:rule="size(self.name) > 0",message="secretRef.name must not be empty"
	// +required
	SecretRef *meta.LocalObjectReference `json:"secretRef"`
}

// Hooks are the commands run around the request, in order.
type Hooks struct {
	// PreRequest hooks read the request as JSON on stdin and write the
	// request to send on stdout.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PreRequest []Hook `json:"preRequest,omitempty"`

	// PostRequest hooks read the data on stdin and write new data on stdout.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	PostRequest []Hook `json:"postRequest,omitempty"`
}

// Hook is one whitelisted command.
type Hook struct {
	// Name identifies the hook in conditions, events and metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	// +required
	Name string `json:"name"`

	// Command is the name of a whitelist entry (not a path).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Command string `json:"command"`

	// Args are passed as argv, without a shell; each must match the whitelist.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Args []string `json:"args,omitempty"`

	// Env are static variables for the command; their names must be allowed
	// by the whitelist.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Env []HookEnvVar `json:"env,omitempty"`

	// Timeout of one run, capped by the whitelist's maxTimeout.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// RetryPolicy says what a failure does: fail the reconciliation, retry
	// up to maxRetries times, or ignore it and pass the input on.
	// +kubebuilder:validation:Enum=fail;retry;ignore
	// +kubebuilder:default=fail
	// +optional
	RetryPolicy string `json:"retryPolicy,omitempty"`

	// MaxRetries bounds the retries of the retry policy. Defaults to 3.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	// +optional
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// HookEnvVar is an environment variable set for a hook.
type HookEnvVar struct {
	// Name of the variable.
	// +kubebuilder:validation:Pattern="^[A-Za-z_][A-Za-z0-9_]*$"
	// +kubebuilder:validation:MaxLength=128
	// +required
	Name string `json:"name"`

	// Value of the variable.
	// +optional
	Value string `json:"value,omitempty"`
}

// ExternalSourceStatus is the observed state of an ExternalSource.
type ExternalSourceStatus struct {
	// ObservedGeneration is the last generation fully handled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions of the object: Ready, Reconciling, Stalled and the failure
	// conditions of each step.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Artifact is the artifact last stored and published.
	// +optional
	Artifact *meta.Artifact `json:"artifact,omitempty"`

	// LastHandledETag is the ETag of the upstream response the artifact was
	// built from, used for conditional requests. For a release list served
	// without an ETag (Gitea, Forgejo) it is the selected release's
	// fingerprint, release-fingerprint:<hex>, never sent upstream.
	// +optional
	LastHandledETag string `json:"lastHandledETag,omitempty"`

	// LastModified is the Last-Modified header of the upstream response the
	// artifact was built from, sent as If-Modified-Since.
	// +optional
	LastModified string `json:"lastModified,omitempty"`

	// LastHandledDigest is the pinned digest (spec.verify.digest) the
	// artifact was built from. While it equals the spec's, the generation is
	// handled and the artifact is in storage, nothing is fetched: the digest
	// is the validator.
	// +optional
	LastHandledDigest string `json:"lastHandledDigest,omitempty"`

	// LastHandledInputDigest is the sha256 of the fetched data (before the
	// post-request hooks) the artifact was built from, for a source with
	// post-request hooks. When a fetch returns the same bytes for the same
	// generation, with the artifact in storage and no forced reconcile,
	// the hooks are not run and the artifact stays: their output is part
	// of the revision only when their input changed.
	// +optional
	LastHandledInputDigest string `json:"lastHandledInputDigest,omitempty"`

	// ChangeDetection says how the last successful fetch learned whether the
	// upstream changed: HEAD (a HEAD request returned the recorded ETag; no
	// data was downloaded), ConditionalGET (a GET with If-None-Match or
	// If-Modified-Since), GET (a GET without validators; the content digest
	// decides), the method of a non-GET request (POST, PUT, PATCH), or
	// ReleaseList (a release list without ETag was read; the selected
	// release's fingerprint decides whether its assets are downloaded).
	// +optional
	ChangeDetection string `json:"changeDetection,omitempty"`

	// Release is the release the artifact was built from, for the
	// release generator.
	// +optional
	Release *ReleaseStatus `json:"release,omitempty"`

	meta.ReconcileRequestStatus `json:",inline"`

	meta.ForceRequestStatus `json:",inline"`
}

// ReleaseStatus records the release an artifact was built from.
type ReleaseStatus struct {
	// Tag of the release.
	Tag string `json:"tag"`

	// URL of the release's page.
	// +optional
	URL string `json:"url,omitempty"`

	// PublishedAt is when the release was published.
	// +optional
	PublishedAt *metav1.Time `json:"publishedAt,omitempty"`
}

// GetConditions returns the status conditions of the object.
func (in *ExternalSource) GetConditions() []metav1.Condition {
	return in.Status.Conditions
}

// SetConditions sets the status conditions on the object.
func (in *ExternalSource) SetConditions(conditions []metav1.Condition) {
	in.Status.Conditions = conditions
}

// GetRequeueAfter returns the interval at which the object is reconciled.
func (in *ExternalSource) GetRequeueAfter() time.Duration {
	return in.Spec.Interval.Duration
}

// GetTimeout returns spec.timeout, or DefaultTimeout when unset.
func (in *ExternalSource) GetTimeout() time.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return in.Spec.Timeout.Duration
	}
	return DefaultTimeout
}

// GetArtifact returns the published artifact, or nil.
func (in *ExternalSource) GetArtifact() *meta.Artifact {
	return in.Status.Artifact
}

// GetLastHandledReconcileRequest returns the last handled
// reconcile.fluxcd.io/requestedAt value.
func (in *ExternalSource) GetLastHandledReconcileRequest() string {
	return in.Status.GetLastHandledReconcileRequest()
}

// GetLastHandledForceRequestStatus returns a pointer to the last handled
// reconcile.fluxcd.io/forceAt value, for meta.ShouldHandleForceRequest.
func (in *ExternalSource) GetLastHandledForceRequestStatus() *string {
	return &in.Status.LastHandledForceAt
}

// HasHooks reports whether any hook is configured.
func (in *ExternalSource) HasHooks() bool {
	return in.Spec.Hooks != nil && (len(in.Spec.Hooks.PreRequest) > 0 || len(in.Spec.Hooks.PostRequest) > 0)
}

// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=exs
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.artifact.revision"

// ExternalSource fetches data from an external API on an interval and
// publishes it as a Flux ExternalArtifact.
type ExternalSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ExternalSourceSpec `json:"spec,omitempty"`
	// +kubebuilder:default={"observedGeneration":-1}
	Status ExternalSourceStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ExternalSourceList is a list of ExternalSource objects.
type ExternalSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExternalSource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ExternalSource{}, &ExternalSourceList{})
}
