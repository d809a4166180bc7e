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

package http

import (
	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/generator"
)

var _ generator.SecretReferencer = (*Generator)(nil)

// SecretRefs implements generator.SecretReferencer: every Secret
// spec.generator.http references, so that a rotated header, CA, proxy or
// credential is used at once. TestReferencedSecretsCoversTheAPI
// (internal/controller) fails when the API gains a reference this misses.
func (g *Generator) SecretRefs(obj *exsv1beta1.ExternalSource) []string {
	h := obj.Spec.Generator.HTTP
	if h == nil {
		return nil
	}
	refs := []*meta.LocalObjectReference{h.HeadersSecretRef, h.CertSecretRef, h.ProxySecretRef}
	if a := h.Auth; a != nil {
		for _, m := range []*exsv1beta1.SecretAuth{a.Basic, a.Bearer} {
			if m != nil {
				refs = append(refs, m.SecretRef)
			}
		}
		if a.OAuth2 != nil {
			refs = append(refs, a.OAuth2.SecretRef)
		}
	}
	var names []string
	for _, ref := range refs {
		if ref != nil && ref.Name != "" {
			names = append(names, ref.Name)
		}
	}
	return names
}
