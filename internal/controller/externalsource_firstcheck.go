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
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

// reconcileFirstCheck defers the upstream check of the first reconcile in
// this process of a Ready object to a spread point of its interval
// (firstChecks): after a restart, thousands of sources do not all call at
// once. A reconcile request of the ExternalArtifact is never deferred. A
// deferred check keeps the published data as confirmed and asks for a
// requeue when the check is due (st.checkAfter).
func (r *ExternalSourceReconciler) reconcileFirstCheck(ctx context.Context,
	obj *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.notModified || !st.firstInProcess || st.artifactRequested {
		return nil
	}
	if d := r.firstChecks.delay(obj, time.Now()); d > 0 {
		st.notModified = true
		st.checkAfter = d
		st.validators = generator.Validators{ETag: obj.Status.LastHandledETag, LastModified: obj.Status.LastModified}
		st.changeDetection = obj.Status.ChangeDetection
		ctrl.LoggerFrom(ctx).V(1).Info("first reconcile in this process: upstream check deferred", "after", d.String())
	}
	return nil
}
