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

// Package redact keeps the values read from Secrets out of everything the
// controller writes for others to read: conditions, events, logs, returned
// errors and metric labels. Every Secret value a generator uses is added
// to the reconcile's Set the moment it is read, within the Set's bound
// (MaxValues, MaxBytes: a Secret over it is refused, not read into the
// Set); the reconciler passes every message through the Set at the one
// place where errors become output.
//
// Values are matched as written and in the encodings a failure path is
// likely to print them in (JSON and Go quoting, URL query escaping,
// base64). A hook that deliberately transforms a value it was given (say,
// reverses it) can still print it: that is the tenant disclosing their own
// Secret, which no filter over text can prevent (docs/security.md).
package redact

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Placeholder replaces every redacted value.
const Placeholder = "***"

// The bounds of one reconcile's Set: how many values (before their
// encodings) and how many bytes of them. A tenant controls the Secrets a
// source reads; without a bound, one Secret of 90,000 small values made
// every reconcile of every source using it keep 720,000 encoded forms
// and a matcher over them (issue 23). Generators check a Secret against
// the bound (Fits) before they add anything from it.
const (
	MaxValues = 1024
	MaxBytes  = 64 << 10
)

// LimitError says a Secret holds more values, or more bytes of values,
// than a reconcile may redact. It names the limit, never a value.
type LimitError struct {
	// Values and Bytes are what the Set would hold with the Secret.
	Values, Bytes int
}

func (e *LimitError) Error() string {
	if e.Values > MaxValues {
		return fmt.Sprintf("a source may use at most %d Secret values, this one would make %d", MaxValues, e.Values)
	}
	return fmt.Sprintf("a source may use at most %d bytes of Secret values, this one would make %d", MaxBytes, e.Bytes)
}

// Set is the secret values of one reconcile. The zero value is ready to use
// and a nil *Set redacts nothing but URLs; it is safe for concurrent use.
type Set struct {
	mu     sync.RWMutex
	values map[string]struct{} // every form of every value
	// raw counts the values added (before their encodings) and their
	// bytes, for Fits.
	rawValues, rawBytes int
	matcher             *matcher // from the cache; nil when stale
}

// Fits returns a *LimitError when adding count more values of size bytes
// in all would take s over MaxValues or MaxBytes, nil otherwise. It keeps
// nothing: a generator checks a Secret's sizes with it before it copies
// any value out of the Secret.
func (s *Set) Fits(count, size int) error {
	if s != nil {
		s.mu.RLock()
		count, size = count+s.rawValues, size+s.rawBytes
		s.mu.RUnlock()
	}
	if count > MaxValues || size > MaxBytes {
		return &LimitError{Values: count, Bytes: size}
	}
	return nil
}

// Add records values to redact. Empty values are ignored; so are values of
// fewer than MinLength bytes, which would otherwise blank out ordinary words
// (a Secret value of "1" or "on" is no credential). Add never refuses a
// value: what a tenant controls is checked with Fits first.
func (s *Set) Add(values ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range values {
		if len(v) < MinLength {
			continue
		}
		if _, ok := s.values[v]; !ok {
			s.rawValues++
			s.rawBytes += len(v)
		}
		for _, form := range forms(v) {
			if len(form) < MinLength {
				continue
			}
			if s.values == nil {
				s.values = map[string]struct{}{}
			}
			if _, ok := s.values[form]; !ok {
				s.values[form] = struct{}{}
				s.matcher = nil
			}
		}
	}
}

// AddBytes records the values of a Secret's data.
func (s *Set) AddBytes(data map[string][]byte) {
	for _, v := range data {
		s.Add(string(v))
	}
}

// AddURL records the credentials a URL may carry: its userinfo password
// and every query value. An upstream that echoes the request path (a 401
// body, a hook's error) then cannot carry them out in a form URLsIn does
// not recognise (a path without scheme and host).
func (s *Set) AddURL(u *url.URL) {
	if s == nil || u == nil {
		return
	}
	if p, ok := u.User.Password(); ok {
		s.Add(p)
	}
	if u.User != nil {
		s.Add(u.User.Username())
	}
	for _, vs := range u.Query() {
		s.Add(vs...)
	}
}

// MinLength is the shortest value that is redacted.
const MinLength = 4

// forms returns v and the encodings a message may carry it in: at most
// eight, each at most six times as long as v (JSON's \u00XX), so that
// the bound on values bounds the patterns.
func forms(v string) []string {
	out := []string{v, strings.TrimSpace(v)}
	if q := strconv.Quote(v); len(q) > 2 {
		out = append(out, q[1:len(q)-1])
	}
	if j, err := json.Marshal(v); err == nil && len(j) > 2 {
		out = append(out, string(j[1:len(j)-1]))
	}
	out = append(out, url.QueryEscape(v), url.PathEscape(v),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)))
	return out
}

