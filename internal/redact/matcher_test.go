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

package redact

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// coverNaive is the reference the automaton is checked against: every
// byte inside any occurrence of any pattern is covered, overlapping
// occurrences merge, each run of covered bytes becomes one Placeholder.
func coverNaive(patterns []string, msg string) string {
	covered := make([]int, len(msg)) // the end of the occurrence covering i, or 0
	for _, p := range patterns {
		for i := 0; i+len(p) <= len(msg); i++ {
			if msg[i:i+len(p)] == p {
				for j := i; j < i+len(p); j++ {
					covered[j] = max(covered[j], i+len(p))
				}
			}
		}
	}
	// Spans: a covered byte starts a new span unless an occurrence
	// covering the previous byte also covers it.
	var b strings.Builder
	end := 0
	for i := 0; i < len(msg); i++ {
		switch {
		case covered[i] == 0:
			b.WriteByte(msg[i])
		case i >= end:
			b.WriteString(Placeholder)
			end = covered[i]
		default:
			end = max(end, covered[i])
		}
	}
	return b.String()
}

func TestMatcherCovers(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		msg      string
		want     string
	}{
		{name: "none", patterns: []string{"abcd"}, msg: "xyz", want: "xyz"},
		{name: "longest wins", patterns: []string{"abcd", "abcdefgh"}, msg: "x abcdefgh y abcd", want: "x *** y ***"},
		{name: "adjacent stay apart", patterns: []string{"abcd"}, msg: "abcdabcd", want: "******"},
		{name: "overlapping merge", patterns: []string{"abcd", "cdef"}, msg: "abcdef!", want: "***!"},
		{name: "contained", patterns: []string{"bc", "abcd"}, msg: "abcd bc", want: "*** ***"},
		{name: "suffix of another", patterns: []string{"aaab", "ab"}, msg: "aaaab", want: "a***"},
		{name: "overlap reaching back over two", patterns: []string{"bc", "de", "abcdef"}, msg: "abcdef", want: "***"},
		{name: "failure links", patterns: []string{"abab", "babc"}, msg: "ababc", want: "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(newMatcher(tt.patterns).replace(tt.msg)).To(Equal(tt.want))
			g.Expect(coverNaive(tt.patterns, tt.msg)).To(Equal(tt.want), "the reference agrees")
		})
	}
}

// TestMatcherRandom compares the automaton with the reference on random
// patterns and texts over a small alphabet, where overlaps abound.
func TestMatcherRandom(t *testing.T) {
	g := NewWithT(t)
	r := rand.New(rand.NewPCG(1, 2))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc"[r.IntN(3)]
		}
		return string(b)
	}
	for i := range 2000 {
		var patterns []string
		for range 1 + r.IntN(6) {
			patterns = append(patterns, word(1+r.IntN(5)))
		}
		msg := word(r.IntN(40))
		g.Expect(newMatcher(patterns).replace(msg)).To(Equal(coverNaive(patterns, msg)), "case %d: %q in %q", i, patterns, msg)
	}
}

// TestSetBound: Fits refuses what would take a Set over its bounds and
// names the limit; the LimitError carries no value.
func TestSetBound(t *testing.T) {
	tests := []struct {
		name        string
		before      int // values of 8 bytes already in the set
		count, size int
		wantErr     string
	}{
		{name: "empty set, at the count limit", count: MaxValues, size: 8 * MaxValues},
		{name: "one over the count limit", count: MaxValues + 1, size: 8, wantErr: fmt.Sprintf("at most %d Secret values", MaxValues)},
		{name: "90,000 values", count: 90000, size: 8 * 90000, wantErr: "this one would make 90000"},
		{name: "at the byte limit", count: 1, size: MaxBytes},
		{name: "over the byte limit", count: 1, size: MaxBytes + 1, wantErr: fmt.Sprintf("at most %d bytes", MaxBytes)},
		{name: "with what the set holds", before: 1000, count: 25, size: 25, wantErr: "this one would make 1025"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			s := &Set{}
			for i := range tt.before {
				s.Add(fmt.Sprintf("v%07d", i))
			}
			err := s.Fits(tt.count, tt.size)
			if tt.wantErr == "" {
				g.Expect(err).ToNot(HaveOccurred())
				return
			}
			var le *LimitError
			g.Expect(errors.As(err, &le)).To(BeTrue())
			g.Expect(err).To(MatchError(ContainSubstring(tt.wantErr)))
		})
	}
}

