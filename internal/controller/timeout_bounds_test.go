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

package controller

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestAPIBoundsSpecTimeout: the API server refuses a spec.timeout above
// exsv1beta1.MaxTimeout with a message naming the field, so no object can ask to
// hold a worker for a day (timeout: 100000h); the maximum itself is
// accepted. The rule is the CRD's, so this also checks that exsv1beta1.MaxTimeout
// and the CEL rule agree.
func TestAPIBoundsSpecTimeout(t *testing.T) {
	ns := newNamespace(t)
	tests := []struct {
		name    string
		timeout time.Duration
		wantErr bool
	}{
		{"hostile-100000h", 100000 * time.Hour, true},
		{"just-above-the-maximum", exsv1beta1.MaxTimeout + time.Second, true},
		{"the-maximum", exsv1beta1.MaxTimeout, false},
		{"the-default", exsv1beta1.DefaultTimeout, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newSource(ns, tt.name, "https://api.example.com/v1")
			obj.Labels = map[string]string{isolatedLabel: "timeout-bounds"}
			obj.Spec.Suspend = true
			obj.Spec.Timeout = &metav1.Duration{Duration: tt.timeout}
			err := k8sClient.Create(testCtx, obj)
			if !tt.wantErr {
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(getSource(g, obj).GetTimeout()).To(Equal(tt.timeout))
				return
			}
			g.Expect(err).To(HaveOccurred())
			t.Logf("refused: %v", err)
			g.Expect(err.Error()).To(ContainSubstring("spec.timeout"))
			g.Expect(err.Error()).To(ContainSubstring("must be at most 10m"))
		})
	}
}
