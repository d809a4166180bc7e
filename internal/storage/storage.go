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

// Package storage defines where artifacts live. The reconciler and the
// artifact server know only the Storage interface; the backends (memory,
// filesystem, s3) live in their own packages and are chosen at start-up.
package storage

import (
	"context"
	"errors"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"
)

// ErrNotFound is returned (wrapped) when an artifact does not exist.
var ErrNotFound = errors.New("artifact not found")

// ErrDigestMismatch is returned (wrapped) by Verify when the stored bytes do
// not match the artifact's digest.
var ErrDigestMismatch = errors.New("artifact digest mismatch")

// Storage stores artifact bytes under the artifact's path. Its currency is
// Flux's meta.Artifact, so what it returns can be published as is.
type Storage interface {
	// NewArtifactFor returns the record of an artifact of obj, with its path
	// and URL set, not yet stored.
	NewArtifactFor(kind string, obj metav1.Object, revision, fileName string) meta.Artifact

	// Put stores everything read from r at artifact.Path, so that a reader
	// sees either the previous object or the whole new one, and fills the
	// artifact's Digest, Size, LastUpdateTime and URL. When artifact.Digest
	// is already set it is the expected digest: Put fails with
	// ErrDigestMismatch, and stores nothing, when the bytes differ.
	Put(ctx context.Context, artifact *meta.Artifact, r io.Reader) error

	// Open returns the bytes stored at path and their size, or ErrNotFound.
	Open(ctx context.Context, path string) (io.ReadCloser, int64, error)

	// Verify checks that the artifact is stored and matches its digest; it
	// returns ErrNotFound or ErrDigestMismatch (wrapped) when it does not.
	Verify(ctx context.Context, artifact meta.Artifact) error

	// Remove deletes one artifact.
	Remove(ctx context.Context, artifact meta.Artifact) error

	// RemoveAll deletes every artifact stored beside this one (all the
	// artifacts of its object) and returns how many went.
	RemoveAll(ctx context.Context, artifact meta.Artifact) (int, error)

	// GarbageCollect deletes the artifacts stored beside current, except
	// current itself and the newest ones that the policy keeps, and returns
	// the deleted paths.
	GarbageCollect(ctx context.Context, current meta.Artifact, policy Retention) ([]string, error)

	// Lock takes the artifact's lock, so that two writers in this
	// controller never interleave a Put and a garbage collection of the
	// same object. Across replicas, leader election (or sharding by label
	// selector) keeps each object to one writer.
	Lock(ctx context.Context, artifact meta.Artifact) (unlock func(), err error)

	// SetArtifactURL sets the artifact's URL from its path and the address
	// the artifact server is advertised at.
	SetArtifactURL(artifact *meta.Artifact)

	// Ephemeral reports whether artifacts are lost when the controller
	// restarts; the controller says so wherever it reports an artifact.
	Ephemeral() bool
}

// Recoverer is implemented by backends in which a writer killed in the
// middle of a Put (SIGKILL, OOM kill, node loss) leaves something behind
// that is not an artifact: a temporary file beside the artifacts, an
// incomplete multipart upload. Recover removes such leftovers older than
// before, the start of this process, so that whatever a live writer (this
// process, or another replica sharing the store) is writing now is never
// touched, and returns what it removed. The controller calls it once at
// start-up; backends with nothing to recover (memory) implement it anyway,
// so that the start-up log says so.
type Recoverer interface {
	Recover(ctx context.Context, before time.Time) ([]string, error)
}

// Retention is Flux's artifact retention policy: keep at most Records
// artifacts of an object (the current one included) and none older than TTL.
// The current artifact is always kept.
type Retention struct {
	TTL     time.Duration
	Records int
}

// DefaultRetention keeps the previous artifact for in-flight downloads, as
// source-controller does by default.
var DefaultRetention = Retention{TTL: 60 * time.Second, Records: 2}

// ArtifactDir returns the directory of an object's artifacts in Flux's layout:
// <kind>/<namespace>/<name>, the kind in lower case.
func ArtifactDir(kind, namespace, name string) string {
	return path.Join(strings.ToLower(kind), namespace, name)
}

// ArtifactPath returns the path of one artifact of an object.
func ArtifactPath(kind, namespace, name, fileName string) string {
	return path.Join(ArtifactDir(kind, namespace, name), fileName)
}

// NewArtifact builds the artifact record every backend returns from
// NewArtifactFor, so that paths and URLs are the same whatever the backend.
func NewArtifact(baseURL, kind string, obj metav1.Object, revision, fileName string) meta.Artifact {
	a := meta.Artifact{
		Path:     ArtifactPath(kind, obj.GetNamespace(), obj.GetName(), fileName),
		Revision: revision,
	}
	a.URL = ArtifactURL(baseURL, a.Path)
	return a
}

// ArtifactURL joins the advertised base URL ("http://host:port") and a path.
func ArtifactURL(baseURL, p string) string {
	u := strings.TrimSuffix(baseURL, "/") + "/"
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			u += "/"
		}
		u += url.PathEscape(seg)
	}
	return u
}

// BaseURL turns an advertised address (host:port, or a full URL) into the
// base of artifact URLs.
func BaseURL(advertised string) string {
	if strings.HasPrefix(advertised, "http://") || strings.HasPrefix(advertised, "https://") {
		return strings.TrimSuffix(advertised, "/")
	}
	return "http://" + strings.TrimSuffix(advertised, "/")
}

// GarbageFiles applies a retention policy to an object's stored artifacts
// and returns the paths to delete. Backends share it so that GC means the
// same everywhere; current is never returned.
func GarbageFiles(objects []ObjectInfo, current string, policy Retention, now time.Time) []string {
	others := make([]ObjectInfo, 0, len(objects))
	for _, o := range objects {
		if o.Path != current {
			others = append(others, o)
		}
	}
	// newest first; equal times ordered by path so the result is stable
	slices.SortStableFunc(others, func(a, b ObjectInfo) int {
		if c := b.ModTime.Compare(a.ModTime); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	keep := policy.Records - 1 // the current one counts
	var del []string
	for i, o := range others {
		if i >= keep || (policy.TTL > 0 && now.Sub(o.ModTime) > policy.TTL) {
			del = append(del, o.Path)
		}
	}
	return del
}

// ObjectInfo describes a stored object for garbage collection.
type ObjectInfo struct {
	Path    string
	ModTime time.Time
	Size    int64
}
