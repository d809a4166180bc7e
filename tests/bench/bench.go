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

// Package bench is the benchmark harness of `make bench`: it starts a real
// control plane (etcd and kube-apiserver from bin/), a pool of HTTP
// endpoints and the controller binary as a separate process, creates N
// ExternalSources and measures readiness, steady-state cost, publish
// latency, CPU and memory. docs/benchmarks.md describes the method.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// Steady-state modes: how one "interval" of every source is produced.
const (
	// SteadyInterval waits for the sources' own requeue after
	// spec.interval (1m, the CRD minimum): the real steady state.
	SteadyInterval = "interval"
	// SteadyRequest annotates every source with reconcile.fluxcd.io/requestedAt:
	// fast, but each source then writes its status once to acknowledge the
	// request (status.lastHandledReconcileAt, the Flux protocol).
	SteadyRequest = "request"
	// SteadyNone skips the steady-state phase.
	SteadyNone = "none"
)

// Producers: what reconciles the sources.
const (
	// ProducerController is the controller binary.
	ProducerController = "controller"
	// ProducerNull is tests/bench/nullproducer: only the API writes a
	// correct producer must make, the floor.
	ProducerNull = "null"
	// ProducerNullEvents is the null producer emitting the controller's
	// two NewArtifact events per new revision too.
	ProducerNullEvents = "null-events"
)

// s3Bucket is the bucket of the s3 backend's scenarios.
const s3Bucket = "bench"

// Config is one benchmark scenario.
type Config struct {
	Name string `json:"name"`
	// N is the number of ExternalSources, each with its own endpoint.
	N int `json:"n"`
	// PayloadSize is the size of each response in bytes.
	PayloadSize int `json:"payloadSize"`
	// ETag says whether the endpoints send ETags (and answer 304).
	ETag bool `json:"etag"`
	// ChangeFraction of the endpoints change before the steady-state window.
	ChangeFraction float64 `json:"changeFraction"`
	// Backend is the controller's --storage-backend (memory or filesystem).
	Backend string `json:"backend"`
	// Concurrent, QPS and Burst set --concurrent, --kube-api-qps and
	// --kube-api-burst; zero keeps the controller's default.
	Concurrent int     `json:"concurrent,omitempty"`
	QPS        float64 `json:"qps,omitempty"`
	Burst      int     `json:"burst,omitempty"`
	// Interval is spec.interval of every source (default 1m).
	Interval time.Duration `json:"interval"`
	// Steady is SteadyInterval or SteadyRequest.
	Steady string `json:"steady"`
	// LatencySamples upstream changes are made, each followed by a reconcile
	// request, at LatencyRate per second.
	LatencySamples int     `json:"latencySamples"`
	LatencyRate    float64 `json:"latencyRate"`
	// Throughput compares the time to archive and store the payload with
	// `gzip -1 | sha256sum` on the same bytes, and measures the RSS growth.
	Throughput bool `json:"throughput"`
	// ReadyTimeout bounds the wait for all sources to be Ready.
	ReadyTimeout time.Duration `json:"readyTimeout"`

	// ControllerBin is the controller binary; OutDir receives the report,
	// the plots and the controller's log.
	ControllerBin string   `json:"-"`
	OutDir        string   `json:"-"`
	ExtraArgs     []string `json:"extraArgs,omitempty"`

	// Producer is ProducerController (the default) or ProducerNull;
	// NullProducerBin is the null producer's binary.
	Producer        string `json:"producer,omitempty"`
	NullProducerBin string `json:"-"`
	// Group names the reports compared in one table: the floor scenario's
	// null producer and controller runs.
	Group string `json:"group,omitempty"`
	// Listeners is the number of upstream hosts (host:port) the endpoints
	// are spread over (default 32); 1 puts every source on one host.
	Listeners int `json:"listeners,omitempty"`
	// UpstreamDelay is added before every upstream answer (a slow host).
	UpstreamDelay time.Duration `json:"upstreamDelay,omitempty"`
	// HeapProfile takes a heap profile from the controller's pprof
	// endpoint after the steady state and summarizes it by package.
	HeapProfile bool `json:"heapProfile,omitempty"`
	// CPUProfile, when set, takes a CPU profile of the controller for
	// that long from the first create on.
	CPUProfile time.Duration `json:"cpuProfile,omitempty"`
	// Restart stops the controller after the steady state and starts it
	// again on the same storage, then measures its first interval.
	Restart bool `json:"restart,omitempty"`
	// Failing makes every endpoint answer 500 and measures the requests
	// per source in windows of FailWindow for FailDuration.
	Failing      bool          `json:"failing,omitempty"`
	FailDuration time.Duration `json:"failDuration,omitempty"`
	FailWindow   time.Duration `json:"failWindow,omitempty"`
	// Shards > 0 runs the sharding scenario (RunSharding): that many
	// shard processes and the main instance on one S3 bucket, and Moved
	// sources relabelled from the first shard to the second.
	Shards int `json:"shards,omitempty"`
	Moved  int `json:"moved,omitempty"`

	// Hooks gives every source a jq post-request hook and one in ten a
	// yq pre-request hook (hooks.go), run by a hook-executor sidecar with
	// the shipped whitelist; the report's Hooks says what they cost, and
	// what the same commands cost exec'd bare (BareExec) first.
	Hooks bool `json:"hooks,omitempty"`
	// MixedFloor runs the hookless controller with the bare-exec loop
	// (BareExec) beside it, both from the first create: the hooks' work
	// and the controller's together, with no sidecar and no hook, on the
	// same CPUs at once (the report's Mixed). A diagnostic beside the
	// target's sum, which times the two apart.
	MixedFloor bool `json:"mixedFloor,omitempty"`
	// SidecarArgs are extra flags of the hook-executor (e.g. its memory
	// budget, sized for more concurrent runs).
	SidecarArgs []string `json:"sidecarArgs,omitempty"`
	// SidecarHostPIDs runs the hook-executor in the harness's PID
	// namespace even where it could have its own (HooksReport.SidecarOwnPIDs).
	SidecarHostPIDs bool `json:"sidecarHostPids,omitempty"`

	// Log receives progress lines; nil discards them.
	Log io.Writer `json:"-"`
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = fmt.Sprintf("n%d", c.N)
	}
	if c.Backend == "" {
		c.Backend = "memory"
	}
	if c.Interval == 0 {
		c.Interval = time.Minute
	}
	if c.Steady == "" {
		c.Steady = SteadyInterval
	}
	if c.LatencyRate <= 0 {
		c.LatencyRate = 5
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Producer == "" {
		c.Producer = ProducerController
	}
	if c.Listeners <= 0 {
		c.Listeners = 32
	}
	if c.FailWindow <= 0 {
		c.FailWindow = time.Minute
	}
	if c.FailDuration <= 0 {
		c.FailDuration = 10 * time.Minute
	}
}

