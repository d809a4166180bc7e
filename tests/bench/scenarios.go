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
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/externalsource/externalsource-controller/internal/storage/s3/s3test"
)

// phases runs the phases of a one-process scenario after the controller
// started.
func (r *run) phases(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	if cfg.Failing {
		return r.phaseFailing(ctx, logf)
	}
	if err := r.phaseCreate(ctx, logf); err != nil {
		return err
	}
	if cfg.Steady != SteadyNone {
		if err := r.phaseSteady(ctx, logf); err != nil {
			return err
		}
	}
	if err := r.phaseLatency(ctx, logf); err != nil {
		return err
	}
	if cfg.HeapProfile {
		if err := r.phaseHeap(ctx, logf); err != nil {
			return err
		}
	}
	if cfg.Restart {
		return r.phaseRestart(ctx, logf)
	}
	return nil
}

// startS3 starts versitygw over a fresh directory of the output and
// creates the bucket.
func (r *run) startS3(ctx context.Context) error {
	dir := filepath.Join(r.cfg.OutDir, r.cfg.Name+"-s3")
	_ = os.RemoveAll(dir)
	srv, err := s3test.StartDir(dir, func(string, ...any) {})
	if err != nil {
		return err
	}
	r.s3 = srv
	if err := srv.MakeBucket(ctx, s3Bucket); err != nil {
		srv.Stop()
		return err
	}
	return nil
}

// HeapReport summarizes a heap profile of the controller (inuse_space).
type HeapReport struct {
	Profile  string  `json:"profile"`
	InuseMiB float64 `json:"inuseMiB"`
	// ByPackage is the in-use bytes by the package of the allocating
	// function (flat), largest first; TopFunctions the same by function.
	ByPackage    []Bytes `json:"byPackage"`
	TopFunctions []Bytes `json:"topFunctions"`
}

// Bytes is an amount of memory attributed to a name.
type Bytes struct {
	Name    string  `json:"name"`
	MiB     float64 `json:"mib"`
	Percent float64 `json:"percent"`
}

