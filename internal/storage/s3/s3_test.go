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
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
	"github.com/externalsource/externalsource-controller/internal/storage/storagetest"
)

var bucketCount atomic.Int64

// newStore returns a store on a fresh bucket of srv.
func newStore(t *testing.T, srv *s3test.Server, creds *credentials.Credentials) (*Storage, string) {
	t.Helper()
	bucket := fmt.Sprintf("bucket-%d", bucketCount.Add(1))
	if err := srv.MakeBucket(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Endpoint: srv.Endpoint, Bucket: bucket, Insecure: true, Prefix: "artifacts/",
		BaseURL: "http://artifacts.example:9090", Creds: creds,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, bucket
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	raw, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, func(t *testing.T) storagetest.Backend {
		s, bucket := newStore(t, srv, credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""))
		if err := s.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
		return storagetest.Backend{
			Store:   s,
			BaseURL: "http://artifacts.example:9090",
			Corrupt: func(t *testing.T, p string) {
				_, err := raw.PutObject(context.Background(), bucket, "artifacts/"+p, strings.NewReader("corrupt"), 7, minio.PutObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
			},
			// S3 modification times have a resolution of one second.
			TimeResolution: 1100 * time.Millisecond,
		}
	})
}

func TestWrongCredentials(t *testing.T) {
	g := NewWithT(t)
	srv := s3test.Start(t)
	s, _ := newStore(t, srv, credentials.NewStaticV4(s3test.AccessKey, "not-the-secret", ""))
	err := s.Check(context.Background())
	g.Expect(err).To(MatchError(ContainSubstring("SignatureDoesNotMatch")))
	a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "x", Namespace: "ns"}, "rev", "x.tar.gz")
	err = s.Put(context.Background(), &a, strings.NewReader("data"))
	g.Expect(err).To(MatchError(ContainSubstring("SignatureDoesNotMatch")))
}

func TestCheck(t *testing.T) {
	g := NewWithT(t)
	srv := s3test.Start(t)
	s, err := New(Options{Endpoint: srv.Endpoint, Bucket: "missing", Insecure: true,
		Creds: credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, "")})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(s.Check(context.Background())).To(MatchError(ContainSubstring(`S3 bucket "missing" does not exist`)))

	_, err = New(Options{Endpoint: "http://" + srv.Endpoint, Bucket: "b"})
	g.Expect(err).To(MatchError(ContainSubstring("without a scheme")))
	_, err = New(Options{Bucket: "b"})
	g.Expect(err).To(MatchError(ContainSubstring("--s3-endpoint and --s3-bucket are required")))
}

func TestServerDown(t *testing.T) {
	g := NewWithT(t)
	srv := s3test.Start(t)
	s, _ := newStore(t, srv, credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""))
	a := s.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "x", Namespace: "ns"}, "rev", "x.tar.gz")
	g.Expect(s.Put(context.Background(), &a, strings.NewReader("data"))).To(Succeed())

	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.Verify(ctx, a)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("connection refused"))

	g.Expect(srv.Restart()).To(Succeed())
	g.Expect(s.Verify(context.Background(), a)).To(Succeed())
}

// TestDefaultCredentials: the standard chain finds keys in the AWS
// environment variables and in a shared credentials file. (The chain's last
// link, IAM, is never reached here: it would query a metadata address.)
func TestDefaultCredentials(t *testing.T) {
	srv := s3test.Start(t)
	g := NewWithT(t)
	g.Expect(srv.MakeBucket(context.Background(), "creds")).To(Succeed())
	for _, env := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY",
		"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_PROFILE"} {
		t.Setenv(env, "")
	}
	cases := map[string]func(t *testing.T){
		"environment": func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
		},
		"shared-credentials-file": func(t *testing.T) {
			f := t.TempDir() + "/credentials"
			content := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s3test.AccessKey, s3test.SecretKey)
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", f)
			t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			setup(t)
			s, err := New(Options{Endpoint: srv.Endpoint, Bucket: "creds", Insecure: true})
			g.Expect(err).ToNot(HaveOccurred())
			g.Expect(s.Check(context.Background())).To(Succeed())
		})
	}
}
