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

// Package s3test runs a real S3-compatible server for tests: versitygw
// (bin/versitygw, built by hack/tools.sh) over a POSIX directory. It checks
// SigV4 signatures for real, unlike in-process fakes.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// Credentials of the server's root account.
const (
	AccessKey = "externalsource-test"
	SecretKey = "externalsource-test-secret"
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is host:port (on loopback unless started with StartOn).
	Endpoint string
	dir      string
	logf     func(string, ...any)

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts a server with an empty data directory; it is stopped when
// the test ends. The directory needs extended attributes (ext4 has them).
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartDir(t.TempDir(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartDir starts a server over dir on a free loopback port.
func StartDir(dir string, logf func(string, ...any)) (*Server, error) {
	return StartOn(dir, "127.0.0.1", logf)
}

// StartOn starts a server over dir on a free port of host, an address of
// this machine (tests/cluster binds the test bridge's, for pods).
func StartOn(dir, host string, logf func(string, ...any)) (*Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{Endpoint: addr, dir: dir, logf: logf}
	return s, s.Restart()
}

// Restart starts the server again (same port, same data) after Stop.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	bin := filepath.Join(devenv.Root(), "bin", "versitygw")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s not found: run `make tools` first", bin)
	}
	cmd := exec.Command(bin, "--port", s.Endpoint, "--quiet", "posix", s.dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("versitygw did not start on %s", s.Endpoint)
}

// Stop stops the server; the data stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Client returns a root client of the server.
func (s *Server) Client() (*minio.Client, error) {
	return minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(AccessKey, SecretKey, ""),
		Secure: false,
	})
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(ctx context.Context, name string) error {
	c, err := s.Client()
	if err != nil {
		return err
	}
	return c.MakeBucket(ctx, name, minio.MakeBucketOptions{})
}
