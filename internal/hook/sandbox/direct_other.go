//go:build !(linux && (amd64 || arm64))

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

package sandbox

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// DirectStart says this build can start runs with Start: not on this
// platform, which has no vfork of ours (vfork_linux_*.s); runs go
// through the trampoline.
const DirectStart = false

// Start is not available on this platform (DirectStart).
func Start(*Spec, [3]*os.File, *syscall.Credential) (int, time.Time, error) {
	return 0, time.Time{}, errors.New("the direct start is not in this build; use the trampoline")
}
