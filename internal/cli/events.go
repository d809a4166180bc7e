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
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func newEventsCmd(o *options) *cobra.Command {
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "events [NAME]",
		Short: "Show the Kubernetes Events of ExternalSources and their ExternalArtifacts, oldest first",
		Long: `Show the Kubernetes Events of an ExternalSource and of its ExternalArtifact (the
events that ` + "`flux events`" + ` drops, as it does not know these kinds), sorted by
time, oldest first. Without NAME: those of every ExternalSource and
ExternalArtifact of the namespace.`,
		Example: `  kubectl externalsource events pricing -n flux-system
  kubectl externalsource events -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 && allNamespaces {
				return usagef("a NAME cannot be combined with --all-namespaces")
			}
			s, err := o.connect()
			if err != nil {
				return err
			}
			ctx, cancel := o.context()
			defer cancel()
			var opts []client.ListOption
			if !allNamespaces {
				opts = append(opts, client.InNamespace(s.namespace))
			}
			if len(args) == 1 {
				// The API server filters Events by these fields.
				opts = append(opts, client.MatchingFields{"involvedObject.name": args[0]})
			}
			var list corev1.EventList
			if err := s.client.List(ctx, &list, opts...); err != nil {
				return fmt.Errorf("listing Events: %w", err)
			}
			evs := sourceEvents(list.Items)
			if len(evs) == 0 {
				what := "ExternalSource objects"
				if len(args) == 1 {
					what = "ExternalSource " + args[0]
				}
				o.failure("no events found for %s in %s", what, namespaceScope(s.namespace, allNamespaces))
				return nil
			}
			return writeEventTable(o.stdout, evs, allNamespaces, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Show the events of every namespace.")
	return cmd
}

// eventKinds are the involved objects whose events are shown: ours and
// the ExternalArtifacts we publish (by group, so that another project's
// kind of the same name is left out).
var eventKinds = map[schema.GroupKind]bool{
	{Group: exsv1beta1.GroupVersion.Group, Kind: exsv1beta1.ExternalSourceKind}: true,
	{Group: sourcev1.GroupVersion.Group, Kind: sourcev1.ExternalArtifactKind}:   true,
}

// sourceEvents keeps the events of ExternalSources and ExternalArtifacts,
// sorted oldest first. The sort is stable: events of one time keep the
// API's order (by name, which the recorder derives from the time).
func sourceEvents(items []corev1.Event) []corev1.Event {
	var out []corev1.Event
	for _, e := range items {
		gv, err := schema.ParseGroupVersion(e.InvolvedObject.APIVersion)
		if err != nil || !eventKinds[gv.WithKind(e.InvolvedObject.Kind).GroupKind()] {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(&out[i]).Before(eventTime(&out[j])) })
	return out
}

// eventTime is when an event was last seen, whichever API wrote it:
// events.k8s.io/v1 recorders (the controller's) set eventTime and, for a
// repeated event, series.lastObservedTime; core/v1 recorders set
// lastTimestamp.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// eventHeader is flux's header of `flux events`.
var eventHeader = []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}

// writeEventTable writes the table of `events`; LAST SEEN is relative to
// now, as kubectl and flux show it.
func writeEventTable(w io.Writer, evs []corev1.Event, withNamespace bool, now time.Time) error {
	header := eventHeader
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(evs))
	for i := range evs {
		e := &evs[i]
		row := []string{duration.HumanDuration(now.Sub(eventTime(e))), e.Type, e.Reason,
			e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name, e.Message}
		if withNamespace {
			row = append([]string{e.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return writeTable(w, header, rows)
}
