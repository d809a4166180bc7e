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
	"fmt"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/runtime/events"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/redact"
)

// NotificationRecorder is the reconciler's events.Recorder. It exists
// because notification-controller's Alert API only lets eventSources name
// Flux kinds (ExternalArtifact is one, ExternalSource is not): an event of
// an ExternalSource becomes one Kubernetes Event, on the ExternalSource
// where `kubectl describe` shows it, and two notifications, one for the
// ExternalSource (what a plain webhook receiver of Flux events has always
// had) and one for its ExternalArtifact of the same name and namespace,
// which an Alert can select. Its metadata are passed as they are: the
// reconciler writes them under the source.toolkit.fluxcd.io group, which is
// the group notification-controller keeps for an ExternalArtifact.
//
// An event regarding an ExternalArtifact itself (NewArtifact) becomes a
// Kubernetes Event only: its notification is the one mirrored from the
// ExternalSource's, so an Alert receives each event once.
type NotificationRecorder struct {
	// Kube records the Kubernetes Events (a recorder without webhook).
	Kube events.Recorder
	// Webhook posts the notifications (a recorder without Kubernetes
	// sink); nil posts none.
	Webhook events.Recorder
}

var _ events.Recorder = &NotificationRecorder{}

// NewNotificationRecorder builds the reconciler's recorder for a manager:
// Kubernetes Events through the manager, and notifications to eventsAddr
// (--events-addr) when it is set.
func NewNotificationRecorder(mgr ctrl.Manager, log logr.Logger, eventsAddr, controllerName string) (*NotificationRecorder, error) {
	kube, err := events.NewRecorder(log, "", controllerName, events.WithManager(mgr))
	if err != nil {
		return nil, err
	}
	n := &NotificationRecorder{Kube: kube}
	if eventsAddr != "" {
		if n.Webhook, err = events.NewRecorder(log, eventsAddr, controllerName, events.WithScheme(mgr.GetScheme())); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Eventf records an event without metadata (see AnnotatedEventf).
func (n *NotificationRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	n.AnnotatedEventf(regarding, related, nil, eventtype, reason, action, note, args...)
}

// AnnotatedEventf records the Kubernetes Event and posts the notifications
// described on NotificationRecorder.
func (n *NotificationRecorder) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) {
	n.Kube.AnnotatedEventf(regarding, related, annotations, eventtype, reason, action, note, args...)
	if n.Webhook == nil {
		return
	}
	switch o := regarding.(type) {
	case *sourcev1.ExternalArtifact:
		return
	case *exsv1beta1.ExternalSource:
		n.Webhook.AnnotatedEventf(o, related, annotations, eventtype, reason, action, note, args...)
		n.Webhook.AnnotatedEventf(artifactOf(o), related, annotations, eventtype, reason, action, note, args...)
	default:
		n.Webhook.AnnotatedEventf(regarding, related, annotations, eventtype, reason, action, note, args...)
	}
}

// artifactOf names the ExternalArtifact an ExternalSource publishes, for
// the involvedObject of a notification. It carries the source's
// annotations, so that the event.toolkit.fluxcd.io/ ones users set on the
// ExternalSource reach the Alert as Flux's recorder passes them for any
// object. It is never written: no UID is needed, and notification-
// controller reads the object only for an Alert with matchLabels, which
// then match the ExternalArtifact's labels.
func artifactOf(obj *exsv1beta1.ExternalSource) *sourcev1.ExternalArtifact {
	return &sourcev1.ExternalArtifact{ObjectMeta: metav1.ObjectMeta{
		Name:        obj.Name,
		Namespace:   obj.Namespace,
		Annotations: obj.Annotations,
	}}
}

// Eventf shadows the embedded Recorder's: every event message of an object
// being reconciled (the ExternalSource, or its ExternalArtifact of the same
// name) goes through that reconcile's Secret values, whichever step emits
// it.
func (r *ExternalSourceReconciler) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.Recorder.Eventf(regarding, related, eventtype, reason, action, "%s", r.redactEvent(regarding, fmt.Sprintf(note, args...)))
}

// AnnotatedEventf shadows the embedded Recorder's, as Eventf does.
func (r *ExternalSourceReconciler) AnnotatedEventf(regarding, related runtime.Object, annotations map[string]string,
	eventtype, reason, action, note string, args ...any) {
	r.Recorder.AnnotatedEventf(regarding, related, annotations, eventtype, reason, action, "%s",
		r.redactEvent(regarding, fmt.Sprintf(note, args...)))
}

func (r *ExternalSourceReconciler) redactEvent(regarding runtime.Object, msg string) string {
	var set *redact.Set
	if o, ok := regarding.(client.Object); ok {
		if v, ok := r.secrets.Load(client.ObjectKeyFromObject(o)); ok {
			set = v.(*redact.Set)
		}
	}
	return truncate(set.String(msg), maxMessageLength)
}
