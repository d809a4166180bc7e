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

package iobuf

import (
	"bytes"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
)

func TestCappedWriter(t *testing.T) {
	tests := []struct {
		name         string
		max          int64
		writes       []string
		wantOut      string
		wantExceeded bool
	}{
		{name: "under the cap", max: 10, writes: []string{"abc", "def"}, wantOut: "abcdef"},
		{name: "exactly at the cap", max: 6, writes: []string{"abc", "def"}, wantOut: "abcdef"},
		{name: "the write going over is refused whole", max: 5, writes: []string{"abc", "def"}, wantOut: "abc", wantExceeded: true},
		{name: "a refused write leaves the room for a smaller one", max: 3, writes: []string{"abcd", "a"}, wantOut: "a", wantExceeded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var out bytes.Buffer
			w := &CappedWriter{W: &out, Max: tt.max}
			var sawErr bool
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					g.Expect(errors.Is(err, ErrCapped)).To(BeTrue())
					sawErr = true
				}
			}
			g.Expect(out.String()).To(Equal(tt.wantOut))
			g.Expect(w.Written()).To(Equal(int64(len(tt.wantOut))))
			g.Expect(w.Exceeded()).To(Equal(tt.wantExceeded))
			g.Expect(sawErr).To(Equal(tt.wantExceeded))
		})
	}
}
