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

package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
)

// EventReceiver is a notification endpoint for tests: it decodes and keeps
// what Flux's event recorder posts to --events-addr (or what a
// notification-controller generic-webhook Provider forwards).
type EventReceiver struct {
	mu     sync.Mutex
	events []eventv1.Event
}

// ServeHTTP keeps one posted event; a body that is not one is refused.
func (e *EventReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev eventv1.Event
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// All returns the events received so far.
func (e *EventReceiver) All() []eventv1.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]eventv1.Event(nil), e.events...)
}

// Take returns the events received so far and forgets them.
func (e *EventReceiver) Take() []eventv1.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.events
	e.events = nil
	return out
}
