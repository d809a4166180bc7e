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
	return out, nil
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
}

// Summarize derives the per-source RSS growth from the memory-backend runs
// with the fewest and the most sources.
func Summarize(reps []*Report) Summary {
	s := Summary{Reports: reps}
	var lo, hi *Report
	for _, r := range reps {
		if r.Config.Backend != "memory" || r.Config.Throughput {
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
