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
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

// TestParseStat: the watchdog's reading of /proc/<pid>/stat finds the
// process group, threads and resident pages after the command name,
// whatever the name holds (a hook chooses its own: spaces, parentheses).
func TestParseStat(t *testing.T) {
	const rest = " R 7403 7403 11770 0 -1 4194304 127 0 0 0 0 0 0 0 20 0 3 0 2542755 3133440 416 18446744073709551615 0 0\n"
	tests := []struct {
		name       string
		stat       string
		state      byte
		ppid, pgrp int
		tasks, rss int64
		ok         bool
	}{
		{name: "plain", stat: "7454 (cat)" + rest, state: 'R', ppid: 7403, pgrp: 7403, tasks: 3, rss: 416, ok: true},
		{name: "name with spaces and parentheses", stat: "7454 (a) R 1 2 3 (b)" + rest, state: 'R', ppid: 7403, pgrp: 7403, tasks: 3, rss: 416, ok: true},
		{name: "negative field before pgrp's", stat: "7454 (x) S -1 -5 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 6 7\n", state: 'S', ppid: -1, pgrp: -5, tasks: 1, rss: 7, ok: true},
		{name: "a zombie", stat: "7454 (sleep) Z 1 7403 7403 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n", state: 'Z', ppid: 1, pgrp: 7403, tasks: 1, ok: true},
		{name: "truncated", stat: "7454 (cat) R 7403 7403 11770", ok: false},
		{name: "no name", stat: "7454 cat R 7403", ok: false},
		{name: "not a number", stat: "7454 (cat) R 7403 x 11770 0 -1 4194304 127 0 0 0 0 0 0 0 20 0 3 0 2542755 3133440 416\n", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			st, ok := parseStat([]byte(tt.stat))
			g.Expect(ok).To(Equal(tt.ok))
			if !tt.ok {
				return
			}
			g.Expect(st).To(Equal(procStat{state: tt.state, ppid: tt.ppid, pgrp: tt.pgrp, tasks: tt.tasks, rss: tt.rss}))
		})
	}
}

// TestReadStatOfThisProcess: readStat and parseStat agree with the
// kernel about this test process (its own group, at least one thread,
// some resident pages), and a process that does not exist reads as none.
func TestReadStatOfThisProcess(t *testing.T) {
	g := NewWithT(t)
	var buf [statBufSize]byte
	b, ok := readStat(strconv.Itoa(os.Getpid()), buf[:])
	g.Expect(ok).To(BeTrue())
	st, ok := parseStat(b)
	g.Expect(ok).To(BeTrue())
	want, err := syscall.Getpgid(os.Getpid())
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(st.pgrp).To(Equal(want))
	g.Expect(st.ppid).To(Equal(os.Getppid()))
	g.Expect(st.state).To(BeElementOf(byte('R'), byte('S')))
	g.Expect(st.tasks).To(BeNumerically(">=", 1))
	g.Expect(st.rss).To(BeNumerically(">", 0))
	_, ok = readStat("999999999", buf[:])
	g.Expect(ok).To(BeFalse())
}

// TestExecutorReapsTheOrphansItAdopts: in its pod the sidecar is its
// container's PID 1, so a run's process whose parent exits first (a
// shell's background job) becomes the sidecar's child; killed with its
// group when the run ends, it stays a zombie until the sidecar waits for
// it. Zombies keep their pids and count against the tasks of the uid that
// every run shares: a tenant whose hook leaves one behind per run would,
// over days, have every tenant's runs refused. This test process stands
// in for PID 1 as a child subreaper, which the sidecar also makes itself
// (AdoptOrphans), so that it adopts orphans wherever it runs.
func TestExecutorReapsTheOrphansItAdopts(t *testing.T) {
	g := NewWithT(t)
	g.Expect(AdoptOrphans()).To(Succeed())
	var sub int32
	_, _, errno := unix.Syscall(unix.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&sub)), 0)
	g.Expect(errno).To(BeZero())
	g.Expect(sub).To(Equal(int32(1)), "orphans of runs come to this process")
	// A child of this process that is no run's: the watchdog must leave
	// it to the Wait of whoever started it, even as a zombie.
	other := exec.Command("sh", "-c", "exit 7")
	g.Expect(other.Start()).To(Succeed())
	e := newExecutor(t, 0)
	for i := range 3 {
		h := exsv1beta1.Hook{Name: "orphans", Command: "sh", Args: []string{"-c", "sleep 30 & sleep 30 & echo " + strconv.Itoa(i)}}
		var out bytes.Buffer
		g.Expect(e.Run(context.Background(), h, strings.NewReader(""), &out)).To(Succeed())
		g.Expect(out.String()).To(Equal(strconv.Itoa(i) + "\n"))
	}
	// Let the watchdog look a few times more, the other child a zombie.
	time.Sleep(5 * watchInterval)
	var exit *exec.ExitError
	g.Expect(errors.As(other.Wait(), &exit)).To(BeTrue(), "the other child's status is its starter's")
	g.Expect(exit.ExitCode()).To(Equal(7))
	g.Eventually(adoptedZombies, 5*time.Second).Should(BeEmpty(), "every orphan killed at the end of its run is waited for")
}

// adoptedZombies lists the zombies whose parent is this process and that
// lead no process group: what a run's processes leave when they outlive
// their parent (the executor's own children lead their groups).
func adoptedZombies() []string {
	var out []string
	names, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, n := range names {
		b, err := os.ReadFile("/proc/" + n.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] != "Z" || f[1] != strconv.Itoa(self) || f[2] == n.Name() {
			continue
		}
		out = append(out, n.Name()+" "+s[:i+1])
	}
	return out
}
