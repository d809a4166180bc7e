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
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

// tinyBinaries builds the controller and the null producer once.
func tinyBinaries(t *testing.T, ctx context.Context) (string, string, string) {
	t.Helper()
	out := t.TempDir()
	g := NewWithT(t)
	bin, err := BuildController(ctx, out)
	g.Expect(err).NotTo(HaveOccurred())
	null, err := BuildNullProducer(ctx, out)
	g.Expect(err).NotTo(HaveOccurred())
	return out, bin, null
}

// TestScenarios runs every scenario of issue 17 in a tiny configuration
// so that none rots: the floor (null producer and controller), a scale run
// with a heap profile, a restart on the filesystem and on S3, a failing
// upstream and the sharding scenario. It asserts each scenario's
// invariants, never a timing.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes and controller processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, bin, null := tinyBinaries(t, ctx)
	run := func(t *testing.T, cfg Config) *Report {
		cfg.ControllerBin, cfg.NullProducerBin, cfg.OutDir = bin, null, out
		rep, err := Run(ctx, cfg)
		NewWithT(t).Expect(err).NotTo(HaveOccurred())
		return rep
	}

	t.Run("floor", func(t *testing.T) {
		g := NewWithT(t)
		var reps []*Report
		for _, p := range []string{ProducerNull, ProducerNullEvents, ProducerController} {
			reps = append(reps, run(t, Config{Name: "floor-" + p, Group: "floor8", Producer: p, N: 20, PayloadSize: 1 << 10,
				ETag: true, Steady: SteadyRequest, ChangeFraction: 1}))
		}
		for _, r := range reps {
			g.Expect(r.Ready).To(Equal(20))
			// Every source has a new revision in the request window.
			g.Expect(r.Steady.ArtifactsPublished).To(BeNumerically("==", 20), r.Config.Producer)
			// One reconcile per new source (issue 27): twenty sources in
			// one namespace are more than its share of the ten workers,
			// and those over it were reconciled twice.
			g.Expect(r.ReconcilesPerNewSource).To(Equal(1.0), r.Config.Producer)
		}
		rows := FloorRows(reps)
		g.Expect(rows).To(HaveLen(1))
		row := rows[0]
		t.Logf("per new source: null %s; ours %s", row.NullWritesBySourceVerb, row.OursWritesBySourceVerb)
		g.Expect(row.Ratio).To(BeNumerically(">", 0))
		g.Expect(row.OursReconcilesPerSource).To(Equal(1.0))
		// The floor: finalizer, ExternalArtifact create and status,
		// ExternalSource status; a new revision: the two statuses.
		g.Expect(row.NullWritesPerSource).To(Equal(4.0))
		g.Expect(row.NullWritesPerRevision).To(Equal(2.0))
		g.Expect(reps[0].InitialAPIWrites).NotTo(HaveKey("events POST"))
		g.Expect(row.NullEventsSeconds).To(BeNumerically(">", 0))
		g.Expect(row.RatioToNullEvents).To(BeNumerically(">", 0))
		// The controller makes the floor's writes and no more (issue 17);
		// its events are counted apart.
		g.Expect(row.OursWritesPerSource).To(Equal(row.NullWritesPerSource), row.OursWritesBySourceVerb)
		g.Expect(row.OursWritesPerRevision).To(Equal(row.NullWritesPerRevision), row.OursRevisionByVerb)
		// Not only as many: the same writes, verb by verb and resource by
		// resource.
		g.Expect(row.OursWritesBySourceVerb).To(Equal(row.NullWritesBySourceVerb))
		g.Expect(row.OursRevisionByVerb).To(Equal(row.NullRevisionByVerb))
		var b bytes.Buffer
		PrintFloor(&b, rows)
		g.Expect(b.String()).To(ContainSubstring("ratio"))
		t.Logf("%s", b.String())
	})

	t.Run("hooks", func(t *testing.T) {
		g := NewWithT(t)
		var reps []*Report
		for _, h := range []bool{false, true} {
			reps = append(reps, run(t, Config{Name: fmt.Sprintf("hooks-%v", h), Group: "hooks10", Hooks: h, N: 10,
				PayloadSize: 1 << 10, ETag: true, Steady: SteadyRequest, CPUProfile: 2 * time.Second}))
		}
		g.Expect(reps[0].Hooks).To(BeNil())
		// The sidecar's CPU profile beside the controller's, from its
		// metrics address's /debug/pprof/.
		g.Expect(reps[0].SidecarCPU).To(BeNil())
		g.Expect(reps[1].SidecarCPU).NotTo(BeNil())
		g.Expect(reps[1].SidecarCPU.Profile).To(BeAnExistingFile())
		g.Expect(reps[1].CPU).NotTo(BeNil())
		h := reps[1].Hooks
		g.Expect(h).NotTo(BeNil())
		for _, r := range reps {
			g.Expect(r.Ready).To(Equal(10))
			g.Expect(r.ReconcilesPerNewSource).To(Equal(1.0))
			// A ramp of seconds, an interval of a minute: no scheduled check.
			g.Expect(r.RampRechecks).To(BeZero())
			g.Expect(r.LateRechecks).To(BeZero())
			// Two NewArtifact Events per source, all kept at ten sources.
			g.Expect(r.NewArtifactEvents).To(Equal(20))
			// The ramp's CPU, split by who used it.
			g.Expect(r.RampCPU).NotTo(BeNil())
			g.Expect(r.RampCPU.Machine.Busy).To(BeNumerically(">", 0))
			g.Expect(r.RampCPU.Controller).To(BeNumerically(">", 0))
			g.Expect(r.RampCPU.APIServer).To(BeNumerically(">", 0))
		}
		g.Expect(reps[0].RampCPU.Sidecar).To(BeZero())
		g.Expect(reps[1].RampCPU.Runs).To(BeNumerically(">", 0))
		g.Expect(h.Bare.Machine).NotTo(BeNil())
		// The mixed floor: the hookless controller with the bare-exec
		// loop beside it, timed until both are done.
		mixed := run(t, Config{Name: "hooks-mixed", Group: "hooks10", MixedFloor: true, N: 10,
			PayloadSize: 1 << 10, ETag: true, Steady: SteadyRequest})
		g.Expect(mixed.Ready).To(Equal(10))
		g.Expect(mixed.Hooks).To(BeNil())
		g.Expect(mixed.Mixed).NotTo(BeNil())
		g.Expect(mixed.Mixed.Bare.Runs).To(Equal(11))
		g.Expect(mixed.Mixed.Bare.CPUSeconds).To(BeNumerically(">", 0))
		g.Expect(mixed.Mixed.Seconds).To(BeNumerically(">=", mixed.AllReadySeconds))
		g.Expect(mixed.Mixed.Seconds).To(BeNumerically(">=", mixed.Mixed.BareEndSeconds))
		reps = append(reps, mixed)
		// Where it can (CI runs as root, with unshare), the sidecar runs
		// as in its pod: PID 1 of its own PID namespace.
		_, canOwn := OwnPIDNamespaceTool()
		g.Expect(h.SidecarOwnPIDs).To(Equal(canOwn))
		// Every source's jq once, source 0's yq once, until all Ready.
		g.Expect(h.RampRuns).To(Equal(map[string]int64{"jq": 10, "yq": 1}))
		g.Expect(h.RampRunsPerSource).To(Equal(1.1))
		// A reconcile request on every source with an unchanged upstream:
		// the HEAD's 304 skips the download and the post-request hooks;
		// the pre-request hook makes the HEAD, so it runs.
		g.Expect(h.SteadyRuns).To(Equal(map[string]int64{"yq": 1}))
		g.Expect(h.SteadyPostRunsPerSrc).To(BeZero())
		g.Expect(h.SteadyPreRunsPerSrc).To(Equal(0.1))
		for _, p := range phaseOrder {
			g.Expect(h.Phases).To(HaveKey(p))
			g.Expect(h.Phases[p].Runs).To(BeNumerically("==", 11), p)
		}
		g.Expect(h.Phases["exec"].MeanMs).To(BeNumerically(">", 0))
		g.Expect(h.Phases["sandbox"].MeanMs).To(BeNumerically(">", 0))
		g.Expect(h.SidecarPeakRSSMiB).To(BeNumerically(">", 0))
		g.Expect(h.SidecarCPUSeconds + h.ChildrenCPUSeconds).To(BeNumerically(">", 0))
		g.Expect(h.Bare.Runs).To(Equal(11))
		g.Expect(h.Bare.Concurrency).To(Equal(5))
		g.Expect(h.Bare.CPUSeconds).To(BeNumerically(">", 0))
		g.Expect(reps[1].Plots).To(ContainElement(HaveSuffix("hooks-true-hook-phases.png")))
		rows := HooksRows(reps)
		g.Expect(rows).To(HaveLen(1))
		g.Expect(rows[0].Ratio).To(BeNumerically(">", 0))
		g.Expect(rows[0].HooklessRuns).To(HaveLen(1))
		g.Expect(rows[0].MixedRatio).To(BeNumerically(">", 0))
		var b bytes.Buffer
		PrintHooks(&b, rows)
		g.Expect(b.String()).To(ContainSubstring("the mixed floor"))
		t.Logf("%s", b.String())
	})

	t.Run("scale with a heap profile", func(t *testing.T) {
		g := NewWithT(t)
		r := run(t, Config{Name: "scale", N: 10, PayloadSize: 1 << 10, ETag: true, Backend: "filesystem",
			Steady: SteadyRequest, HeapProfile: true, CPUProfile: 2 * time.Second})
		g.Expect(r.Ready).To(Equal(10))
		g.Expect(r.CPU).NotTo(BeNil())
		g.Expect(r.Heap).NotTo(BeNil())
		g.Expect(r.Heap.InuseMiB).To(BeNumerically(">", 0))
		g.Expect(r.Heap.ByPackage).NotTo(BeEmpty())
		g.Expect(r.RSSPerSourceKiB).NotTo(BeZero())
		g.Expect(r.ReadyFalse).To(BeZero())
		var b bytes.Buffer
		PrintScale(&b, []*Report{r})
		t.Logf("%s", b.String())
	})

	for _, backend := range []string{"filesystem", "s3", "memory"} {
		t.Run("restart on "+backend, func(t *testing.T) {
			g := NewWithT(t)
			r := run(t, Config{Name: "restart-" + backend, N: 10, PayloadSize: 1 << 10, ETag: true, Backend: backend,
				Steady: SteadyRequest, Restart: true, Listeners: 1})
			rr := r.Restart
			g.Expect(rr).NotTo(BeNil())
			g.Expect(rr.Hosts).To(Equal(1))
			g.Expect(rr.Reconciles).To(BeNumerically(">=", 10))
			// A HEAD from every source, answered 304 (a second one only
			// when its interval came round again in the window); nothing
			// written, nothing republished. The memory store lost every
			// artifact: a GET from every source, whose bytes are stored
			// again under the published artifact, still with nothing
			// written and nothing republished.
			g.Expect(rr.SourcesRequested).To(Equal(10))
			if backend == "memory" {
				g.Expect(rr.Upstream.GET).To(BeNumerically(">=", 10))
			} else {
				g.Expect(rr.Upstream.GET).To(BeZero())
				g.Expect(rr.Upstream.HEAD).To(BeNumerically(">=", 10))
			}
			g.Expect(rr.NewArtifacts).To(BeZero())
			g.Expect(rr.APIWrites.Total()).To(BeZero(), rr.APIWrites.String())
			g.Expect(rr.ReadyFalse).To(BeZero())
			g.Expect(rr.PeakPerSecond).To(BeNumerically(">", 0))
			g.Expect(rr.PerSecond).NotTo(BeEmpty())
			var b bytes.Buffer
			PrintRestart(&b, []*Report{r})
			t.Logf("%s", b.String())
		})
	}

	t.Run("failing upstream", func(t *testing.T) {
		g := NewWithT(t)
		r := run(t, Config{Name: "failing", N: 3, PayloadSize: 1 << 10, Failing: true,
			FailDuration: 40 * time.Second, FailWindow: 20 * time.Second,
			ExtraArgs: []string{"--min-retry-delay=1s", "--max-retry-delay=8s"}})
		f := r.Failing
		g.Expect(f).NotTo(BeNil())
		g.Expect(f.PerSource).To(HaveLen(2))
		g.Expect(f.PerSource[0]).To(BeNumerically(">=", 1))
		g.Expect(f.Total).To(BeNumerically(">=", 3))
		g.Expect(r.Plots).To(ContainElement(HaveSuffix("failing-failing.png")))
		var b bytes.Buffer
		PrintFailing(&b, []*Report{r})
		t.Logf("%s", b.String())
	})

	t.Run("sharding", func(t *testing.T) {
		g := NewWithT(t)
		r := run(t, Config{Name: "sharding", N: 16, PayloadSize: 1 << 10, ETag: true, Backend: "s3",
			Interval: 10 * time.Minute, Steady: SteadyNone, Shards: 3, Moved: 2})
		s := r.Sharding
		g.Expect(s).NotTo(BeNil())
		g.Expect(r.Ready).To(Equal(16))
		g.Expect(s.Processes).To(HaveLen(4))
		for _, p := range s.Processes {
			g.Expect(p.Assigned).To(Equal(4), p.Name)
			g.Expect(p.Reconciled).To(Equal(p.Assigned), p.Name)
			g.Expect(p.Foreign).To(BeZero(), p.Name)
		}
		g.Expect(s.Downloads).To(Equal(16 * 4))
		g.Expect(s.DownloadFailures).To(BeZero())
		g.Expect(s.Moved).To(Equal(2))
		g.Expect(s.NewOwnerReconciled).To(Equal(2))
		g.Expect(s.OldOwnerReconciles).To(BeZero())
		g.Expect(s.BucketAfter).To(Equal(s.BucketBefore))
		g.Expect(s.Duplicated).To(BeZero())
		g.Expect(s.Lost).To(BeZero())
		g.Expect(s.NewArtifactsOnMove).To(BeZero())
		g.Expect(s.ReadyFalseOnMove).To(BeZero())
		g.Expect(s.RevisionsPublished).To(Equal(2))
		g.Expect(s.CollectedByNewOwner).To(Equal(2))
		g.Expect(s.OldOwnerGCReconcile).To(BeZero())
		var b bytes.Buffer
		PrintSharding(&b, []*Report{r})
		t.Logf("%s", b.String())
	})
	_ = os.Remove(out)
}

