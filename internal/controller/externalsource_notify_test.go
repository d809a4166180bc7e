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
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/runtime/events"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestNotificationRecorder: an ExternalSource's event is one Kubernetes
// Event on the ExternalSource and two notifications, for the ExternalSource
// and for its ExternalArtifact (what an Alert can select), with the same
// severity, reason, message and metadata; an ExternalArtifact's own event
// is a Kubernetes Event only; without --events-addr nothing is posted.
func TestNotificationRecorder(t *testing.T) {
	const revision, digest = "latest@sha256:abc", "sha256:abc"
	newArtifact := map[string]string{
		sourcev1.GroupVersion.Group + "/" + eventv1.MetaRevisionKey: revision,
		sourcev1.GroupVersion.Group + "/" + eventv1.MetaDigestKey:   digest,
	}
	src := &exsv1beta1.ExternalSource{
		TypeMeta: metav1.TypeMeta{APIVersion: exsv1beta1.GroupVersion.String(), Kind: exsv1beta1.ExternalSourceKind},
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: "team", UID: "u1",
			Annotations: map[string]string{eventv1.Group + "/env": "prod", "unrelated": "x"}},
	}
	ea := &sourcev1.ExternalArtifact{
		TypeMeta:   metav1.TypeMeta{APIVersion: sourcev1.GroupVersion.String(), Kind: sourcev1.ExternalArtifactKind},
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: "team"},
	}
	tests := []struct {
		name        string
		regarding   runtime.Object
		annotations map[string]string
		eventtype   string
		noWebhook   bool
		// wantKube is the kind of the one Kubernetes Event.
		wantKube string
		// wantPosted are the involved objects' kinds, in order.
		wantPosted   []string
		wantSeverity string
		wantMetadata map[string]string
	}{
		{name: "failure of an ExternalSource", regarding: src, eventtype: corev1.EventTypeWarning,
			wantKube:     exsv1beta1.ExternalSourceKind,
			wantPosted:   []string{exsv1beta1.ExternalSourceKind, sourcev1.ExternalArtifactKind},
			wantSeverity: eventv1.EventSeverityError,
			wantMetadata: map[string]string{eventv1.Group + "/env": "prod"}},
		{name: "new artifact of an ExternalSource", regarding: src, annotations: newArtifact, eventtype: corev1.EventTypeNormal,
			wantKube:     exsv1beta1.ExternalSourceKind,
			wantPosted:   []string{exsv1beta1.ExternalSourceKind, sourcev1.ExternalArtifactKind},
			wantSeverity: eventv1.EventSeverityInfo,
			wantMetadata: map[string]string{eventv1.Group + "/env": "prod",
				"source.toolkit.fluxcd.io/revision": revision, "source.toolkit.fluxcd.io/digest": digest}},
		{name: "event of the ExternalArtifact", regarding: ea, annotations: newArtifact, eventtype: corev1.EventTypeNormal,
			wantKube: sourcev1.ExternalArtifactKind},
		{name: "no events-addr", regarding: src, eventtype: corev1.EventTypeWarning, noWebhook: true,
			wantKube: exsv1beta1.ExternalSourceKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			posted := &testutil.EventReceiver{}
			srv := httptest.NewServer(posted)
			defer srv.Close()
			kube := events.NewFakeRecorder(8, true)
			n := &NotificationRecorder{Kube: kube}
			if !tt.noWebhook {
				w, err := events.NewRecorder(ctrl.Log, srv.URL, "externalsource-controller", events.WithScheme(testScheme))
				g.Expect(err).ToNot(HaveOccurred())
				n.Webhook = w
			}

			n.AnnotatedEventf(tt.regarding, nil, tt.annotations, tt.eventtype, "Reason", "Reconcile", "message %d", 1)

			k := kube.GetEvents()
			g.Expect(k).To(HaveLen(1))
			g.Expect(k[0].InvolvedObject.Kind).To(Equal(tt.wantKube))
			g.Expect(k[0].Message).To(Equal("message 1"))
			got := posted.Take()
			g.Expect(got).To(HaveLen(len(tt.wantPosted)))
			for i, e := range got {
				g.Expect(e.InvolvedObject.Kind).To(Equal(tt.wantPosted[i]))
				g.Expect(e.InvolvedObject.Name).To(Equal("pricing"))
				g.Expect(e.InvolvedObject.Namespace).To(Equal("team"))
				g.Expect(e.Severity).To(Equal(tt.wantSeverity))
				g.Expect(e.Reason).To(Equal("Reason"))
				g.Expect(e.Message).To(Equal("message 1"))
				g.Expect(e.Metadata).To(Equal(tt.wantMetadata))
				g.Expect(e.ReportingController).To(Equal("externalsource-controller"))
			}
			if len(got) == 2 {
				g.Expect(got[1].InvolvedObject.APIVersion).To(Equal(sourcev1.GroupVersion.String()))
			}
		})
	}
}
