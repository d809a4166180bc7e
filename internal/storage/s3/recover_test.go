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
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// TestRecover: incomplete multipart uploads (a controller killed during an
// upload) and temporary objects under the prefix are removed once older
// than the start minus StaleUploadAge, each upload by its ID; artifacts,
// recent uploads (a live replica's) and other prefixes are left alone.
// It runs against a real S3 server (versitygw), which lists multipart
// uploads with their initiation time.
func TestRecover(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	tests := []struct {
		name string
		// before is the process start given to Recover, relative to now.
		before      time.Duration
		wantRemoved []string // relative to the prefix; uploads by key
		wantLeft    []string // incomplete uploads left, by key
	}{
		{
			name:        "leftovers older than the grace period go",
			before:      StaleUploadAge + time.Minute,
			wantRemoved: []string{"externalsource/ns/obj/b.tar.gz", "externalsource/ns/obj/c.tar.gz.tmp"},
			wantLeft:    []string{"elsewhere/ns/obj/b.tar.gz"},
		},
		{
			name:     "recent ones may be a live replica's: kept",
			before:   0,
			wantLeft: []string{"artifacts/externalsource/ns/obj/b.tar.gz", "elsewhere/ns/obj/b.tar.gz"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s, bucket := newStore(t, srv, credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""))
			raw, err := srv.Client()
			g.Expect(err).ToNot(HaveOccurred())
			core := minio.Core{Client: raw}

			// A stored artifact, an upload killed after one part, one
			// outside the prefix, and a temporary object.
			a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "obj", Namespace: "ns"}, "rev", "a.tar.gz")
			g.Expect(s.Put(ctx, &a, strings.NewReader("artifact"))).To(Succeed())
			for _, key := range []string{"artifacts/externalsource/ns/obj/b.tar.gz", "elsewhere/ns/obj/b.tar.gz"} {
				id, err := core.NewMultipartUpload(ctx, bucket, key, minio.PutObjectOptions{})
				g.Expect(err).ToNot(HaveOccurred())
				part := bytes.Repeat([]byte("x"), 1024)
				_, err = core.PutObjectPart(ctx, bucket, key, id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
				g.Expect(err).ToNot(HaveOccurred())
			}
			_, err = raw.PutObject(ctx, bucket, "artifacts/externalsource/ns/obj/c.tar.gz.tmp", strings.NewReader("partial"), 7, minio.PutObjectOptions{})
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(uploads(ctx, t, raw, bucket)).To(HaveLen(2), "the server lists incomplete uploads")

			removed, err := s.Recover(ctx, time.Now().Add(tt.before))
			g.Expect(err).ToNot(HaveOccurred())
			var keys []string
			for _, r := range removed {
				keys = append(keys, strings.SplitN(r, " ", 2)[0])
			}
			if tt.wantRemoved == nil {
				g.Expect(keys).To(BeEmpty())
			} else {
				g.Expect(keys).To(ConsistOf(tt.wantRemoved))
			}
			g.Expect(uploads(ctx, t, raw, bucket)).To(ConsistOf(tt.wantLeft))
			g.Expect(s.Verify(ctx, a)).To(Succeed(), "the artifact stays")
		})
	}
}

// uploads lists the keys of the bucket's incomplete uploads.
func uploads(ctx context.Context, t *testing.T, c *minio.Client, bucket string) []string {
	t.Helper()
	var keys []string
	for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		keys = append(keys, u.Key)
	}
	return keys
}

// TestRecoverTouchesOnlyOurLayout: with an empty or shared prefix, the
// keys of other tools in the bucket are never Recover's.
func TestRecoverTouchesOnlyOurLayout(t *testing.T) {
	tests := []struct {
		prefix, key string
		suffixes    []string
		want        bool
	}{
		{"", "externalsource/ns/obj/abc.tar.gz", []string{".tar.gz"}, true},
		{"exs/", "exs/externalsource/ns/obj/abc.tar.gz.tmp", []string{".tar.gz.tmp"}, true},
		{"", "backups/db.tar.gz", []string{".tar.gz"}, false},
		{"", "a/b/c/d/e.tar.gz", []string{".tar.gz"}, false},
		{"", "tool/ns/obj/upload.tmp", []string{".tar.gz.tmp"}, false},
		{"", "externalsource/ns//abc.tar.gz", []string{".tar.gz"}, false},
		{"", "externalsource/ns/obj/.tar.gz", []string{".tar.gz"}, false},
		{"exs/", "other/externalsource/ns/obj/abc.tar.gz", []string{".tar.gz"}, false},
		{"exs/", "externalsource/ns/obj/abc.tar.gz", []string{".tar.gz"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+tt.key, func(t *testing.T) {
			NewWithT(t).Expect(ours(tt.prefix, tt.key, tt.suffixes...)).To(Equal(tt.want))
		})
	}
}
