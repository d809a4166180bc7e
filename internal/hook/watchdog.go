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
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// watchInterval is how often the watchdog looks at the running hooks.
const watchInterval = 20 * time.Millisecond

// The watchdog enforces what rlimits cannot: the resident memory of a
// run's processes together (an address-space limit would break Go
// programs such as yq, which reserve large ranges they never touch) and
// the number of a run's tasks (RLIMIT_NPROC counts per user, and all runs
// share the sidecar's uid; root is not held to it at all). It reads
// /proc/<pid>/stat of every process once per interval, sums by process
// group (each run is its own group) and kills a group over its limits.
// One goroutine serves every run, and only while runs exist.
type watchdog struct {
	mu      sync.Mutex
	runs    map[int]*watchedRun // by process group
	running bool
	// ended holds the process groups of the runs that ended while some
	// of their processes may still be around: orphans this process
	// adopted (AdoptOrphans), killed with the group as the run ended,
	// which the watchdog waits for. A group is forgotten at the first
	// look that finds nothing of it; the watchdog looks until none is
	// left.
	ended map[int]bool
}

// watchedRun is one run under watch.
type watchedRun struct {
	pgid   int
	policy SandboxPolicy
	// armed is set once the command runs (after the trampoline's exec,
	// or the direct start's): the trampoline itself is not the hook.
	armed atomic.Bool
	mu    sync.Mutex
	// exceeded names the limit the watchdog killed the run for.
	exceeded string
}

func (r *watchedRun) kill(reason string) {
	r.mu.Lock()
	if r.exceeded == "" {
		r.exceeded = reason
	}
	r.mu.Unlock()
	_ = syscall.Kill(-r.pgid, syscall.SIGKILL)
}

// Exceeded returns the limit the run was killed for, or "".
func (r *watchedRun) Exceeded() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exceeded
}

var defaultWatchdog = &watchdog{runs: map[int]*watchedRun{}}

func (w *watchdog) add(r *watchedRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs[r.pgid] = r
	if !w.running {
		w.running = true
		go w.loop()
	}
}

func (w *watchdog) remove(r *watchedRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.runs[r.pgid] == r {
		delete(w.runs, r.pgid)
		if w.ended == nil {
			w.ended = map[int]bool{}
		}
		w.ended[r.pgid] = true
	}
}

func (w *watchdog) loop() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		if len(w.runs) == 0 && len(w.ended) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		runs := make(map[int]*watchedRun, len(w.runs))
		for k, v := range w.runs {
			if v.armed.Load() {
				runs[k] = v
			}
		}
		ended := make(map[int]bool, len(w.ended))
		for k := range w.ended {
			ended[k] = true
		}
		w.mu.Unlock()
		if len(runs) == 0 && len(ended) == 0 {
			continue
		}
		seen := w.check(runs, ended)
		w.mu.Lock()
		for g := range ended {
			if !seen[g] && w.runs[g] == nil {
				delete(w.ended, g)
			}
		}
		w.mu.Unlock()
	}
}

var pageSize = int64(os.Getpagesize())

// check sums the tasks and resident memory of each run's group and kills
// the groups over their limits. In the same pass it waits for the zombies
// of the ended runs' groups that this process adopted, and returns the
// ended groups it found a process of. It never waits for a group's
// leader: that is the executor's own child, which os/exec waits for; a
// run's other processes cannot lead a group (the seccomp filter refuses
// setsid and setpgid), and no other child of this process is in a run's
// group.
func (w *watchdog) check(runs map[int]*watchedRun, ended map[int]bool) (seen map[int]bool) {
	seen = map[int]bool{}
	d, err := os.Open("/proc")
	if err != nil {
		return seen
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	type usage struct {
		tasks, rss int64
		killed     bool
	}
	use := map[int]*usage{}
	self := os.Getpid()
	var buf [statBufSize]byte
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		b, ok := readStat(n, buf[:])
		if !ok {
			continue
		}
		st, ok := parseStat(b)
		if !ok {
			continue
		}
		if ended[st.pgrp] {
			seen[st.pgrp] = true
			if pid, _ := atoi([]byte(n)); st.state == 'Z' && st.ppid == self && int(pid) != st.pgrp {
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(int(pid), &ws, syscall.WNOHANG, nil)
			}
		}
		pgrp, tasks, rss := st.pgrp, st.tasks, st.rss
		r := runs[pgrp]
		if r == nil {
			continue
		}
		u := use[pgrp]
		if u == nil {
			u = &usage{}
			use[pgrp] = u
		}
		u.tasks += tasks
		u.rss += rss * pageSize
		// At once, not after the scan: a fork bomb's group grows while
		// /proc is read (its processes are most of what there is to
		// read), and every task it adds before the kill counts against
		// the uid's RLIMIT_NPROC, which every tenant's runs share.
		if !u.killed && (u.rss > r.policy.Memory || u.tasks > r.policy.Processes) {
			u.killed = true
			if u.rss > r.policy.Memory {
				r.kill(fmt.Sprintf("memory limit (%s)", quantity(r.policy.Memory)))
			} else {
				r.kill(fmt.Sprintf("process limit (%d)", r.policy.Processes))
			}
		}
	}
	return seen
}

