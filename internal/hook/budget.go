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
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The sidecar-wide memory budget. Each run is held to its own memory
// limit (RLIMIT_DATA and the watchdog), but runs share the sidecar
// container's memory: four jq runs within their 256Mi each took a 512Mi
// container into the kernel's OOM killer, which killed whichever run was
// largest, another tenant's as likely as not (issue 23). The server admits
// a run only when its memory limit fits in what the running hooks have not
// reserved, and in its namespace's share, so that the limits of the runs
// admitted together never exceed the container's memory.
var (
	// DefaultMemoryBudget is --hook-memory-budget: the sidecar's memory
	// limit (config/manager/deployment.yaml, 1Gi) less SidecarReserve.
	DefaultMemoryBudget = resource.MustParse("960Mi")
	// DefaultMemoryPerNamespace is --hook-memory-per-namespace: what one
	// namespace's runs may reserve together; at least DefaultMemory, so
	// that an entry without limits can run, and room for the runs one
	// namespace's reconciles send at once (half of the controller's
	// --concurrent) with the shipped whitelist's limits, so that they
	// never queue for memory they would not use (issue 27).
	DefaultMemoryPerNamespace = resource.MustParse("640Mi")
	// SidecarReserve is what the sidecar itself needs beside the runs
	// (its heap, the runs' pipes and buffers).
	SidecarReserve = resource.MustParse("64Mi")
)

// budgetMaxWait is how long a run waits for its memory before it is
// refused: long enough for a short run ahead of it to end, short enough
// that the reconcile learns why within its timeout.
const budgetMaxWait = 10 * time.Second

// budgetMaxWaiters bounds the runs waiting at once; further runs are
// refused at once (a queue that only grows helps no one).
const budgetMaxWaiters = 64

// Budget admits runs by their memory limits. A nil Budget, or one whose
// Total is zero, admits every run.
type Budget struct {
	// Total is what all runs may reserve together.
	Total int64
	// PerNamespace is what the runs of one namespace may reserve
	// together; zero is Total.
	PerNamespace int64

	mu      sync.Mutex
	used    int64
	byNS    map[string]int64
	waiters int
	// changed is closed, and replaced, whenever memory is released.
	changed chan struct{}
	// peak is the most ever reserved at once.
	peak int64
	// maxWait is budgetMaxWait; tests shorten it.
	maxWait time.Duration
}

// BudgetError is a run refused by the budget: its message says the
// budget is used and by how much, never whose runs use it.
type BudgetError struct{ msg string }

func (e *BudgetError) Error() string { return e.msg }

// Acquire reserves mem bytes for a run of namespace ns, waiting up to
// budgetMaxWait (or ctx) for running hooks to release them. The caller
// calls release when the run ended.
func (b *Budget) Acquire(ctx context.Context, ns string, mem int64) (release func(), err error) {
	if b == nil || b.Total <= 0 {
		return func() {}, nil
	}
	share := b.share()
	if mem > share {
		return nil, &BudgetError{fmt.Sprintf("memory budget: the run's memory limit (%s) is more than a namespace's share of the hook executor's memory (%s, --hook-memory-per-namespace)",
			quantity(mem), quantity(share))}
	}
	wait := b.maxWait
	if wait <= 0 {
		wait = budgetMaxWait
	}
	start := time.Now()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	waiting := false
	b.mu.Lock()
	defer func() {
		if waiting {
			b.waiters--
		}
		b.mu.Unlock()
	}()
	for {
		if b.used+mem <= b.Total && b.byNS[ns]+mem <= share {
			b.used += mem
			if b.byNS == nil {
				b.byNS = map[string]int64{}
			}
			b.byNS[ns] += mem
			b.peak = max(b.peak, b.used)
			return func() { b.release(ns, mem) }, nil
		}
		if !waiting {
			if b.waiters >= budgetMaxWaiters {
				return nil, b.refusal(ns, mem, 0)
			}
			b.waiters++
			waiting = true
		}
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		ch := b.changed
		b.mu.Unlock()
		var done bool
		select {
		case <-ch:
		case <-timer.C:
			done = true
		case <-ctx.Done():
			done = true
		}
		b.mu.Lock()
		if done {
			return nil, b.refusal(ns, mem, max(time.Since(start).Round(time.Millisecond), time.Millisecond))
		}
	}
}

func (b *Budget) share() int64 {
	if b.PerNamespace <= 0 || b.PerNamespace > b.Total {
		return b.Total
	}
	return b.PerNamespace
}

func (b *Budget) release(ns string, mem int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= mem
	if b.byNS[ns] -= mem; b.byNS[ns] <= 0 {
		delete(b.byNS, ns)
	}
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
}

// refusal says the budget is used; b.mu is held.
func (b *Budget) refusal(ns string, mem int64, waited time.Duration) error {
	msg := fmt.Sprintf("memory budget: the hook executor's memory budget is used: the run needs %s (its memory limit), running hooks hold %s of %s (--hook-memory-budget)",
		quantity(mem), quantity(b.used), quantity(b.Total))
	if share := b.share(); b.byNS[ns]+mem > share {
		msg += fmt.Sprintf(", this namespace's hooks %s of its %s share (--hook-memory-per-namespace)", quantity(b.byNS[ns]), quantity(share))
	}
	if waited > 0 {
		msg += fmt.Sprintf("; waited %s", waited)
	} else {
		msg += fmt.Sprintf("; %d runs are waiting already", b.waiters)
	}
	return &BudgetError{msg}
}

// Peak returns the most memory ever reserved at once.
func (b *Budget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

type namespaceKey struct{}

// WithNamespace returns ctx carrying the namespace of the object whose
// hook runs: the Client sends it to the sidecar, whose budget gives each
// namespace its share.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, namespaceKey{}, ns)
}

// NamespaceFrom returns the namespace WithNamespace stored, or "".
func NamespaceFrom(ctx context.Context) string {
	ns, _ := ctx.Value(namespaceKey{}).(string)
	return ns
}

// oomKills returns the number of processes the kernel's OOM killer
// killed in this process's memory cgroup (v2 memory.events, or v1
// memory.oom_control), and whether it could be read.
func oomKills() (int64, bool) {
	for _, f := range []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// killedReason names why a run died of a SIGKILL neither the watchdog nor
// the executor sent, and that its CPU time does not explain: the kernel's
// OOM killer, when the sidecar's memory ran out. It names memory, never
// CPU. oomBefore is oomKills at the run's start.
func killedReason(pol SandboxPolicy, oomBefore int64, oomKnown bool) string {
	if after, ok := oomKills(); ok && oomKnown && after > oomBefore {
		return fmt.Sprintf("memory: killed by the kernel's out-of-memory killer (the hook executor's memory ran out; the run's own limit is %s)", quantity(pol.Memory))
	}
	return fmt.Sprintf("memory: killed by SIGKILL from outside the sandbox, as the kernel's out-of-memory killer does when the hook executor's memory runs out (the run's own limit is %s)", quantity(pol.Memory))
}
