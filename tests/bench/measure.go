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
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStat is what /proc says about a process.
type ProcStat struct {
	CPUSeconds float64
	// ChildCPUSeconds is the CPU of the children it waited for
	// (cutime+cstime).
	ChildCPUSeconds float64
	RSSMiB          float64
	HWMMiB          float64
}

// ReadProc reads utime+stime from /proc/<pid>/stat and VmRSS and VmHWM
// (peak RSS) from /proc/<pid>/status.
func ReadProc(pid int) (ProcStat, error) {
	var s ProcStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	st, ok := parseStat(b)
	if !ok {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	s.CPUSeconds, s.ChildCPUSeconds = st.cpu, st.childCPU
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "VmRSS":
			s.RSSMiB = kb / 1024
		case "VmHWM":
			s.HWMMiB = kb / 1024
		}
	}
	return s, nil
}

// procStat is what ReadProc and controlPlaneCPU take from a
// /proc/<pid>/stat: the command name, the parent, and the CPU of the
// process and of the children it waited for, in seconds.
type procStat struct {
	comm          string
	ppid          int
	cpu, childCPU float64
}

// parseStat parses a /proc/<pid>/stat; false when it is too short.
func parseStat(b []byte) (procStat, bool) {
	// The command name may hold spaces and parentheses: it is what lies
	// between the first '(' and the last ')', and the fields follow.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 15 {
		return procStat{}, false
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
	ppid, _ := strconv.Atoi(f[1]) // field 4
	return procStat{
		comm:     string(b[open+1 : end]),
		ppid:     ppid,
		cpu:      (num(11) + num(12)) / clockTicks, // fields 14, 15: utime, stime
		childCPU: (num(13) + num(14)) / clockTicks, // fields 16, 17: cutime, cstime
	}, true
}

// Sample is one RSS reading, Seconds after the controller started.
type Sample struct {
	Seconds float64 `json:"s"`
	RSSMiB  float64 `json:"rssMiB"`
}

// sampler reads the controller's RSS every period.
type sampler struct {
	mu      sync.Mutex
	start   time.Time
	samples []Sample
	max     float64
}

func (s *sampler) run(ctx context.Context, pid int, period time.Duration, exited <-chan struct{}) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-exited:
			return
		default:
		}
		if p, err := ReadProc(pid); err == nil {
			s.mu.Lock()
			s.samples = append(s.samples, Sample{Seconds: time.Since(s.start).Seconds(), RSSMiB: p.RSSMiB})
			s.max = max(s.max, p.RSSMiB)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxSince returns the highest RSS sampled since t.
func (s *sampler) maxSince(t time.Time) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	from := t.Sub(s.start).Seconds()
	m := 0.0
	for _, x := range s.samples {
		if x.Seconds >= from {
			m = max(m, x.RSSMiB)
		}
	}
	return m
}

func (s *sampler) all() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// promSeries is one parsed line of the Prometheus text format.
type promSeries struct {
	name   string
	labels map[string]string
	value  float64
}

// parseProm parses the Prometheus text exposition format; enough for the
// counters read here (no escaped quotes in label values).
// scrapeProm reads the series of one process's /metrics endpoint that want
// keeps.
func scrapeProm(ctx context.Context, addr string, want func(name string) bool) ([]promSeries, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseProm(resp.Body, want)
}

func parseProm(r io.Reader, want func(name string) bool) ([]promSeries, error) {
	var out []promSeries
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !want(name) {
			continue
		}
		s := promSeries{name: name, labels: map[string]string{}}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			for _, kv := range strings.Split(rest[1:end], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		s.value, _ = strconv.ParseFloat(f[0], 64)
		out = append(out, s)
	}
	return out, sc.Err()
}

// mutatingVerbs are the verbs of apiserver_request_total that write.
var mutatingVerbs = map[string]bool{"POST": true, "PUT": true, "CREATE": true, "UPDATE": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

// watchedGroups are the API groups whose writes are counted, with the
// events of any group.
var watchedGroups = map[string]bool{"source.externalsource.io": true, "source.toolkit.fluxcd.io": true}

// APIWrites maps "resource[/subresource] VERB" to the number of write
// requests the kube-apiserver served.
type APIWrites map[string]int64

// Total sums every entry.
func (w APIWrites) Total() int64 {
	var t int64
	for _, v := range w {
		t += v
	}
	return t
}

// Sub returns w minus o, without zero entries.
func (w APIWrites) Sub(o APIWrites) APIWrites {
	out := APIWrites{}
	for k, v := range w {
		if d := v - o[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// String lists the entries sorted.
func (w APIWrites) String() string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, w[k])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// ReadAPIWrites reads apiserver_request_total from the kube-apiserver's
// /metrics with an admin client and returns the writes to ExternalSources,
// ExternalArtifacts and Events.
func ReadAPIWrites(ctx context.Context, rc rest.Interface) (APIWrites, error) {
	body, err := rc.Get().AbsPath("/metrics").Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading kube-apiserver metrics: %w", err)
	}
	defer body.Close()
	series, err := parseProm(body, func(n string) bool { return n == "apiserver_request_total" })
	if err != nil {
		return nil, err
	}
	out := APIWrites{}
	for _, s := range series {
		l := s.labels
		if !mutatingVerbs[l["verb"]] || (!watchedGroups[l["group"]] && l["resource"] != "events") {
			continue
		}
		key := l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key+" "+l["verb"]] += int64(s.value)
	}
	return out, nil
}

// readReconciles sums controller_runtime_reconcile_total from the
// controller's metrics endpoint.
func readReconciles(ctx context.Context, metricsAddr string) (int64, error) {
	series, err := scrapeProm(ctx, metricsAddr, func(n string) bool { return n == "controller_runtime_reconcile_total" })
	if err != nil {
		return 0, err
	}
	var t float64
	for _, s := range series {
		if s.labels["controller"] == "externalsource" {
			t += s.value
		}
	}
	return int64(t), nil
}

// percentile returns the p-th percentile (0..100) of sorted values, by
// nearest rank.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// metricsClient reads a controller's /metrics: a read that hangs ends
// after a minute with an error instead of holding the harness until its
// context ends.
var metricsClient = &http.Client{Timeout: time.Minute}
