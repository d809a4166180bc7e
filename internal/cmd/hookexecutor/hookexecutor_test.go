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

package hookexecutor

import (
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
)

// TestHookExecutorFlags: --help is not a failure, and a sandbox mode, a
// start or an ABI cap that does not parse stops the sidecar before it
// serves anything
// (a kernel without Landlock never does: TestHooksOnANodeWithoutLandlock).
func TestHookExecutorFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the error; "" is none
	}{
		{name: "help", args: []string{"--help"}},
		{name: "unknown sandbox", args: []string{"--hook-whitelist=/nonexistent", "--hook-sandbox=seccomp"}, want: `--hook-sandbox: unknown hook sandbox "seccomp"`},
		{name: "whitelist required", args: []string{"--hook-sandbox=none"}, want: "--hook-whitelist is required"},
		{name: "unknown start", args: []string{"--hook-whitelist=/nonexistent", "--hook-sandbox-start=fork"}, want: `--hook-sandbox-start="fork": want direct or trampoline`},
		{name: "max Landlock ABI not a number", args: []string{"--hook-whitelist=/nonexistent", "--hook-sandbox-max-landlock-abi=six"}, want: `invalid argument "six" for "--hook-sandbox-max-landlock-abi" flag`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := Run(tt.args)
			if tt.want == "" {
				g.Expect(err).ToNot(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
		})
	}
}

// TestMetricsAddressServes: the sidecar's metrics address serves its
// metrics and, like the controller's, Go's profiles (what the hooks
// benchmark profiles the sidecar with); nothing else.
func TestMetricsAddressServes(t *testing.T) {
	srv := httptest.NewServer(metricsHandler())
	t.Cleanup(srv.Close)
	tests := []struct {
		path string
		want int
	}{
		{path: "/metrics", want: http.StatusOK},
		{path: "/debug/pprof/", want: http.StatusOK},
		{path: "/debug/pprof/heap", want: http.StatusOK},
		{path: "/debug/pprof/goroutine", want: http.StatusOK},
		{path: "/", want: http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			g := NewWithT(t)
			resp, err := http.Get(srv.URL + tt.path)
			g.Expect(err).ToNot(HaveOccurred())
			resp.Body.Close()
			g.Expect(resp.StatusCode).To(Equal(tt.want))
		})
	}
}
