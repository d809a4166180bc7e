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

// Command dev runs the controller's main job on an embedded default: a
// local control plane (etcd and kube-apiserver from bin/), the CRDs, the
// controller binary with the memory store, a demo API on loopback and a
// sample ExternalSource. It prints the ExternalArtifact's revision and URL
// once Ready and runs until Ctrl-C, then stops everything it started and
// exits 0 when everything stopped cleanly.
//
// Ctrl-C reaches the whole foreground process group. The controller runs in
// a process group of its own, so that it receives exactly one signal,
// dev's SIGTERM, after which controller-runtime shuts down cleanly (a
// second signal would make it exit 1 at once); the control plane is in
// groups of its own too (internal/devenv), stopped after the controller.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

func main() {
	bin := flag.String("controller", filepath.Join(devenv.Root(), "bin", "externalsource-controller"),
		"The controller binary (`make build` writes it).")
	flag.Parse()
	if err := run(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

// run returns nil when it was stopped by a signal and everything it
// started stopped cleanly. Signals stay caught until it returns: a second
// Ctrl-C while stopping does not kill dev and orphan the control plane.
func run(bin string) (retErr error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))

	start := time.Now()
	fmt.Println("dev: starting a local control plane (etcd, kube-apiserver from bin/)")
	env, err := devenv.Start()
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("dev: stopping the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dev: stopping the control plane:", err)
		}
	}()
	fmt.Printf("dev: control plane up in %s at %s\n", time.Since(start).Round(time.Millisecond), env.Config.Host)

	work, err := os.MkdirTemp("", "externalsource-dev-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}

	// A demo API: JSON whose content changes every minute.
	demo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(demo, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"plan":  "standard",
				"price": 42,
				"asOf":  time.Now().UTC().Truncate(time.Minute).Format(time.RFC3339),
			})
		}))
	}()

	storageAddr, err := devenv.FreeAddr()
	if err != nil {
		return err
	}
	// The controller is stopped by cancelling its own context, whether dev
	// was signalled or failed, and before the control plane.
	cctx, stopController := context.WithCancel(ctx)
	defer stopController()
	cmd := exec.CommandContext(cctx, bin,
		"--watch-all-namespaces",
		"--storage-backend=memory",
		"--storage-addr="+storageAddr,
		"--storage-adv-addr="+storageAddr,
		"--metrics-addr=127.0.0.1:0",
		"--health-addr=127.0.0.1:0",
		"--log-level=info",
		// The demo upstream listens on loopback, denied by default.
		"--allowed-address-ranges=127.0.0.0/8",
	)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE=flux-system")
	logFile := filepath.Join(work, "controller.log")
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// Out of the terminal's process group (one signal, dev's), and
	// stopped by the kernel if dev dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s (run `make build`): %w", bin, err)
	}
	// exited is closed when the controller has exited; waitErr then says
	// how. Wait reports the cancelled context even after an exit with
	// status 0: the process state says whether the stop was clean.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		stopController()
		<-exited
		if ps := cmd.ProcessState; ps == nil || !ps.Success() {
			if retErr == nil {
				retErr = fmt.Errorf("the controller did not stop cleanly: %v (logs: %s)", waitErr, logFile)
			}
			return
		}
		fmt.Println("dev: controller stopped")
	}()
	// stopped turns an error caused by Ctrl-C into a clean stop.
	stopped := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	fmt.Printf("dev: controller running (logs: %s)\n", logFile)

	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "flux-system"}}
	if err := c.Create(ctx, ns); err != nil {
		return stopped(err)
	}
	obj := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: ns.Name},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: time.Minute},
			DestinationPath: "data/pricing.json",
			Generator: exsv1beta1.GeneratorSpec{
				Type: exsv1beta1.GeneratorTypeHTTP,
				HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: "http://" + demo.Addr().String() + "/v1/pricing"},
			},
		},
	}
	if err := c.Create(ctx, obj); err != nil {
		return stopped(err)
	}
	fmt.Printf("dev: created ExternalSource %s/%s fetching %s\n", obj.Namespace, obj.Name, obj.Spec.Generator.HTTP.URL)

	created := time.Now()
	ea, err := waitForArtifact(ctx, c, client.ObjectKeyFromObject(obj), exited)
	if err != nil {
		return stopped(err)
	}
	fmt.Printf("dev: ExternalArtifact %s/%s is Ready after %s\n", ea.Namespace, ea.Name, time.Since(created).Round(time.Millisecond))
	fmt.Printf("dev:   revision: %s\n", ea.Status.Artifact.Revision)
	fmt.Printf("dev:   url:      %s\n", ea.Status.Artifact.URL)
	fmt.Printf("dev: KUBECONFIG=%s; Ctrl-C stops everything\n", kubeconfig)

	select {
	case <-ctx.Done():
		fmt.Println("dev: stopping")
		return nil
	case <-exited:
		return fmt.Errorf("the controller exited: %v (logs: %s)", waitErr, logFile)
	}
}

// waitForArtifact waits until the ExternalSource is Ready and its
// ExternalArtifact carries the same artifact.
func waitForArtifact(ctx context.Context, c client.Client, key client.ObjectKey, exited <-chan struct{}) (*sourcev1.ExternalArtifact, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
			return nil, errors.New("the controller exited")
		case <-deadline:
			return nil, fmt.Errorf("ExternalSource %s not Ready after 2m", key)
		case <-tick.C:
		}
		var obj exsv1beta1.ExternalSource
		var ea sourcev1.ExternalArtifact
		if c.Get(ctx, key, &obj) != nil || !conditions.IsReady(&obj) || c.Get(ctx, key, &ea) != nil {
			continue
		}
		if ea.Status.Artifact != nil && ea.Status.Artifact.Digest == obj.Status.Artifact.Digest &&
			conditions.IsTrue(&ea, meta.ReadyCondition) {
			return &ea, nil
		}
	}
}
