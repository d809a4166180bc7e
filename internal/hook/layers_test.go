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
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/externalsource/externalsource-controller/internal/devenv"
	"github.com/externalsource/externalsource-controller/internal/hook/sandbox"
	"github.com/externalsource/externalsource-controller/internal/hook/sandboxtest"
	proctest "github.com/externalsource/externalsource-controller/internal/testutil"
)

// kernels are the rows of docs/hooks.md's kernel table: the Landlock ABI
// of each kernel line clusters run (5.10 has none; 6.12 brought 6).
var kernels = []struct {
	name string
	abi  int
}{
	{"5.10", 0}, {"5.15 (Ubuntu 22.04)", 1}, {"6.1", 2}, {"6.6", 3}, {"6.8 (Ubuntu 24.04)", 4}, {"6.10", 5}, {"6.12+", 6},
}

// The layers an attack can be stopped by.
const (
	layerLandlock = "Landlock"
	layerSeccomp  = "seccomp"
)

// executorAt is an executor of the rig's whitelist and runs' directory
// that confines runs with Landlock at abi (0: none) and the seccomp filter
// or not, whatever that leaves out: to tell which layer stops an attack.
func (r *sandboxRig) executorAt(abi int, seccomp bool) *Executor {
	node := SandboxStatus{Mode: SandboxLandlock, LandlockABI: abi, KernelLandlockABI: LandlockABI(), Seccomp: seccomp,
		Protections: map[string]bool{}}
	for _, p := range sandbox.ProtectionNames {
		node.Protections[p] = true // a stand-in's claim: runs are not refused
	}
	return &Executor{Whitelist: r.store.Get, MaxOutput: 1 << 20, TempDir: r.runs, Node: &node}
}

// attempt runs an attack with e and says whether it got through, and
// how: an output or error carrying what must never come out, a file
// created, a connection or datagram received, a process that outlived
// the run, or simply no error.
func (r *sandboxRig) attempt(e *Executor, a sandboxtest.Attack) (through string, text string) {
	acceptedBefore, datagramsBefore := r.accepted.Load(), r.datagrams.Load()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := e.Run(ctx, a.Hook, strings.NewReader(a.Stdin), &out)
	text = errText(err)
	// Give a datagram or a connection in flight the time to arrive.
	time.Sleep(20 * time.Millisecond)
	switch {
	case err == nil:
		through = "no error"
	case slices.ContainsFunc(a.Never, func(s string) bool { return strings.Contains(out.String()+text, s) }):
		through = "leaked: " + out.String()
	case a.Created != "" && fileExists(a.Created):
		through = "created " + a.Created
	case r.accepted.Load() != acceptedBefore:
		through = "a connection arrived"
	case r.datagrams.Load() != datagramsBefore:
		through = fmt.Sprintf("%d datagrams arrived", r.datagrams.Load()-datagramsBefore)
	case a.Survivor != "" && len(proctest.ProcessesWith(a.Survivor)) > 0:
		through = "outlived the run: " + a.Survivor
	}
	// What got through is undone, for the next attempt.
	if a.Created != "" {
		_ = os.Remove(a.Created)
	}
	if a.Survivor != "" {
		for _, pid := range proctest.ProcessesWith(a.Survivor) {
			if n, err := strconv.Atoi(pid); err == nil {
				_ = syscall.Kill(n, syscall.SIGKILL)
			}
		}
	}
	_ = os.WriteFile(filepath.Join(r.env.OutsideDir, "victim.yaml"), []byte("b: 2\n"), 0o644)
	return through, text
}

