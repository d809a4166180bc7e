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
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteJSON writes v as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WritePlots writes <name>-latency.png (the publish-latency histogram)
// when there are latency samples and <name>-rss.png (controller RSS over
// time), and returns their paths.
func WritePlots(rep *Report, dir string) ([]string, error) {
	var out []string
	name := rep.Config.Name
	if len(rep.Latency.Values) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: reconcile request -> new ExternalArtifact revision (%d samples)", name, rep.Latency.Samples)
		p.X.Label.Text = "latency (ms)"
		p.Y.Label.Text = "count"
		vals := make(plotter.Values, len(rep.Latency.Values))
		for i, v := range rep.Latency.Values {
			vals[i] = v * 1000
		}
		h, err := plotter.NewHist(vals, 30)
		if err != nil {
			return nil, err
		}
		p.Add(h)
		p.Legend.Top = true
		for _, q := range []struct {
			label string
			v     float64
		}{{"p50", rep.Latency.P50Seconds}, {"p99", rep.Latency.P99Seconds}} {
			l, err := plotter.NewLine(plotter.XYs{{X: q.v * 1000, Y: 0}, {X: q.v * 1000, Y: maxBin(h)}})
			if err != nil {
				return nil, err
			}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s %.0f ms", q.label, q.v*1000), l)
		}
		f := filepath.Join(dir, name+"-latency.png")
		if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if len(rep.RSSSamples) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: controller RSS (N=%d, %s backend)", name, rep.Config.N, rep.Config.Backend)
		p.X.Label.Text = "seconds since the controller started"
		p.Y.Label.Text = "RSS (MiB)"
		xys := make(plotter.XYs, len(rep.RSSSamples))
		for i, s := range rep.RSSSamples {
			xys[i].X, xys[i].Y = s.Seconds, s.RSSMiB
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		p.Add(l)
		p.Y.Min = 0
		f := filepath.Join(dir, name+"-rss.png")
		if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	more, err := writeScenarioPlots(rep, dir)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

func maxBin(h *plotter.Histogram) float64 {
	m := 0.0
	for _, b := range h.Bins {
		m = max(m, b.Weight)
	}
	return m
}

// PrintTable writes one column per report.
func PrintTable(w io.Writer, reps []*Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, f func(r *Report) string) {
		cells := []string{label}
		for _, r := range reps {
			cells = append(cells, f(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	f1 := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	f3 := func(v float64) string { return fmt.Sprintf("%.3f", v) }
	row("scenario", func(r *Report) string { return r.Config.Name })
	row("sources", func(r *Report) string { return fmt.Sprint(r.Config.N) })
	row("payload bytes", func(r *Report) string { return fmt.Sprint(r.Config.PayloadSize) })
	row("etag / backend", func(r *Report) string { return fmt.Sprintf("%v/%s", r.Config.ETag, r.Config.Backend) })
	row("concurrent/qps/burst", func(r *Report) string {
		return fmt.Sprintf("%s/%s/%s", dflt(r.Config.Concurrent), dflt(int(r.Config.QPS)), dflt(r.Config.Burst))
	})
	row("create s", func(r *Report) string { return f1(r.CreateSeconds) })
	row("all Ready s", func(r *Report) string { return f1(r.AllReadySeconds) })
	row("initial reconciles/s", func(r *Report) string { return f1(r.InitialReconcilesPerSecond) })
	row("initial API writes/source", func(r *Report) string { return f1(r.InitialAPIWritesPerSource) })
	row("warm-up API writes/source", func(r *Report) string { return f3(r.Warmup.APIWritesPerSourceInterval) })
	row("steady mode", func(r *Report) string { return r.Steady.Mode })
	row("steady reconciles/s", func(r *Report) string { return f1(r.Steady.ReconcilesPerSecond) })
	row("upstream req/source/interval", func(r *Report) string { return f3(r.Steady.UpstreamPerSourceInterval) })
	row("API writes/source/interval", func(r *Report) string { return f3(r.Steady.APIWritesPerSourceInterval) })
	row("artifacts/source/interval", func(r *Report) string { return f3(r.Steady.ArtifactsPerSourceInterval) })
	row("latency p50 ms", func(r *Report) string { return f1(r.Latency.P50Seconds * 1000) })
	row("latency p99 ms", func(r *Report) string { return f1(r.Latency.P99Seconds * 1000) })
	row("latency samples/missed", func(r *Report) string { return fmt.Sprintf("%d/%d", r.Latency.Samples, r.Latency.Missed) })
	row("controller CPU s", func(r *Report) string { return f1(r.CPUSeconds) })
	row("NewArtifact events kept", func(r *Report) string { return fmt.Sprintf("%d", r.NewArtifactEvents) })
	row("RSS baseline MiB", func(r *Report) string { return f1(r.BaselineRSSMiB) })
	row("RSS steady MiB", func(r *Report) string { return f1(r.RSSMiB) })
	row("RSS peak MiB", func(r *Report) string { return f1(r.PeakRSSMiB) })
	row("large: controller MiB/s", func(r *Report) string { return thr(r, func(t *ThroughputReport) float64 { return t.ControllerMiBps }) })
	row("large: gzip|sha256 MiB/s", func(r *Report) string { return thr(r, func(t *ThroughputReport) float64 { return t.GzipMiBps }) })
	row("large: ratio", func(r *Report) string { return thr(r, func(t *ThroughputReport) float64 { return t.Ratio }) })
	row("large: RSS growth MiB", func(r *Report) string { return thr(r, func(t *ThroughputReport) float64 { return t.RSSGrowthMiB }) })
	_ = tw.Flush()
}

func dflt(v int) string {
	if v == 0 {
		return "default"
	}
	return fmt.Sprint(v)
}

func thr(r *Report, f func(*ThroughputReport) float64) string {
	if r.Throughput == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", f(r.Throughput))
}

// Summary is every report of one `make bench` run and what is derived
// across them.
type Summary struct {
	Reports []*Report `json:"reports"`
	// RSSGrowthKiBPerSource is the steady-state RSS difference between the
	// smallest and the largest memory-backend run, per source.
	FromN                 int     `json:"fromN,omitempty"`
	ToN                   int     `json:"toN,omitempty"`
	RSSGrowthKiBPerSource float64 `json:"rssGrowthKiBPerSource,omitempty"`
	// Floor compares the null producer with the controller.
	Floor []FloorRow `json:"floor,omitempty"`
	// Hooks compares the controller with hooks, without them, and the
	// bare-exec floor.
	Hooks []HooksRow `json:"hooks,omitempty"`
}

// Summarize derives the per-source RSS growth from the memory-backend runs
// with the fewest and the most sources.
func Summarize(reps []*Report) Summary {
	s := Summary{Reports: reps, Floor: FloorRows(reps), Hooks: HooksRows(reps)}
	var lo, hi *Report
	for _, r := range reps {
		if r.Config.Backend != "memory" || r.Config.Throughput || r.Config.Group != "" || r.Failing != nil || r.Restart != nil {
			continue
		}
		if lo == nil || r.Config.N < lo.Config.N {
			lo = r
		}
		if hi == nil || r.Config.N > hi.Config.N {
			hi = r
		}
	}
	if lo != nil && hi != nil && hi.Config.N > lo.Config.N {
		s.FromN, s.ToN = lo.Config.N, hi.Config.N
		s.RSSGrowthKiBPerSource = (hi.RSSMiB - lo.RSSMiB) * 1024 / float64(hi.Config.N-lo.Config.N)
	}
	return s
}

// splitEvents returns the writes without the events, and the events.
func splitEvents(w APIWrites) (APIWrites, int64) {
	out := APIWrites{}
	var events int64
	for k, v := range w {
		if strings.HasPrefix(k, "events ") {
			events += v
			continue
		}
		out[k] = v
	}
	return out, events
}

// perSource formats writes divided by n, by resource and verb.
func perSource(w APIWrites, n int) string {
	if n == 0 {
		return "-"
	}
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(w[k])/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// FloorRow is one size of the floor comparison: the null producer and the
// controller on fresh control planes of the same run.
type FloorRow struct {
	Group string `json:"group"`
	N     int    `json:"n"`
	// NullSeconds and OursSeconds are the times to all-Ready; Ratio is
	// OursSeconds / NullSeconds.
	NullSeconds float64 `json:"nullSeconds"`
	OursSeconds float64 `json:"oursSeconds"`
	Ratio       float64 `json:"ratio"`
	// NullEventsSeconds is the time of the null producer that also emits
	// the two NewArtifact events (ProducerNullEvents), when run, and
	// RatioToNullEvents the controller's time over it.
	NullEventsSeconds   float64   `json:"nullEventsSeconds,omitempty"`
	NullEventsRuns      []float64 `json:"nullEventsRuns,omitempty"`
	RatioToNullEvents   float64   `json:"ratioToNullEvents,omitempty"`
	NullEventsPerSource float64   `json:"nullEventsPerSource,omitempty"`
	// NullRuns and OursRuns are every run's time to all-Ready.
	NullRuns []float64 `json:"nullRuns"`
	OursRuns []float64 `json:"oursRuns"`
	// Writes per new source and per new revision (events apart).
	NullWritesPerSource    float64 `json:"nullWritesPerSource"`
	OursWritesPerSource    float64 `json:"oursWritesPerSource"`
	OursEventsPerSource    float64 `json:"oursEventsPerSource"`
	NullWritesPerRevision  float64 `json:"nullWritesPerRevision"`
	OursWritesPerRevision  float64 `json:"oursWritesPerRevision"`
	OursEventsPerRevision  float64 `json:"oursEventsPerRevision"`
	NullWritesBySourceVerb string  `json:"nullWritesByResourceVerb"`
	OursWritesBySourceVerb string  `json:"oursWritesByResourceVerb"`
	NullRevisionByVerb     string  `json:"nullRevisionByResourceVerb"`
	OursRevisionByVerb     string  `json:"oursRevisionByResourceVerb"`
	// NullReconcilesPerSource and OursReconcilesPerSource are the
	// reconciles per new source until all were Ready (the first run's).
	NullReconcilesPerSource float64 `json:"nullReconcilesPerSource"`
	OursReconcilesPerSource float64 `json:"oursReconcilesPerSource"`
}

// FloorRows pairs the null producer's and the controller's reports of
// each group. With repeated runs (-repeat) the times are the means of the
// runs (each run is listed); the writes are the first run's.
func FloorRows(reps []*Report) []FloorRow {
	var rows []FloorRow
	byGroup := map[string]*[3][]*Report{}
	var order []string
	for _, r := range reps {
		if r.Config.Group == "" {
			continue
		}
		p, ok := byGroup[r.Config.Group]
		if !ok {
			p = &[3][]*Report{}
			byGroup[r.Config.Group] = p
			order = append(order, r.Config.Group)
		}
		switch r.Config.Producer {
		case ProducerNull:
			p[0] = append(p[0], r)
		case ProducerNullEvents:
			p[2] = append(p[2], r)
		default:
			p[1] = append(p[1], r)
		}
	}
	mean := func(rs []*Report) (float64, []float64) {
		var sum float64
		var all []float64
		for _, r := range rs {
			sum += r.AllReadySeconds
			all = append(all, r.AllReadySeconds)
		}
		return sum / float64(len(rs)), all
	}
	for _, g := range order {
		p := byGroup[g]
		if len(p[0]) == 0 || len(p[1]) == 0 {
			continue
		}
		null, ours := p[0][0], p[1][0]
		n := ours.Config.N
		row := FloorRow{Group: g, N: n}
		row.NullSeconds, row.NullRuns = mean(p[0])
		row.OursSeconds, row.OursRuns = mean(p[1])
		if row.NullSeconds > 0 {
			row.Ratio = row.OursSeconds / row.NullSeconds
		}
		if len(p[2]) > 0 {
			row.NullEventsSeconds, row.NullEventsRuns = mean(p[2])
			row.RatioToNullEvents = row.OursSeconds / row.NullEventsSeconds
			_, e := splitEvents(p[2][0].InitialAPIWrites)
			row.NullEventsPerSource = float64(e) / float64(n)
		}
		nw, _ := splitEvents(null.InitialAPIWrites)
		ow, oe := splitEvents(ours.InitialAPIWrites)
		row.NullWritesPerSource = float64(nw.Total()) / float64(n)
		row.OursWritesPerSource = float64(ow.Total()) / float64(n)
		row.OursEventsPerSource = float64(oe) / float64(n)
		row.NullWritesBySourceVerb, row.OursWritesBySourceVerb = perSource(nw, n), perSource(ow, n)
		nr, _ := splitEvents(null.Steady.APIWrites)
		or, ore := splitEvents(ours.Steady.APIWrites)
		row.NullWritesPerRevision = float64(nr.Total()) / float64(n)
		row.OursWritesPerRevision = float64(or.Total()) / float64(n)
		row.OursEventsPerRevision = float64(ore) / float64(n)
		row.NullRevisionByVerb, row.OursRevisionByVerb = perSource(nr, n), perSource(or, n)
		row.NullReconcilesPerSource, row.OursReconcilesPerSource = null.ReconcilesPerNewSource, ours.ReconcilesPerNewSource
		rows = append(rows, row)
	}
	return rows
}

// PrintFloor writes the floor ratio table.
func PrintFloor(w io.Writer, rows []FloorRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nThe floor: time to all-Ready, the null producer vs the controller (fresh control plane each)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "sources\tnull s\tours s\tratio\twrites/new source null\tours (+events)\twrites/new revision null\tours (+events)\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f (+%.2f)\t%.2f\t%.2f (+%.2f)\t\n", r.N, r.NullSeconds, r.OursSeconds, r.Ratio,
			r.NullWritesPerSource, r.OursWritesPerSource, r.OursEventsPerSource,
			r.NullWritesPerRevision, r.OursWritesPerRevision, r.OursEventsPerRevision)
	}
	_ = tw.Flush()
	for _, r := range rows {
		fmt.Fprintf(w, "  %d sources, runs to all-Ready: null %v s, ours %v s\n", r.N, r.NullRuns, r.OursRuns)
		if r.NullEventsSeconds > 0 {
			fmt.Fprintf(w, "  %d sources, null producer with the 2 NewArtifact events: %.1f s (%v; %.2f events/source until Ready); ours / it = %.2f\n",
				r.N, r.NullEventsSeconds, r.NullEventsRuns, r.NullEventsPerSource, r.RatioToNullEvents)
		}
		fmt.Fprintf(w, "  %d sources, reconciles per new source: null %.2f, ours %.2f\n", r.N, r.NullReconcilesPerSource, r.OursReconcilesPerSource)
		fmt.Fprintf(w, "  %d sources, per new source: null: %s\n", r.N, r.NullWritesBySourceVerb)
		fmt.Fprintf(w, "  %d sources, per new source: ours: %s\n", r.N, r.OursWritesBySourceVerb)
		fmt.Fprintf(w, "  %d sources, per new revision: null: %s\n", r.N, r.NullRevisionByVerb)
		fmt.Fprintf(w, "  %d sources, per new revision: ours: %s\n", r.N, r.OursRevisionByVerb)
	}
}

// PrintScale writes the per-source memory figures and the heap profiles.
func PrintScale(w io.Writer, reps []*Report) {
	for _, r := range reps {
		if r.Heap == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d sources, %s): all Ready %.1f s; steady %.3f upstream requests and %.3f writes per source per interval;"+
			" RSS steady %.1f MiB, peak %.1f MiB, %.1f KiB per source above the idle %.1f MiB\n",
			r.Config.Name, r.Config.N, r.Config.Backend, r.AllReadySeconds, r.Steady.UpstreamPerSourceInterval,
			r.Steady.APIWritesPerSourceInterval, r.RSSMiB, r.PeakRSSMiB, r.RSSPerSourceKiB, r.BaselineRSSMiB)
		fmt.Fprintf(w, "  heap in use %.1f MiB (%s); by package:\n", r.Heap.InuseMiB, r.Heap.Profile)
		for _, b := range r.Heap.ByPackage[:min(12, len(r.Heap.ByPackage))] {
			fmt.Fprintf(w, "    %8.1f MiB %5.1f%%  %s\n", b.MiB, b.Percent, b.Name)
		}
		fmt.Fprintln(w, "  by function (flat):")
		for _, b := range r.Heap.TopFunctions[:min(8, len(r.Heap.TopFunctions))] {
			fmt.Fprintf(w, "    %8.1f MiB %5.1f%%  %s\n", b.MiB, b.Percent, b.Name)
		}
	}
}

// PrintRestart writes the restart figures.
func PrintRestart(w io.Writer, reps []*Report) {
	for _, r := range reps {
		rr := r.Restart
		if rr == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s: restart with %d Ready sources (%s, %d upstream host(s)): every source reconciled after %.1f s;"+
			" %.2f upstream requests per source (HEAD %d, GET %d; %d sources requested, at most %d each); API writes: %s; new artifacts %d; Ready=False %d;"+
			" peak %d requests/s and %d in flight against the upstream, requests spread over %.0f s\n",
			r.Config.Name, r.Config.N, rr.Backend, rr.Hosts, rr.ReconciledSeconds, rr.RequestsPerSource, rr.Upstream.HEAD, rr.Upstream.GET, rr.SourcesRequested, rr.MaxPerSource,
			rr.APIWrites, rr.NewArtifacts, rr.ReadyFalse, rr.PeakPerSecond, rr.PeakInflight, rr.SpreadSeconds)
	}
}

// PrintSharding writes the sharding results.
func PrintSharding(w io.Writer, reps []*Report) {
	for _, r := range reps {
		s := r.Sharding
		if s == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d sources over %d processes on one S3 bucket; all Ready in %.1f s\n", r.Config.Name, r.Config.N, len(s.Processes), r.AllReadySeconds)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "process\tselector\tassigned\treconciled\tforeign\treconciles\tRSS MiB\t")
		for _, p := range s.Processes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.1f\t\n", p.Name, p.Selector, p.Assigned, p.Reconciled, p.Foreign, p.Reconciles, p.RSSMiB)
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "  downloads from every process's server: %d, failed %d\n", s.Downloads, s.DownloadFailures)
		fmt.Fprintf(w, "  move of %d sources shard1 -> shard2: %.1f s; new owner reconciled %d, old owner %d reconciles;"+
			" bucket %d -> %d objects (duplicated %d, lost %d); new artifacts %d; Ready=False %d\n",
			s.Moved, s.MoveSeconds, s.NewOwnerReconciled, s.OldOwnerReconciles, s.BucketBefore, s.BucketAfter,
			s.Duplicated, s.Lost, s.NewArtifactsOnMove, s.ReadyFalseOnMove)
		fmt.Fprintf(w, "  new revision of the moved sources: %d published, %d collected by the new owner, old owner %d reconciles\n",
			s.RevisionsPublished, s.CollectedByNewOwner, s.OldOwnerGCReconcile)
	}
}

