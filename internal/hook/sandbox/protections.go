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

// The protections docs/hooks.md promises for every run, and the layers
// that give each.
const (
	// Files: a run reads its binary and readPaths and writes its own
	// directory, nothing else. Landlock alone (ABI 1+).
	Files = "files"
	// Network: with `network: false`, no socket of any family (TCP, UDP,
	// raw, netlink, packet). The seccomp filter; Landlock's TCP rules (ABI
	// 4+) cover TCP only.
	Network = "network"
	// Unix: no Unix socket (the sidecar's hook.sock, abstract sockets).
	// The seccomp filter; Landlock's scope (ABI 6+) covers abstract ones
	// only.
	Unix = "unix"
	// Signals: only to the run's own processes. The seccomp filter, or
	// Landlock's signal scope (ABI 6+).
	Signals = "signals"
	// Syscalls: none of what container runtimes' default profiles deny,
	// and no way out of the run's process group. The seccomp filter.
	Syscalls = "syscalls"
	// Limits: memory, CPU, file size, open files, processes. rlimits and
	// the watchdog, on every kernel.
	Limits = "limits"
)

// ProtectionNames are the protections in the order they are reported.
var ProtectionNames = []string{Files, Network, Unix, Signals, Syscalls, Limits}

// Protections says which protections a run gets with Landlock at abi (0:
// none) and with the seccomp filter or without: true when a layer gives
// the whole protection, not part of it.
func Protections(abi int, seccomp bool) map[string]bool {
	return map[string]bool{
		Files:    abi >= 1,
		Network:  seccomp,
		Unix:     seccomp,
		Signals:  seccomp || abi >= 6,
		Syscalls: seccomp,
		Limits:   true,
	}
}

// Needs names the layer a missing protection needs, for the message that
// refuses a run.
func Needs(protection string) string {
	switch protection {
	case Files:
		return "Landlock ABI 1 (Linux 5.13+ with landlock in the lsm= list)"
	case Signals:
		return "the seccomp filter or Landlock ABI 6 (Linux 6.12+)"
	case Limits:
		return "rlimits"
	default:
		return "the seccomp filter (a kernel with seccomp, on amd64 or arm64)"
	}
}