// cpuProfile takes a CPU profile of the controller for d from its pprof
// endpoint and summarizes it by package (in the background: it returns
// at once, and the report gets the summary when it is done). In a hooks
// scenario it takes the hook sidecar's over the same window too.
func (r *run) cpuProfile(ctx context.Context, d time.Duration, logf func(string, ...any)) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	profile := func(who, addr, file string, set func(*HeapReport)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(r.cfg.OutDir, r.cfg.Name+file)
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds()))
			if err := download(ctx, url, path); err != nil {
				logf("%s cpu profile: %v", who, err)
				return
			}
			c, err := SummarizeCPU(ctx, path)
			if err != nil {
				logf("%s cpu profile: %v", who, err)
				return
			}
			set(c)
			var parts []string
			for _, b := range c.ByPackage[:min(8, len(c.ByPackage))] {
				parts = append(parts, fmt.Sprintf("%s %.2f s (%.0f%%)", b.Name, b.MiB, b.Percent))
			}
			logf("%s cpu during the creates (%s): %.1f s; by package: %s", who, d, c.InuseMiB, strings.Join(parts, ", "))
		}()
	}
	// Each goroutine writes its own field; the report is read after done.
	profile("controller", r.metrics, "-cpu.pb.gz", func(c *HeapReport) { r.rep.CPU = c })
	if r.sidecar != nil {
		profile("hook sidecar", r.sidecar.metrics, "-hook-executor-cpu.pb.gz", func(c *HeapReport) { r.rep.SidecarCPU = c })
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// phaseHeap takes a heap profile (after a GC) from the controller's pprof
// endpoint on the metrics server and summarizes it with `go tool pprof`.
func (r *run) phaseHeap(ctx context.Context, logf func(string, ...any)) error {
	path := filepath.Join(r.cfg.OutDir, r.cfg.Name+"-heap.pb.gz")
	if err := download(ctx, "http://"+r.metrics+"/debug/pprof/heap?gc=1", path); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	h, err := SummarizeHeap(ctx, path)
	if err != nil {
		return err
	}
	r.rep.Heap = h
	logf("heap: %.1f MiB in use; by package: %s; by function: %s", h.InuseMiB, fmtBytes(h.ByPackage, 5), fmtBytes(h.TopFunctions, 5))
	return nil
}

// download writes the body of a GET to path.
func download(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SummarizeHeap runs `go tool pprof -top` on a heap profile (symbolized:
// no binary needed) and sums the flat in-use bytes by package.
func SummarizeHeap(ctx context.Context, path string) (*HeapReport, error) {
	return summarizeProfile(ctx, path, "inuse_space")
}

// SummarizeCPU does the same for a CPU profile: the "MiB" of each entry
// are then seconds of CPU (pprof prints them as "1.20s" or "250ms").
func SummarizeCPU(ctx context.Context, path string) (*HeapReport, error) {
	return summarizeProfile(ctx, path, "cpu")
}

// summarizeProfile sums the flat values of `go tool pprof -top` by package.
func summarizeProfile(ctx context.Context, path, index string) (*HeapReport, error) {
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-sample_index="+index,
		"-nodecount=1000000", "-nodefraction=0", "-edgefraction=0", path).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go tool pprof: %v: %s", err, out)
	}
	h := &HeapReport{Profile: path}
	byPkg := map[string]float64{}
	var funcs []Bytes
	sc := bufio.NewScanner(bytes.NewReader(out))
	header := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if !header {
			header = len(f) == 5 && f[0] == "flat" && f[4] == "cum%"
			continue
		}
		if len(f) < 6 {
			continue
		}
		flat, err := parseSize(f[0])
		if err != nil {
			continue
		}
		name := strings.Join(f[5:], " ")
		h.InuseMiB += flat
		byPkg[packageOf(name)] += flat
		funcs = append(funcs, Bytes{Name: name, MiB: flat})
	}
	for k, v := range byPkg {
		h.ByPackage = append(h.ByPackage, Bytes{Name: k, MiB: v})
	}
	sortBytes(h.ByPackage, h.InuseMiB)
	sortBytes(funcs, h.InuseMiB)
	h.ByPackage = h.ByPackage[:min(len(h.ByPackage), 20)]
	h.TopFunctions = funcs[:min(len(funcs), 15)]
	return h, sc.Err()
}

func sortBytes(b []Bytes, total float64) {
	sort.Slice(b, func(i, j int) bool { return b[i].MiB > b[j].MiB })
	for i := range b {
		if total > 0 {
			b[i].Percent = 100 * b[i].MiB / total
		}
	}
}

// fmtBytes lists the first n entries.
func fmtBytes(b []Bytes, n int) string {
	var parts []string
	for _, x := range b[:min(n, len(b))] {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB (%.0f%%)", x.Name, x.MiB, x.Percent))
	}
	return strings.Join(parts, ", ")
}

// packageOf returns the import path of a function name as pprof prints it
// ("k8s.io/apimachinery/pkg/runtime.(*Scheme).New" is in
// "k8s.io/apimachinery/pkg/runtime").
func packageOf(fn string) string {
	// Generic instantiations carry paths in brackets:
	// "pkg/priorityqueue.(*priorityqueue[go.shape.struct { k8s.io/...}]).Add".
	if i := strings.IndexByte(fn, '['); i >= 0 {
		fn = fn[:i]
	}
	slash := strings.LastIndexByte(fn, '/')
	last := fn[slash+1:]
	dot := strings.IndexByte(last, '.')
	if dot < 0 {
		return fn
	}
	// gopkg.in/yaml.v3: the ".v<digits>" suffix belongs to the path.
	if strings.HasPrefix(fn, "gopkg.in/") {
		if v, _, ok := strings.Cut(last[dot+1:], "."); ok && len(v) > 1 && v[0] == 'v' && strings.Trim(v[1:], "0123456789") == "" {
			dot += 1 + len(v)
		}
	}
	return fn[:slash+1+dot]
}

