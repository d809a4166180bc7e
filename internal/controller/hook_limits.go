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
	flag "github.com/spf13/pflag"
)

// DefaultMaxPreRequestOutput caps what one pre-request hook may print: a
// request as JSON. Everything a request is made of comes from the spec
// (at most what etcd stores of an object, about 1.5 MiB) and a Secret (at
// most 1 MiB), so 4 MiB holds any request the spec can describe, JSON
// escaping included, while a hook that inflates the body (whose unbounded
// read held several times the body in the controller's heap) is stopped
// after 4 MiB.
const DefaultMaxPreRequestOutput = 4 << 20

// HookLimits bound what the hooks of one reconcile may cost the shared
// controller in memory and in the spool. The zero value is the defaults.
type HookLimits struct {
	// MaxPreRequestOutput caps the stdout of each pre-request hook, in
	// bytes; 0 is DefaultMaxPreRequestOutput. The output is read into a
	// buffer that stops at the cap, never further.
	MaxPreRequestOutput int64

	// MaxSpoolBytes caps the bytes one reconcile holds in the spool at
	// once while its post-request hooks run: the input of the running
	// hook (the fetched data or the previous hook's output) plus what the
	// hook has written so far. 0 is twice --max-response-size, which the
	// per-file limit already implies: set it lower to bound the spool's
	// size (an emptyDir's sizeLimit) as --concurrent times this value.
	MaxSpoolBytes int64
}

// BindFlags registers the limits' flags.
func (l *HookLimits) BindFlags(fs *flag.FlagSet) {
	fs.Int64Var(&l.MaxPreRequestOutput, "max-pre-request-output", DefaultMaxPreRequestOutput,
		"The most bytes a pre-request hook may print (the request as JSON, body included).")
	fs.Int64Var(&l.MaxSpoolBytes, "max-spool-bytes-per-reconcile", 0,
		"The most bytes one reconcile may hold in the spool at once while its post-request hooks run "+
			"(a hook's input plus its output); 0 is twice --max-response-size.")
}

// preRequestOutput is the cap of a pre-request hook's output.
func (l HookLimits) preRequestOutput() int64 {
	if l.MaxPreRequestOutput > 0 {
		return l.MaxPreRequestOutput
	}
	return DefaultMaxPreRequestOutput
}

// spoolBytes is the cap of a reconcile's spool use, given the per-fetch
// data limit.
func (l HookLimits) spoolBytes(maxData int64) int64 {
	if l.MaxSpoolBytes > 0 {
		return l.MaxSpoolBytes
	}
	return 2 * maxData
}
