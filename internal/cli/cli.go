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

// Package cli is the command line for ExternalSources with the habits of
// the flux CLI (get, reconcile, suspend, resume, events, export), which
// cannot drive a third-party kind. The controller binary runs it as the
// kubectl plugin kubectl-externalsource (a symlink of that name in PATH
// makes `kubectl externalsource ...` work) or as its `ctl` subcommand.
package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// PluginName is the executable name under which kubectl finds the plugin
// (`kubectl externalsource` runs kubectl-externalsource from PATH).
const PluginName = "kubectl-externalsource"

// ShortPluginName is a second name for the plugin, after the kind's short
// name: a symlink kubectl-exs makes `kubectl exs get` work.
const ShortPluginName = "kubectl-exs"

// Subcommand is the argument of the controller binary that runs the CLI
// (`externalsource-controller ctl get`).
const Subcommand = "ctl"

// Exit codes, for scripts: documented in docs/cli.md.
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitNotReady: the reconciliation failed (Ready=False), the object
	// is suspended, or the wait timed out before a result.
	ExitNotReady = 1
	// ExitUsage: unknown command or flag, wrong number of arguments,
	// conflicting flags. Nothing was sent to the cluster.
	ExitUsage = 2
	// ExitError: anything else: the kubeconfig or context is unusable, the
	// API server cannot be reached or refused the request, the object does
	// not exist.
	ExitError = 3
)

// defaultTimeout bounds a command, waits included, as flux's --timeout.
const defaultTimeout = 5 * time.Minute

// Invoked says whether argv (os.Args) asks for the CLI: the executable is
// named kubectl-externalsource or kubectl-exs (through a symlink or a
// copy), or kubectl_complete-externalsource (kubectl's completion of the
// plugin's arguments), or the first argument is the ctl subcommand. It returns the CLI's
// arguments and the name its help shows.
func Invoked(argv []string) (args []string, displayName string, ok bool) {
	if len(argv) == 0 {
		return nil, "", false
	}
	switch base := filepath.Base(argv[0]); base {
	case PluginName, ShortPluginName:
		return argv[1:], strings.Replace(base, "-", " ", 1), true
	case CompletionName:
		return append([]string{cobra.ShellCompRequestCmd}, argv[1:]...), "kubectl externalsource", true
	}
	if len(argv) > 1 && argv[1] == Subcommand {
		return argv[2:], filepath.Base(argv[0]) + " " + Subcommand, true
	}
	return nil, "", false
}

// usageError is a command line the CLI cannot run: ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// notReadyError is a reconciliation that did not end Ready (or did not end
// in time): ExitNotReady. Its message is the Ready condition's, so a
// script's log shows why.
type notReadyError struct{ msg string }

func (e *notReadyError) Error() string { return e.msg }

// Run runs the CLI with args (without the program name) and returns the
// exit code. displayName is the command name its help and errors show.
func Run(displayName string, args []string, stdout, stderr io.Writer) int {
	// controller-runtime's client logs through this logger; unset, it
	// prints a warning with a stack trace after 30 seconds.
	ctrllog.SetLogger(logr.Discard())

	o := &options{stdout: stdout, stderr: stderr}
	root := newRootCmd(displayName, o)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	code := exitCode(err, o.started)
	if err != nil {
		if code == ExitUsage {
			fmt.Fprintf(stderr, "Error: %v\nRun '%s --help' for usage.\n", err, displayName)
		} else {
			o.failure("%v", err)
		}
	}
	return code
}

// exitCode maps the error of a command to the documented exit codes.
// Errors before the command ran (cobra's parsing of flags, arguments and
// the command name) are usage errors.
func exitCode(err error, started bool) int {
	var usage *usageError
	var notReady *notReadyError
	switch {
	case err == nil:
		return ExitOK
	case !started, errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &notReady):
		return ExitNotReady
	default:
		return ExitError
	}
}

// newRootCmd builds the command tree; o receives the global flags.
func newRootCmd(displayName string, o *options) *cobra.Command {
	root := &cobra.Command{
		Use:   "externalsource",
		Short: "Drive ExternalSources as the flux CLI drives Flux sources",
		Long: `Drive ExternalSources (source.externalsource.io/v1beta1) as the flux CLI drives
Flux sources: list them, request a reconciliation and wait for its result,
suspend and resume them, show their events and export them as clean YAML.

Exit codes: 0 success; 1 the reconciliation failed, the object is suspended or
the wait timed out; 2 usage error; 3 any other error (kubeconfig, API server,
object not found).`,
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: displayName},
		// Errors and usage are printed by Run, once, with the exit code's
		// wording.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRun: func(*cobra.Command, []string) {
			o.started = true
		},
		// kubectl completes plugins through kubectl_complete-externalsource
		// (complete.go); a completion script for this name would not work.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &usageError{msg: err.Error()}
	})
	o.bind(root.PersistentFlags())
	_ = root.RegisterFlagCompletionFunc("namespace", o.completeNamespaces)
	root.AddCommand(
		newGetCmd(o),
		newReconcileCmd(o),
		newSuspendCmd(o),
		newResumeCmd(o),
		newEventsCmd(o),
		newExportCmd(o),
	)
	// Names complete from the cluster (kubectl's plugin completion and
	// cobra's shell scripts): one for the commands of one object, any
	// number for suspend and resume.
	for _, c := range root.Commands() {
		switch c.Name() {
		case "suspend", "resume":
			c.ValidArgsFunction = o.completeNames(-1)
		case "get", "reconcile", "events", "export":
			c.ValidArgsFunction = o.completeNames(1)
		}
	}
	return root
}
