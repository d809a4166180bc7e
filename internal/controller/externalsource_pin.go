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

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
	"github.com/externalsource/externalsource-controller/internal/metrics"
)

// reconcilePin is the digest-pin shortcut: a pinned source whose spec was
// handled and whose artifact is in storage (reconcileStorage forgets a
// missing one) has nothing to learn from the upstream: the bytes could
// only match the pin again, or stall. No request is sent; the published
// data stands as confirmed.
func (r *ExternalSourceReconciler) reconcilePin(_ context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if pin := pinnedDigest(obj); pin != "" && pin == obj.Status.LastHandledDigest &&
		obj.GetArtifact() != nil && obj.Generation == obj.Status.ObservedGeneration && !meta.ShouldHandleForceRequest(obj) {
		st.notModified = true
		st.validators = generator.Validators{ETag: obj.Status.LastHandledETag, LastModified: obj.Status.LastModified}
		st.changeDetection = obj.Status.ChangeDetection
		st.fetched, st.fetchResult = true, metrics.ResultUnchanged
		conditions.Delete(obj, exsv1beta1.FetchFailedCondition)
	}
	return nil
}
