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
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"strings"
	"sync"
)

// matcher is an Aho–Corasick automaton over a set of patterns. One pass
// over a message finds, at every byte, the longest pattern ending there:
// the cost of redacting is linear in the message, whatever the number of
// patterns, and its memory is linear in their total size (a sparse trie:
// a few bytes a pattern byte). strings.Replacer, which it replaces, built
// a lookup table per reconcile and cost seconds of CPU over a large set.
type matcher struct {
	// root holds the root's transitions densely (the state most often
	// returned to); the other states' are sparse, sorted by byte, in
	// edgeByte/edgeTo[edgeStart[s]:edgeStart[s+1]].
	root      [256]int32
	edgeStart []int32
	edgeByte  []byte
	edgeTo    []int32
	fail      []int32
	// longest is the length of the longest pattern that is a suffix of
	// the text a state stands for (0: none).
	longest []int32
	// size is the patterns' total length, what the cache bounds.
	size int
}

// newMatcher builds the automaton of patterns (no empty pattern).
func newMatcher(patterns []string) *matcher {
	// The trie, with one map for all its edges while it is built.
	type edge struct {
		from int32
		b    byte
	}
	children := map[edge]int32{}
	depth := []int32{0}
	terminal := []int32{0}
	size := 0
	for _, p := range patterns {
		size += len(p)
		s := int32(0)
		for i := 0; i < len(p); i++ {
			e := edge{s, p[i]}
			c, ok := children[e]
			if !ok {
				c = int32(len(depth))
				children[e] = c
				depth = append(depth, depth[s]+1)
				terminal = append(terminal, 0)
			}
			s = c
		}
		terminal[s] = int32(len(p))
	}
	n := len(depth)
	m := &matcher{edgeStart: make([]int32, n+1), fail: make([]int32, n), longest: make([]int32, n), size: size}
	// Compact the edges: counting sort by source state, then by byte.
	edges := make([]edge, 0, len(children))
	for e := range children {
		edges = append(edges, e)
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].from != edges[j].from {
			return edges[i].from < edges[j].from
		}
		return edges[i].b < edges[j].b
	})
	m.edgeByte = make([]byte, len(edges))
	m.edgeTo = make([]int32, len(edges))
	for i, e := range edges {
		m.edgeByte[i], m.edgeTo[i] = e.b, children[e]
		m.edgeStart[e.from+1]++
	}
	for s := 1; s <= n; s++ {
		m.edgeStart[s] += m.edgeStart[s-1]
	}
	clear(children)
	for i := m.edgeStart[0]; i < m.edgeStart[1]; i++ {
		m.root[m.edgeByte[i]] = m.edgeTo[i]
	}
	// Failure links, breadth first: a state's link is the longest proper
	// suffix of its text that is also in the trie.
	queue := make([]int32, 0, n)
	for i := m.edgeStart[0]; i < m.edgeStart[1]; i++ {
		c := m.edgeTo[i]
		m.longest[c] = terminal[c]
		queue = append(queue, c)
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for i := m.edgeStart[s]; i < m.edgeStart[s+1]; i++ {
			b, c := m.edgeByte[i], m.edgeTo[i]
			m.fail[c] = m.next(m.fail[s], b)
			m.longest[c] = max(terminal[c], m.longest[m.fail[c]])
			queue = append(queue, c)
		}
	}
	return m
}

