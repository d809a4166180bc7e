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
	"os"
	"strconv"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"
)

// TestParseStat: the watchdog's reading of /proc/<pid>/stat finds the
// process group, threads and resident pages after the command name,
// whatever the name holds (a hook chooses its own: spaces, parentheses).
func TestParseStat(t *testing.T) {
	const rest = " R 7403 7403 11770 0 -1 4194304 127 0 0 0 0 0 0 0 20 0 3 0 2542755 3133440 416 18446744073709551615 0 0\n"
	tests := []struct {
		name       string
		stat       string
		pgrp       int
		tasks, rss int64
		ok         bool
	}{
		{name: "plain", stat: "7454 (cat)" + rest, pgrp: 7403, tasks: 3, rss: 416, ok: true},
		{name: "name with spaces and parentheses", stat: "7454 (a) R 1 2 3 (b)" + rest, pgrp: 7403, tasks: 3, rss: 416, ok: true},
		{name: "negative field before pgrp's", stat: "7454 (x) S -1 -5 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 6 7\n", pgrp: -5, tasks: 1, rss: 7, ok: true},
		{name: "truncated", stat: "7454 (cat) R 7403 7403 11770", ok: false},
		{name: "no name", stat: "7454 cat R 7403", ok: false},
		{name: "not a number", stat: "7454 (cat) R 7403 x 11770 0 -1 4194304 127 0 0 0 0 0 0 0 20 0 3 0 2542755 3133440 416\n", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			pgrp, tasks, rss, ok := parseStat([]byte(tt.stat))
			g.Expect(ok).To(Equal(tt.ok))
			if !tt.ok {
				return
			}
			g.Expect(pgrp).To(Equal(tt.pgrp))
			g.Expect(tasks).To(Equal(tt.tasks))
			g.Expect(rss).To(Equal(tt.rss))
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
	pgrp, tasks, rss, ok := parseStat(b)
	g.Expect(ok).To(BeTrue())
	want, err := syscall.Getpgid(os.Getpid())
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(pgrp).To(Equal(want))
	g.Expect(tasks).To(BeNumerically(">=", 1))
	g.Expect(rss).To(BeNumerically(">", 0))
	_, ok = readStat("999999999", buf[:])
	g.Expect(ok).To(BeFalse())
}
