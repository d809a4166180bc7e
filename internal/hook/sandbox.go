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
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
)

// How a hook run is confined. The whitelist's regexes bound what a hook
// may ask for; jq and yq are full languages, so what a run can reach is
// bounded by the kernel, in layers: Landlock (files; TCP from ABI 4; IPC
// scopes from ABI 6) at whatever ABI the node has, a seccomp-bpf filter
// (sockets, signals, setsid, the calls container runtimes deny) on every
// kernel, and rlimits, applied to the child between fork and exec: by
// the child itself, making raw system calls only (sandbox.Start, the
// default), or by a trampoline it execs (package sandbox: the sidecar's
// own binary again, or the small hook-sandbox binary) that confines
// itself and then execs the hook's command (StartMode). Either way the
// confinement is inherited across exec and can never be lifted. The
// resident memory and the process count of a run are watched from the
// sidecar (watchdog.go).
//
// The sidecar never exits for a kernel reason: it shares the pod with the
// manager, whose artifacts do not depend on hooks. A node that cannot give
// a protection makes the runs that need it fail, retried, with a message
// naming it (SandboxStatus.Refusal).

// SandboxMode is the sidecar's --hook-sandbox.
type SandboxMode string

const (
	// SandboxLandlock confines every run with every protection
	// (sandbox.ProtectionNames), by Landlock or seccomp; the default.
	SandboxLandlock SandboxMode = "landlock"
	// SandboxNone applies the rlimits and the watchdog only: chosen
	// explicitly by the admin, logged and exported as 0 protections.
	SandboxNone SandboxMode = "none"
)

// MinLandlockABI is the Landlock ABI below which hook runs are refused
// (see sandbox.MinLandlockABI).
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
	// Network allows IP sockets (TCP bind and connect, UDP).
	Network bool
	// Memory caps the resident memory of the run's processes together
	// (the watchdog) and each one's data segment (RLIMIT_DATA), in bytes.
	Memory int64
	// CPU caps each process's CPU time (RLIMIT_CPU).
	CPU time.Duration
	// FileSize caps a written file's size in bytes (RLIMIT_FSIZE).
	FileSize int64
	// Processes caps the run's processes and threads: the watchdog
	// counts the run's process group, which the seccomp filter keeps it
	// in (RLIMIT_NPROC is a uid-wide backstop only, sandbox.NprocBackstop).
	Processes int64
	// OpenFiles caps each process's descriptors (RLIMIT_NOFILE).
	OpenFiles int64
}

// SandboxStatus is what this node gives the sandbox: the start-up log
// line, the `sandbox` object of GET /v1/whitelist and the
// externalsource_hook_sandbox_protection gauge say it.
type SandboxStatus struct {
	// Mode is --hook-sandbox.
	Mode SandboxMode `json:"mode"`
	// LandlockABI is the ABI runs are confined with: the kernel's, capped
	// by --hook-sandbox-max-landlock-abi; 0 is no Landlock.
	LandlockABI int `json:"landlockABI"`
	// KernelLandlockABI is the kernel's own.
	KernelLandlockABI int `json:"kernelLandlockABI"`
	// Seccomp says the system call filter is applied.
	Seccomp bool `json:"seccomp"`
	// Protections says which protections every run gets.
	Protections map[string]bool `json:"protections"`
}

// Missing names the protections the mode requires that this node does not
// give, in sandbox.ProtectionNames order.
func (s SandboxStatus) Missing() []string {
	if s.Mode == SandboxNone {
		return nil
	}
	var out []string
	for _, p := range sandbox.ProtectionNames {
		if !s.Protections[p] {
			out = append(out, p)
		}
	}
	return out
}

// Refusal is why runs are refused on this node, "" when they are not:
// the missing protections, what each needs, and the node's Landlock ABI.
func (s SandboxStatus) Refusal() string {
	missing := s.Missing()
	if len(missing) == 0 {
		return ""
	}
	var needs []string
	for _, p := range missing {
		needs = append(needs, fmt.Sprintf("%s needs %s", p, sandbox.Needs(p)))
	}
	abi := fmt.Sprintf("the node's Landlock ABI is %d", s.KernelLandlockABI)
	if s.LandlockABI < s.KernelLandlockABI {
		abi += fmt.Sprintf(", capped at %d by --hook-sandbox-max-landlock-abi", s.LandlockABI)
	}
	return fmt.Sprintf("this node cannot confine hook runs as --hook-sandbox=%s requires: missing protection %s (%s; %s); "+
		"the run is refused and retried (a node upgrade or a reschedule fixes it)",
		s.Mode, strings.Join(missing, ", "), strings.Join(needs, "; "), abi)
}

// NodeSandbox says what runs get on this node in mode, with Landlock
// capped at maxABI (negative: the kernel's ABI).
func NodeSandbox(mode SandboxMode, maxABI int) (SandboxStatus, error) {
	kernel := LandlockABI()
	st := SandboxStatus{Mode: mode, KernelLandlockABI: kernel, LandlockABI: kernel}
	if maxABI >= 0 && maxABI < kernel {
		st.LandlockABI = maxABI
	}
	switch mode {
	case SandboxLandlock:
		st.Seccomp = sandbox.SeccompAvailable()
		st.Protections = sandbox.Protections(st.LandlockABI, st.Seccomp)
	case SandboxNone:
		st.LandlockABI = 0
		st.Protections = sandbox.Protections(0, false)
		for p := range st.Protections {
			st.Protections[p] = p == sandbox.Limits
		}
	default:
		return st, fmt.Errorf("unknown hook sandbox %q (landlock or none)", mode)
	}
	return st, nil
}

var (
	sandboxEnabled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "externalsource_hook_sandbox_enabled",
		Help: "1 with --hook-sandbox=landlock: every hook run is confined with every protection or refused (externalsource_hook_sandbox_protection says which this node gives); 0 with --hook-sandbox=none.",
	})
	sandboxProtection = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "externalsource_hook_sandbox_protection",
		Help: "1 when every hook run gets the protection (files, network, unix, signals, syscalls, limits) on this node, by Landlock, seccomp or rlimits; 0 otherwise.",
	}, []string{"protection"})
	// The gauges are the sidecar's: registered by its start-up check, so
	// that the manager, which runs no hook, does not export a 0 that
	// would read as "sandbox off".
	registerGauge sync.Once
)

// LandlockABI returns the kernel's Landlock ABI version, 0 when the kernel
// has no Landlock (or it is disabled at boot).
func LandlockABI() int { return sandbox.LandlockABI() }

// CheckSandbox is the sidecar's start-up check: it says what this node
// gives (NodeSandbox) and sets the gauges. It fails for an unknown mode
// only: a node without a protection refuses runs, it never stops the
// sidecar.
func CheckSandbox(mode SandboxMode, maxABI int) (SandboxStatus, error) {
	registerGauge.Do(func() { metrics.Registry.MustRegister(sandboxEnabled, sandboxProtection) })
	if mode == "" {
		mode = SandboxLandlock
	}
	st, err := NodeSandbox(mode, maxABI)
	if err != nil {
		return st, err
	}
	for _, p := range sandbox.ProtectionNames {
		sandboxProtection.WithLabelValues(p).Set(b2f(st.Protections[p]))
	}
	// No run goes unconfined unless the admin said none: a node without a
	// protection refuses runs, which the protection gauge says.
	sandboxEnabled.Set(b2f(mode == SandboxLandlock))
	return st, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// quantity prints bytes as the admin would write them (512Mi).
func quantity(b int64) string {
	return resource.NewQuantity(b, resource.BinarySI).String()
}
