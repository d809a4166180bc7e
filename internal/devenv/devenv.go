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

// Package devenv starts a real local control plane (etcd and kube-apiserver
// built by hack/tools.sh into bin/) with the ExternalSource CRD and the Flux
// CRDs installed. The integration tests and `make dev` share it.
package devenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Root returns the repository root, found from this source file so that
// tests in any package and `go run ./hack/dev` agree.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolModuleVersion is the version of mod that tests/tools/<tool>/go.mod
// requires: the one hack/tools.sh builds the tool (and the test images)
// from. Tests read a tool's version here rather than writing it again, so
// that raising it in the tool module is the whole change.
func ToolModuleVersion(tool, mod string) (string, error) {
	path := filepath.Join(Root(), "tests", "tools", tool, "go.mod")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "require" {
			f = f[1:]
		}
		if len(f) >= 2 && f[0] == mod && strings.HasPrefix(f[1], "v") {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s requires no %s", path, mod)
}

// Env is a running control plane.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	// certDir holds the API server's certificates; fixed (not envtest's
	// random one) so that a restarted API server keeps them and its
	// clients still trust it.
	certDir string
}

// Start starts etcd and kube-apiserver from KUBEBUILDER_ASSETS (bin/ by
// default) and installs our CRDs, Flux's ExternalArtifact CRD and any extra
// CRD paths. It fails with instructions when the binaries are missing: they
// are built by `make tools`, never downloaded.
func Start(extraCRDPaths ...string) (*Env, error) {
	root := Root()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make tools` first", b, assets)
		}
	}
	fluxCRDs := filepath.Join(root, "bin", "crds")
	if _, err := os.Stat(filepath.Join(fluxCRDs, "source.toolkit.fluxcd.io_externalartifacts.yaml")); err != nil {
		return nil, fmt.Errorf("the Flux CRDs are not in %s: run `make tools` first", fluxCRDs)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths: append([]string{
			filepath.Join(root, "config", "crd", "bases"),
			fluxCRDs,
		}, extraCRDPaths...),
		ErrorIfCRDPathMissing:    true,
		DownloadBinaryAssets:     false,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	certDir, err := os.MkdirTemp("", "externalsource-apiserver-")
	if err != nil {
		return nil, err
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(certDir)
		return nil, fmt.Errorf("starting control plane: %w", err)
	}
	return &Env{Environment: env, Config: cfg, certDir: certDir}, nil
}

// Stop stops the control plane and removes its certificates.
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	_ = os.RemoveAll(e.certDir)
	return err
}

// KillAPIServer kills kube-apiserver (SIGKILL), as a crash or the loss of
// its node does; etcd and its data stay. A graceful stop would take tens
// of seconds while long-lived watches drain.
func (e *Env) KillAPIServer() error {
	// The argument whole: another control plane's cert dir may share
	// this one's prefix.
	marker := "\x00--cert-dir=" + e.certDir + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	killed := 0
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.Contains(string(b), marker) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			return fmt.Errorf("killing kube-apiserver (pid %d): %w", pid, err)
		}
		killed++
	}
	if killed == 0 {
		return fmt.Errorf("no kube-apiserver process with --cert-dir=%s", e.certDir)
	}
	// Reaps the process and resets envtest's state for StartAPIServer.
	return e.ControlPlane.GetAPIServer().Stop()
}

// StartAPIServer starts kube-apiserver again after KillAPIServer, on the
// same address with the same certificates and users.
func (e *Env) StartAPIServer() error {
	return e.ControlPlane.GetAPIServer().Start()
}

// WriteKubeconfig writes a kubeconfig for the control plane, for processes
// (the controller binary, kustomize-controller) that read KUBECONFIG.
func (e *Env) WriteKubeconfig(path string) error {
	c := e.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{
		Server:                   c.Host,
		CertificateAuthorityData: c.CAData,
	}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData,
		ClientKeyData:         c.KeyData,
		Token:                 c.BearerToken,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

// FreeAddr returns a loopback address with a port free at the time of the
// call, for the processes the dev environment and the tests start (their
// artifact, metrics and health servers).
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
