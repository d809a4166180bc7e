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

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// reconcileLeaveShare is the step after storage: it gives the namespace's
// share slot back, waking a parked request of the namespace, while this
// reconcile goes on with its API writes (see "Fair and bounded work").
func (r *ExternalSourceReconciler) reconcileLeaveShare(_ context.Context,
	_ *exsv1beta1.ExternalSource, st *reconcileState) error {
	if st.leaveShare != nil {
		st.leaveShare()
	}
	return nil
}