// nullProducer says whether the null producer (with or without events)
// reconciles.
func (c *Config) nullProducer() bool {
	return c.Producer == ProducerNull || c.Producer == ProducerNullEvents
}

// Report is what one scenario measured.
type Report struct {
	Config Config `json:"config"`

	// CreateSeconds is how long creating the N objects took;
	// AllReadySeconds is from the first create until every source is
	// Ready with its artifact published.
	CreateSeconds   float64 `json:"createSeconds"`
	AllReadySeconds float64 `json:"allReadySeconds"`
	Ready           int     `json:"ready"`
	// InitialReconcilesPerSecond is N / AllReadySeconds.
	InitialReconcilesPerSecond float64 `json:"initialReconcilesPerSecond"`
	// InitialReconciles are the reconciles (controller_runtime_reconcile_total)
	// from the first create until every source is Ready and two seconds
	// more, so that a reconcile triggered by the last writes is counted;
	// ReconcilesPerNewSource is that over N (1.00 at the floor).
	InitialReconciles      int64   `json:"initialReconciles"`
	ReconcilesPerNewSource float64 `json:"reconcilesPerNewSource"`
	// RampRechecks and LateRechecks split the scheduled checks (the
	// upstream's HEAD requests: a source sends one only once it holds an
	// ETag, so never for its first fetch) counted in InitialReconciles:
	// those made before every source was Ready, and those made after,
	// in the two seconds before the count. A check that comes due while
	// first fetches are still waiting waits behind them (the queue's low
	// priority, the namespace share's order), and is made once they are
	// through: in a ramp longer than the interval they show as late
	// re-checks, not as ramp ones.
	RampRechecks int64 `json:"rampRechecks"`
	LateRechecks int64 `json:"lateRechecks"`
	// InitialAPIWrites are the controller's writes until all were Ready.
	InitialAPIWrites          APIWrites `json:"initialApiWrites"`
	InitialAPIWritesPerSource float64   `json:"initialApiWritesPerSource"`

	// Warmup is the first interval after the initial artifacts (interval
	// mode only); Steady the one after it.
	Warmup  SteadyReport  `json:"warmup"`
	Steady  SteadyReport  `json:"steady"`
	Latency LatencyReport `json:"latency"`

	// Controller CPU (user+system) over the whole run, RSS after the
	// steady state and peak RSS (VmHWM).
	CPUSeconds     float64 `json:"cpuSeconds"`
	RSSMiB         float64 `json:"rssMiB"`
	PeakRSSMiB     float64 `json:"peakRssMiB"`
	BaselineRSSMiB float64 `json:"baselineRssMiB"`

	Throughput *ThroughputReport `json:"throughput,omitempty"`

	// RSSPerSourceKiB is (RSS steady - RSS baseline) / N.
	RSSPerSourceKiB float64 `json:"rssPerSourceKiB"`
	// ReadyFalse counts the times a source that had been Ready was seen
	// with Ready=False (through the watch).
	ReadyFalse int `json:"readyFalse"`
	// NewArtifactEvents counts the NewArtifact Events the API server holds
	// at the end of the run (two per new artifact are recorded: on the
	// ExternalSource and on its ExternalArtifact). Fewer than recorded
	// means client-go's broadcaster dropped some: it queues 1,000 and
	// posts one at a time.
	NewArtifactEvents int `json:"newArtifactEvents"`

	Heap *HeapReport `json:"heap,omitempty"`
	// CPU summarizes a CPU profile of the controller taken during the
	// first CPUProfile of the creates (its "MiB" are seconds).
	CPU *HeapReport `json:"cpu,omitempty"`
	// RampCPU is the CPU the machine and each process used from the
	// first create to all-Ready.
	RampCPU *RampCPU `json:"rampCpu,omitempty"`
	// SidecarCPU is the same for the hook sidecar (hooks scenarios).
	SidecarCPU *HeapReport     `json:"sidecarCpu,omitempty"`
	Restart    *RestartReport  `json:"restart,omitempty"`
	Hooks      *HooksReport    `json:"hooks,omitempty"`
	Mixed      *MixedReport    `json:"mixed,omitempty"`
	Failing    *FailingReport  `json:"failing,omitempty"`
	Sharding   *ShardingReport `json:"sharding,omitempty"`

	RSSSamples []Sample `json:"rssSamples"`
	Plots      []string `json:"plots,omitempty"`
}

// SteadyReport is the cost of one interval of every source, measured over
// a window: counts per reconcile, and one reconcile per source per interval.
type SteadyReport struct {
	Mode          string         `json:"mode"`
	WindowSeconds float64        `json:"windowSeconds"`
	Reconciles    int64          `json:"reconciles"`
	Upstream      UpstreamCounts `json:"upstream"`
	// APIWrites are the controller's writes in the window (the harness's
	// own reconcile-request annotations are subtracted).
	APIWrites          APIWrites `json:"apiWrites"`
	ArtifactsPublished int64     `json:"artifactsPublished"`

	ReconcilesPerSecond        float64 `json:"reconcilesPerSecond"`
	UpstreamPerSourceInterval  float64 `json:"upstreamPerSourceInterval"`
	APIWritesPerSourceInterval float64 `json:"apiWritesPerSourceInterval"`
	ArtifactsPerSourceInterval float64 `json:"artifactsPerSourceInterval"`
}

