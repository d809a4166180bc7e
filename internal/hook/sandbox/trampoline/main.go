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

// Command trampoline is the hook sandbox alone (shipped as hook-sandbox):
// the hook executor's --hook-sandbox-trampoline, cheaper to start for every
// hook run than the whole controller binary, whose package initialisation
// takes tens of milliseconds.
package main

import (
	"fmt"
	"os"

	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
)

func main() {
	sandbox.RunIfAsked()
	fmt.Fprintf(os.Stderr, "usage: %s %s SPEC (started by the hook executor, not by hand)\n", os.Args[0], sandbox.ExecArg)
	os.Exit(2)
}
