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
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// syncBuffer is a log output the http server's connection goroutines may
// write to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerRunsLeaveNoBodyUnread: a run that ends before it has read its
// whole stdin (the executor refuses it, or the command never reads stdin)
// leaves the request body unread in a full-duplex handler. net/http then
// reads the rest after the handler has returned and starts its background
// read too late, and the next request on the kept-alive connection panics
// with "invalid concurrent Body.Read call" (golang/go#68560). The handler
// closes the body itself, so nothing panics, and each run still answers.
func TestServerRunsLeaveNoBodyUnread(t *testing.T) {
	// The http server logs a recovered panic to the standard logger.
	var logged syncBuffer
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	onlyEnv := mustParse(t, "commands: [{name: env, path: /usr/bin/env}]\n")
	none := mustParse(t, "commands: []\n")
	var mu sync.Mutex
	calls := 0
	reloadAfterFirstCheck := false
	socket := startServer(t, func() *Whitelist {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if reloadAfterFirstCheck && calls > 1 {
			return none
		}
		return onlyEnv
	})
	client := NewClient(socket)
	run := exsv1beta1.Hook{Name: "env", Command: "env"}
	body := strings.Repeat("x", 16<<10)

	tests := []struct {
		name string
		// reload: the executor's own check sees a whitelist without the
		// command, so the run is refused before stdin is read.
		reload  bool
		wantErr bool
	}{
		{name: "the command never reads stdin"},
		{name: "the executor refuses the run", reload: true, wantErr: true},
		{name: "again on a kept-alive connection"},
		{name: "refused again", reload: true, wantErr: true},
		{name: "and once more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			mu.Lock()
			calls, reloadAfterFirstCheck = 0, tt.reload
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var out bytes.Buffer
			err := client.Run(ctx, run, strings.NewReader(body), &out)
			if tt.wantErr {
				g.Expect(IsRejected(err)).To(BeTrue(), "got %v", err)
			} else {
				g.Expect(err).ToNot(HaveOccurred())
			}
		})
	}
	// The panic happens on the server's side once the response is out:
	// give its connection goroutines the time to get there.
	g := NewWithT(t)
	g.Consistently(logged.String, 500*time.Millisecond, 50*time.Millisecond).ShouldNot(ContainSubstring("panic"))
}
