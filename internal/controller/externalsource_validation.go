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
	"context"
	"errors"
	"fmt"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/archive"
)

// reconcileValidation checks the spec before anything is fetched: what the
// API server cannot check (validateSpec), then every hook against the
// whitelist before any runs and before any request is sent, so that a
// refused post-request hook does not let a POST happen first.
func (r *ExternalSourceReconciler) reconcileValidation(ctx context.Context,
	obj *exsv1beta1.ExternalSource, _ *reconcileState) error {
	if err := r.validateSpec(obj); err != nil {
		return err
	}
	return r.checkHooks(ctx, obj)
}

// validateSpec checks what the API server cannot: what depends on this
// controller's configuration (registered generators, the hook executor)
// and what the CRD's rules do not fully cover. Every failure is Stalling
// and names the field: retrying cannot fix it, a spec change can.
func (r *ExternalSourceReconciler) validateSpec(obj *exsv1beta1.ExternalSource) error {
	// With extract the destination is a directory prefix and "" is the
	// artifact root; any other value must still be a clean relative path.
	if obj.Spec.Extract == nil || obj.Spec.DestinationPath != "" {
		if _, err := archive.CleanPath(obj.Spec.DestinationPath); err != nil {
			return stalling(exsv1beta1.InvalidSpecReason, fmt.Errorf("spec.destinationPath: %w", err))
		}
	}
	if _, ok := r.Generators.Get(obj.Spec.Generator.Type); !ok {
		return stalling(exsv1beta1.UnsupportedGeneratorReason,
			fmt.Errorf("spec.generator.type: %q has no implementation in this controller (supported: %v)",
				obj.Spec.Generator.Type, r.Generators.Types()))
	}
	if obj.HasHooks() && r.HookRunner == nil {
		return stalling(exsv1beta1.HooksDisabledReason,
			errors.New("spec.hooks: hooks are disabled on this controller (it runs without --hook-executor-socket)"))
	}
	return nil
}
