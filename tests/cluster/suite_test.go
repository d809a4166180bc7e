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

package cluster

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// testCluster is the one cluster every test of this package shares: the
// node starts once per `go test` run of the package.
var testCluster *Cluster

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	root := devenv.Root()
	if err := Preflight(root); err != nil {
		fmt.Fprintf(os.Stderr, "\n!!! tests/cluster NOT RUN: %v\n\n", err)
		if os.Getenv("CI") == "true" {
			return 1
		}
		return 0
	}
	ctx := context.Background()
	c, err := Start(ctx, Options{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster: start:", err)
		return 1
	}
	testCluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: teardown left the host changed:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "cluster: torn down; no process, mount, link, route, iptables rule, cgroup, file or sysctl left")
	return code
}