// LatencyReport is the time from a reconcile request (after an upstream
// change) to the ExternalArtifact's new revision, seen through a watch.
type LatencyReport struct {
	Samples    int       `json:"samples"`
	Missed     int       `json:"missed"`
	P50Seconds float64   `json:"p50Seconds"`
	P90Seconds float64   `json:"p90Seconds"`
	P99Seconds float64   `json:"p99Seconds"`
	MaxSeconds float64   `json:"maxSeconds"`
	Values     []float64 `json:"values,omitempty"`
}

// ThroughputReport compares the controller with `gzip -1 | sha256sum` on
// the same bytes.
type ThroughputReport struct {
	Bytes             int64   `json:"bytes"`
	ControllerSeconds float64 `json:"controllerSeconds"`
	ControllerMiBps   float64 `json:"controllerMiBps"`
	GzipSeconds       float64 `json:"gzipSeconds"`
	GzipMiBps         float64 `json:"gzipMiBps"`
	Ratio             float64 `json:"ratio"`
	RSSGrowthMiB      float64 `json:"rssGrowthMiB"`
}

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(sourcev1.AddToScheme(scheme))
	utilruntime.Must(exsv1beta1.AddToScheme(scheme))
}

const namespace = "bench"

// BuildController builds the controller binary into dir and returns its
// path.
func BuildController(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "externalsource-controller")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = devenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// BuildNullProducer builds tests/bench/nullproducer into dir and returns
// its path.
func BuildNullProducer(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "nullproducer")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./tests/bench/nullproducer")
	cmd.Dir = devenv.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
}

// run is the state of one scenario.
type run struct {
	cfg      Config
	rep      *Report
	env      *devenv.Env
	c        client.Client
	admin    rest.Interface
	events   kubernetes.Interface
	up       *Upstream
	pid      int
	metrics  string
	sampler  *sampler
	tr       *tracker
	harnessW int64 // reconcile-request patches sent by the harness
	proc     *proc
	procs    []*proc
	s3       *s3test.Server
	sidecar  *sidecar
	// labels, when set, labels source i at creation.
	labels func(i int) map[string]string
	// died ends the run's context with its cause when a controller
	// process exits that the harness did not stop (startProc).
	died context.CancelCauseFunc
}

// stopAll stops every controller process started.
func (r *run) stopAll() {
	for _, p := range r.procs {
		p.stop()
	}
}

// Run runs one scenario and returns its report; it writes
// <OutDir>/<name>.json, the plots and <name>-controller.log.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	// The harness's own informers log through controller-runtime.
	ctrllog.SetLogger(logr.Discard())
	if cfg.ControllerBin == "" || cfg.OutDir == "" {
		return nil, errors.New("bench: ControllerBin and OutDir are required")
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, rep: &Report{Config: cfg}, tr: newTracker()}
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "bench[%s] %s "+format+"\n", append([]any{cfg.Name, time.Now().Format("15:04:05")}, args...)...)
	}

	// The large payload is generated, and gzip timed on it, before
	// anything else runs.
	var fixed []byte
	if cfg.Throughput {
		logf("generating %d bytes of text-like data and timing gzip -1 | sha256sum on them", cfg.PayloadSize)
		fixed = TextData(cfg.PayloadSize)
		secs, err := timeGzip(ctx, fixed, cfg.OutDir)
		if err != nil {
			return nil, err
		}
		r.rep.Throughput = &ThroughputReport{Bytes: int64(len(fixed)), GzipSeconds: secs,
			GzipMiBps: float64(len(fixed)) / (1 << 20) / secs}
	}

	if cfg.Hooks {
		// The floor first, on a machine nothing else of the run loads.
		conc := hookRunConcurrency(cfg.Concurrent)
		logf("bare-exec floor: the hooks' commands on their inputs, %d at a time, no sidecar", conc)
		bare, err := BareExec(ctx, cfg.N, cfg.PayloadSize, conc, func(i int) string { return fmt.Sprintf("http://127.0.0.1:40000/s/%d", i) })
		if err != nil {
			return nil, fmt.Errorf("bare-exec floor: %w", err)
		}
		r.rep.Hooks = &HooksReport{Bare: bare}
		logf("bare-exec floor: %d runs in %.1fs (%.1f s CPU)", bare.Runs, bare.Seconds, bare.CPUSeconds)
	}

	logf("starting the control plane")
	env, err := devenv.Start()
	if err != nil {
		return nil, err
	}
	r.env = env
	defer func() { _ = env.Stop() }()

	hc := rest.CopyConfig(env.Config)
	hc.QPS, hc.Burst = 1000, 2000
	if r.c, err = client.New(hc, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(hc)
	if err != nil {
		return nil, err
	}
	r.admin = cs.RESTClient()
	r.events = cs

	up, err := StartUpstream(cfg.N, cfg.PayloadSize, cfg.ETag, fixed, cfg.Listeners)
	if err != nil {
		return nil, err
	}
	r.up = up
	defer up.Close()
	up.SetDelay(cfg.UpstreamDelay)
	if cfg.Backend == "s3" {
		if err := r.startS3(ctx); err != nil {
			return nil, err
		}
		defer r.s3.Stop()
	}

	// A controller process that exits on its own (a port taken between
	// devenv.FreeAddr and its bind, a crash) ends rctx, and with it every
	// wait of the phases, with the exit as the cause: nothing the harness
	// waits for can come any more.
	if cfg.Hooks {
		if err := r.startSidecar(ctx); err != nil {
			return nil, err
		}
		defer r.sidecar.stop()
	}

	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.died = cancel
	if err := r.startWatches(rctx); err != nil {
		return nil, err
	}
	if cfg.Shards > 0 {
		defer r.stopAll()
		if err := r.phaseSharding(rctx, logf); err != nil {
			return r.rep, withCause(rctx, err)
		}
	} else {
		if _, err := r.startController(rctx, true); err != nil {
			return nil, withCause(rctx, err)
		}
		defer r.stopAll()
		if err := r.phases(rctx, logf); err != nil {
			return r.rep, withCause(rctx, err)
		}
	}

	if p, err := ReadProc(r.pid); err == nil {
		r.rep.CPUSeconds = p.CPUSeconds
		r.rep.PeakRSSMiB = p.HWMMiB
	}
	r.rep.RSSSamples = r.sampler.all()
	// The kernel's RSS counters are per-CPU and synced lazily, so VmHWM can
	// read a little below an RSS read earlier: the peak is the largest of
	// everything seen.
	r.rep.PeakRSSMiB = max(r.rep.PeakRSSMiB, r.rep.RSSMiB)
	for _, smp := range r.rep.RSSSamples {
		r.rep.PeakRSSMiB = max(r.rep.PeakRSSMiB, smp.RSSMiB)
	}
	if r.rep.RSSMiB > 0 && cfg.N > 0 {
		r.rep.RSSPerSourceKiB = (r.rep.RSSMiB - r.rep.BaselineRSSMiB) * 1024 / float64(cfg.N)
	}
	r.rep.ReadyFalse = r.tr.readyFalseCount()
	if evs, err := r.events.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=NewArtifact"}); err == nil {
		r.rep.NewArtifactEvents = len(evs.Items)
	} else {
		logf("counting NewArtifact events: %v", err)
	}
	r.stopAll()
	if r.sidecar != nil {
		// The runs it reaped count in its children's CPU once waited for.
		if p, err := ReadProc(r.sidecar.pid); err == nil {
			h := r.rep.Hooks
			h.SidecarCPUSeconds, h.ChildrenCPUSeconds, h.SidecarPeakRSSMiB = p.CPUSeconds, p.ChildCPUSeconds, max(p.HWMMiB, p.RSSMiB)
			h.SidecarOwnPIDs = r.sidecar.ownPIDs
		}
		r.sidecar.stop()
	}
	cancel(nil)

	if err := r.writeOutputs(); err != nil {
		return r.rep, err
	}
	logf("done")
	return r.rep, nil
}

