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

// Package server serves stored artifacts over HTTP to Flux's consumers
// (kustomize-controller, helm-controller) from any Storage backend, so
// status.artifact.url works the same whatever the backend and consumers
// need no storage credentials.
package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/externalsource/externalsource-controller/internal/storage"
)

// Handler returns the artifact handler: GET and HEAD of a stored path,
// 404 for anything unknown, never a listing.
func Handler(s storage.Storage, log logr.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p, ok := CleanRequestPath(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		rc, size, err := s.Open(r.Context(), p)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				http.NotFound(w, r)
				return
			}
			log.Error(err, "opening artifact", "path", p)
			http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		if r.Method == http.MethodHead {
			return
		}
		if _, err := io.Copy(w, rc); err != nil && r.Context().Err() == nil {
			log.V(1).Info("artifact download interrupted", "path", p, "error", err.Error())
		}
	})
}

// CleanRequestPath turns a request path (already unescaped by net/http)
// into a storage path. It refuses anything that is not a plain relative
// path of at least one segment: '..' and '.' segments, empty segments,
// backslashes and NUL, so that no request can reach outside the artifacts.
func CleanRequestPath(p string) (string, bool) {
	p = strings.TrimPrefix(p, "/")
	if p == "" || strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
	}
	if path.Clean(p) != p {
		return "", false
	}
	return p, true
}

// Server is the artifact HTTP server.
type Server struct {
	// Addr is the listen address, e.g. ":9090".
	Addr    string
	Storage storage.Storage
	Log     logr.Logger

	serving atomic.Bool
}

// Start listens and serves until ctx is done, then shuts down gracefully,
// giving in-flight downloads a few seconds to finish.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// ReadyCheck is a readiness check (healthz.Checker) that passes only while
// the server serves. With backends that only the leader holds, the server
// starts once elected, so readiness routes the Service to the leader.
func (s *Server) ReadyCheck(_ *http.Request) error {
	if !s.serving.Load() {
		return errors.New("artifact server is not serving (not the leader yet)")
	}
	return nil
}

// Serve serves on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.serving.Store(true)
	defer s.serving.Store(false)
	srv := &http.Server{
		Handler:           instrument(Handler(s.Storage, s.Log)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
