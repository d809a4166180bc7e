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
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// secretRefsIndex indexes ExternalSources by the names of the Secrets they
// reference (in their own namespace: every reference is local).
const secretRefsIndex = ".spec.secretRefs"

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// indexSecretRefs is the index function of secretRefsIndex: the Secrets
// the object's generator reports (generator.SecretReferencer), so that a
// generator type brings its own references and nothing here changes.
func (r *ExternalSourceReconciler) indexSecretRefs(o client.Object) []string {
	obj, ok := o.(*exsv1beta1.ExternalSource)
	if !ok {
		return nil
	}
	return r.Generators.SecretRefs(obj)
}

// WatchConfigsCache returns the cache setting that goes with watchConfigs:
// the informer it starts for Secrets lists and watches only the Secrets
// selector matches, and only their metadata, so no other Secret (and no
// Secret's data) is ever held in the controller's memory. main and the
// tests put it in the manager's cache options.
func WatchConfigsCache(selector labels.Selector) (client.Object, ctrlcache.ByObject) {
	return &corev1.Secret{}, ctrlcache.ByObject{Label: selector}
}

// watchConfigs makes a change of a Secret an ExternalSource references
// reconcile that ExternalSource at once, as Flux's controllers do with
// --watch-configs-label-selector: a rotated header, CA or proxy Secret is
// used without waiting for the interval. Only Secrets matching selector
// (Flux's default: reconcile.fluxcd.io/watch=Enabled) are watched; the
// informer is metadata-only (the reconciler reads Secrets through the API
// reader, never from a cache), and WatchConfigsCache restricts its list
// and watch to the selector on the API server's side.
func (r *ExternalSourceReconciler) watchConfigs(mgr ctrl.Manager, b *builder.Builder, selector labels.Selector) (*builder.Builder, error) {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &exsv1beta1.ExternalSource{}, secretRefsIndex, r.indexSecretRefs); err != nil {
		return nil, fmt.Errorf("indexing ExternalSources by Secret references: %w", err)
	}
	labelled := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return selector.Matches(labels.Set(o.GetLabels()))
	})
	return b.WatchesMetadata(&corev1.Secret{},
		handler.EnqueueRequestsFromMapFunc(r.objectsReferencingSecret),
		builder.WithPredicates(predicate.ResourceVersionChangedPredicate{}, labelled)), nil
}

// objectsReferencingSecret lists, from the cache through secretRefsIndex,
// the ExternalSources of the Secret's namespace that reference it.
func (r *ExternalSourceReconciler) objectsReferencingSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var list exsv1beta1.ExternalSourceList
	if err := r.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretRefsIndex: secret.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the ExternalSources that reference a changed Secret",
			"secret", client.ObjectKeyFromObject(secret).String())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
