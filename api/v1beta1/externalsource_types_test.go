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

package v1beta1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestGetTimeout(t *testing.T) {
	tests := []struct {
		timeout *metav1.Duration
		want    time.Duration
	}{
		{nil, DefaultTimeout},
		{&metav1.Duration{}, DefaultTimeout},
		{&metav1.Duration{Duration: 5 * time.Second}, 5 * time.Second},
	}
	for _, tt := range tests {
		o := &ExternalSource{Spec: ExternalSourceSpec{Timeout: tt.timeout}}
		if got := o.GetTimeout(); got != tt.want {
			t.Errorf("GetTimeout(%v) = %v, want %v", tt.timeout, got, tt.want)
		}
	}
}

func TestHasHooks(t *testing.T) {
	tests := []struct {
		hooks *Hooks
		want  bool
	}{
		{nil, false},
		{&Hooks{}, false},
		{&Hooks{PreRequest: []Hook{{Name: "a"}}}, true},
		{&Hooks{PostRequest: []Hook{{Name: "b"}}}, true},
	}
	for _, tt := range tests {
		o := &ExternalSource{Spec: ExternalSourceSpec{Hooks: tt.hooks}}
		if got := o.HasHooks(); got != tt.want {
			t.Errorf("HasHooks(%+v) = %v, want %v", tt.hooks, got, tt.want)
		}
	}
}

func TestForceRequestStatusIsAddressable(t *testing.T) {
	o := &ExternalSource{}
	*o.GetLastHandledForceRequestStatus() = "x"
	if o.Status.LastHandledForceAt != "x" {
		t.Fatal("GetLastHandledForceRequestStatus must point into the status")
	}
}
