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

package iobuf

import (
	"errors"
	"fmt"
	"io"
)

// ErrCapped is what a CappedWriter returns once its cap is reached.
var ErrCapped = errors.New("output cap reached")

// CappedWriter passes at most Max bytes to W and fails the write that
// would go over, whole: a writer that stops at the cap, rather than
// truncating silently, lets its reader tell "exactly at the cap" from
// "over it" and stop the producer (a hook's output read by the
// controller, or by the sidecar from the hook).
type CappedWriter struct {
	W   io.Writer
	Max int64

	n        int64
	exceeded bool
}

// Write writes p to W unless that would take the total over Max.
func (c *CappedWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.Max {
		c.exceeded = true
		return 0, fmt.Errorf("%w (%d bytes)", ErrCapped, c.Max)
	}
	n, err := c.W.Write(p)
	c.n += int64(n)
	return n, err
}

// Written is the number of bytes W accepted.
func (c *CappedWriter) Written() int64 { return c.n }

// Exceeded says a write was refused for going over Max.
func (c *CappedWriter) Exceeded() bool { return c.exceeded }
