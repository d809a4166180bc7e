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
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	v1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// TestLeastPrivilegeRBAC runs the controller binary as the ServiceAccount
// of config/, bound to exactly the RBAC config/ ships, and shows it is
// enough for the whole pipeline (Secret headers included) and no more:
// it lists and watches Secrets only for --watch-configs-label-selector
// (the informer itself selects by label and keeps metadata only), and
// cannot read ConfigMaps.
func TestLeastPrivilegeRBAC(t *testing.T) {
	g := NewWithT(t)

	// Apply only the ServiceAccount and RBAC of the default install.
	var rbac []*unstructured.Unstructured
	for _, o := range build(g, "config/default") {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
	}
	g.Expect(rbac).To(HaveLen(5))
	apply(g, rbac)

	cs, err := kubernetes.NewForConfig(restConfig)
	g.Expect(err).ToNot(HaveOccurred())
	sa := "system:serviceaccount:" + runtimeNamespace + ":externalsource-controller"
	for _, tt := range []struct {
		verb, resource string
		allowed        bool
	}{
		{"get", "secrets", true},
		{"list", "secrets", true},
		{"watch", "secrets", true},
		{"create", "secrets", false},
		{"update", "secrets", false},
		{"get", "configmaps", false},
		{"delete", "namespaces", false},
	} {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:               sa,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + runtimeNamespace},
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: "tenant", Verb: tt.verb, Resource: tt.resource},
		}}, metav1.CreateOptions{})
		g.Expect(err).ToNot(HaveOccurred())
		g.Expect(sar.Status.Allowed).To(Equal(tt.allowed), "%s %s", tt.verb, tt.resource)
	}

	// A kubeconfig with the ServiceAccount's token, nothing else.
	tok, err := cs.CoreV1().ServiceAccounts(runtimeNamespace).CreateToken(ctx, "externalsource-controller",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	g.Expect(err).ToNot(HaveOccurred())
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	saKubeconfig := filepath.Join(workDir, "kubeconfig-sa")
	g.Expect(clientcmd.WriteToFile(*kc, saKubeconfig)).To(Succeed())

	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	cmd, err := startCmd("rbac-controller", bin, saKubeconfig,
		"--watch-label-selector=e2e.externalsource.io/shard=rbac",
		"--storage-backend=memory", "--storage-addr="+storageAddr, "--storage-adv-addr="+storageAddr,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tenant-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "tenant: data\n")
	}))
	defer srv.Close()
	g.Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant"}})).To(Succeed())
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "tenant"},
		StringData: map[string]string{"Authorization": "Bearer tenant-token"}})).To(Succeed())
	src := &v1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac", Namespace: "tenant", Labels: map[string]string{"e2e.externalsource.io/shard": "rbac"}},
		Spec: v1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data.yaml",
			Generator: v1.GeneratorSpec{Type: v1.GeneratorTypeHTTP, HTTP: &v1.HTTPGeneratorSpec{
				URL: srv.URL, HeadersSecretRef: &meta.LocalObjectReference{Name: "api"}}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := &v1.ExternalSource{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), cur)).To(Succeed())
		g.Expect(conditions.IsReady(cur)).To(BeTrue(), "%v", conditions.Get(cur, meta.ReadyCondition))
		g.Expect(cur.Status.Artifact).ToNot(BeNil(), "%+v", cur.Status)
		ea := &sourcev1.ExternalArtifact{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(src), ea)).To(Succeed())
		g.Expect(ea.Status.Artifact).ToNot(BeNil())
		g.Expect(ea.Status.Artifact.Digest).To(Equal(cur.Status.Artifact.Digest))
	}, timeout).Should(Succeed())
}

func ptr[T any](v T) *T { return &v }
