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

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func newReconcileCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "reconcile NAME",
		Short: "Fetch an ExternalSource now and wait for the result, as `flux reconcile source`",
		Long: `Request a reconciliation (the reconcile.fluxcd.io/requestedAt annotation), wait
until the controller has handled that request (status.lastHandledReconcileAt)
and print the revision, or the failure message and exit 1.

With --force the request also sets reconcile.fluxcd.io/forceAt: the controller
then skips its change detection (HEAD, conditional GET) and fetches the data in
full.`,
		Example: `  kubectl externalsource reconcile pricing -n flux-system
  kubectl externalsource reconcile pricing --force --timeout=2m`,
		Args: exactName,
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := o.connect()
			if err != nil {
				return err
			}
			ctx, cancel := o.context()
			defer cancel()
			obj, err := s.get(ctx, args[0])
			if err != nil {
				return err
			}
			if obj.Spec.Suspend {
				return &notReadyError{msg: fmt.Sprintf(
					"ExternalSource %s/%s is suspended: resume it to reconcile it", obj.Namespace, obj.Name)}
			}
			token := requestToken(time.Now())
			o.action("annotating ExternalSource %s in %s namespace", obj.Name, obj.Namespace)
			if err := s.patch(ctx, obj.Name, requestPatch(token, force, nil)); err != nil {
				return err
			}
			o.success("ExternalSource annotated")
			return o.awaitRequest(ctx, s, obj.Name, token)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false,
		"Also set reconcile.fluxcd.io/forceAt: fetch in full, skipping the HEAD and conditional requests.")
	return cmd
}

func newSuspendCmd(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "suspend [NAME...]",
		Short: "Stop reconciling ExternalSources (spec.suspend: true), as `flux suspend source`",
		Long: `Set spec.suspend to true: the controller stops fetching; the last artifact stays
published.`,
		Example: `  kubectl externalsource suspend pricing
  kubectl externalsource suspend --all -n flux-system`,
		RunE: func(_ *cobra.Command, args []string) error {
			return o.setSuspend(args, all, true)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "Suspend every ExternalSource of the namespace.")
	return cmd
}

func newResumeCmd(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "resume [NAME...]",
		Short: "Resume ExternalSources and wait until they are Ready, as `flux resume source`",
		Long: `Set spec.suspend to false together with a reconcile request, then wait, as
reconcile does, until each source has handled it: exit 0 when every one is
Ready, 1 when one is not.`,
		Example: `  kubectl externalsource resume pricing
  kubectl externalsource resume --all -n flux-system`,
		RunE: func(_ *cobra.Command, args []string) error {
			return o.setSuspend(args, all, false)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "Resume every ExternalSource of the namespace.")
	return cmd
}

// exactName accepts one NAME, with a usage error that says so.
func exactName(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("exactly one NAME is required, got %d arguments", len(args))
	}
	return nil
}

// namesOrAll checks the arguments of suspend and resume: names or --all.
func namesOrAll(args []string, all bool) error {
	switch {
	case all && len(args) > 0:
		return usagef("NAME arguments cannot be combined with --all")
	case !all && len(args) == 0:
		return usagef("at least one NAME (or --all) is required")
	}
	return nil
}

// setSuspend is suspend (suspend true) and resume (false, then waits).
func (o *options) setSuspend(names []string, all, suspend bool) error {
	if err := namesOrAll(names, all); err != nil {
		return err
	}
	s, err := o.connect()
	if err != nil {
		return err
	}
	ctx, cancel := o.context()
	defer cancel()
	if all {
		items, err := s.list(ctx, "", false)
		if err != nil {
			return err
		}
		if len(items) == 0 {
			o.failure("no ExternalSource objects found in %s namespace", s.namespace)
			return nil
		}
		for _, it := range items {
			names = append(names, it.Name)
		}
	}
	verb, done := "suspending", "suspended"
	if !suspend {
		verb, done = "resuming", "resumed"
	}
	token := requestToken(time.Now())
	for _, name := range names {
		o.action("%s ExternalSource %s in %s namespace", verb, name, s.namespace)
		p := map[string]any{"spec": map[string]any{"suspend": suspend}}
		if !suspend {
			// The request makes resume's wait exact: it returns on the
			// result of this resume, never on an older status.
			p = requestPatch(token, false, p)
		}
		if err := s.patch(ctx, name, p); err != nil {
			return err
		}
		o.success("ExternalSource %s %s", name, done)
	}
	if suspend {
		return nil
	}
	var failed []string
	for _, name := range names {
		if err := o.awaitRequest(ctx, s, name, token); err != nil {
			var nr *notReadyError
			if !errors.As(err, &nr) {
				return err
			}
			o.failure("%s: %v", name, err)
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return &notReadyError{msg: fmt.Sprintf("not ready: %v", failed)}
	}
	return nil
}

// requestToken is the value of a reconcile request: unique per call, as
// flux's (RFC 3339 with nanoseconds).
func requestToken(now time.Time) string {
	return now.Format(time.RFC3339Nano)
}

// requestPatch adds the reconcile request annotations to the merge patch
// p (a new one when nil). forceAt must equal requestedAt for the
// controller to honour it (Flux's protocol, meta.ShouldHandleForceRequest).
func requestPatch(token string, force bool, p map[string]any) map[string]any {
	if p == nil {
		p = map[string]any{}
	}
	annotations := map[string]any{meta.ReconcileRequestAnnotation: token}
	if force {
		annotations[meta.ForceRequestAnnotation] = token
	}
	p["metadata"] = map[string]any{"annotations": annotations}
	return p
}

// patch applies a JSON merge patch to the named ExternalSource: no read-
// modify-write, so it never conflicts with the controller's status writes.
func (s *session) patch(ctx context.Context, name string, p map[string]any) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: name}}
	if err := s.client.Patch(ctx, obj, client.RawPatch(client.Merge.Type(), b)); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("ExternalSource %q not found in %s namespace", name, s.namespace)
		}
		return fmt.Errorf("patching ExternalSource %s/%s: %w", s.namespace, name, err)
	}
	return nil
}