// stops says whether e alone stops the attack: nothing got through, and
// the failure is the kernel's refusal (not a victim gone, say).
func (r *sandboxRig) stops(e *Executor, a sandboxtest.Attack) bool {
	through, text := r.attempt(e, a)
	return through == "" && slices.ContainsFunc(a.Denied, func(d string) bool { return strings.Contains(text, d) })
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestSandboxLayers is the escape table on every kernel line: with the
// Landlock ABI forced to each of 1 to 6 and at the kernel's own, every
// attack of sandboxtest (patterns widened to '.*', so the kernel alone
// stops them) fails with the kernel's refusal. Each attack is then tried
// with Landlock alone at that ABI and with the seccomp filter alone, which
// records the layers that stop it; docs/hooks.md's kernel table must be
// what that record says (UPDATE_KERNEL_TABLE=1 writes it).
func TestSandboxLayers(t *testing.T) {
	requireSandboxKernel(t)
	kernel := LandlockABI()
	if kernel < 6 {
		t.Fatalf("hook sandbox: this kernel's Landlock ABI is %d: the table's rows for ABI %d to 6 cannot be measured here", kernel, kernel+1)
	}
	r := newSandboxRig(t, SandboxLandlock, true)
	// A victim of its own for each pass: a pass that gets through reads
	// its input, which the next must find unread.
	victim := func() []sandboxtest.Attack {
		r.env.VictimPID = r.startVictim(t)
		r.env.VictimDir = victimDir(t, r.env.VictimPID)
		return sandboxtest.Attacks(r.env)
	}
	attacks := sandboxtest.Attacks(r.env)

	// stoppedBy[abi][attack] are the layers that alone stop it at abi.
	stoppedBy := map[int]map[string][]string{}
	levels := []int{1, 2, 3, 4, 5, 6}
	if kernel > 6 {
		levels = append(levels, kernel)
	}
	for _, abi := range levels {
		stoppedBy[abi] = map[string][]string{}
		node, err := NodeSandbox(SandboxLandlock, abi)
		NewWithT(t).Expect(err).ToNot(HaveOccurred())
		NewWithT(t).Expect(node.Refusal()).To(BeEmpty(), "every protection at ABI %d", abi)
		full := &Executor{Whitelist: r.store.Get, MaxOutput: 1 << 20, TempDir: r.runs, Node: &node}
		landlockOnly := r.executorAt(abi, false)
		attacks = victim()
		for _, a := range attacks {
			t.Run(fmt.Sprintf("ABI %d/%s", abi, a.Name), func(t *testing.T) {
				g := NewWithT(t)
				through, text := r.attempt(full, a)
				g.Expect(through).To(BeEmpty(), "the attack got through")
				g.Expect(text).To(Or(containsAny(a.Denied)...), "the kernel's refusal")
				if r.stops(landlockOnly, a) {
					stoppedBy[abi][a.Name] = append(stoppedBy[abi][a.Name], layerLandlock)
				}
			})
		}
	}
	seccompOnly := r.executorAt(0, true)
	bySeccomp := map[string]bool{}
	attacks = victim()
	for _, a := range attacks {
		t.Run("seccomp alone/"+a.Name, func(t *testing.T) {
			bySeccomp[a.Name] = r.stops(seccompOnly, a)
		})
	}
	stoppedBy[0] = map[string][]string{}
	for abi := range stoppedBy {
		for _, a := range attacks {
			if bySeccomp[a.Name] {
				stoppedBy[abi][a.Name] = append(stoppedBy[abi][a.Name], layerSeccomp)
			}
		}
	}
	if t.Failed() {
		return
	}
	g := NewWithT(t)
	for _, abi := range levels {
		for _, a := range attacks {
			g.Expect(stoppedBy[abi][a.Name]).ToNot(BeEmpty(), "ABI %d: %s is stopped by a layer alone", abi, a.Name)
		}
	}
	// The kernel's own ABI gives at least what 6 gives: the table's last
	// row holds for it.
	for _, a := range attacks {
		for _, layer := range stoppedBy[6][a.Name] {
			g.Expect(stoppedBy[kernel][a.Name]).To(ContainElement(layer), "ABI %d: %s", kernel, a.Name)
		}
	}

	table := kernelTable(attacks, stoppedBy)
	t.Logf("kernel table:\n%s", table)
	docs := filepath.Join(devenv.Root(), "docs", "hooks.md")
	b, err := os.ReadFile(docs)
	g.Expect(err).ToNot(HaveOccurred())
	const begin, end = "<!-- kernel-table: generated by TestSandboxLayers -->\n", "<!-- kernel-table end -->\n"
	i, j := bytes.Index(b, []byte(begin)), bytes.Index(b, []byte(end))
	g.Expect(i).To(BeNumerically(">=", 0), "docs/hooks.md has the table's markers")
	g.Expect(j).To(BeNumerically(">", i))
	if os.Getenv("UPDATE_KERNEL_TABLE") == "1" {
		out := append(append(append([]byte{}, b[:i+len(begin)]...), table...), b[j:]...)
		g.Expect(os.WriteFile(docs, out, 0o644)).To(Succeed())
		return
	}
	g.Expect(string(b[i+len(begin):j])).To(Equal(table), "docs/hooks.md's kernel table is what the record says (UPDATE_KERNEL_TABLE=1 rewrites it)")
}

// kernelTable is the markdown table of what each kernel line gives: for
// each protection, the layers that stop all its attacks alone, and those
// that stop some (named).
func kernelTable(attacks []sandboxtest.Attack, stoppedBy map[int]map[string][]string) string {
	var b strings.Builder
	b.WriteString("| kernel | Landlock ABI | " + strings.Join(sandbox.ProtectionNames, " | ") + " |\n")
	b.WriteString("|---|---" + strings.Repeat("|---", len(sandbox.ProtectionNames)) + "|\n")
	for _, k := range kernels {
		cells := []string{k.name, strconv.Itoa(k.abi)}
		for _, p := range sandbox.ProtectionNames {
			if p == sandbox.Limits {
				cells = append(cells, "rlimits + watchdog")
				continue
			}
			var whole, part []string
			for _, layer := range []string{layerLandlock, layerSeccomp} {
				var labels []string
				rows := 0
				for _, a := range attacks {
					if a.Protection != p {
						continue
					}
					rows++
					if slices.Contains(stoppedBy[k.abi][a.Name], layer) && !slices.Contains(labels, a.Label) {
						labels = append(labels, a.Label)
					}
				}
				stopsAll := true
				for _, a := range attacks {
					if a.Protection == p && !slices.Contains(stoppedBy[k.abi][a.Name], layer) {
						stopsAll = false
					}
				}
				switch {
				case rows > 0 && stopsAll:
					whole = append(whole, layer)
				case len(labels) > 0:
					part = append(part, fmt.Sprintf("%s: %s only", layer, strings.Join(labels, ", ")))
				}
			}
			cell := strings.Join(whole, " + ")
			if cell == "" {
				cell = "**missing**"
			}
			if p == sandbox.Files && k.abi < MinLandlockABI {
				cell = "**missing: runs refused**"
			}
			if len(part) > 0 {
				cell += " (" + strings.Join(part, "; ") + ")"
			}
			cells = append(cells, cell)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}
