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

// Package e2e runs the controller binary and a real kustomize-controller
// against a real kube-apiserver: an ExternalSource's artifact is deployed by
// a Flux Kustomization, as in a cluster.
package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/testutil"
)

var (
	scheme    = runtime.NewScheme()
	k8sClient client.Client
	events    = &testutil.EventReceiver{}
	ctx       = context.Background()
	workDir   string
	// restConfig is the control plane's admin configuration.
	restConfig *rest.Config
	// bin is the controller binary built from this tree; kubeconfig the
	// control plane's.
	bin, kubeconfig string
	// processes started by the suite, stopped at the end.
	procs []*exec.Cmd
)

const runtimeNamespace = "flux-system"

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
	utilruntime.Must(helmv2.AddToScheme(scheme))
	os.Exit(run(m))
}

func run(m *testing.M) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "e2e:", err); return 1 }
	root := devenv.Root()
	env, err := devenv.Start(filepath.Join(root, "bin", "crds-e2e"))
	if err != nil {
		return fail(err)
	}
	defer func() { _ = env.Stop() }()

	workDir, err = os.MkdirTemp("", "externalsource-e2e-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(workDir)
	kubeconfig = filepath.Join(workDir, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return fail(err)
	}
	restConfig = env.Config
	k8sClient, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		return fail(err)
	}
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: runtimeNamespace}}); err != nil {
		return fail(err)
	}

	// The controller binary, built from this tree.
	bin = filepath.Join(workDir, "externalsource-controller")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fail(fmt.Errorf("building the controller: %w", err))
	}

	receiver := httptest.NewServer(events)
	defer receiver.Close()

	storageAddr, err := devenv.FreeAddr()
	if err != nil {
		return fail(err)
	}
	defer stopAll()

	// The hook sidecar, as in the Deployment: the same binary, a Unix
	// socket, the example whitelist of config/manager.
	whitelist := filepath.Join(workDir, "whitelist.yaml")
	if err := writeExampleWhitelist(root, whitelist); err != nil {
		return fail(err)
	}
	socket := filepath.Join(workDir, "hook.sock")
	if err := start("hook-executor", bin, kubeconfig, "hook-executor", "--socket="+socket,
		"--hook-whitelist="+whitelist, "--log-encoding=console"); err != nil {
		return fail(err)
	}
	if err := start("externalsource-controller", bin, kubeconfig,
		// Objects of the tests that run controllers of their own carry a
		// shard label; this one leaves them alone.
		"--watch-label-selector=!e2e.externalsource.io/shard",
		"--storage-backend=memory",
		"--storage-addr="+storageAddr,
		"--storage-adv-addr="+storageAddr,
		"--metrics-addr=127.0.0.1:0",
		"--health-addr=127.0.0.1:0",
		"--events-addr="+receiver.URL,
		"--hook-executor-socket="+socket,
		"--hook-whitelist="+whitelist,
		"--log-level=debug",
		allowLoopback,
	); err != nil {
		return fail(err)
	}
	kc := filepath.Join(root, "bin", "kustomize-controller")
	if _, err := os.Stat(kc); err != nil {
		return fail(fmt.Errorf("%s not found: run `make tools` first", kc))
	}
	if err := start("kustomize-controller", kc, kubeconfig,
		"--metrics-addr=127.0.0.1:0",
		"--health-addr=127.0.0.1:0",
		"--feature-gates=ExternalArtifact=true",
		"--log-encoding=console",
		"--requeue-dependency=2s",
	); err != nil {
		return fail(err)
	}
	// helm-controller installs charts from our ExternalArtifacts
	// (chartRef kind ExternalArtifact) into this API server.
	hc := filepath.Join(root, "bin", "helm-controller")
	if _, err := os.Stat(hc); err != nil {
		return fail(fmt.Errorf("%s not found: run `make tools` first", hc))
	}
	if err := start("helm-controller", hc, kubeconfig,
		"--metrics-addr=127.0.0.1:0",
		"--health-addr=127.0.0.1:0",
		"--feature-gates=ExternalArtifact=true",
		"--log-encoding=console",
	); err != nil {
		return fail(err)
	}
	return m.Run()
}

// allowLoopback lets a controller fetch from the tests' upstreams, httptest
// servers on loopback, which the controller denies by default.
const allowLoopback = "--allowed-address-ranges=127.0.0.0/8"

// start runs a controller process with its log in workDir.
func start(name, bin, kubeconfig string, args ...string) error {
	_, err := startCmd(name, bin, kubeconfig, args...)
	return err
}

// startCmd is start, returning the process.
func startCmd(name, bin, kubeconfig string, args ...string) (*exec.Cmd, error) {
	return startCmdEnv(name, bin, kubeconfig, nil, args...)
}

// startCmdEnv is startCmd with extra environment variables (NAME=value),
// e.g. a TMPDIR of the process's own.
func startCmdEnv(name, bin, kubeconfig string, env []string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(filepath.Join(workDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE="+runtimeNamespace)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Pdeathsig: a test binary that panics (skipping its cleanup) takes
	// its controllers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	procs = append(procs, cmd)
	return cmd, nil
}

func stopAll() {
	for _, p := range procs {
		if p.ProcessState != nil {
			continue // already stopped by its test
		}
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if os.Getenv("E2E_LOGS") != "" {
		logs, _ := filepath.Glob(filepath.Join(workDir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			fmt.Fprintf(os.Stderr, "==== %s\n%s\n", filepath.Base(l), b)
		}
	}
}

// writeExampleWhitelist writes the whitelist of the shipped ConfigMap
// (config/manager/hook-whitelist.yaml) to path.
func writeExampleWhitelist(root, path string) error {
	b, err := os.ReadFile(filepath.Join(root, "config", "manager", "hook-whitelist.yaml"))
	if err != nil {
		return err
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(b, &cm); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(cm.Data["whitelist.yaml"]), 0o644)
}

// timeout bounds each wait; never a performance assertion.
const timeout = 60 * time.Second

// waitPublished waits until src is Ready with an artifact in its status
// (Flux's patcher writes the conditions first) and returns the artifact.
func waitPublished(g Gomega, src *exsv1beta1.ExternalSource) *meta.Artifact {
	var a *meta.Artifact
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", conditions.Get(cur, meta.ReadyCondition))
		g.Expect(cur.Status.Artifact).ToNot(BeNil(), "%+v", cur.Status)
		a = cur.Status.Artifact
	}, timeout).Should(Succeed())
	return a
}
