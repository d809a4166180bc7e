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

package hook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "externalsource_hook_whitelist_reloads_total",
		Help: "Reloads of the hook whitelist file, by result (success, failure).",
	}, []string{"result"})
	lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "externalsource_hook_whitelist_last_reload_successful",
		Help: "1 when the last reload of the hook whitelist succeeded; 0 when it failed and the last good whitelist is still in force.",
	})
)

func init() {
	metrics.Registry.MustRegister(reloads, lastReloadOK)
}

// Store holds the whitelist in force and reloads it when its file changes.
// An invalid file on reload keeps the last good whitelist.
type Store struct {
	path string
	log  logr.Logger

	cur  atomic.Pointer[Whitelist]
	sum  [32]byte
	mu   sync.Mutex
	subs []func()
}

// NewStore loads the whitelist at path. A missing or invalid whitelist at
// start-up is an error: the controller does not start without it.
func NewStore(path string, log logr.Logger) (*Store, error) {
	s := &Store{path: path, log: log}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	wl, err := Parse(b)
	if err != nil {
		return nil, err
	}
	s.cur.Store(wl)
	s.sum = sha256.Sum256(b)
	lastReloadOK.Set(1)
	return s, nil
}

// Get returns the whitelist in force.
func (s *Store) Get() *Whitelist { return s.cur.Load() }

// OnChange registers f to run after every reload that changed the
// whitelist (the controller requeues the objects with hooks).
func (s *Store) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, f)
}

// Reload reads the file again. It reports whether the whitelist changed.
func (s *Store) Reload() (bool, error) {
	b, err := os.ReadFile(s.path)
	if err == nil {
		var wl *Whitelist
		if wl, err = Parse(b); err == nil {
			sum := sha256.Sum256(b)
			s.mu.Lock()
			changed := !bytes.Equal(sum[:], s.sum[:])
			s.sum = sum
			s.cur.Store(wl)
			subs := append([]func(){}, s.subs...)
			s.mu.Unlock()
			reloads.WithLabelValues("success").Inc()
			lastReloadOK.Set(1)
			if changed {
				s.log.Info("hook whitelist reloaded", "path", s.path, "commands", len(wl.Commands))
				for _, f := range subs {
					f()
				}
			}
			return changed, nil
		}
	}
	reloads.WithLabelValues("failure").Inc()
	lastReloadOK.Set(0)
	s.log.Error(err, "hook whitelist reload failed, keeping the last good whitelist", "path", s.path)
	return false, err
}

// Watch reloads the whitelist on every change of its directory until ctx
// is done. It watches the directory, not the file: a ConfigMap update
// swaps the `..data` symlink and never writes the file in place, and an
// in-place write (or an editor's rename) must be seen as well.
//
// The file is read once more as soon as the watch is in place: a change
// between NewStore's read and the watch raised no event and would
// otherwise wait for the next one. watching, when not nil, is closed
// then (tests wait for it instead of sleeping).
func (s *Store) Watch(ctx context.Context) error {
	return s.watch(ctx, nil)
}

func (s *Store) watch(ctx context.Context, watching chan<- struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(s.path)); err != nil {
		return err
	}
	_, _ = s.Reload()
	if watching != nil {
		close(watching)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			_, _ = s.Reload()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Error(err, "watching the hook whitelist")
		}
	}
}
