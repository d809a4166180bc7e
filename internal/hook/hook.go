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

// Package hook runs the whitelisted commands of an ExternalSource's hooks.
// The reconciler talks to a Runner; the runner that executes commands lives
// in the hook-executor sidecar, reached over a Unix socket.
package hook

import (
	"context"
	"io"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// Runner runs one hook: stdin is streamed to the command and its stdout is
// written to stdout. Implementations check the whitelist before running.
type Runner interface {
	Run(ctx context.Context, h v1.Hook, stdin io.Reader, stdout io.Writer) error
}

// Checked returns a Runner that checks every hook against the whitelist
// before handing it to next. The controller checks, so that a refused hook
// stalls its object without a round trip; the sidecar checks again.
func Checked(whitelist func() *Whitelist, next Runner) Runner {
	return checked{whitelist: whitelist, next: next}
}

type checked struct {
	whitelist func() *Whitelist
	next      Runner
}

func (c checked) Run(ctx context.Context, h v1.Hook, stdin io.Reader, stdout io.Writer) error {
	if _, err := c.whitelist().Check(h); err != nil {
		return err
	}
	return c.next.Run(ctx, h, stdin, stdout)
}
