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

package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// fakeControllerEnv makes the test binary a controller that serves its
// metrics endpoint, then exits as the real one does when its artifact
// server cannot bind the address the harness chose (the port was taken
// after devenv.FreeAddr freed it) or it crashes: after start-up.
const fakeControllerEnv = "BENCH_TEST_FAKE_CONTROLLER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeControllerEnv) != "" {
		fakeController()
	}
	os.Exit(m.Run())
}

func fakeController() {
	var addr string
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "--metrics-addr="); ok {
			addr = v
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, `controller_runtime_reconcile_total{controller="externalsource",result="success"} 0`)
		}))
	}()
	time.Sleep(3 * time.Second)
	fmt.Fprintln(os.Stderr, `"artifact server failed","error":"listen tcp 127.0.0.1:1: bind: address already in use"`)
	os.Exit(1)
}

// TestRunEndsWhenTheControllerDies: a controller that exits after its
// start-up ends the run at once, with the exit and its log named, instead
// of leaving the harness waiting for sources nobody reconciles until its
// ReadyTimeout or its context (the 579 s TestHarness once waited). Before
// the harness watched its processes, this run ended after ReadyTimeout
// with "only 0 of 2 sources Ready", not naming the exit.
func TestRunEndsWhenTheControllerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	g := NewWithT(t)
	self, err := os.Executable()
	g.Expect(err).NotTo(HaveOccurred())
	t.Setenv(fakeControllerEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = Run(ctx, Config{Name: "dies", N: 2, PayloadSize: 1 << 10, ControllerBin: self, OutDir: t.TempDir(),
		Steady: SteadyRequest, ReadyTimeout: 90 * time.Second})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("controller dies exited on its own (exit status 1)"))
	g.Expect(err.Error()).To(ContainSubstring("dies-controller.log"))
	g.Expect(err.Error()).To(ContainSubstring("waiting for 2 sources to be Ready"), "the wait it ended")
}