func TestPackageOf(t *testing.T) {
	tests := []struct{ fn, want string }{
		{"k8s.io/apimachinery/pkg/runtime.(*Scheme).New", "k8s.io/apimachinery/pkg/runtime"},
		{"encoding/json.(*decodeState).object", "encoding/json"},
		{"runtime.malg", "runtime"},
		{"github.com/prometheus/client_golang/prometheus.(*MetricVec).GetMetricWithLabelValues", "github.com/prometheus/client_golang/prometheus"},
		{"gopkg.in/yaml.v3.(*parser).node", "gopkg.in/yaml.v3"},
		{"github.com/prometheus/client_golang/prometheus.v2.NewGaugeVec.func1", "github.com/prometheus/client_golang/prometheus"},
		{"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue.(*priorityqueue[go.shape.struct { k8s.io/apimachinery/pkg/types.NamespacedName }]).lockedAddWithOpts",
			"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"},
	}
	for _, tt := range tests {
		NewWithT(t).Expect(packageOf(tt.fn)).To(Equal(tt.want), tt.fn)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{{"0", 0}, {"512B", 512.0 / (1 << 20)}, {"1024kB", 1}, {"1.50MB", 1.5}, {"2GB", 2048},
		// CPU profiles: seconds, on the same scale.
		{"1.50s", 1.5}, {"250ms", 0.25}, {"2mins", 120}}
	for _, tt := range tests {
		g := NewWithT(t)
		v, err := parseSize(tt.in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(BeNumerically("~", tt.want, 1e-9), tt.in)
	}
	_, err := parseSize("lots")
	NewWithT(t).Expect(err).To(HaveOccurred())
}