// parseSize parses pprof's sizes ("0", "512B", "1.50kB", "2MB", "1.2GB")
// into MiB, and its durations ("250ms", "1.20s", "3mins") into seconds
// scaled the same way (a CPU profile's entries are then seconds).
func parseSize(s string) (float64, error) {
	units := []struct {
		suffix string
		mul    float64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"kB", 1 << 10}, {"B", 1},
		{"mins", 60 << 20}, {"ms", 1 << 20 / 1000.0}, {"us", 1 << 20 / 1e6}, {"s", 1 << 20}}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSuffix(s, u.suffix), u.mul
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v * mul / (1 << 20), err
}

// RestartReport is the controller's first interval after a restart with
// every source Ready.
type RestartReport struct {
	Backend       string  `json:"backend"`
	Hosts         int     `json:"hosts"`
	WindowSeconds float64 `json:"windowSeconds"`
	// ReconciledSeconds is from the start of the new process until every
	// source had been reconciled by it (reconciles >= N).
	ReconciledSeconds float64        `json:"reconciledSeconds"`
	Reconciles        int64          `json:"reconciles"`
	Upstream          UpstreamCounts `json:"upstream"`
	RequestsPerSource float64        `json:"requestsPerSource"`
	APIWrites         APIWrites      `json:"apiWrites"`
	NewArtifacts      int64          `json:"newArtifacts"`
	ReadyFalse        int            `json:"readyFalse"`
	// SourcesRequested is the number of sources whose endpoint got at
	// least one request in the window, MaxPerSource the most one got.
	SourcesRequested int   `json:"sourcesRequested"`
	MaxPerSource     int64 `json:"maxPerSource"`
	// PeakPerSecond is the most upstream requests in one second, all to
	// the one host when Hosts is 1; PeakInflight the most at once;
	// SpreadSeconds the time from the first to the last upstream request
	// of the window.
	PeakPerSecond int64   `json:"peakPerSecond"`
	PeakInflight  int64   `json:"peakInflight"`
	SpreadSeconds float64 `json:"spreadSeconds"`
	PerSecond     []int64 `json:"perSecond"`
}

