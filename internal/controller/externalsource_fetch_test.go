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

package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fluxcd/pkg/runtime/conditions"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/failure"
)

func TestExternalSourceReconciler_reconcileFetch(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("a: 1\n"))
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 2<<10)))
		case "/wait":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer up.Close()

	tests := []struct {
		name       string
		mutate     func(*exsv1beta1.ExternalSource)
		want       wantKind
		wantReason string
		wantData   string
	}{
		{name: "fetched", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/ok" }, wantData: "a: 1\n"},
		{name: "upstream error is retried", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/fail" },
			want: isGeneric, wantReason: exsv1beta1.FetchFailedReason},
		{name: "Retry-After waits", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/wait" },
			want: isWaiting, wantReason: exsv1beta1.FetchFailedReason},
		{name: "over the size limit", mutate: func(o *exsv1beta1.ExternalSource) { o.Spec.Generator.HTTP.URL = up.URL + "/big" },
			want: isGeneric, wantReason: exsv1beta1.FetchFailedReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := stepReconciler(nil)
			obj := stepObject("steps-source", up.URL)
			tt.mutate(obj)
			st := newStepState()
			defer st.cleanup()
			ctx, cancel := context.WithTimeout(testCtx, 20*time.Second)
			defer cancel()
			err := r.reconcileFetch(ctx, obj, st)
			expectKind(g, err, tt.want)
			if tt.want == noError {
				g.Expect(conditions.Has(obj, exsv1beta1.FetchFailedCondition)).To(BeFalse())
				data, rerr := os.ReadFile(st.dataFile)
				g.Expect(rerr).ToNot(HaveOccurred())
				g.Expect(string(data)).To(Equal(tt.wantData))
				return
			}
			_, reason := failure.Describe(err, "")
			g.Expect(reason).To(Equal(tt.wantReason))
			if tt.wantReason == exsv1beta1.FetchFailedReason {
				g.Expect(conditions.IsTrue(obj, exsv1beta1.FetchFailedCondition)).To(BeTrue())
				g.Expect(conditions.GetMessage(obj, exsv1beta1.FetchFailedCondition)).To(ContainSubstring("fetch failed"))
			}
		})
	}
}

func TestFetchTimeout(t *testing.T) {
	d := func(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }
	tests := []struct {
		name      string
		spec      *metav1.Duration
		max       time.Duration
		want      time.Duration
		wantLimit string
	}{
		{"default", nil, 0, exsv1beta1.DefaultTimeout, "spec.timeout (1m0s)"},
		{"spec", d(90 * time.Second), 0, 90 * time.Second, "spec.timeout (1m30s)"},
		{"at-the-maximum", d(exsv1beta1.MaxTimeout), 0, exsv1beta1.MaxTimeout, "spec.timeout (10m0s)"},
		// Stored before the API server enforced the maximum.
		{"beyond-the-maximum", d(100000 * time.Hour), 0, exsv1beta1.MaxTimeout,
			"--max-fetch-timeout (10m0s, which caps spec.timeout 100000h0m0s)"},
		{"lower-cap", d(8 * time.Minute), 5 * time.Minute, 5 * time.Minute,
			"--max-fetch-timeout (5m0s, which caps spec.timeout 8m0s)"},
		{"below-the-cap", d(30 * time.Second), 5 * time.Minute, 30 * time.Second, "spec.timeout (30s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &ExternalSourceReconciler{MaxTimeout: tt.max}
			got, limit := r.fetchTimeout(&exsv1beta1.ExternalSource{Spec: exsv1beta1.ExternalSourceSpec{Timeout: tt.spec}})
			g.Expect(got).To(Equal(tt.want))
			g.Expect(limit).To(Equal(tt.wantLimit))
		})
	}
}