// withCause adds why ctx ended to err, when a controller's exit ended it.
func withCause(ctx context.Context, err error) error {
	var exit *exitError
	if errors.As(context.Cause(ctx), &exit) && !errors.As(err, &exit) {
		return fmt.Errorf("%w: %w", exit, err)
	}
	return err
}

// exitError is a controller process that exited while the harness still
// needed it.
type exitError struct {
	name, log string
	err       error
}

func (e *exitError) Error() string {
	return fmt.Sprintf("controller %s exited on its own (%v); see %s", e.name, e.err, e.log)
}

// proc is one controller process of a scenario.
type proc struct {
	name    string
	pid     int
	metrics string
	// storage is the address of its artifact server.
	storage string
	stop    func()
	// started says it came up (startProc); stopping says the harness
	// stopped it: its exit is expected.
	started, stopping atomic.Bool
	exited            chan struct{}
	log               string
}

// controllerArgs returns the flags of a controller process: the
// controller's (storage, loopback upstreams allowed) or the null
// producer's (only the client and the workers).
func (r *run) controllerArgs(metrics, storageAddr, name string, fresh bool) ([]string, error) {
	cfg := r.cfg
	args := []string{"--metrics-addr=" + metrics}
	if cfg.Producer == ProducerNullEvents {
		args = append(args, "--emit-events")
	}
	if !cfg.nullProducer() {
		args = append(args,
			"--watch-all-namespaces",
			"--storage-backend="+cfg.Backend,
			"--storage-addr="+storageAddr,
			"--storage-adv-addr="+storageAddr,
			"--health-addr=127.0.0.1:0",
			"--log-level=error",
			// The benchmark's upstreams listen on loopback, denied by default.
			"--allowed-address-ranges=127.0.0.0/8",
		)
		if r.sidecar != nil {
			args = append(args, "--hook-executor-socket="+r.sidecar.socket, "--hook-whitelist="+r.sidecar.whitelist)
		}
		switch cfg.Backend {
		case "filesystem":
			dir := filepath.Join(cfg.OutDir, name+"-storage")
			if fresh {
				_ = os.RemoveAll(dir)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
			args = append(args, "--storage-path="+dir)
		case "s3":
			args = append(args, "--s3-endpoint="+r.s3.Endpoint, "--s3-bucket="+s3Bucket, "--s3-insecure")
		}
		if cfg.Throughput {
			args = append(args, "--max-response-size="+strconv.Itoa(2*cfg.PayloadSize+1<<20))
		}
	}
	if cfg.Concurrent > 0 {
		args = append(args, "--concurrent="+strconv.Itoa(cfg.Concurrent))
	}
	if cfg.QPS != 0 {
		args = append(args, "--kube-api-qps="+strconv.FormatFloat(cfg.QPS, 'f', -1, 64))
	}
	if cfg.Burst > 0 {
		args = append(args, "--kube-api-burst="+strconv.Itoa(cfg.Burst))
	}
	return append(args, cfg.ExtraArgs...), nil
}

// startController starts the main controller process (or starts it again
// after a stop, keeping its storage), records it in r and takes the idle
// baseline on the first start.
func (r *run) startController(ctx context.Context, fresh bool) (func(), error) {
	p, err := r.startProc(ctx, r.cfg.Name, nil, fresh)
	if err != nil {
		return nil, err
	}
	r.proc, r.pid, r.metrics = p, p.pid, p.metrics
	r.procs = append(r.procs, p)
	if r.sampler == nil {
		r.sampler = &sampler{start: time.Now()}
	}
	go r.sampler.run(ctx, p.pid, 250*time.Millisecond, p.exited)
	if fresh {
		// Let the manager's caches sync, then take the idle baseline.
		time.Sleep(2 * time.Second)
		if ps, err := ReadProc(r.pid); err == nil {
			r.rep.BaselineRSSMiB = ps.RSSMiB
		}
	}
	return p.stop, nil
}

// errPortTaken is a process that exited at start-up because an address
// devenv.FreeAddr had found free was taken before the process bound it.
var errPortTaken = errors.New("an address it was given was taken in the meantime")

// startProc starts one controller process named name with extra flags and
// waits for its metrics endpoint and artifact server; fresh empties its
// filesystem storage. A process that could not bind an address the
// harness chose (devenv.FreeAddr frees the port it found, and any other
// process, another package's test among them, may take it before the
// controller binds it) is started again on new ones, twice at most. The
// returned proc's stop is idempotent.
func (r *run) startProc(ctx context.Context, name string, extra []string, fresh bool) (*proc, error) {
	for attempt := 1; ; attempt++ {
		p, err := r.startProcOnce(ctx, name, extra, fresh)
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			return p, err
		}
	}
}