// awaitRequest waits for the result of the reconcile request token and
// reports it as flux does: the revision when Ready, the Ready message as
// a notReadyError otherwise.
func (o *options) awaitRequest(ctx context.Context, s *session, name, token string) error {
	o.waiting("waiting for ExternalSource reconciliation")
	var res outcome
	obj, err := s.waitFor(ctx, name, func(obj *exsv1beta1.ExternalSource) bool {
		res = requestOutcome(obj, token)
		return res.done
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			msg := "timeout waiting for ExternalSource reconciliation"
			if obj != nil {
				if m := conditions.GetMessage(obj, meta.ReadyCondition); m != "" {
					msg += ": Ready: " + m
				}
			}
			return &notReadyError{msg: msg}
		}
		return err
	}
	if !res.ready {
		return &notReadyError{msg: res.message}
	}
	o.success("ExternalSource reconciliation completed")
	if a := obj.GetArtifact(); a != nil {
		o.success("fetched revision %s", a.Revision)
	}
	return nil
}

// outcome is what the status says about one reconcile request.
type outcome struct {
	// done: the controller handled the request and its Ready condition is
	// the result of that reconcile (True or False).
	done    bool
	ready   bool
	message string
}

// requestOutcome reads the result of request token from obj. The request
// is handled when status.lastHandledReconcileAt equals it (written in the
// same status patch as the reconcile's conditions); Ready must then be
// True or False for the object's current generation: Unknown is progress,
// and a Ready of an older generation is a result of before the spec
// change (resume changes spec.suspend).
func requestOutcome(obj *exsv1beta1.ExternalSource, token string) outcome {
	if obj.Status.LastHandledReconcileAt != token {
		return outcome{}
	}
	c := conditions.Get(obj, meta.ReadyCondition)
	if c == nil || c.ObservedGeneration != obj.Generation || c.Status == metav1.ConditionUnknown {
		return outcome{}
	}
	return outcome{done: true, ready: c.Status == metav1.ConditionTrue, message: c.Message}
}

// waitFor returns the named ExternalSource once done says so, watching it
// (a watch answers as soon as the status is written; polling would add
// its period to every reconcile). A closed or expired watch starts again
// from a fresh read. On the context's end it returns the last object seen
// with the context's error.
func (s *session) waitFor(ctx context.Context, name string, done func(*exsv1beta1.ExternalSource) bool) (*exsv1beta1.ExternalSource, error) {
	var last *exsv1beta1.ExternalSource
	for {
		obj, err := s.get(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		last = obj
		if done(obj) {
			return obj, nil
		}
		w, err := s.client.Watch(ctx, &exsv1beta1.ExternalSourceList{},
			client.InNamespace(s.namespace),
			client.MatchingFields{"metadata.name": name},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: obj.ResourceVersion}})
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, fmt.Errorf("watching ExternalSource %s/%s: %w", s.namespace, name, err)
		}
		obj, err = drain(ctx, w, done)
		w.Stop()
		if obj != nil {
			last = obj
		}
		if err != nil || (obj != nil && done(obj)) {
			return last, err
		}
	}
}

// drain reads a watch until done, its end (nil, nil: start again), the
// object's deletion or the context's end.
func drain(ctx context.Context, w watch.Interface, done func(*exsv1beta1.ExternalSource) bool) (*exsv1beta1.ExternalSource, error) {
	var last *exsv1beta1.ExternalSource
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return last, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return last, errors.New("the ExternalSource was deleted while waiting")
			case watch.Error:
				return last, nil // e.g. an expired resourceVersion: read again
			case watch.Added, watch.Modified:
				if obj, ok := ev.Object.(*exsv1beta1.ExternalSource); ok {
					last = obj
					if done(obj) {
						return obj, nil
					}
				}
			}
		}
	}
}
