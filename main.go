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

// Command externalsource-controller is a Flux source controller that turns
// data behind HTTP APIs into versioned ExternalArtifacts.
//
// One binary holds four programs, chosen here and wired in their own
// packages: the hook sandbox trampoline (internal/hook), the kubectl
// plugin (internal/cli), the hook-executor sidecar
// (internal/cmd/hookexecutor) and the controller (internal/cmd/controller).
package main

import (
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/externalsource/externalsource-controller/internal/cli"
	controllercmd "github.com/externalsource/externalsource-controller/internal/cmd/controller"
	"github.com/externalsource/externalsource-controller/internal/cmd/hookexecutor"
	"github.com/externalsource/externalsource-controller/internal/hook"
)

// version is set at build time (-X main.version=...).
var version = "dev"

func main() {
	// The hook sidecar starts this binary again to confine each hook
	// before exec'ing it (internal/hook, sandbox.go); that mode never
	// returns.
	hook.RunSandboxExecIfAsked()
	// The same binary is the command line for ExternalSources: the kubectl
	// plugin kubectl-externalsource (a symlink) or `ctl` (internal/cli).
	if args, name, ok := cli.Invoked(os.Args); ok {
		os.Exit(cli.Run(name, args, os.Stdout, os.Stderr))
	}
	// The same binary runs the hook sidecar.
	if len(os.Args) > 1 && os.Args[1] == hookexecutor.Subcommand {
		if err := hookexecutor.Run(os.Args[2:]); err != nil {
			ctrl.Log.WithName("setup").Error(err, "hook executor exiting")
			os.Exit(1)
		}
		return
	}
	controllercmd.Main(version)
}