func (r *run) startProcOnce(ctx context.Context, name string, extra []string, fresh bool) (*proc, error) {
	cfg := r.cfg
	kubeconfig := filepath.Join(cfg.OutDir, cfg.Name+"-kubeconfig")
	if err := r.env.WriteKubeconfig(kubeconfig); err != nil {
		return nil, err
	}
	// A restarted process keeps its artifact server's address: the
	// artifact URLs carry it.
	storageAddr := ""
	for _, p := range r.procs {
		if p.name == name {
			storageAddr = p.storage
		}
	}
	if storageAddr == "" {
		var err error
		if storageAddr, err = devenv.FreeAddr(); err != nil {
			return nil, err
		}
	}
	metrics, err := devenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	args, err := r.controllerArgs(metrics, storageAddr, name, fresh)
	if err != nil {
		return nil, err
	}
	args = append(args, extra...)

	logPath := filepath.Join(cfg.OutDir, name+"-controller.log")
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fresh {
		flags |= os.O_TRUNC
	}
	logFile, err := os.OpenFile(logPath, flags, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.ControllerBin, args...)
	if cfg.nullProducer() {
		cmd = exec.Command(cfg.NullProducerBin, args...)
	}
	// GOGC as config/manager sets it: the figures are the deployment's.
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE="+namespace, "GOGC=50")
	if r.s3 != nil {
		cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID="+s3test.AccessKey, "AWS_SECRET_ACCESS_KEY="+s3test.SecretKey)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &proc{name: name, pid: cmd.Process.Pid, metrics: metrics, storage: storageAddr, exited: make(chan struct{}), log: logPath}
	go func() {
		err := cmd.Wait()
		logFile.Close()
		close(p.exited)
		if p.started.Load() && !p.stopping.Load() && r.died != nil {
			r.died(&exitError{name: name, log: logPath, err: err})
		}
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			p.stopping.Store(true)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-p.exited
			}
		})
	}

	// Up: its metrics answer and its artifact server accepts connections
	// (the null producer has none), so that a port taken under it shows
	// here, at start-up, and not as sources nobody reconciles.
	up := func() bool {
		if _, err := readReconciles(ctx, metrics); err != nil {
			return false
		}
		if cfg.nullProducer() {
			return true
		}
		c, err := net.DialTimeout("tcp", storageAddr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for !up() {
		select {
		case <-p.exited:
			if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "address already in use") {
				return nil, fmt.Errorf("the controller exited at start-up: %w; see %s", errPortTaken, logPath)
			}
			return nil, fmt.Errorf("the controller exited at start-up; see %s", logPath)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, errors.New("the controller's metrics endpoint and artifact server did not come up within 1m")
		}
	}
	p.started.Store(true)
	return p, nil
}

func (r *run) name(i int) string { return fmt.Sprintf("src-%05d", i) }

// names are the names of the N sources.
func (r *run) names() []string {
	out := make([]string, r.cfg.N)
	for i := range out {
		out[i] = r.name(i)
	}
	return out
}

// stuck describes the sources a wait is still waiting for, as the API
// server has them (at most five), and where the controller's log is: a
// wait that ends without its event says which objects, in which state.
func (r *run) stuck(names []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "%d sources missing", len(names))
	for _, n := range names[:min(len(names), 5)] {
		obj := &exsv1beta1.ExternalSource{}
		if err := r.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: n}, obj); err != nil {
			fmt.Fprintf(&b, "; %s: %v", n, err)
			continue
		}
		fmt.Fprintf(&b, "; %s: generation %d observed %d, requestedAt %q handled %q, Ready %s %q",
			n, obj.Generation, obj.Status.ObservedGeneration, obj.GetAnnotations()[meta.ReconcileRequestAnnotation],
			obj.Status.LastHandledReconcileAt, conditions.GetReason(obj, meta.ReadyCondition), conditions.GetMessage(obj, meta.ReadyCondition))
	}
	for _, p := range r.procs {
		fmt.Fprintf(&b, "; controller log %s", p.log)
	}
	return b.String()
}

// createSources creates the namespace and the N sources, source i with
// labels(i) when labels is set.
func (r *run) createSources(ctx context.Context, labels func(i int) map[string]string) error {
	cfg := r.cfg
	if err := r.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	return parallel(ctx, cfg.N, 16, func(i int) error {
		obj := &exsv1beta1.ExternalSource{
			ObjectMeta: metav1.ObjectMeta{Name: r.name(i), Namespace: namespace},
			Spec: exsv1beta1.ExternalSourceSpec{
				Interval:        metav1.Duration{Duration: cfg.Interval},
				DestinationPath: "data.json",
				Generator: exsv1beta1.GeneratorSpec{
					Type: exsv1beta1.GeneratorTypeHTTP,
					HTTP: &exsv1beta1.HTTPGeneratorSpec{URL: r.up.URL(i)},
				},
			},
		}
		if labels != nil {
			obj.Labels = labels(i)
		}
		if cfg.Hooks {
			obj.Spec.Hooks = hooksOf(i)
		}
		return r.c.Create(ctx, obj)
	})
}