// TestMatcherCache: sets with the same values share one automaton; the
// cache stays within its bounds, dropping the least recently used.
func TestMatcherCache(t *testing.T) {
	g := NewWithT(t)
	c := &matcherCache{maxSize: 1000, maxEntries: 3}
	a := c.get([]string{"alpha-1", "beta-22"})
	g.Expect(c.get([]string{"alpha-1", "beta-22"})).To(BeIdenticalTo(a))
	c.get([]string{"gamma-333"})
	c.get([]string{"delta-4444"})
	g.Expect(c.get([]string{"alpha-1", "beta-22"})).To(BeIdenticalTo(a), "used last: kept")
	c.get([]string{"epsilon-55555"}) // evicts gamma, the least recently used
	n, size := c.len()
	g.Expect(n).To(Equal(3))
	g.Expect(size).To(BeNumerically("<=", 1000))
	big := c.get([]string{strings.Repeat("x", 2000)})
	g.Expect(big.replace("a"+strings.Repeat("x", 2000))).To(Equal("a***"), "too big to keep, still built")
	n, _ = c.len()
	g.Expect(n).To(Equal(3), "not kept")
	for i := range 20 {
		c.get([]string{fmt.Sprintf("value-%03d-%s", i, strings.Repeat("y", 100))})
	}
	n, size = c.len()
	g.Expect(n).To(BeNumerically("<=", 3))
	g.Expect(size).To(BeNumerically("<=", 1000))
}

// benchSet is a Set of n distinct values of 8 bytes, the shape of issue
// 23's attack, and a message of a few KiB quoting one of them.
func benchSet(n int) (*Set, string) {
	s := &Set{}
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("%08x", uint32(i)*2654435761)
	}
	s.Add(vals...)
	msg := strings.Repeat("upstream answered 503 Service Unavailable; ", 64) + vals[n/2]
	return s, msg
}

// BenchmarkSetReconcile is what redaction costs one reconcile: a fresh
// Set of the Secret's values (as every reconcile builds) and ten messages
// through it. The automaton comes from the cache after the first
// iteration, as it does for a source whose Secret did not change.
func BenchmarkSetReconcile(b *testing.B) {
	for _, n := range []int{10, 1000, MaxValues} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			_, msg := benchSet(n)
			b.ReportAllocs()
			for b.Loop() {
				s, _ := benchSet(n)
				for range 10 {
					_ = s.String(msg)
				}
			}
		})
	}
}

// BenchmarkMatcherBuild is the cost of a cache miss: the automaton of a
// Set at the value limit, and the heap it keeps (reported as
// heap-bytes/op, read with runtime.ReadMemStats).
func BenchmarkMatcherBuild(b *testing.B) {
	for _, n := range []int{1000, MaxValues} {
		b.Run(fmt.Sprintf("values=%d", n), func(b *testing.B) {
			s, _ := benchSet(n)
			vals := make([]string, 0, len(s.values))
			for v := range s.values {
				vals = append(vals, v)
			}
			var kept uint64
			b.ReportAllocs()
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				m := newMatcher(vals)
				runtime.GC()
				runtime.ReadMemStats(&after)
				kept = after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
				runtime.KeepAlive(m)
			}
			b.ReportMetric(float64(kept), "heap-bytes/op")
		})
	}
}

// BenchmarkString is redaction's cost per byte of output over a Set at
// the limit: linear in the message, whatever the number of values.
func BenchmarkString(b *testing.B) {
	s, msg := benchSet(MaxValues)
	_ = s.String(msg)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		_ = s.String(msg)
	}
}
