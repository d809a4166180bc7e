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
	"fmt"

	"github.com/go-logr/logr"
)

// Logger returns l with every message, error and string-like value passed
// through s before it reaches the sink. The reconciler puts it into the
// reconcile's context, so every log line written on its behalf (by the
// generator, the hook runner, the storage) is redacted without each call
// site having to remember.
func Logger(l logr.Logger, s *Set) logr.Logger {
	if l.GetSink() == nil {
		return l
	}
	return l.WithSink(&sink{next: l.GetSink(), set: s})
}

type sink struct {
	next logr.LogSink
	set  *Set
}

func (k *sink) Init(info logr.RuntimeInfo) { k.next.Init(info) }

func (k *sink) Enabled(level int) bool { return k.next.Enabled(level) }

func (k *sink) Info(level int, msg string, kv ...any) {
	k.next.Info(level, k.set.String(msg), k.values(kv)...)
}

func (k *sink) Error(err error, msg string, kv ...any) {
	k.next.Error(k.set.Error(err), k.set.String(msg), k.values(kv)...)
}

func (k *sink) WithValues(kv ...any) logr.LogSink {
	return &sink{next: k.next.WithValues(k.values(kv)...), set: k.set}
}

func (k *sink) WithName(name string) logr.LogSink {
	return &sink{next: k.next.WithName(name), set: k.set}
}

// WithCallDepth keeps the caller's file and line right when the sink
// supports it.
func (k *sink) WithCallDepth(depth int) logr.LogSink {
	if d, ok := k.next.(logr.CallDepthLogSink); ok {
		return &sink{next: d.WithCallDepth(depth + 1), set: k.set}
	}
	return k
}

// values redacts the values (never the keys, which are the program's own
// words) of a key/value list. Values that are neither strings, errors nor
// Stringers are structured data of the program (counts, durations) and pass
// through.
func (k *sink) values(kv []any) []any {
	out := make([]any, len(kv))
	copy(out, kv)
	for i := 1; i < len(out); i += 2 {
		switch v := out[i].(type) {
		case string:
			out[i] = k.set.String(v)
		case error:
			out[i] = k.set.String(v.Error())
		case []string:
			c := make([]string, len(v))
			for j := range v {
				c[j] = k.set.String(v[j])
			}
			out[i] = c
		case fmt.Stringer:
			out[i] = k.set.String(v.String())
		case []byte:
			out[i] = k.set.String(string(v))
		}
	}
	return out
}