// statBufSize holds any /proc/<pid>/stat (52 numeric fields of at most 20
// digits and a command name of at most 64 bytes) with room to spare; the
// fields the watchdog reads are among the first 24 in any case.
const statBufSize = 4096

// readStat reads /proc/<pid>/stat into buf with three system calls and no
// allocation but the path: the watchdog reads every process of the
// sidecar's PID namespace every watchInterval while runs exist, and
// os.ReadFile's stat, second read and fresh buffer per file were most of
// the sidecar's own CPU and garbage in the hooks benchmark.
func readStat(pid string, buf []byte) ([]byte, bool) {
	fd, err := syscall.Open("/proc/"+pid+"/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	n, err := syscall.Read(fd, buf)
	_ = syscall.Close(fd)
	// A short read still holds the first fields: never skip a process
	// (a run the watchdog skips is a run it does not stop).
	if err != nil || n <= 0 {
		return nil, false
	}
	return buf[:n], true
}

// procStat is what the watchdog reads of one process.
type procStat struct {
	// state is the one-letter state ('Z' a zombie).
	state      byte
	ppid, pgrp int
	// tasks are its threads, rss its resident pages.
	tasks, rss int64
}

// parseStat reads the state, parent, process group, number of threads
// and resident pages from /proc/<pid>/stat. The command name (field 2)
// may hold spaces and parentheses, so fields are counted from its last
// ')'.
func parseStat(b []byte) (st procStat, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, false
	}
	// After ')', field 3 (state) is the first: ppid is field 4, pgrp 5,
	// num_threads 20, rss 24.
	var p, g, t, r int64
	var okS, okP, okG, okT, okR bool
	field := 2
	for rest := b[i+1:]; len(rest) > 0 && field < 24; {
		rest = bytes.TrimLeft(rest, " \n")
		end := bytes.IndexAny(rest, " \n")
		if end < 0 {
			end = len(rest)
		}
		if end == 0 {
			break
		}
		field++
		switch field {
		case 3:
			st.state, okS = rest[0], end == 1
		case 4:
			p, okP = atoi(rest[:end])
		case 5:
			g, okG = atoi(rest[:end])
		case 20:
			t, okT = atoi(rest[:end])
		case 24:
			r, okR = atoi(rest[:end])
		}
		rest = rest[end:]
	}
	if !okS || !okP || !okG || !okT || !okR {
		return procStat{}, false
	}
	st.ppid, st.pgrp, st.tasks, st.rss = int(p), int(g), t, r
	return st, true
}

// atoi parses a decimal, optionally negative, without allocating.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// AdoptOrphans makes the process the reaper of its descendants' orphans
// (PR_SET_CHILD_SUBREAPER), which in its pod the sidecar is anyway as its
// container's PID 1: a run's process that outlives its parent (a shell's
// background job) becomes the sidecar's child, not some other process's,
// and the watchdog, which kills it with its run's group, waits for it.
// Without that wait every such process would stay a zombie, holding its
// pid and one of the tasks that all runs share (RLIMIT_NPROC counts them):
// a tenant leaving one behind per run would, in time, have every tenant's
// runs refused.
func AdoptOrphans() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}
