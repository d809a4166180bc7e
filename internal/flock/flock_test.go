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

package flock

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestOpen(t *testing.T) {
	tests := []struct {
		name string
		// held says another open file description holds the lock first.
		held    bool
		create  bool
		exists  bool
		wantErr error
	}{
		{name: "free, existing", exists: true},
		{name: "free, created", create: true},
		{name: "missing, not created", wantErr: fs.ErrNotExist},
		{name: "held elsewhere", exists: true, held: true, wantErr: ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			p := filepath.Join(t.TempDir(), "x.lock")
			if tt.exists {
				g.Expect(os.WriteFile(p, nil, 0o600)).To(Succeed())
			}
			if tt.held {
				other, err := Open(p, os.O_RDONLY, false)
				g.Expect(err).ToNot(HaveOccurred())
				defer other.Close()
			}
			flag := os.O_RDONLY
			if tt.create {
				flag = os.O_RDWR | os.O_CREATE
			}
			f, err := Open(p, flag, false)
			if tt.wantErr != nil {
				g.Expect(err).To(MatchError(tt.wantErr))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			f.Close()
			// Closing released it.
			again, err := Open(p, os.O_RDONLY, false)
			g.Expect(err).ToNot(HaveOccurred())
			again.Close()
		})
	}
}

// TestOpenWaits: with wait, Open returns once the holder lets go.
func TestOpenWaits(t *testing.T) {
	g := NewWithT(t)
	p := filepath.Join(t.TempDir(), "x.lock")
	holder, err := Open(p, os.O_RDWR|os.O_CREATE, false)
	g.Expect(err).ToNot(HaveOccurred())
	got := make(chan error, 1)
	go func() {
		f, err := Open(p, os.O_RDWR, true)
		if err == nil {
			f.Close()
		}
		got <- err
	}()
	g.Consistently(got, 200*time.Millisecond).ShouldNot(Receive())
	holder.Close()
	g.Eventually(got, 5*time.Second).Should(Receive(BeNil()))
}
