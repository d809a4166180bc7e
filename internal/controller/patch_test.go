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
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// sentPatch is one request the objectPatcher sent: which endpoint, and the
// merge patch body as JSON.
type sentPatch struct {
	status bool
	body   map[string]any
}

// recordingClient is a stand-in for the API server (controller-runtime's
// fake client) that records each patch: the envtest suites run the same
// patcher against a real kube-apiserver, this one reads the request
// bodies.
func recordingClient(t *testing.T, obj *exsv1beta1.ExternalSource) (client.Client, *[]sentPatch) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := exsv1beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var sent []sentPatch
	record := func(status bool, o client.Object, p client.Patch) {
		data, err := p.Data(o)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, sentPatch{status: status, body: body})
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(obj.DeepCopy()).WithStatusSubresource(obj).
		WithInterceptorFuncs(interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
				record(false, o, p)
				return c.Patch(ctx, o, p, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch,
				opts ...client.SubResourcePatchOption) error {
				record(true, o, p)
				return c.SubResource(sub).Patch(ctx, o, p, opts...)
			},
		}).Build()
	return c, &sent
}

func TestObjectPatcher(t *testing.T) {
	base := func() *exsv1beta1.ExternalSource {
		obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Generation: 3,
			Finalizers: []string{exsv1beta1.Finalizer}}}
		conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "ready")
		conditions.MarkTrue(obj, exsv1beta1.ArtifactInStorageCondition, meta.SucceededReason, "stored")
		return obj
	}
	tests := []struct {
		name           string
		change         func(*exsv1beta1.ExternalSource)
		withGeneration bool
		// want is the endpoints in the order written: "status", "object".
		want  []string
		check func(g Gomega, sent []sentPatch, after *exsv1beta1.ExternalSource)
	}{
		{name: "no change sends nothing", change: func(*exsv1beta1.ExternalSource) {}},
		{name: "a status change is one status patch of the status alone",
			change: func(o *exsv1beta1.ExternalSource) { o.Status.LastHandledETag = `"e"` },
			want:   []string{"status"},
			check: func(g Gomega, sent []sentPatch, _ *exsv1beta1.ExternalSource) {
				g.Expect(sent[0].body).To(HaveKey("status"))
				g.Expect(sent[0].body).ToNot(HaveKey("metadata"))
				g.Expect(sent[0].body).ToNot(HaveKey("spec"))
			}},
		{name: "conditions are sent whole",
			change: func(o *exsv1beta1.ExternalSource) {
				conditions.MarkFalse(o, meta.ReadyCondition, meta.FailedReason, "broken")
			},
			want: []string{"status"},
			check: func(g Gomega, sent []sentPatch, _ *exsv1beta1.ExternalSource) {
				conds := sent[0].body["status"].(map[string]any)["conditions"].([]any)
				var types []string
				for _, c := range conds {
					types = append(types, c.(map[string]any)["type"].(string))
				}
				g.Expect(types).To(ConsistOf(meta.ReadyCondition, exsv1beta1.ArtifactInStorageCondition),
					"the unchanged condition travels with the changed one")
			}},
		{name: "status before the finalizer's removal",
			change: func(o *exsv1beta1.ExternalSource) {
				o.Status.LastHandledETag = `"e"`
				o.Finalizers = nil
			},
			want: []string{"status", "object"},
			check: func(g Gomega, sent []sentPatch, _ *exsv1beta1.ExternalSource) {
				g.Expect(sent[1].body).ToNot(HaveKey("status"), "the object patch carries no status")
			}},
		{name: "observedGeneration only when asked", withGeneration: true, change: func(*exsv1beta1.ExternalSource) {},
			want: []string{"status"},
			check: func(g Gomega, _ []sentPatch, after *exsv1beta1.ExternalSource) {
				g.Expect(after.Status.ObservedGeneration).To(Equal(int64(3)))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := base()
			c, sent := recordingClient(t, obj)
			g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
			p := newObjectPatcher(obj, c, "test")
			tt.change(obj)
			g.Expect(p.Patch(context.Background(), obj, tt.withGeneration)).To(Succeed())
			var got []string
			for _, s := range *sent {
				got = append(got, map[bool]string{true: "status", false: "object"}[s.status])
			}
			g.Expect(got).To(Equal(tt.want))
			after := &exsv1beta1.ExternalSource{}
			g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(obj), after)).To(Succeed())
			if tt.check != nil {
				tt.check(g, *sent, after)
			}
			// A second Patch without a change sends nothing more.
			n := len(*sent)
			g.Expect(p.Patch(context.Background(), obj, tt.withGeneration)).To(Succeed())
			g.Expect(*sent).To(HaveLen(n), "a patch is computed against the previous write")
		})
	}
}