// phaseRestart stops the controller with every source Ready and starts it
// again on the same storage, then measures until each source has been
// reconciled once by the new process and has had its upstream request (or
// one interval passed): upstream requests, API writes, new artifacts and
// the peak request rate against the upstream.
func (r *run) phaseRestart(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	time.Sleep(2 * time.Second)
	logf("restart: stopping the controller with %d Ready sources", cfg.N)
	r.proc.stop()
	rr := &RestartReport{Backend: cfg.Backend, Hosts: r.up.Hosts()}
	r.rep.Restart = rr
	w0, err := ReadAPIWrites(ctx, r.admin)
	if err != nil {
		return err
	}
	u0, p0, f0 := r.up.Counts(), r.tr.publishedCount(), r.tr.readyFalseCount()
	e0 := r.up.EndpointCounts()
	requested := func() (int, int64) {
		seen, most := 0, int64(0)
		for i, n := range r.up.EndpointCounts() {
			if d := n - e0[i]; d > 0 {
				seen++
				most = max(most, d)
			}
		}
		return seen, most
	}
	r.up.PeakInflight()
	start := time.Now()
	if _, err := r.startController(ctx, false); err != nil {
		return err
	}
	logf("restart: started again; waiting for %d reconciles and a request from every source", cfg.N)
	deadline := start.Add(3*cfg.Interval + time.Minute)
	for {
		n, err := readReconciles(ctx, r.metrics)
		if err != nil {
			return err
		}
		if n >= int64(cfg.N) && rr.ReconciledSeconds == 0 {
			rr.ReconciledSeconds = time.Since(start).Seconds()
		}
		reqs, _ := requested()
		if n >= int64(cfg.N) && (reqs >= cfg.N || time.Since(start) > cfg.Interval+15*time.Second) {
			rr.Reconciles = n
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart: only %d reconciles and requests from %d sources within %s", n, reqs, time.Since(start))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	time.Sleep(2 * time.Second)
	end := time.Now()
	w1, err := ReadAPIWrites(ctx, r.admin)
	if err != nil {
		return err
	}
	rr.WindowSeconds = end.Sub(start).Seconds()
	rr.Upstream = r.up.Counts().Sub(u0)
	rr.RequestsPerSource = float64(rr.Upstream.Total()) / float64(cfg.N)
	rr.SourcesRequested, rr.MaxPerSource = requested()
	rr.APIWrites = w1.Sub(w0)
	rr.NewArtifacts = r.tr.publishedCount() - p0
	rr.ReadyFalse = r.tr.readyFalseCount() - f0
	rr.PeakPerSecond, _ = r.up.PeakPerSecond(start)
	rr.PeakInflight = r.up.PeakInflight()
	rr.PerSecond = r.up.PerSecond(start, end.Add(time.Second))
	first, last := -1, -1
	for i, v := range rr.PerSecond {
		if v > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first >= 0 {
		rr.SpreadSeconds = float64(last - first + 1)
	}
	if p, err := ReadProc(r.pid); err == nil {
		r.rep.RSSMiB = p.RSSMiB
	}
	logf("restart: %d reconciles in %.1fs; upstream %+v (%.2f/source); writes %s; new artifacts %d; peak %d req/s, %d in flight, over %.0fs",
		rr.Reconciles, rr.WindowSeconds, rr.Upstream, rr.RequestsPerSource, rr.APIWrites, rr.NewArtifacts,
		rr.PeakPerSecond, rr.PeakInflight, rr.SpreadSeconds)
	return nil
}

// FailingReport is the request rate of sources whose upstream answers 500.
type FailingReport struct {
	Sources       int     `json:"sources"`
	WindowSeconds float64 `json:"windowSeconds"`
	// PerSource[k] is the mean number of requests per source in window k
	// (from the creation of the sources); MaxPerSource[k] the most any
	// one source sent in it.
	PerSource    []float64 `json:"perSource"`
	MaxPerSource []int     `json:"maxPerSource"`
	Total        int       `json:"total"`
}

// phaseFailing creates N sources whose endpoints all answer 500 and counts
// the requests each sends per window for FailDuration.
func (r *run) phaseFailing(ctx context.Context, logf func(string, ...any)) error {
	cfg := r.cfg
	for i := range cfg.N {
		r.up.SetFailing(i, true)
	}
	logf("failing: %d sources whose upstream answers 500, for %s", cfg.N, cfg.FailDuration)
	start := time.Now()
	if err := r.createSources(ctx, nil); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(cfg.FailDuration):
	}
	windows := int(cfg.FailDuration / cfg.FailWindow)
	fr := &FailingReport{Sources: cfg.N, WindowSeconds: cfg.FailWindow.Seconds(),
		PerSource: make([]float64, windows), MaxPerSource: make([]int, windows)}
	counts := make([]map[int]int, windows)
	for k := range counts {
		counts[k] = map[int]int{}
	}
	for _, ft := range r.up.FailTimes() {
		k := int(ft.At.Sub(start) / cfg.FailWindow)
		if k < 0 || k >= windows {
			continue
		}
		counts[k][ft.Endpoint]++
		fr.Total++
	}
	for k, m := range counts {
		sum := 0
		for _, n := range m {
			sum += n
			fr.MaxPerSource[k] = max(fr.MaxPerSource[k], n)
		}
		fr.PerSource[k] = float64(sum) / float64(cfg.N)
	}
	r.rep.Failing = fr
	if p, err := ReadProc(r.pid); err == nil {
		r.rep.RSSMiB = p.RSSMiB
	}
	logf("failing: requests per source per %s: %v (max %v)", cfg.FailWindow, fr.PerSource, fr.MaxPerSource)
	return nil
}