// phaseCreate creates the namespace and the N sources and waits until all
// are Ready.
func (r *run) phaseCreate(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	w0, err := ReadAPIWrites(ctx, r.admin)
	if err != nil {
		return err
	}
	rc0, err := readReconciles(ctx, r.metrics)
	if err != nil {
		return err
	}
	var runs0 map[string]int64
	var phases0 phaseSums
	if r.sidecar != nil {
		if runs0, err = readHookRuns(ctx, r.metrics); err != nil {
			return err
		}
		if phases0, err = readSidecarPhases(ctx, r.sidecar.metrics); err != nil {
			return err
		}
	}
	logf("creating %d ExternalSources", cfg.N)
	up0 := r.up.Counts()
	cpu0, cpuErr := r.cpuNow()
	start := time.Now()
	r.tr.setStart(start, cfg.N)
	if cfg.CPUProfile > 0 && !cfg.nullProducer() {
		defer func(done <-chan struct{}) { <-done }(r.cpuProfile(ctx, cfg.CPUProfile, logf))
	}
	type mixedDone struct {
		rep MixedReport
		err error
	}
	var mixed chan mixedDone
	if cfg.MixedFloor {
		mixed = make(chan mixedDone, 1)
		go func() {
			bare, err := BareExec(ctx, cfg.N, cfg.PayloadSize, hookRunConcurrency(cfg.Concurrent),
				func(i int) string { return fmt.Sprintf("http://127.0.0.1:40000/s/%d", i) })
			mixed <- mixedDone{MixedReport{Bare: bare, BareEndSeconds: time.Since(start).Seconds()}, err}
		}()
	}
	if err := r.createSources(ctx, r.labels); err != nil {
		return err
	}
	r.rep.CreateSeconds = time.Since(start).Seconds()
	logf("created in %.1fs; waiting for all Ready", r.rep.CreateSeconds)

	select {
	case <-r.tr.allReady:
	case <-time.After(cfg.ReadyTimeout):
		r.rep.Ready = r.tr.readyCount()
		return fmt.Errorf("only %d of %d sources Ready after %s; %s", r.rep.Ready, cfg.N, cfg.ReadyTimeout,
			r.stuck(r.tr.notReady(r.names())))
	case <-ctx.Done():
		r.rep.Ready = r.tr.readyCount()
		return fmt.Errorf("waiting for %d sources to be Ready: %w; %s", cfg.N, ctx.Err(), r.stuck(r.tr.notReady(r.names())))
	}
	if mixed != nil {
		// The mixed floor's window ends when both are done.
		done := <-mixed
		if done.err != nil {
			return fmt.Errorf("the bare-exec loop beside the controller: %w", done.err)
		}
		m := &done.rep
		r.rep.Mixed = m
		m.Seconds = max(m.BareEndSeconds, r.tr.lastReady().Sub(start).Seconds())
		logf("mixed floor: all Ready and %d bare runs (%.1f s CPU) done after %.1fs", m.Bare.Runs, m.Bare.CPUSeconds, m.Seconds)
	}
	if cpu1, err := r.cpuNow(); err == nil && cpuErr == nil {
		r.rep.RampCPU = rampCPU(cpu0, cpu1)
	}
	upReady := r.up.Counts()
	r.rep.Ready = r.tr.readyCount()
	r.rep.AllReadySeconds = r.tr.lastReady().Sub(start).Seconds()
	r.rep.InitialReconcilesPerSecond = float64(cfg.N) / r.rep.AllReadySeconds
	w1, err := ReadAPIWrites(ctx, r.admin)
	if err != nil {
		return err
	}
	r.rep.InitialAPIWrites = w1.Sub(w0)
	delete(r.rep.InitialAPIWrites, "externalsources POST") // the harness's creates
	r.rep.InitialAPIWritesPerSource = float64(r.rep.InitialAPIWrites.Total()) / float64(cfg.N)
	// A reconcile the producer's own last writes trigger comes within
	// moments of them: wait for it before counting.
	time.Sleep(2 * time.Second)
	// The upstream first: a check's HEAD precedes the end of its
	// reconcile, so a check counted here is one the reconciles read next
	// count too.
	up1 := r.up.Counts()
	rc1, err := readReconciles(ctx, r.metrics)
	if err != nil {
		return err
	}
	r.rep.InitialReconciles = rc1 - rc0
	r.rep.ReconcilesPerNewSource = float64(r.rep.InitialReconciles) / float64(cfg.N)
	r.rep.RampRechecks, r.rep.LateRechecks = upReady.HEAD-up0.HEAD, up1.HEAD-upReady.HEAD
	if r.sidecar != nil {
		runs1, err := readHookRuns(ctx, r.metrics)
		if err != nil {
			return err
		}
		phases1, err := readSidecarPhases(ctx, r.sidecar.metrics)
		if err != nil {
			return err
		}
		h := r.rep.Hooks
		var total int64
		h.RampRuns, total = subRuns(runs1, runs0)
		h.RampRunsPerSource = float64(total) / float64(cfg.N)
		h.Phases = phases1.sub(phases0)
		logf("hooks during the ramp: %v (%.2f per source); sidecar mean ms per run: %s", h.RampRuns, h.RampRunsPerSource, fmtPhases(h.Phases))
	}
	if r.rep.Throughput != nil {
		t := r.rep.Throughput
		t.ControllerSeconds = r.rep.AllReadySeconds
		t.ControllerMiBps = float64(t.Bytes) / (1 << 20) / t.ControllerSeconds
		t.Ratio = t.ControllerMiBps / t.GzipMiBps
		t.RSSGrowthMiB = r.sampler.maxSince(start) - r.rep.BaselineRSSMiB
		if p, err := ReadProc(r.pid); err == nil {
			t.RSSGrowthMiB = max(t.RSSGrowthMiB, p.HWMMiB-r.rep.BaselineRSSMiB)
		}
	}
	logf("all %d Ready after %.1fs; %.2f reconciles per new source; scheduled re-checks: %d before all were Ready, %d after",
		cfg.N, r.rep.AllReadySeconds, r.rep.ReconcilesPerNewSource, r.rep.RampRechecks, r.rep.LateRechecks)
	return nil
}

// snapshot is the counters at one instant.
type snapshot struct {
	at         time.Time
	writes     APIWrites
	upstream   UpstreamCounts
	reconciles int64
	published  int64
	hookRuns   map[string]int64
}

func (r *run) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now(), upstream: r.up.Counts(), published: r.tr.publishedCount()}
	var err error
	if s.writes, err = ReadAPIWrites(ctx, r.admin); err != nil {
		return s, err
	}
	if s.reconciles, err = readReconciles(ctx, r.metrics); err != nil {
		return s, err
	}
	if r.sidecar != nil {
		s.hookRuns, err = readHookRuns(ctx, r.metrics)
	}
	return s, err
}

