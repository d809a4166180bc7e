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

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/fluxcd/pkg/apis/meta"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

func newExportCmd(o *options) *cobra.Command {
	var all, allNamespaces bool
	cmd := &cobra.Command{
		Use:   "export [NAME | --all]",
		Short: "Print ExternalSources as clean YAML to apply elsewhere, as `flux export`",
		Long: `Print ExternalSources as YAML documents that can be applied as they are: apiVersion,
kind, metadata (name, namespace, labels, annotations) and spec. Status, uid,
resourceVersion, generation, creationTimestamp, managedFields, finalizers and
owner references are left out, and so are the annotations that are not desired
state: kubectl's last-applied-configuration and Flux's reconcile requests
(reconcile.fluxcd.io/requestedAt, reconcile.fluxcd.io/forceAt).`,
		Example: `  kubectl externalsource export pricing -n flux-system > pricing.yaml
  kubectl externalsource export --all -n flux-system > sources.yaml
  kubectl externalsource export --all -A`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && (all || allNamespaces):
				return usagef("a NAME cannot be combined with --all or --all-namespaces")
			case len(args) == 0 && !all && !allNamespaces:
				return usagef("a NAME (or --all) is required")
			}
			items, err := o.listNamed(args, allNamespaces)
			if err != nil || len(items) == 0 {
				return err
			}
			return writeExport(o.stdout, items)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "Export every ExternalSource of the namespace.")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "Export every ExternalSource of every namespace.")
	return cmd
}

// exported is an ExternalSource as export prints it: only what a user
// writes. A typed ObjectMeta would print creationTimestamp: null, and the
// status would be printed though empty.
type exported struct {
	APIVersion string                        `json:"apiVersion"`
	Kind       string                        `json:"kind"`
	Metadata   exportedMeta                  `json:"metadata"`
	Spec       exsv1beta1.ExternalSourceSpec `json:"spec"`
}

type exportedMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// droppedAnnotations are not desired state: kubectl's copy of the last
// applied object, and reconcile requests, which would trigger a fetch
// wherever the export is applied.
var droppedAnnotations = map[string]bool{
	"kubectl.kubernetes.io/last-applied-configuration": true,
	meta.ReconcileRequestAnnotation:                    true,
	meta.ForceRequestAnnotation:                        true,
}

// exportOf returns the clean form of obj.
func exportOf(obj *exsv1beta1.ExternalSource) exported {
	var annotations map[string]string
	for k, v := range obj.Annotations {
		if droppedAnnotations[k] {
			continue
		}
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[k] = v
	}
	return exported{
		APIVersion: exsv1beta1.GroupVersion.String(),
		Kind:       exsv1beta1.ExternalSourceKind,
		Metadata: exportedMeta{
			Name:        obj.Name,
			Namespace:   obj.Namespace,
			Labels:      obj.Labels,
			Annotations: annotations,
		},
		Spec: obj.Spec,
	}
}

// writeExport writes one YAML document per object, each after a "---"
// line, as flux export does (the output concatenates safely).
func writeExport(w io.Writer, items []exsv1beta1.ExternalSource) error {
	for i := range items {
		b, err := yaml.Marshal(exportOf(&items[i]))
		if err != nil {
			return fmt.Errorf("encoding ExternalSource %s/%s: %w", items[i].Namespace, items[i].Name, err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}