// PrintFailing writes the failing-upstream table.
func PrintFailing(w io.Writer, reps []*Report) {
	for _, r := range reps {
		f := r.Failing
		if f == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d sources whose upstream answers 500; requests per source per %.0f s window (mean / max)\n",
			r.Config.Name, f.Sources, f.WindowSeconds)
		for k := range f.PerSource {
			fmt.Fprintf(w, "  window %2d: %5.2f / %d\n", k+1, f.PerSource[k], f.MaxPerSource[k])
		}
	}
}

// writeScenarioPlots writes the restart and failing plots.
func writeScenarioPlots(rep *Report, dir string) ([]string, error) {
	var out []string
	name := rep.Config.Name
	if h := rep.Hooks; h != nil && len(h.Phases) > 0 {
		// Where a hook run's time goes in the sidecar, beside the bare
		// exec's mean wall time per run.
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: mean ms per hook run in the sidecar during the ramp (N=%d)", name, rep.Config.N)
		p.Y.Label.Text = "ms per run"
		var vals plotter.Values
		var labels []string
		for _, k := range phaseOrder {
			vals = append(vals, h.Phases[k].MeanMs)
			labels = append(labels, k)
		}
		if h.Bare.Runs > 0 {
			vals = append(vals, 1000*h.Bare.Seconds*float64(h.Bare.Concurrency)/float64(h.Bare.Runs))
			labels = append(labels, "bare exec")
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(30))
		if err != nil {
			return nil, err
		}
		p.Add(bars)
		p.NominalX(labels...)
		f := filepath.Join(dir, name+"-hook-phases.png")
		if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if rr := rep.Restart; rr != nil && len(rr.PerSecond) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: upstream requests per second after a restart (N=%d, %s, %d host)", name, rep.Config.N, rr.Backend, rr.Hosts)
		p.X.Label.Text = "seconds since the new process started"
		p.Y.Label.Text = "requests/s"
		xys := make(plotter.XYs, len(rr.PerSecond))
		for i, v := range rr.PerSecond {
			xys[i].X, xys[i].Y = float64(i), float64(v)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		p.Add(l)
		p.Y.Min = 0
		f := filepath.Join(dir, name+"-restart.png")
		if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if fr := rep.Failing; fr != nil && len(fr.PerSource) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: requests per failing source per %.0f s (N=%d, upstream answers 500)", name, fr.WindowSeconds, fr.Sources)
		p.X.Label.Text = fmt.Sprintf("window (%.0f s each) since the sources were created", fr.WindowSeconds)
		p.Y.Label.Text = "requests per source"
		mean := make(plotter.XYs, len(fr.PerSource))
		mx := make(plotter.XYs, len(fr.PerSource))
		for i := range fr.PerSource {
			mean[i].X, mean[i].Y = float64(i+1), fr.PerSource[i]
			mx[i].X, mx[i].Y = float64(i+1), float64(fr.MaxPerSource[i])
		}
		lm, pm, err := plotter.NewLinePoints(mean)
		if err != nil {
			return nil, err
		}
		lx, err := plotter.NewLine(mx)
		if err != nil {
			return nil, err
		}
		lx.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(lm, pm, lx)
		p.Legend.Add("mean", lm)
		p.Legend.Add("max", lx)
		p.Legend.Top = true
		p.Y.Min = 0
		f := filepath.Join(dir, name+"-failing.png")
		if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