// String returns msg with every recorded value, and the userinfo and query
// values of every URL in it, replaced by Placeholder.
func (s *Set) String(msg string) string {
	if s != nil {
		if m := s.getMatcher(); m != nil {
			msg = m.replace(msg)
		}
	}
	return URLsIn(msg)
}

// Contains reports whether msg holds a recorded value in any of its
// forms.
func (s *Set) Contains(msg string) bool {
	if s == nil {
		return false
	}
	m := s.getMatcher()
	return m != nil && m.replace(msg) != msg
}

// Unless returns v, or "" when v holds a recorded value. It is for the
// status fields an upstream controls whose redacted form would be
// useless (a validator sent back in the next conditional request): such a
// field is not recorded at all rather than recorded with a hole.
func (s *Set) Unless(v string) string {
	if s.Contains(v) {
		return ""
	}
	return v
}

// getMatcher returns the automaton of the current values, from the
// process-wide cache: reconciles of sources whose Secrets did not change
// hold the same values and share one.
func (s *Set) getMatcher() *matcher {
	s.mu.RLock()
	m, n := s.matcher, len(s.values)
	s.mu.RUnlock()
	if m != nil || n == 0 {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.matcher == nil {
		vals := make([]string, 0, len(s.values))
		for v := range s.values {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		s.matcher = matchers.get(vals)
	}
	return s.matcher
}

// Error returns err with a redacted message; errors.Is and errors.As still
// see the original chain. Nil stays nil.
func (s *Set) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := s.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// IsRedacted reports whether err already went through Set.Error with a
// change.
func IsRedacted(err error) bool {
	var r *redactedError
	return errors.As(err, &r)
}

// URL returns u without credentials: userinfo becomes Placeholder and so
// does the value of every query parameter (the names stay, they help to
// debug). A string that does not parse keeps its scheme, host and path;
// its userinfo and everything from the first '?' or '#' are replaced.
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Opaque != "" {
		return unparsedURL(u)
	}
	return parsedURL(p)
}

// unparsedURL redacts a URL url.Parse refused, by its shape alone.
func unparsedURL(u string) string {
	prefix, rest := "", u
	if i := strings.Index(u, "://"); i >= 0 {
		prefix, rest = u[:i+3], u[i+3:]
	}
	authority := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = i
	}
	if at := strings.LastIndex(rest[:authority], "@"); at >= 0 {
		rest = Placeholder + rest[at:]
	}
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q+1] + Placeholder
	}
	return prefix + rest
}

func parsedURL(p *url.URL) string {
	c := *p
	if c.User != nil {
		c.User = url.User(Placeholder)
	}
	if c.RawQuery != "" {
		c.RawQuery = redactQuery(c.RawQuery)
	}
	c.Fragment, c.RawFragment = "", ""
	s := c.String()
	// url.URL escapes the placeholder in userinfo; write it as it is.
	return strings.Replace(s, url.User(Placeholder).String()+"@", Placeholder+"@", 1)
}

// redactQuery keeps the parameter names and replaces every value.
func redactQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Placeholder
		} else if p != "" {
			parts[i] = p
		}
	}
	return strings.Join(parts, "&")
}

// URLsIn redacts every http(s) URL found in msg with URL. Go's url.Error
// and most client errors quote the whole URL, query and userinfo included.
func URLsIn(msg string) string {
	if !strings.Contains(msg, "://") {
		return msg
	}
	var b strings.Builder
	rest := msg
	for {
		i := indexScheme(rest)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i])
		rest = rest[i:]
		end := strings.IndexFunc(rest, func(r rune) bool {
			return r == ' ' || r == '"' || r == '\'' || r == '`' || r == '<' || r == '>' || r == ')' ||
				r == '\n' || r == '\t' || r == '\\'
		})
		if end < 0 {
			end = len(rest)
		}
		// Punctuation that ends a sentence or a list is not the URL's.
		for end > 0 && strings.ContainsRune(".,;:", rune(rest[end-1])) {
			end--
		}
		b.WriteString(URL(rest[:end]))
		rest = rest[end:]
	}
}

// indexScheme returns the index of the first "http://" or "https://" in s
// (case-insensitive), or -1.
func indexScheme(s string) int {
	l := strings.ToLower(s)
	i, j := strings.Index(l, "http://"), strings.Index(l, "https://")
	switch {
	case i < 0:
		return j
	case j < 0:
		return i
	default:
		return min(i, j)
	}
}

type contextKey struct{}

// NewContext returns ctx carrying s, for code that reads Secrets or writes
// messages far from the reconciler (generators, hook runners, loggers).
func NewContext(ctx context.Context, s *Set) context.Context {
	return context.WithValue(ctx, contextKey{}, s)
}

// FromContext returns the Set of ctx, or nil (which redacts URLs only).
func FromContext(ctx context.Context) *Set {
	s, _ := ctx.Value(contextKey{}).(*Set)
	return s
}
