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

package failure

import (
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestDescribe(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name       string
		err        error
		wantKind   Kind
		wantReason string
	}{
		{name: "plain error is generic", err: base, wantKind: KindGeneric, wantReason: "Fallback"},
		{name: "stalling", err: NewStalling(base, "InvalidSpec"), wantKind: KindStalling, wantReason: "InvalidSpec"},
		{name: "wrapped stalling", err: fmt.Errorf("x: %w", NewStalling(base, "HookRejected")), wantKind: KindStalling, wantReason: "HookRejected"},
		{name: "waiting", err: NewWaiting(base, "FetchFailed", time.Minute), wantKind: KindWaiting, wantReason: "FetchFailed"},
		{name: "wrapped generic", err: fmt.Errorf("y: %w", NewGeneric(base, "X")), wantKind: KindGeneric, wantReason: "X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			kind, reason := Describe(tt.err, "Fallback")
			g.Expect(kind).To(Equal(tt.wantKind))
			g.Expect(reason).To(Equal(tt.wantReason))
			g.Expect(errors.Is(tt.err, base)).To(BeTrue())
		})
	}
}

func TestRequeueAfter(t *testing.T) {
	g := NewWithT(t)
	d, ok := RequeueAfter(fmt.Errorf("w: %w", NewWaiting(errors.New("503"), "FetchFailed", 3*time.Second)))
	g.Expect(ok).To(BeTrue())
	g.Expect(d).To(Equal(3 * time.Second))
	_, ok = RequeueAfter(NewGeneric(errors.New("x"), "Y"))
	g.Expect(ok).To(BeFalse())
}
