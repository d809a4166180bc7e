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
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// fakeControllerEnv makes the test binary a STAND-IN controller, for the
// harness's handling of a process that goes away. Its value is a
// directory: the first start exits at once as the real controller does
// when a port the harness chose was taken before it bound it; the next
// one serves its metrics endpoint and artifact port, then exits after its
// start-up, as a crash would.
const fakeControllerEnv = "BENCH_TEST_FAKE_CONTROLLER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeControllerEnv) != "" {
		fakeController()
	}
	os.Exit(m.Run())
}

func fakeController() {
	first := filepath.Join(os.Getenv(fakeControllerEnv), "started-once")
	if _, err := os.Stat(first); err != nil {
		_ = os.WriteFile(first, nil, 0o644)
		fmt.Fprintln(os.Stderr, `"artifact server failed","error":"listen tcp 127.0.0.1:1: bind: address already in use"`)
		os.Exit(1)
	}
	addrs := map[string]string{}
	for _, a := range os.Args[1:] {
		for _, f := range []string{"--metrics-addr=", "--storage-addr="} {
			if v, ok := strings.CutPrefix(a, f); ok {
				addrs[f] = v
			}
		}
	}
	for f, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if f == "--metrics-addr=" {
					fmt.Fprintln(w, `controller_runtime_reconcile_total{controller="externalsource",result="success"} 0`)
				}
			}))
		}()
	}
	time.Sleep(3 * time.Second)
	fmt.Fprintln(os.Stderr, "panic: a stand-in crash after start-up")
	os.Exit(1)
}

// TestRunEndsWhenTheControllerDies: a controller that could not bind a
// port the harness chose is started again on new ports, and a controller
// that exits after its start-up ends the run at once, with the exit and
// its log named, instead of leaving the harness waiting for sources nobody
// reconciles until its ReadyTimeout or its context (the 579 s TestHarness
// once waited). Before the harness watched its processes, this run (with
// a stand-in that started the first time) ended after ReadyTimeout with
// "only 0 of 2 sources Ready", not naming the exit.
func TestRunEndsWhenTheControllerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	g := NewWithT(t)
	self, err := os.Executable()
	g.Expect(err).NotTo(HaveOccurred())
	t.Setenv(fakeControllerEnv, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err = Run(ctx, Config{Name: "dies", N: 2, PayloadSize: 1 << 10, ControllerBin: self, OutDir: t.TempDir(),
		Steady: SteadyRequest, ReadyTimeout: 90 * time.Second})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("controller dies exited on its own (exit status 1)"))
	g.Expect(err.Error()).To(ContainSubstring("dies-controller.log"))
	g.Expect(err.Error()).To(ContainSubstring("waiting for 2 sources to be Ready"), "the wait it ended")
}