// step returns the transition of s on b, or -1.
func (m *matcher) step(s int32, b byte) int32 {
	if s == 0 {
		return m.root[b] // 0 when absent: the root loops to itself
	}
	lo, hi := m.edgeStart[s], m.edgeStart[s+1]
	for lo < hi {
		mid := int32(uint32(lo+hi) >> 1)
		switch eb := m.edgeByte[mid]; {
		case eb == b:
			return m.edgeTo[mid]
		case eb < b:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return -1
}

// next follows failure links from s until a transition on b exists.
func (m *matcher) next(s int32, b byte) int32 {
	for {
		if t := m.step(s, b); t >= 0 {
			return t
		}
		s = m.fail[s]
	}
}

// replace returns msg with every byte of every occurrence of a pattern
// covered by Placeholder: overlapping occurrences become one placeholder,
// adjacent ones one each. Covering (rather than choosing one of two
// overlapping matches, as a replacer does) leaves no part of any pattern
// in clear.
func (m *matcher) replace(msg string) string {
	type span struct{ start, end int } // [start, end)
	var spans []span
	s := int32(0)
	for i := 0; i < len(msg); i++ {
		s = m.next(s, msg[i])
		l := int(m.longest[s])
		if l == 0 {
			continue
		}
		sp := span{i + 1 - l, i + 1}
		// Merge with the spans it overlaps; the longest pattern ending
		// here starts at or before every other one ending here.
		for len(spans) > 0 && sp.start < spans[len(spans)-1].end {
			sp.start = min(sp.start, spans[len(spans)-1].start)
			spans = spans[:len(spans)-1]
		}
		spans = append(spans, sp)
	}
	if len(spans) == 0 {
		return msg
	}
	var b strings.Builder
	b.Grow(len(msg))
	prev := 0
	for _, sp := range spans {
		b.WriteString(msg[prev:sp.start])
		b.WriteString(Placeholder)
		prev = sp.end
	}
	b.WriteString(msg[prev:])
	return b.String()
}

// matcherCache keeps the automata of the sets in use, keyed by the set's
// identity (a hash of its sorted patterns), so that the reconciles of a
// source whose Secrets did not change share one automaton instead of
// building one each. It is bounded by the patterns' total size and by
// the number of automata, least recently used first out.
type matcherCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]*cacheEntry
	size    int
	tick    uint64
	// maxSize and maxEntries bound the cache.
	maxSize, maxEntries int
}

type cacheEntry struct {
	m    *matcher
	used uint64
}

// The cache's bounds: a state costs about 17 bytes, so the automata it
// keeps cost at most about maxCachedPatternBytes*17 bytes of heap.
const (
	maxCachedPatternBytes = 2 << 20
	maxCachedMatchers     = 512
)

var matchers = &matcherCache{maxSize: maxCachedPatternBytes, maxEntries: maxCachedMatchers}

// get returns the automaton of patterns (sorted, distinct), building it
// on a miss.
func (c *matcherCache) get(patterns []string) *matcher {
	h := sha256.New()
	var n [8]byte
	for _, p := range patterns {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])

	c.mu.Lock()
	c.tick++
	if e, ok := c.entries[key]; ok {
		e.used = c.tick
		c.mu.Unlock()
		return e.m
	}
	c.mu.Unlock()

	// Built outside the lock: two reconciles missing the same set build
	// it twice, rather than every reconcile waiting on one build.
	m := newMatcher(patterns)
	if m.size > c.maxSize {
		return m // never kept: it would evict everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[[sha256.Size]byte]*cacheEntry{}
	}
	if e, ok := c.entries[key]; ok {
		return e.m
	}
	for len(c.entries) > 0 && (c.size+m.size > c.maxSize || len(c.entries) >= c.maxEntries) {
		c.evictOldest()
	}
	c.tick++
	c.entries[key] = &cacheEntry{m: m, used: c.tick}
	c.size += m.size
	return m
}

// evictOldest drops the least recently used automaton. A linear scan:
// the cache holds at most maxCachedMatchers, and a miss costs a build
// anyway.
func (c *matcherCache) evictOldest() {
	var oldest [sha256.Size]byte
	var used uint64
	first := true
	for k, e := range c.entries {
		if first || e.used < used {
			oldest, used, first = k, e.used, false
		}
	}
	c.size -= c.entries[oldest].m.size
	delete(c.entries, oldest)
}

// len returns the number of cached automata and their patterns' size.
func (c *matcherCache) len() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.size
}
