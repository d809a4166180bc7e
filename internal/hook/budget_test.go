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

package hook

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

const mi = 1 << 20

// TestBudgetAcquire: a run is admitted when its limit fits in the budget
// and in its namespace's share, waits for a release otherwise, and is
// refused with a message saying the budget is used when none comes.
func TestBudgetAcquire(t *testing.T) {
	tests := []struct {
		name string
		// held are the reservations in place: namespace and MiB.
		held    map[string]int64
		ns      string
		mem     int64
		release string // a held namespace released 50 ms later
		wantErr string
	}{
		{name: "fits", held: map[string]int64{"a": 256}, ns: "b", mem: 256},
		{name: "fits the namespace's share exactly", held: map[string]int64{"a": 256}, ns: "a", mem: 256},
		{name: "over the namespace's share", held: map[string]int64{"a": 256}, ns: "a", mem: 257,
			wantErr: "this namespace's hooks 256Mi of its 512Mi share (--hook-memory-per-namespace)"},
		{name: "over the budget", held: map[string]int64{"a": 512, "b": 448}, ns: "c", mem: 64,
			wantErr: "the hook executor's memory budget is used: the run needs 64Mi (its memory limit), running hooks hold 960Mi of 960Mi (--hook-memory-budget); waited 1"},
		{name: "admitted once a run ends", held: map[string]int64{"a": 512, "b": 448}, ns: "c", mem: 64, release: "b"},
		{name: "never fits a share", ns: "a", mem: 513, wantErr: "is more than a namespace's share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			b := &Budget{Total: 960 * mi, PerNamespace: 512 * mi, maxWait: 100 * time.Millisecond}
			if tt.release != "" {
				// The release comes 50 ms later on a quiet machine; on a
				// loaded one much later: the wait must outlast it.
				b.maxWait = time.Minute
			}
			releases := map[string]func(){}
			for ns, m := range tt.held {
				r, err := b.Acquire(context.Background(), ns, m*mi)
				g.Expect(err).ToNot(HaveOccurred())
				releases[ns] = r
			}
			if tt.release != "" {
				time.AfterFunc(50*time.Millisecond, releases[tt.release])
			}
			r, err := b.Acquire(context.Background(), tt.ns, tt.mem*mi)
			if tt.wantErr != "" {
				var be *BudgetError
				g.Expect(errors.As(err, &be)).To(BeTrue(), "%v", err)
				g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
				return
			}
			g.Expect(err).ToNot(HaveOccurred())
			r()
			g.Expect(b.Peak()).To(BeNumerically("<=", b.Total))
		})
	}
}

// TestBudgetFourHogsBesideAVictim is issue 23's attack 3 through the real
// server, client and executor: one namespace starts four memory-heavy jq
// runs at once (each within its own limit), another namespace one small
// run. The budget is the sidecar's memory in the test's proportions: four
// hog limits do not fit in it. The victim completes; every hog completes
// or is refused with a message saying the budget is used; the limits of
// the runs admitted together never exceed the budget, so the container's
// memory (the budget plus SidecarReserve) is never exhausted and the
// kernel's OOM killer has nothing to kill. No run is reported killed.
func TestBudgetFourHogsBesideAVictim(t *testing.T) {
	g := NewWithT(t)
	dir, err := os.MkdirTemp("", "hookbudget-")
	g.Expect(err).ToNot(HaveOccurred())
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "hook.sock")
	wl, err := Parse([]byte(`
commands:
  - name: jq
    path: /usr/bin/jq
    args: ['-[cn]+', '.*']
    limits: {memory: 192Mi, cpu: 20s}
`))
	g.Expect(err).ToNot(HaveOccurred())
	// The sidecar: 512Mi, runs of 256Mi; here 448Mi for runs
	// of 192Mi: two fit, four do not.
	budget := &Budget{Total: 448 * mi, PerNamespace: 256 * mi, maxWait: 5 * time.Second}
	srv := &Server{Socket: socket, Log: ctrl.Log, Budget: budget,
		Executor: &Executor{Whitelist: func() *Whitelist { return wl }, MaxOutput: 1 << 20, TempDir: dir}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(func() error { _, err := os.Stat(socket); return err }).Should(Succeed())
	c := NewClient(socket)

	// About 100 MiB resident for a second or two: within its own limit.
	hog := exsv1beta1.Hook{Name: "hog", Command: "jq", Args: []string{"-cn", "[range(2500000)] | length"}}
	victim := exsv1beta1.Hook{Name: "victim", Command: "jq", Args: []string{"-c", ".a"}}
	// Counted from /proc, independently of the budget's bookkeeping: the
	// most hogs running at once.
	stopCount := make(chan struct{})
	counted := make(chan int)
	go func() {
		most := 0
		for {
			select {
			case <-stopCount:
				counted <- most
				return
			case <-time.After(5 * time.Millisecond):
				most = max(most, runningWith(hog.Args[1]))
			}
		}
	}()
	var wg sync.WaitGroup
	hogErrs := make([]error, 4)
	for i := range hogErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out bytes.Buffer
			hogErrs[i] = c.Run(WithNamespace(ctx, "attacker"), hog, strings.NewReader(""), &out)
		}()
	}
	time.Sleep(100 * time.Millisecond) // the hogs hold their share first
	var out bytes.Buffer
	err = c.Run(WithNamespace(ctx, "victim"), victim, strings.NewReader(`{"a":1}`), &out)
	g.Expect(err).ToNot(HaveOccurred(), "the victim completes")
	g.Expect(out.String()).To(Equal("1\n"))
	wg.Wait()
	for i, err := range hogErrs {
		if err == nil {
			continue
		}
		var ee *ExecError
		g.Expect(errors.As(err, &ee)).To(BeTrue(), "hog %d: %v", i, err)
		g.Expect(ee.Reason).To(ContainSubstring("memory budget is used"), "hog %d", i)
		g.Expect(ee.Reason).ToNot(ContainSubstring("killed"), "hog %d", i)
	}
	close(stopCount)
	most := <-counted
	t.Logf("at most %d hogs ran at once (%dMi of limits, budget %dMi); hog results: %v", most, int64(most)*192, budget.Total/mi, hogErrs)
	g.Expect(most).To(BeNumerically(">=", 1))
	g.Expect(int64(most)*192*mi).To(BeNumerically("<=", budget.Total), "the limits of the runs running together")
}

// runningWith counts the processes whose command line holds arg.
func runningWith(arg string) int {
	names, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, f := range names {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(arg)) {
			n++
		}
	}
	return n
}

// TestSIGKILLIsNotCPU: a run killed by a SIGKILL no part of the sidecar
// sent (as the kernel's OOM killer sends it), having used little CPU, is
// reported naming memory, never the CPU limit.
func TestSIGKILLIsNotCPU(t *testing.T) {
	g := NewWithT(t)
	e := newExecutor(t, 1<<20)
	var out bytes.Buffer
	err := e.Run(context.Background(), exsv1beta1.Hook{Name: "oom", Command: "sh", Args: []string{"-c", "kill -9 $$"}}, strings.NewReader(""), &out)
	var ee *ExecError
	g.Expect(errors.As(err, &ee)).To(BeTrue(), "%v", err)
	g.Expect(ee.Reason).To(HavePrefix("memory: killed by"))
	g.Expect(ee.Reason).To(ContainSubstring("out-of-memory killer"))
	g.Expect(ee.Reason).ToNot(ContainSubstring("cpu"))
}
