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

package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// StaleUploadAge is how much older than the process start an incomplete
// upload or a temporary object must be before Recover removes it. Replicas
// share the bucket (and, sharded by label selector, several of them write
// at once): an upload another live replica began shortly before this
// process started is not a leftover. An upload that takes longer than this
// would be aborted by a replica starting meanwhile; the controller's
// uploads take seconds. A bucket lifecycle rule
// (AbortIncompleteMultipartUpload) remains the safety net for a store no
// controller restarts on.
const StaleUploadAge = time.Hour

var _ storage.Recoverer = (*Storage)(nil)

// Recover implements storage.Recoverer. It touches only keys of the
// store's own layout (<prefix><kind>/<namespace>/<name>/<file>), so that a
// bucket shared with other tools, or an empty --s3-prefix, never loses
// another writer's upload or object. A controller killed during a Put
// leaves an incomplete multipart upload (its parts are billed, and listed by
// nothing else), or, for a Put without an expected digest, a "<key>.tmp"
// object. Recover aborts the uploads under the prefix initiated, and removes
// the temporary objects last modified, more than StaleUploadAge before
// before, each upload by its own ID (never another upload of the same key).
// The paths returned are relative to the prefix.
func (s *Storage) Recover(ctx context.Context, before time.Time) ([]string, error) {
	if before.IsZero() {
		return nil, nil
	}
	cutoff := before.Add(-StaleUploadAge)
	core := minio.Core{Client: s.client}
	var removed []string
	var errs []error
	for u := range s.client.ListIncompleteUploads(ctx, s.opts.Bucket, s.opts.Prefix, true) {
		if u.Err != nil {
			errs = append(errs, fmt.Errorf("listing incomplete uploads: %w", describe(u.Err)))
			break
		}
		if u.Initiated.IsZero() || !u.Initiated.Before(cutoff) || !ours(s.opts.Prefix, u.Key, ".tar.gz", ".tar.gz.tmp") {
			continue
		}
		if err := core.AbortMultipartUpload(ctx, s.opts.Bucket, u.Key, u.UploadID); err != nil {
			errs = append(errs, fmt.Errorf("aborting the upload of %s: %w", u.Key, describe(err)))
			continue
		}
		removed = append(removed, strings.TrimPrefix(u.Key, s.opts.Prefix)+" (incomplete upload "+u.UploadID+")")
	}
	for o := range s.client.ListObjects(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: s.opts.Prefix, Recursive: true}) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("listing objects: %w", describe(o.Err)))
			break
		}
		if !ours(s.opts.Prefix, o.Key, ".tar.gz.tmp") || !o.LastModified.Before(cutoff) {
			continue
		}
		if err := s.client.RemoveObject(ctx, s.opts.Bucket, o.Key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("removing %s: %w", o.Key, describe(err)))
			continue
		}
		removed = append(removed, strings.TrimPrefix(o.Key, s.opts.Prefix))
	}
	return removed, errors.Join(errs...)
}

// ours says whether key is an artifact key of the store's layout under
// prefix (<kind>/<namespace>/<name>/<file>) whose file name ends with one
// of suffixes.
func ours(prefix, key string, suffixes ...string) bool {
	rel, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return false
	}
	parts := strings.Split(rel, "/")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	for _, suf := range suffixes {
		if strings.HasSuffix(parts[3], suf) && len(parts[3]) > len(suf) {
			return true
		}
	}
	return false
}
