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

package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/externalsource/externalsource-controller/internal/storage/memory"
)

// TestRequestsMetric: the served handler counts responses by status code
// (what ExternalSourceArtifactServer5xx reads), and a request with an
// invented method adds no label value of its own.
func TestRequestsMetric(t *testing.T) {
	g := NewWithT(t)
	store := memory.New(memory.Options{})
	a := store.NewArtifactFor("ExternalSource", &metav1.ObjectMeta{Name: "o", Namespace: "ns"}, "rev", "a.tar.gz")
	g.Expect(store.Put(context.Background(), &a, strings.NewReader("data"))).To(Succeed())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).ToNot(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &Server{Storage: store, Log: ctrl.Log}
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	g.Eventually(func() error { return srv.ReadyCheck(nil) }).Should(Succeed())

	ok, missing, bad := testutil.ToFloat64(requests.WithLabelValues("200")),
		testutil.ToFloat64(requests.WithLabelValues("404")), testutil.ToFloat64(requests.WithLabelValues("405"))
	base := "http://" + ln.Addr().String() + "/"
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, a.Path}, {http.MethodGet, a.Path}, {http.MethodGet, "nope"}, {"INVENTED", a.Path},
	} {
		req, err := http.NewRequest(r.method, base+r.path, nil)
		g.Expect(err).ToNot(HaveOccurred())
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		g.Expect(err).ToNot(HaveOccurred())
		res.Body.Close()
	}
	g.Expect(testutil.ToFloat64(requests.WithLabelValues("200")) - ok).To(Equal(2.0))
	g.Expect(testutil.ToFloat64(requests.WithLabelValues("404")) - missing).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(requests.WithLabelValues("405")) - bad).To(Equal(1.0))
}