// phaseSteady measures one interval of every source.
func (r *run) phaseSteady(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	// Let trailing work (events, the last patches) finish.
	time.Sleep(2 * time.Second)
	st := &r.rep.Steady
	change := func() {
		for i := range int(cfg.ChangeFraction * float64(cfg.N)) {
			r.up.Change(i)
		}
	}
	s0, err := r.snapshot(ctx)
	if err != nil {
		return err
	}
	switch cfg.Steady {
	case SteadyRequest:
		logf("steady state: a reconcile request on every source")
		change()
		token := strconv.FormatInt(time.Now().UnixNano(), 10)
		r.tr.expectHandled(token, cfg.N)
		if err := parallel(ctx, cfg.N, 16, func(i int) error { return r.requestReconcile(ctx, i, token) }); err != nil {
			return err
		}
		select {
		case <-r.tr.handled:
		case <-time.After(cfg.ReadyTimeout):
			return fmt.Errorf("the reconcile requests were not all handled within %s; %s", cfg.ReadyTimeout,
				r.stuck(r.tr.notAcked(r.names())))
		case <-ctx.Done():
			return fmt.Errorf("waiting for the reconcile requests to be handled: %w; %s", ctx.Err(), r.stuck(r.tr.notAcked(r.names())))
		}
		time.Sleep(time.Second)
	default:
		// The first interval after a new artifact is a warm-up: it
		// records status.changeDetection=HEAD (the first fetch was a GET)
		// and drains the queued NewArtifact events. It is reported apart.
		if err := r.waitReconciles(ctx, s0, logf, "warm-up"); err != nil {
			return err
		}
		sw, err := r.snapshot(ctx)
		if err != nil {
			return err
		}
		r.rep.Warmup = r.steadyReport(s0, sw)
		s0 = sw
		change()
		if err := r.waitReconciles(ctx, s0, logf, "steady"); err != nil {
			return err
		}
	}
	s1, err := r.snapshot(ctx)
	if err != nil {
		return err
	}
	*st = r.steadyReport(s0, s1)
	if r.sidecar != nil {
		h := r.rep.Hooks
		var total int64
		h.SteadyRuns, total = subRuns(s1.hookRuns, s0.hookRuns)
		h.SteadyRunsPerSource = float64(total) / float64(cfg.N)
		h.SteadyPostRunsPerSrc = float64(h.SteadyRuns["jq"]) / float64(cfg.N)
		h.SteadyPreRunsPerSrc = float64(h.SteadyRuns["yq"]) / float64(cfg.N)
		logf("hooks in the steady window: %v (%.2f per source)", h.SteadyRuns, h.SteadyRunsPerSource)
	}
	if p, err := ReadProc(r.pid); err == nil {
		r.rep.RSSMiB = p.RSSMiB
	}
	logf("steady state: %d reconciles in %.1fs; upstream %+v; writes %s; artifacts %d",
		st.Reconciles, st.WindowSeconds, st.Upstream, st.APIWrites, st.ArtifactsPublished)
	return nil
}

// waitReconciles waits for N reconciles after s0 (one interval of every
// source) and a second for trailing writes.
func (r *run) waitReconciles(ctx context.Context, s0 snapshot, logf func(string, ...any), what string) error {
	cfg := r.cfg
	logf("%s: waiting for %d reconciles after spec.interval (%s)", what, cfg.N, cfg.Interval)
	deadline := time.Now().Add(3*cfg.Interval + time.Minute)
	for {
		n, err := readReconciles(ctx, r.metrics)
		if err != nil {
			return err
		}
		if n-s0.reconciles >= int64(cfg.N) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d reconciles within %s", n-s0.reconciles, cfg.N, time.Since(s0.at))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(metricsPollPeriod):
		}
	}
	time.Sleep(time.Second)
	return nil
}

// metricsPollPeriod is how often the steady-state wait reads the
// controller's /metrics. Each read renders every series, 10,000 reconcile
// duration histograms at 10,000 sources (tens of MiB of short-lived
// objects in the controller); read twice a second, as before, the
// harness kept the controller collecting garbage under a load that
// Prometheus (one scrape every 15 to 60 s) never puts on it, and its
// resident memory grew to match (docs/benchmarks.md).
const metricsPollPeriod = 5 * time.Second

// steadyReport derives the per-interval figures between two snapshots.
func (r *run) steadyReport(s0, s1 snapshot) SteadyReport {
	cfg := r.cfg
	var st SteadyReport
	st.Mode = cfg.Steady
	st.WindowSeconds = s1.at.Sub(s0.at).Seconds()
	st.Reconciles = s1.reconciles - s0.reconciles
	st.Upstream = s1.upstream.Sub(s0.upstream)
	st.APIWrites = s1.writes.Sub(s0.writes)
	if cfg.Steady == SteadyRequest {
		st.APIWrites["externalsources PATCH"] -= r.harnessW
		if st.APIWrites["externalsources PATCH"] == 0 {
			delete(st.APIWrites, "externalsources PATCH")
		}
		r.harnessW = 0
	}
	st.ArtifactsPublished = s1.published - s0.published
	st.ReconcilesPerSecond = float64(st.Reconciles) / st.WindowSeconds
	if st.Reconciles > 0 {
		per := float64(st.Reconciles)
		st.UpstreamPerSourceInterval = float64(st.Upstream.Total()) / per
		st.APIWritesPerSourceInterval = float64(st.APIWrites.Total()) / per
		st.ArtifactsPerSourceInterval = float64(st.ArtifactsPublished) / per
	}
	return st
}

// requestReconcile sets reconcile.fluxcd.io/requestedAt on source i.
func (r *run) requestReconcile(ctx context.Context, i int, token string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, meta.ReconcileRequestAnnotation, token)
	obj := &exsv1beta1.ExternalSource{ObjectMeta: metav1.ObjectMeta{Name: r.name(i), Namespace: namespace}}
	if err := r.c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		return err
	}
	r.tr.mu.Lock()
	r.harnessW++
	r.tr.mu.Unlock()
	return nil
}

