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
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/spf13/cobra"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func newGetCmd(o *options) *cobra.Command {
	var allNamespaces bool
	cmd := &cobra.Command{
		Use:   "get [NAME]",
		Short: "List ExternalSources and their status, as `flux get sources`",
		Example: `  # The ExternalSources of the context's namespace
  kubectl externalsource get

  # One of them, in another namespace
  kubectl externalsource get pricing -n flux-system

  # Every namespace
  kubectl externalsource get -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 && allNamespaces {
				return usagef("a NAME cannot be combined with --all-namespaces")
			}
			items, err := o.listNamed(args, allNamespaces)
			if err != nil || len(items) == 0 {
				return err
			}
			return writeSourceTable(o.stdout, items, allNamespaces)
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "List the ExternalSources of every namespace.")
	return cmd
}

// namespaceScope words where a list looked, as flux does.
func namespaceScope(ns string, all bool) string {
	if all {
		return "any namespace"
	}
	return ns + " namespace"
}

// listNamed lists what get and export name: the ExternalSource args[0], or
// all of the namespace (or of every namespace); none found is said on
// stderr and is not an error, as with flux.
func (o *options) listNamed(args []string, allNamespaces bool) ([]exsv1beta1.ExternalSource, error) {
	s, err := o.connect()
	if err != nil {
		return nil, err
	}
	ctx, cancel := o.context()
	defer cancel()
	var name string
	if len(args) == 1 {
		name = args[0]
	}
	items, err := s.list(ctx, name, allNamespaces)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		o.failure("no ExternalSource objects found in %s", namespaceScope(s.namespace, allNamespaces))
	}
	return items, nil
}

// list returns the named ExternalSource (an error when it does not exist)
// or, without a name, those of the namespace or of every namespace,
// sorted by namespace and name.
func (s *session) list(ctx context.Context, name string, allNamespaces bool) ([]exsv1beta1.ExternalSource, error) {
	if name != "" {
		obj, err := s.get(ctx, name)
		if err != nil {
			return nil, err
		}
		return []exsv1beta1.ExternalSource{*obj}, nil
	}
	var list exsv1beta1.ExternalSourceList
	var opts []client.ListOption
	if !allNamespaces {
		opts = append(opts, client.InNamespace(s.namespace))
	}
	if err := s.client.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("listing ExternalSources: %w", err)
	}
	items := list.Items
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	return items, nil
}

// get reads one ExternalSource of the session's namespace, with an error
// that names it when it does not exist.
func (s *session) get(ctx context.Context, name string) (*exsv1beta1.ExternalSource, error) {
	obj := &exsv1beta1.ExternalSource{}
	if err := s.client.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("ExternalSource %q not found in %s namespace", name, s.namespace)
		}
		return nil, fmt.Errorf("getting ExternalSource %s/%s: %w", s.namespace, name, err)
	}
	return obj, nil
}

// sourceRow is one line of `get`: flux's columns for a source.
func sourceRow(obj *exsv1beta1.ExternalSource, withNamespace bool) []string {
	var revision string
	if a := obj.GetArtifact(); a != nil {
		revision = a.Revision
	}
	ready, message := string(metav1.ConditionUnknown), "waiting to be reconciled"
	if c := conditions.Get(obj, meta.ReadyCondition); c != nil {
		ready, message = string(c.Status), c.Message
	}
	suspended := "False"
	if obj.Spec.Suspend {
		suspended = "True"
	}
	row := []string{obj.Name, revision, suspended, ready, message}
	if withNamespace {
		row = append([]string{obj.Namespace}, row...)
	}
	return row
}

// sourceHeader is flux's header of `get sources`.
var sourceHeader = []string{"NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"}

// writeSourceTable writes the table of `get`.
func writeSourceTable(w io.Writer, items []exsv1beta1.ExternalSource, withNamespace bool) error {
	header := sourceHeader
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	rows := make([][]string, 0, len(items))
	for i := range items {
		rows = append(rows, sourceRow(&items[i], withNamespace))
	}
	return writeTable(w, header, rows)
}

var cellReplacer = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ")

// writeTable aligns columns as kubectl does (three spaces between them).
// A cell's line breaks and tabs become spaces: a multi-line condition
// message must not break the table a script reads line by line.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	writeRow := func(cells []string) {
		clean := make([]string, len(cells))
		for i, c := range cells {
			clean[i] = cellReplacer.Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(clean, "\t"))
	}
	writeRow(header)
	for _, r := range rows {
		writeRow(r)
	}
	return tw.Flush()
}
