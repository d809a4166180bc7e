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

// Package s3 is a Storage backend on any S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, versitygw, ...) through minio-go. Several controller
// replicas can share one bucket: any of them can serve any artifact.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// PartSize is the multipart chunk size: the most bytes one upload holds in
// memory, whatever the artifact's size.
const PartSize = 16 << 20

// digestMeta is the user metadata key holding the artifact's digest, so
// Verify costs one HEAD request instead of downloading the object.
const digestMeta = "Artifact-Digest"

// Options configure the S3 store.
type Options struct {
	Endpoint string // host[:port], without scheme
	Bucket   string
	Region   string
	Prefix   string // key prefix, e.g. "externalsource/"
	Insecure bool   // plain HTTP
	BaseURL  string // advertised base of artifact URLs
	// Creds overrides the credential chain (tests).
	Creds *credentials.Credentials
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// MaxRetries bounds the attempts of one S3 request (minio-go counts
	// the first one; its jittered backoff waits up to 200 ms, then 400 ms)
	// before the operation fails; zero is DefaultMaxRetries. Few, because
	// the reconciler's exponential backoff takes over: minio-go's own
	// default (10) held a worker for about 8 s per reconcile while the
	// server was down.
	MaxRetries int
}

// DefaultMaxRetries is the attempt budget of one S3 request.
const DefaultMaxRetries = 3

// DefaultCredentials is the standard chain: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (or MINIO_*), the shared credentials file, then
// IAM (EC2 instance role, ECS, and IRSA through AWS_WEB_IDENTITY_TOKEN_FILE).
func DefaultCredentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
}

// Storage stores artifacts as objects <prefix><path>.
type Storage struct {
	client  *minio.Client
	opts    Options
	locks   storage.PathLocks
	baseURL string
}

var _ storage.Storage = (*Storage)(nil)

// New returns an S3 store. It does not contact the server; Check does.
func New(opts Options) (*Storage, error) {
	if opts.Endpoint == "" || opts.Bucket == "" {
		return nil, errors.New("--s3-endpoint and --s3-bucket are required with --storage-backend=s3")
	}
	if strings.Contains(opts.Endpoint, "://") {
		return nil, fmt.Errorf("--s3-endpoint %q: give host[:port] without a scheme (use --s3-insecure for plain HTTP)", opts.Endpoint)
	}
	creds := opts.Creds
	if creds == nil {
		creds = DefaultCredentials()
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	c, err := minio.New(opts.Endpoint, &minio.Options{
		MaxRetries: opts.MaxRetries,
		Creds:      creds,
		Secure:     !opts.Insecure,
		Region:     opts.Region,
		Transport:  opts.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client: %w", err)
	}
	return &Storage{client: c, opts: opts, baseURL: opts.BaseURL}, nil
}

// Check verifies at start-up that the bucket exists and the credentials
// work, so a misconfiguration fails loudly instead of at the first artifact.
func (s *Storage) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.opts.Bucket)
	if err != nil {
		return fmt.Errorf("S3 bucket %q at %s: %w", s.opts.Bucket, s.opts.Endpoint, describe(err))
	}
	if !ok {
		return fmt.Errorf("S3 bucket %q does not exist at %s", s.opts.Bucket, s.opts.Endpoint)
	}
	return nil
}

func (s *Storage) key(p string) string { return s.opts.Prefix + p }

// NewArtifactFor implements storage.Storage.
func (s *Storage) NewArtifactFor(kind string, obj metav1.Object, revision, fileName string) meta.Artifact {
	return storage.NewArtifact(s.baseURL, kind, obj, revision, fileName)
}

// SetArtifactURL implements storage.Storage.
func (s *Storage) SetArtifactURL(a *meta.Artifact) {
	a.URL = storage.ArtifactURL(s.baseURL, a.Path)
}

// Ephemeral implements storage.Storage.
func (s *Storage) Ephemeral() bool { return false }

// uploadSize is the size to announce for an upload of r: r's own size when
// it says so and it fits in one part, -1 (unknown) otherwise. An upload of
// unknown size makes minio-go allocate a whole part (PartSize) before it
// reads a byte: a whole part for every artifact of a few KiB, which at
// thousands of new revisions was the controller's largest allocation. A known
// size below one part is one PUT, streamed; above it the unknown size keeps
// the multipart upload to one part in memory (a known size with a reader
// at offsets would upload parts in parallel, each in memory).
func uploadSize(r io.Reader) int64 {
	if sr, ok := r.(interface{ Size() int64 }); ok && sr.Size() >= 0 && sr.Size() < PartSize {
		return sr.Size()
	}
	return -1
}

