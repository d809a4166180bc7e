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

package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// TestHarness runs the harness end to end in tiny configurations so that
// it cannot rot: the real control plane, the controller binary, five
// sources (and one 1 MiB source on the filesystem backend). It asserts the
// report is complete and the steady state free, never a timing.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and the controller binary")
	}
	out := t.TempDir()
	// The build has a context of its own: on a loaded machine it can take
	// minutes, which must not come out of a subtest's time.
	bctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := BuildController(bctx, out)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())

	tests := []struct {
		name string
		cfg  Config
	}{
		{"five sources with ETags", Config{N: 5, PayloadSize: 1 << 10, ETag: true, LatencySamples: 5, LatencyRate: 20}},
		{"five sources without ETags", Config{N: 5, PayloadSize: 1 << 10, LatencySamples: 2, LatencyRate: 20}},
		{"one 1 MiB source on the filesystem", Config{N: 1, PayloadSize: 1 << 20, ETag: true, Backend: "filesystem", Throughput: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			// Each subtest has its own context, and its waits end well
			// within it (ReadyTimeout), so that a hang fails this subtest
			// naming the sources it waited for, and the next one still runs.
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			cfg := tt.cfg
			cfg.Name = strings.ReplaceAll(tt.name, " ", "-")
			cfg.ReadyTimeout = 5 * time.Minute
			defer logControllerOnFailure(t, out, cfg.Name)
			// A reconcile request per source stands in for an interval:
			// the real interval (1m minimum) is for `make bench`.
			cfg.Steady = SteadyRequest
			cfg.ControllerBin, cfg.OutDir = bin, out
			rep, err := Run(ctx, cfg)
			g.Expect(err).NotTo(HaveOccurred())

			g.Expect(rep.Ready).To(Equal(cfg.N))
			g.Expect(rep.AllReadySeconds).To(BeNumerically(">", 0))
			// The first artifact: finalizer, ExternalArtifact create and
			// status, ExternalSource status (conditions and the rest).
			g.Expect(rep.InitialAPIWrites).To(HaveKey("externalartifacts POST"))
			g.Expect(rep.InitialAPIWritesPerSource).To(BeNumerically(">=", 4))

			st := rep.Steady
			g.Expect(st.Reconciles).To(BeNumerically(">=", cfg.N))
			g.Expect(st.ArtifactsPublished).To(BeZero())
			if cfg.ETag {
				// One HEAD per source and interval, answered 304.
				g.Expect(st.Upstream.GET).To(BeZero())
				g.Expect(st.Upstream.HEAD).To(BeNumerically("==", st.Reconciles))
			} else {
				g.Expect(st.Upstream.HEAD).To(BeZero())
				g.Expect(st.Upstream.GET).To(BeNumerically("==", st.Reconciles))
			}
			// A reconcile request is acknowledged in the status
			// (lastHandledReconcileAt): the only write.
			g.Expect(st.APIWrites).To(HaveLen(1))
			g.Expect(st.APIWrites).To(HaveKeyWithValue("externalsources/status PATCH", int64(cfg.N)))

			if cfg.LatencySamples > 0 {
				g.Expect(rep.Latency.Samples).To(Equal(cfg.LatencySamples))
				g.Expect(rep.Latency.Missed).To(BeZero())
				g.Expect(rep.Latency.P99Seconds).To(BeNumerically(">=", rep.Latency.P50Seconds))
			}
			g.Expect(rep.CPUSeconds).To(BeNumerically(">", 0))
			g.Expect(rep.PeakRSSMiB).To(BeNumerically(">=", rep.RSSMiB))
			g.Expect(rep.RSSSamples).NotTo(BeEmpty())
			if cfg.Throughput {
				g.Expect(rep.Throughput).NotTo(BeNil())
				g.Expect(rep.Throughput.Bytes).To(Equal(int64(cfg.PayloadSize)))
				g.Expect(rep.Throughput.GzipMiBps).To(BeNumerically(">", 0))
				g.Expect(rep.Throughput.ControllerMiBps).To(BeNumerically(">", 0))
			}

			for _, p := range append(rep.Plots, filepath.Join(out, cfg.Name+".json")) {
				fi, err := os.Stat(p)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(fi.Size()).To(BeNumerically(">", 0))
			}
			var table bytes.Buffer
			PrintTable(&table, []*Report{rep})
			g.Expect(table.String()).To(ContainSubstring("API writes/source/interval"))
		})
	}
}

func TestPercentile(t *testing.T) {
	vals := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := []struct {
		p    float64
		want float64
	}{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {0, 1}}
	for _, tt := range tests {
		NewWithT(t).Expect(percentile(vals, tt.p)).To(Equal(tt.want))
	}
	NewWithT(t).Expect(percentile(nil, 50)).To(BeZero())
}

func TestParseProm(t *testing.T) {
	g := NewWithT(t)
	in := `# HELP apiserver_request_total x
apiserver_request_total{code="201",group="source.toolkit.fluxcd.io",resource="externalartifacts",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="200",group="source.externalsource.io",resource="externalsources",subresource="status",verb="PATCH",version="v1beta1"} 7
apiserver_request_total{code="200",group="",resource="pods",subresource="",verb="POST",version="v1"} 9
other_metric 1
`
	series, err := parseProm(strings.NewReader(in), func(n string) bool { return n == "apiserver_request_total" })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(series).To(HaveLen(3))
	g.Expect(series[1].labels).To(HaveKeyWithValue("subresource", "status"))
	g.Expect(series[1].value).To(Equal(7.0))
}

func TestPayloadIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	a, b, c := Payload(3, 1, 1024), Payload(3, 1, 1024), Payload(3, 2, 1024)
	g.Expect(a).To(HaveLen(1024))
	g.Expect(a).To(Equal(b))
	g.Expect(a).NotTo(Equal(c))
	g.Expect(TextData(4096)).To(HaveLen(4096))
}

// logControllerOnFailure logs the end of the controller's log of a failed
// subtest: the output directory is removed with the test.
func logControllerOnFailure(t *testing.T, out, name string) {
	if !t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(out, name+"*-controller.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("%s (last %d lines):\n%s", l, min(len(lines), 40), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}
