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
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/hook"
)

// The suite's hook whitelist: jq for the real transformations, sh for
// commands that fail, fork or count their runs, tr for hot-reload tests
// (added and removed by them).
const suiteWhitelist = `
commands:
  - name: jq
    path: /usr/bin/jq
    args: ['-[cerSn]+', '[.\[{(A-Za-z0-9_$"].*']
    env: [TZ]
    maxTimeout: 30s
  - name: sh
    path: /bin/sh
    args: ['-c', '.*']
    env: [MARK]
    maxTimeout: 10s
    # the programs sh runs, and /var/tmp for the FIFO of the retry test
    readPaths: [/bin, /usr/bin, /lib, /lib64, /usr/lib, /usr/lib64, /etc/ld.so.cache, /var/tmp]
`

// hookMaxOutput is the sidecar's --hook-max-output in the suite.
const hookMaxOutput = 64 << 10

var (
	// controllerBin is the controller binary the suite builds; it is also
	// the hook-executor sidecar.
	controllerBin string
	// hookExecutorLog is the suite sidecar's log, at debug level: it
	// names every hook that ran ("hook ran").
	hookExecutorLog   string
	testWhitelistPath string
	testWhitelist     *hook.Store
	// whitelistSubs fan a whitelist change out to every manager.
	whitelistMu   sync.Mutex
	whitelistSubs []chan event.GenericEvent
)

// whitelistChanged returns a channel that receives an event whenever the
// suite's whitelist changes, for the manager of b.
func (b *backend) whitelistChanged() <-chan event.GenericEvent {
	if b.hooks == nil {
		return nil
	}
	ch := make(chan event.GenericEvent, 1)
	whitelistMu.Lock()
	whitelistSubs = append(whitelistSubs, ch)
	whitelistMu.Unlock()
	return ch
}

// writeWhitelist replaces the suite's whitelist (both the controller's
// copy and the sidecar's reload it).
func writeWhitelist(content string) error {
	return os.WriteFile(testWhitelistPath, []byte(content), 0o644)
}

// startHookExecutor builds the controller binary and runs it as the
// hook-executor sidecar on a Unix socket in dir, as in the Deployment.
func startHookExecutor(ctx context.Context, dir string) (hook.Runner, func(), error) {
	// One line up front on a kernel that cannot give every protection: the
	// sidecar serves anyway, and the tests whose hooks it refuses fail
	// with the same reason in their HookFailed message.
	if st, _ := hook.NodeSandbox(hook.SandboxLandlock, -1); st.Refusal() != "" {
		fmt.Fprintf(os.Stderr, "hook sandbox on this kernel (Landlock ABI %d, seccomp %t): %s\n", st.KernelLandlockABI, st.Seccomp, st.Refusal())
	}
	wlDir := filepath.Join(dir, "whitelist")
	if err := os.MkdirAll(wlDir, 0o755); err != nil {
		return nil, nil, err
	}
	testWhitelistPath = filepath.Join(wlDir, "whitelist.yaml")
	if err := writeWhitelist(suiteWhitelist); err != nil {
		return nil, nil, err
	}
	store, err := hook.NewStore(testWhitelistPath, ctrl.Log.WithName("whitelist"))
	if err != nil {
		return nil, nil, err
	}
	testWhitelist = store
	store.OnChange(func() {
		whitelistMu.Lock()
		defer whitelistMu.Unlock()
		for _, ch := range whitelistSubs {
			select {
			case ch <- event.GenericEvent{Object: &exsv1beta1.ExternalSource{}}:
			default:
			}
		}
	})
	go func() { _ = store.Watch(ctx) }()

	controllerBin = filepath.Join(dir, "externalsource-controller")
	build := exec.Command("go", "build", "-o", controllerBin, ".")
	build.Dir = devenv.Root()
	if out, err := build.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("building the controller: %v: %s", err, out)
	}
	socket := filepath.Join(dir, "hook.sock")
	hookExecutorLog = filepath.Join(dir, "hook-executor.log")
	stop, err := startSidecar(socket, hookExecutorLog)
	if err != nil {
		return nil, nil, err
	}
	client := hook.NewClient(socket)
	return hook.Instrumented(hook.Checked(store.Get, client)), stop, nil
}

// startSidecar runs the hook-executor sidecar on socket with the suite's
// whitelist and waits until it listens; stop kills it. args come after the
// suite's flags, so they override them (the last value of a flag wins).
// It logs at debug level, which names every hook run: a test can tell
// whether a hook ran even when the hook itself can leave no trace.
func startSidecar(socket, logPath string, args ...string) (stop func(), err error) {
	cmd := exec.Command(controllerBin, append([]string{"hook-executor", "--socket=" + socket, "--hook-whitelist=" + testWhitelistPath,
		fmt.Sprintf("--hook-max-output=%d", hookMaxOutput), "--log-encoding=console", "--log-level=debug"}, args...)...)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The sidecar dies with the test binary, even one that panics.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The sidecar's environment is not the test's: hooks must see nothing
	// of it anyway, and this proves it.
	cmd.Env = []string{"SECRET_OF_THE_CONTROLLER=do-not-leak"}
	// A socket left by a killed sidecar must not pass for a live one.
	_ = os.Remove(socket)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(socket); err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("hook executor did not listen on %s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