// Put implements storage.Storage. S3 makes an object visible only when its
// upload completes, so a reader never sees a partial object. The digest
// travels as object metadata, which must be sent before the bytes: when the
// caller knows it (artifact.Digest set, as the reconciler does) the object
// is uploaded once and checked while streaming; otherwise it is uploaded
// under a temporary key and copied server-side with the computed digest.
func (s *Storage) Put(ctx context.Context, a *meta.Artifact, r io.Reader) error {
	h, err := storage.NewDigester(a.Digest)
	if err != nil {
		return err
	}
	cr := &countingReader{r: io.TeeReader(r, h.Hash())}
	key := s.key(a.Path)
	expected := a.Digest
	target := key
	meta := map[string]string{}
	if expected != "" {
		meta[digestMeta] = expected
	} else {
		target = key + ".tmp"
	}
	info, err := s.client.PutObject(ctx, s.opts.Bucket, target, cr, uploadSize(r), minio.PutObjectOptions{
		ContentType:  "application/gzip",
		PartSize:     PartSize,
		UserMetadata: meta,
	})
	if err != nil {
		return fmt.Errorf("uploading %s: %w", a.Path, describe(err))
	}
	digest := h.Digest().String()
	cleanup := context.WithoutCancel(ctx)

	if expected != "" && digest != expected {
		_ = s.client.RemoveObject(cleanup, s.opts.Bucket, key, minio.RemoveObjectOptions{})
		return fmt.Errorf("storing %s: bytes have digest %s, expected %s: %w", a.Path, digest, expected, storage.ErrDigestMismatch)
	}
	if expected == "" {
		defer func() { _ = s.client.RemoveObject(cleanup, s.opts.Bucket, target, minio.RemoveObjectOptions{}) }()
		info, err = s.client.CopyObject(ctx,
			minio.CopyDestOptions{
				Bucket:          s.opts.Bucket,
				Object:          key,
				UserMetadata:    map[string]string{digestMeta: digest},
				ReplaceMetadata: true,
			},
			minio.CopySrcOptions{Bucket: s.opts.Bucket, Object: target})
		if err != nil {
			return fmt.Errorf("storing %s: %w", a.Path, describe(err))
		}
	}
	a.Digest = digest
	a.Size = &cr.n
	a.LastUpdateTime = metav1.NewTime(info.LastModified)
	if a.LastUpdateTime.IsZero() {
		a.LastUpdateTime = metav1.Now()
	}
	s.SetArtifactURL(a)
	return nil
}

// Open implements storage.Storage.
func (s *Storage) Open(ctx context.Context, p string) (io.ReadCloser, int64, error) {
	obj, err := s.client.GetObject(ctx, s.opts.Bucket, s.key(p), minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, describe(err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, 0, fmt.Errorf("%s: %w", p, storage.ErrNotFound)
		}
		return nil, 0, describe(err)
	}
	return obj, st.Size, nil
}

// Verify implements storage.Storage with one HEAD request: the digest
// recorded with the object and its size must match the artifact. An object
// replaced behind the controller's back loses the metadata and fails.
func (s *Storage) Verify(ctx context.Context, a meta.Artifact) error {
	st, err := s.client.StatObject(ctx, s.opts.Bucket, s.key(a.Path), minio.StatObjectOptions{})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("%s: %w", a.Path, storage.ErrNotFound)
		}
		return describe(err)
	}
	got := st.UserMetadata[digestMeta]
	if got != a.Digest || (a.Size != nil && *a.Size != st.Size) {
		return fmt.Errorf("%s: stored object has digest %q and size %d, expected %s: %w",
			a.Path, got, st.Size, a.Digest, storage.ErrDigestMismatch)
	}
	return nil
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, a meta.Artifact) error {
	if err := s.client.RemoveObject(ctx, s.opts.Bucket, s.key(a.Path), minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return describe(err)
	}
	return nil
}

// list returns the objects stored beside the artifact; minio-go pages
// through listings of any length.
func (s *Storage) list(ctx context.Context, a meta.Artifact) ([]storage.ObjectInfo, error) {
	dir := s.key(path.Dir(a.Path)) + "/"
	var out []storage.ObjectInfo
	for o := range s.client.ListObjects(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: dir}) {
		if o.Err != nil {
			return nil, describe(o.Err)
		}
		if strings.HasSuffix(o.Key, "/") || strings.HasSuffix(o.Key, ".tmp") {
			continue
		}
		out = append(out, storage.ObjectInfo{
			Path:    strings.TrimPrefix(o.Key, s.opts.Prefix),
			ModTime: o.LastModified,
			Size:    o.Size,
		})
	}
	return out, nil
}

// removeKeys deletes objects in batches (S3 DeleteObjects).
func (s *Storage) removeKeys(ctx context.Context, paths []string) error {
	ch := make(chan minio.ObjectInfo, len(paths))
	for _, p := range paths {
		ch <- minio.ObjectInfo{Key: s.key(p)}
	}
	close(ch)
	for e := range s.client.RemoveObjects(ctx, s.opts.Bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err != nil && !isNotFound(e.Err) {
			return fmt.Errorf("removing %s: %w", e.ObjectName, describe(e.Err))
		}
	}
	return nil
}

// RemoveAll implements storage.Storage.
func (s *Storage) RemoveAll(ctx context.Context, a meta.Artifact) (int, error) {
	objs, err := s.list(ctx, a)
	if err != nil {
		return 0, err
	}
	paths := make([]string, len(objs))
	for i, o := range objs {
		paths[i] = o.Path
	}
	if err := s.removeKeys(ctx, paths); err != nil {
		return 0, err
	}
	return len(paths), nil
}

// GarbageCollect implements storage.Storage.
func (s *Storage) GarbageCollect(ctx context.Context, current meta.Artifact, policy storage.Retention) ([]string, error) {
	objs, err := s.list(ctx, current)
	if err != nil {
		return nil, err
	}
	del := storage.GarbageFiles(objs, current.Path, policy, time.Now())
	if err := s.removeKeys(ctx, del); err != nil {
		return nil, err
	}
	return del, nil
}

// Lock implements storage.Storage with an in-process lock per path: S3
// has no locks, and leader election (or label-selector sharding) already
// gives each object a single writer across replicas.
func (s *Storage) Lock(_ context.Context, a meta.Artifact) (func(), error) {
	return s.locks.Lock(a.Path), nil
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound" || minio.ToErrorResponse(err).StatusCode == http.StatusNotFound
}

// describe puts the S3 error code in front, so that "SignatureDoesNotMatch"
// or "NoSuchBucket" reads in the condition message.
func describe(err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code != "" && !strings.Contains(err.Error(), resp.Code) {
		return fmt.Errorf("%s: %w", resp.Code, err)
	}
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
