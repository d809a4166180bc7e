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

package e2e

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestHelpListsFluxArtifactFlags: `--help` exits 0 and lists Flux's
// artifact flags with Flux's env names, and the flags of our own backends.
func TestHelpListsFluxArtifactFlags(t *testing.T) {
	g := NewWithT(t)
	out, err := exec.Command(bin, "--help").CombinedOutput()
	g.Expect(err).ToNot(HaveOccurred(), "%s", out)
	help := string(out)
	for _, want := range []string{
		"--storage-path", "$STORAGE_PATH",
		"--storage-addr", "$STORAGE_ADDRESS",
		"--storage-adv-addr", "$STORAGE_ADV_ADDR",
		"--artifact-retention-ttl", "--artifact-retention-records",
		"--artifact-digest-algo", `(default "sha256")`,
		"--watch-configs-label-selector", `(default "reconcile.fluxcd.io/watch=Enabled")`,
		"--storage-backend", "--s3-bucket", "--memory-store-max-bytes",
	} {
		g.Expect(help).To(ContainSubstring(want))
	}
	g.Expect(help).ToNot(ContainSubstring("STORAGE_ADDR "), "the old env name is gone")
}

// TestAdvertisedURLKeepsExplicitHost runs the binary configured through
// Flux's environment variables only: the artifact URL it publishes carries
// the host given in STORAGE_ADDRESS (or STORAGE_ADV_ADDR) as is, not the
// machine's hostname, and the artifact downloads from it.
func TestAdvertisedURLKeepsExplicitHost(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"price": 42}`)
	}))
	defer upstream.Close()

	tests := []struct {
		name string
		// env builds the environment from a free loopback address.
		env func(addr string) []string
		// host is the host the artifact URL must carry.
		host string
	}{
		{
			name: "storage-address-host",
			env:  func(addr string) []string { return []string{"STORAGE_ADDRESS=" + addr} },
			host: "127.0.0.1",
		},
		{
			name: "storage-adv-addr",
			env: func(addr string) []string {
				_, port, _ := net.SplitHostPort(addr)
				return []string{"STORAGE_ADDRESS=" + addr, "STORAGE_ADV_ADDR=localhost:" + port}
			},
			host: "localhost",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			addr, err := devenv.FreeAddr()
			g.Expect(err).ToNot(HaveOccurred())
			_, port, err := net.SplitHostPort(addr)
			g.Expect(err).ToNot(HaveOccurred())
			shard := "adv-" + tt.name

			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: shard}}
			g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
			proc, err := startCmdEnv(shard, bin, kubeconfig, tt.env(addr),
				"--watch-label-selector=e2e.externalsource.io/shard="+shard,
				"--storage-backend=memory",
				"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", allowLoopback)
			g.Expect(err).ToNot(HaveOccurred())
			defer func() {
				_ = proc.Process.Signal(syscall.SIGTERM)
				_ = proc.Wait()
			}()

			src := &exsv1beta1.ExternalSource{
				ObjectMeta: metav1.ObjectMeta{Name: "pricing", Namespace: ns.Name,
					Labels: map[string]string{"e2e.externalsource.io/shard": shard}},
				Spec: exsv1beta1.ExternalSourceSpec{
					Interval:        metav1.Duration{Duration: 10 * time.Minute},
					DestinationPath: "data.json",
					Generator:       exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: upstream.URL}},
				},
			}
			g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
			artifact := waitPublished(g, src)

			want := "http://" + net.JoinHostPort(tt.host, port) + "/"
			g.Expect(artifact.URL).To(HavePrefix(want))
			g.Expect(artifact.URL).To(HaveSuffix(artifact.Path))
			// The server listens on STORAGE_ADDRESS: the URL works.
			g.Eventually(func(g Gomega) {
				resp, err := http.Get(artifact.URL)
				g.Expect(err).ToNot(HaveOccurred())
				defer resp.Body.Close()
				g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
				b, err := io.ReadAll(resp.Body)
				g.Expect(err).ToNot(HaveOccurred())
				g.Expect(int64(len(b))).To(Equal(*artifact.Size))
			}, timeout).Should(Succeed())
			g.Expect(strings.HasPrefix(artifact.Digest, "sha256:")).To(BeTrue())
		})
	}
}
