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

	. "github.com/onsi/gomega"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
	"github.com/externalsource/externalsource-controller/internal/hook"
)

func TestExternalSourceReconciler_reconcileValidation(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*exsv1beta1.ExternalSource)
		noHooks    bool
		want       wantKind
		wantReason string
	}{
		{name: "valid", mutate: func(*exsv1beta1.ExternalSource) {}},
		{name: "destination path escapes", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.DestinationPath = "../x" },
			want: isStalling, wantReason: exsv1beta1.InvalidSpecReason},
		{name: "generator type without implementation", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.Type = "ftp" },
			want: isStalling, wantReason: exsv1beta1.UnsupportedGeneratorReason},
		{name: "hooks on a controller without hooks", noHooks: true, mutate: func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "j", Command: "jq"}}}
		}, want: isStalling, wantReason: exsv1beta1.HooksDisabledReason},
		{name: "hook not on the whitelist", mutate: func(o *exsv1beta1.ExternalSource) {
			o.Spec.Hooks = &exsv1beta1.Hooks{PostRequest: []exsv1beta1.Hook{{Name: "x", Command: "not-whitelisted"}}}
		}, want: isStalling, wantReason: exsv1beta1.HookRejectedReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := stepReconciler(nil)
			if !tt.noHooks {
				r.HookRunner = hook.Checked(testWhitelist.Get, hook.NewClient("/nonexistent.sock"))
			}
			obj := stepObject("steps-validation", "http://127.0.0.1:1/")
			tt.mutate(obj)
			err := r.reconcileValidation(testCtx, obj, newStepState())
			expectKind(g, err, tt.want)
			if tt.want != noError {
				_, reason := failure.Describe(err, "")
				g.Expect(reason).To(Equal(tt.wantReason))
			}
		})
	}
}