// phaseLatency changes LatencySamples endpoints, one after the other at
// LatencyRate, each followed by a reconcile request, and measures the time
// until the ExternalArtifact carries a new revision.
func (r *run) phaseLatency(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	m := min(cfg.LatencySamples, cfg.N)
	if m <= 0 {
		return nil
	}
	logf("latency: %d upstream changes + reconcile requests at %.0f/s", m, cfg.LatencyRate)
	gap := time.Duration(float64(time.Second) / cfg.LatencyRate)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for k := range m {
		i := k * cfg.N / m // spread over the sources
		r.up.Change(i)
		r.tr.expectRevision(r.name(i))
		if err := r.requestReconcile(ctx, i, strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for r.tr.pendingCount() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	vals, missed := r.tr.latencies()
	sort.Float64s(vals)
	l := &r.rep.Latency
	l.Samples, l.Missed, l.Values = len(vals), missed, vals
	l.P50Seconds, l.P90Seconds, l.P99Seconds = percentile(vals, 50), percentile(vals, 90), percentile(vals, 99)
	if len(vals) > 0 {
		l.MaxSeconds = vals[len(vals)-1]
	}
	logf("latency: p50 %.3fs p99 %.3fs (%d samples, %d missed)", l.P50Seconds, l.P99Seconds, l.Samples, l.Missed)
	return nil
}

// timeGzip writes data to a file and times `gzip -1 | sha256sum` on it.
func timeGzip(ctx context.Context, data []byte, dir string) (float64, error) {
	f := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		return 0, err
	}
	defer os.Remove(f)
	// Warm the page cache so both sides read from memory.
	if _, err := os.ReadFile(f); err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "sh", "-c", `gzip -1 < "$1" | sha256sum`, "sh", f).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("gzip -1 | sha256sum: %v: %s", err, out)
	}
	return time.Since(start).Seconds(), nil
}

// parallel runs fn(0..n-1) on workers goroutines and returns the first
// error.
func parallel(ctx context.Context, n, workers int, fn func(int) error) error {
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
loop:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		case err := <-errs:
			close(next)
			wg.Wait()
			return err
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return ctx.Err()
}

// tracker follows ExternalSources and ExternalArtifacts through watches
// (informers): readiness, handled reconcile requests, revision changes.
type tracker struct {
	mu        sync.Mutex
	start     time.Time
	n         int
	ready     map[string]time.Time
	last      time.Time
	allReady  chan struct{}
	revisions map[string]string
	published int64

	token   string
	handled chan struct{}
	acked   map[string]bool

	pending map[string]time.Time
	values  []float64

	// isFalse and readyFalse track Ready=False after a source was Ready.
	isFalse    map[string]bool
	readyFalse int
}

func newTracker() *tracker {
	return &tracker{ready: map[string]time.Time{}, revisions: map[string]string{}, allReady: make(chan struct{}),
		pending: map[string]time.Time{}, acked: map[string]bool{}, isFalse: map[string]bool{}}
}

func (t *tracker) setStart(s time.Time, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start, t.n = s, n
}

func (t *tracker) onSource(obj any) {
	es, ok := obj.(*exsv1beta1.ExternalSource)
	if !ok {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	_, wasReady := t.ready[es.Name]
	if wasReady {
		f := conditions.IsFalse(es, meta.ReadyCondition)
		if f && !t.isFalse[es.Name] {
			t.readyFalse++
		}
		t.isFalse[es.Name] = f
	}
	if !wasReady && conditions.IsReady(es) && es.Status.Artifact != nil {
		t.ready[es.Name] = now
		t.last = now
		if len(t.ready) == t.n {
			close(t.allReady)
		}
	}
	if t.token != "" && es.Status.LastHandledReconcileAt == t.token && !t.acked[es.Name] {
		t.acked[es.Name] = true
		if len(t.acked) == t.n {
			close(t.handled)
		}
	}
}

func (t *tracker) onArtifact(obj any) {
	ea, ok := obj.(*sourcev1.ExternalArtifact)
	if !ok || ea.Status.Artifact == nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	rev := ea.Status.Artifact.Revision
	if t.revisions[ea.Name] == rev {
		return
	}
	t.revisions[ea.Name] = rev
	t.published++
	if s, ok := t.pending[ea.Name]; ok {
		t.values = append(t.values, now.Sub(s).Seconds())
		delete(t.pending, ea.Name)
	}
}

func (t *tracker) readyFalseCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readyFalse
}

// notReady returns the names that have not been Ready yet.
func (t *tracker) notReady(names []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, n := range names {
		if _, ok := t.ready[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// notAcked returns the names whose status has not acknowledged the
// current reconcile request yet.
func (t *tracker) notAcked(names []string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, n := range names {
		if !t.acked[n] {
			out = append(out, n)
		}
	}
	return out
}

func (t *tracker) readyCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ready)
}

func (t *tracker) lastReady() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (t *tracker) publishedCount() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published
}

func (t *tracker) expectHandled(token string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.token, t.n, t.handled, t.acked = token, n, make(chan struct{}), map[string]bool{}
}

func (t *tracker) expectRevision(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[name] = time.Now()
}

func (t *tracker) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func (t *tracker) latencies() ([]float64, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]float64(nil), t.values...), len(t.pending)
}

// startWatches starts informers on the benchmark namespace.
func (r *run) startWatches(ctx context.Context) error {
	c, err := ctrlcache.New(r.env.Config, ctrlcache.Options{Scheme: scheme,
		DefaultNamespaces: map[string]ctrlcache.Config{namespace: {}}})
	if err != nil {
		return err
	}
	handlers := map[client.Object]func(any){
		&exsv1beta1.ExternalSource{}: r.tr.onSource,
		&sourcev1.ExternalArtifact{}: r.tr.onArtifact,
	}
	for obj, h := range handlers {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    h,
			UpdateFunc: func(_, n any) { h(n) },
		}); err != nil {
			return err
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return errors.New("the harness's caches did not sync")
	}
	return nil
}

// writeOutputs writes the JSON report and the plots.
func (r *run) writeOutputs() error {
	plots, err := WritePlots(r.rep, r.cfg.OutDir)
	if err != nil {
		return err
	}
	r.rep.Plots = plots
	return WriteJSON(filepath.Join(r.cfg.OutDir, r.cfg.Name+".json"), r.rep)
}
