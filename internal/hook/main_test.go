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
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
)

// TestMain lets the test binary be the sandbox trampoline of the executors
// the tests run, as the sidecar's binary is in production.
func TestMain(m *testing.M) {
	RunSandboxExecIfAsked()
	if len(os.Args) > 3 && os.Args[1] == hiddenExecArg {
		hiddenExec(os.Args[2], os.Args[3])
	}
	// One line up front on a kernel that cannot give every protection:
	// the tests that need one fail with the same reason.
	if st, _ := NodeSandbox(SandboxLandlock, -1); st.Refusal() != "" {
		fmt.Fprintf(os.Stderr, "hook sandbox on this kernel (Landlock ABI %d, seccomp %t): %s\n", st.KernelLandlockABI, st.Seccomp, st.Refusal())
	}
	code := m.Run()
	if probePath != "" {
		os.RemoveAll(filepath.Dir(probePath))
	}
	os.Exit(code)
}

// requireSandboxKernel fails a test that needs every protection of the
// sandbox on a node that cannot give them, with one line saying why:
// never a skip.
func requireSandboxKernel(t testing.TB) {
	t.Helper()
	if st, _ := NodeSandbox(SandboxLandlock, -1); st.Refusal() != "" {
		t.Fatalf("hook sandbox: %s", st.Refusal())
	}
}

// hiddenExecArg makes the test binary the first process of a PID
// namespace with its own /proc (see nprocRig.run): it mounts /proc, takes
// the uid and execs the trampoline, whose descriptors 3 and 4 it passes on.
const hiddenExecArg = "hook-test-hidden-exec"

func hiddenExec(uid, tramp string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "hidden exec:", err)
		os.Exit(126)
	}
	id, err := strconv.Atoi(uid)
	if err != nil {
		fail(err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fail(err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		fail(err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		fail(err)
	}
	if err := syscall.Setgid(id); err != nil {
		fail(err)
	}
	if err := syscall.Setuid(id); err != nil {
		fail(err)
	}
	fail(syscall.Exec(tramp, []string{tramp, sandbox.ExecArg}, []string{}))
}
