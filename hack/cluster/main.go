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

// Command cluster brings up the tests' one-node cluster (tests/cluster) for
// a person: it writes an administrator's kubeconfig, waits for Ctrl-C and
// tears the cluster down, checking that nothing of it is left on the host.
// `make cluster` runs it (as root, on Linux).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/tests/cluster"
)

func main() {
	root := devenv.Root()
	kubeconfig := flag.String("kubeconfig", filepath.Join(root, "bin", "cluster.kubeconfig"), "where to write the administrator's kubeconfig")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := cluster.Start(ctx, cluster.Options{Root: root})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	code := 0
	b, err := os.ReadFile(c.Kubeconfig)
	if err == nil {
		err = os.WriteFile(*kubeconfig, b, 0o600)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		code = 1
	} else {
		fmt.Printf("\ncluster: up (node %s at %s; logs in %s/logs)\n  export KUBECONFIG=%s\n  Ctrl-C tears it down.\n\n",
			c.NodeName, c.NodeIP, c.Dir, *kubeconfig)
		<-ctx.Done()
	}
	fmt.Fprintln(os.Stderr, "cluster: tearing down")
	_ = os.Remove(*kubeconfig)
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: teardown:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "cluster: torn down; nothing left on the host")
	os.Exit(code)
}
