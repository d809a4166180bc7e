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

package hook

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
)

// How a hook run is confined. The whitelist's regexes bound what a hook
// may ask for; jq and yq are full languages, so what a run can reach is
// bounded by the kernel: Landlock (filesystem, TCP, IPC scopes) and
// rlimits, applied to the child between fork and exec. Go cannot run code
// in a child before exec, so the sidecar starts a trampoline (package
// sandbox: its own binary again, or the small hook-sandbox binary) that
// confines itself and then execs the hook's command: the confinement is
// inherited across exec and can never be lifted. The resident memory and
// the process count of a run are watched from the sidecar (watchdog.go).

// SandboxMode is the sidecar's --hook-sandbox.
type SandboxMode string

const (
	// SandboxLandlock confines every run with Landlock and rlimits; the
	// default.
	SandboxLandlock SandboxMode = "landlock"
	// SandboxNone applies the rlimits and the watchdog but no Landlock:
	// for kernels without it, chosen explicitly by the admin.
	SandboxNone SandboxMode = "none"
)

// MinLandlockABI is the Landlock ABI the sandbox needs (see
// sandbox.MinLandlockABI).
const MinLandlockABI = sandbox.MinLandlockABI

// RunSandboxExecIfAsked turns the process into the sandbox trampoline when
// it was started as one (sandbox.RunIfAsked); main and a TestMain that
// runs hooks call it first thing.
func RunSandboxExecIfAsked() { sandbox.RunIfAsked() }

// SandboxPolicy is how one run is confined: a whitelist entry's sandbox
// fields with the defaults filled in.
type SandboxPolicy struct {
	// ReadPaths may be read and executed besides the binary.
	ReadPaths []string
	// Network allows TCP bind and connect.
	Network bool
	// Memory caps the resident memory of the run's processes together
	// (the watchdog) and each one's data segment (RLIMIT_DATA), in bytes.
	Memory int64
	// CPU caps each process's CPU time (RLIMIT_CPU).
	CPU time.Duration
	// FileSize caps a written file's size in bytes (RLIMIT_FSIZE).
	FileSize int64
	// Processes caps the run's processes and threads (the watchdog, and
	// RLIMIT_NPROC for a non-root sidecar).
	Processes int64
	// OpenFiles caps each process's descriptors (RLIMIT_NOFILE).
	OpenFiles int64
}

var (
	sandboxEnabled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "externalsource_hook_sandbox_enabled",
		Help: "1 when every hook run is confined by Landlock; 0 when the hook executor runs with --hook-sandbox=none.",
	})
	// The gauge is the sidecar's: registered by its start-up check, so
	// that the manager, which runs no hook, does not export a 0 that
	// would read as "sandbox off".
	registerGauge sync.Once
)

// LandlockABI returns the kernel's Landlock ABI version, 0 when the kernel
// has no Landlock (or it is disabled at boot).
func LandlockABI() int { return sandbox.LandlockABI() }

// CheckSandbox is the sidecar's start-up check: with landlock it fails
// unless the kernel has MinLandlockABI; it sets the
// externalsource_hook_sandbox_enabled gauge.
func CheckSandbox(mode SandboxMode) error {
	registerGauge.Do(func() { metrics.Registry.MustRegister(sandboxEnabled) })
	switch mode {
	case SandboxLandlock, "":
		if v := LandlockABI(); v < MinLandlockABI {
			sandboxEnabled.Set(0)
			return fmt.Errorf("the kernel's Landlock ABI is %d, the hook sandbox needs %d or newer (Linux 6.12+ with landlock in the lsm= list); "+
				"--hook-sandbox=none runs hooks without it", v, MinLandlockABI)
		}
		sandboxEnabled.Set(1)
		return nil
	case SandboxNone:
		sandboxEnabled.Set(0)
		return nil
	default:
		return fmt.Errorf("unknown hook sandbox %q (landlock or none)", mode)
	}
}

// quantity prints bytes as the admin would write them (512Mi).
func quantity(b int64) string {
	return resource.NewQuantity(b, resource.BinarySI).String()
}
