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

package main

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestMakeDevCtrlC runs `make dev` as a terminal would (its own foreground
// process group) and presses Ctrl-C (SIGINT to the whole group) once the
// sample is Ready: everything stops, in order, and make reports no error:
// dev exited 0.
func TestMakeDevCtrlC(t *testing.T) {
	g := NewWithT(t)
	var out testutil.SyncBuffer
	cmd := exec.Command("make", "--no-print-directory", "dev")
	cmd.Dir = devenv.Root()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	g.Expect(cmd.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	finished := false
	defer func() {
		if !finished {
			// A failed test still lets dev stop the control plane it
			// started (its own process groups) before anything is killed.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
			select {
			case <-exited:
			case <-time.After(time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		if t.Failed() {
			t.Log(out.String())
		}
	}()

	// A cold `make build` takes minutes on a loaded machine.
	g.Eventually(out.String, 10*time.Minute, 200*time.Millisecond).Should(ContainSubstring("Ctrl-C stops everything"))
	g.Expect(syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)).To(Succeed())
	var err error
	g.Eventually(exited, time.Minute).Should(Receive(&err))
	finished = true

	output := out.String()
	g.Expect(output).To(ContainSubstring("dev: controller stopped"))
	g.Expect(output).To(ContainSubstring("dev: stopping the control plane"))
	g.Expect(output).ToNot(ContainSubstring("Error"), "make reports dev's exit status when it is not 0")
	g.Expect(output).ToNot(ContainSubstring("did not stop cleanly"))
	g.Expect(strings.Index(output, "controller stopped")).To(BeNumerically("<", strings.Index(output, "stopping the control plane")))
	// make itself got the SIGINT: after its child exited 0 it re-raises it.
	if err != nil {
		var exitErr *exec.ExitError
		g.Expect(errors.As(err, &exitErr)).To(BeTrue(), "%v", err)
		ws := exitErr.Sys().(syscall.WaitStatus)
		g.Expect(ws.Signaled() && ws.Signal() == syscall.SIGINT).To(BeTrue(), "make: %v", err)
	}
}
