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

// Package cmd holds what the programs of the externalsource-controller
// binary share; each program's flags and wiring live in a package below
// it (controller, hookexecutor), and main.go only dispatches to them.
package cmd

import (
	"github.com/go-logr/logr"

	"github.com/externalsource/externalsource-controller/internal/spool"
)

// NewSpool creates this process's spool directory under TMPDIR, removing
// those of dead processes (internal/spool), and logs how many went: both
// the controller and the hook sidecar spool what they handle.
func NewSpool(log logr.Logger) (*spool.Dir, error) {
	sp, err := spool.New("")
	if err != nil {
		return nil, err
	}
	log.Info("spool directory ready", "path", sp.Path(), "staleRemoved", len(sp.Removed()), "stale", sp.Removed())
	return sp, nil
}

// CloseSpool removes the spool directory at shutdown; a failure costs
// space until the next start sweeps it, so it is logged, not returned.
func CloseSpool(log logr.Logger, sp *spool.Dir) {
	if err := sp.Close(); err != nil {
		log.Error(err, "removing the spool directory", "path", sp.Path())
	}
}
