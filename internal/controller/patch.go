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

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// objectPatcher writes an ExternalSource with as few API requests as the
// change needs: at most one merge patch of the status subresource (the
// conditions together with the rest of the status) and one merge patch of
// the object (metadata: the finalizer), each only when something in it
// changed. Like Flux's SerialPatcher, each write is computed against what
// the previous one wrote.
//
// Flux's patch helper sends the conditions in a patch of their own (a
// three-way merge with an optimistic lock, so that several controllers can
// share an object's conditions) and the rest of the status in a second
// one; on an object read from the cache right after the controller's own
// write, the locked patch also meets a conflict and is sent again. Only
// this controller writes an ExternalSource's status, so its conditions are
// sent whole in the one status patch: a new revision costs one status
// write, not two or three.
type objectPatcher struct {
	client     client.Client
	fieldOwner string
	before     *exsv1beta1.ExternalSource
}

// newObjectPatcher starts from obj as read.
func newObjectPatcher(obj *exsv1beta1.ExternalSource, c client.Client, fieldOwner string) *objectPatcher {
	return &objectPatcher{client: c, fieldOwner: fieldOwner, before: obj.DeepCopy()}
}

// Patch writes what changed since the previous write. withObservedGeneration
// records the object's generation as handled (status.observedGeneration),
// which only a reconcile that handled it may say. The status goes first, so
// that a finalizer removed in the same call (after which the object is gone)
// is written last.
func (p *objectPatcher) Patch(ctx context.Context, obj *exsv1beta1.ExternalSource, withObservedGeneration bool) error {
	if withObservedGeneration {
		obj.Status.ObservedGeneration = obj.Generation
	}
	if !equality.Semantic.DeepEqual(p.before.Status, obj.Status) {
		// The patch is computed between two copies that differ only in
		// their status, so its body holds nothing else.
		base := obj.DeepCopy()
		base.Status = *p.before.Status.DeepCopy()
		after := obj.DeepCopy()
		if err := p.client.Status().Patch(ctx, after, client.MergeFrom(base), client.FieldOwner(p.fieldOwner)); err != nil {
			return err
		}
	}
	if !equality.Semantic.DeepEqual(p.before.ObjectMeta, obj.ObjectMeta) || !equality.Semantic.DeepEqual(p.before.Spec, obj.Spec) {
		base := p.before.DeepCopy()
		base.Status = obj.Status
		after := obj.DeepCopy()
		if err := p.client.Patch(ctx, after, client.MergeFrom(base), client.FieldOwner(p.fieldOwner)); err != nil {
			return err
		}
	}
	p.before = obj.DeepCopy()
	return nil
}
