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
	"sort"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
)

// grant is one RBAC permission: verbs on a resource of an API group ("" is
// the core group).
type grant struct {
	group, resource string
	verbs           []string
}

// clusterGrants is every permission the controller's ServiceAccount holds
// in any namespace, beyond what every authenticated user holds. A new
// permission in config/rbac (e.g. list/watch on Secrets or ConfigMaps for
// a watch feature) is one more row here, or TestLeastPrivilegeRBAC fails.
var clusterGrants = []grant{
	// list and watch only for --watch-configs-label-selector: the
	// informer selects by label and keeps metadata only.
	{"", "secrets", []string{"get", "list", "watch"}},
	{"", "events", []string{"create", "patch"}},
	{"events.k8s.io", "events", []string{"create", "patch"}},
	{"source.externalsource.io", "externalsources", []string{"get", "list", "watch", "update", "patch"}},
	{"source.externalsource.io", "externalsources/status", []string{"get", "update", "patch"}},
	{"source.externalsource.io", "externalsources/finalizers", []string{"update"}},
	{"source.toolkit.fluxcd.io", "externalartifacts", []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{"source.toolkit.fluxcd.io", "externalartifacts/status", []string{"get", "update", "patch"}},
}

// runtimeNamespaceGrants are the permissions it holds, in addition, in its
// own namespace: leader election.
var runtimeNamespaceGrants = []grant{
	{"coordination.k8s.io", "leases", []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	{"", "events", []string{"create", "patch"}},
}

// permissions expands grants into one "group/resource verb" string per
// permission, the form rules are compared in.
func permissions(grants ...[]grant) []string {
	set := map[string]bool{}
	for _, gs := range grants {
		for _, gr := range gs {
			for _, v := range gr.verbs {
				set[gr.group+"/"+gr.resource+" "+v] = true
			}
		}
	}
	return sortedKeys(set)
}

// rulesOf asks the API server which rules the holder of a token has in a
// namespace (SelfSubjectRulesReview, evaluated by the RBAC authorizer),
// expanded into permissions and non-resource permissions.
func rulesOf(g Gomega, token, namespace string) (resources, nonResources []string) {
	cfg := rest.AnonymousClientConfig(restConfig)
	cfg.BearerToken = token
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).ToNot(HaveOccurred())
	review, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authzv1.SelfSubjectRulesReview{
		Spec: authzv1.SelfSubjectRulesReviewSpec{Namespace: namespace}}, metav1.CreateOptions{})
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(review.Status.Incomplete).To(BeFalse(), "the authorizer listed every rule: %s", review.Status.EvaluationError)
	res, nonRes := map[string]bool{}, map[string]bool{}
	for _, r := range review.Status.ResourceRules {
		g.Expect(r.ResourceNames).To(BeEmpty(), "%+v", r)
		for _, group := range r.APIGroups {
			for _, resource := range r.Resources {
				for _, v := range r.Verbs {
					res[group+"/"+resource+" "+v] = true
				}
			}
		}
	}
	for _, r := range review.Status.NonResourceRules {
		for _, u := range r.NonResourceURLs {
			for _, v := range r.Verbs {
				nonRes[u+" "+v] = true
			}
		}
	}
	return sortedKeys(res), sortedKeys(nonRes)
}

func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// without returns a minus b.
func without(a, b []string) []string {
	skip := map[string]bool{}
	for _, x := range b {
		skip[x] = true
	}
	var out []string
	for _, x := range a {
		if !skip[x] {
			out = append(out, x)
		}
	}
	return out
}

// TestLeastPrivilegeRBAC runs the controller binary as the ServiceAccount
// of config/, bound to exactly the RBAC config/ ships, and shows it is
// enough for the whole pipeline (Secret headers included) and no more:
// the API server's own list of the ServiceAccount's rules, less those of
// a ServiceAccount bound to nothing (what every authenticated user may
// do), is exactly clusterGrants in a tenant namespace and clusterGrants
// with runtimeNamespaceGrants in its own; no rule is limited to names,
// and it has no non-resource rule beyond everyone's.
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
	tokenOf := func(sa string) string {
		tok, err := cs.CoreV1().ServiceAccounts(runtimeNamespace).CreateToken(ctx, sa,
			&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
		g.Expect(err).ToNot(HaveOccurred())
		return tok.Status.Token
	}
	// A ServiceAccount bound to nothing: what every authenticated user has.
	g.Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: "rbac-baseline", Namespace: runtimeNamespace}})).To(Succeed())
	baseline := tokenOf("rbac-baseline")
	token := tokenOf("externalsource-controller")
	for ns, want := range map[string][]string{
		"tenant":         permissions(clusterGrants),
		runtimeNamespace: permissions(clusterGrants, runtimeNamespaceGrants),
	} {
		everyone, everyoneNonRes := rulesOf(g, baseline, ns)
		g.Expect(everyone).ToNot(BeEmpty(), "the baseline is not empty: the comparison is not vacuous")
		got, gotNonRes := rulesOf(g, token, ns)
		g.Expect(without(got, everyone)).To(Equal(want), "permissions in namespace %s", ns)
		g.Expect(gotNonRes).To(Equal(everyoneNonRes), "non-resource permissions")
	}

	// A kubeconfig with the ServiceAccount's token, nothing else.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	saKubeconfig := filepath.Join(workDir, "kubeconfig-sa")
	g.Expect(clientcmd.WriteToFile(*kc, saKubeconfig)).To(Succeed())

	storageAddr, err := devenv.FreeAddr()
	g.Expect(err).ToNot(HaveOccurred())
	cmd, err := startCmd("rbac-controller", bin, saKubeconfig,
		"--watch-label-selector=e2e.externalsource.io/shard=rbac",
		"--storage-backend=memory", "--storage-addr="+storageAddr, "--storage-adv-addr="+storageAddr,
		"--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", allowLoopback)
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
	src := &exsv1beta1.ExternalSource{
		ObjectMeta: metav1.ObjectMeta{Name: "rbac", Namespace: "tenant", Labels: map[string]string{"e2e.externalsource.io/shard": "rbac"}},
		Spec: exsv1beta1.ExternalSourceSpec{
			Interval:        metav1.Duration{Duration: 10 * time.Minute},
			DestinationPath: "data.yaml",
			Generator: exsv1beta1.GeneratorSpec{Type: exsv1beta1.GeneratorTypeHTTP, HTTP: &exsv1beta1.HTTPGeneratorSpec{
				URL: srv.URL, HeadersSecretRef: &meta.LocalObjectReference{Name: "api"}}},
		},
	}
	g.Expect(k8sClient.Create(ctx, src)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cur := &exsv1beta1.ExternalSource{}
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
