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

package http

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// maxRefusedSecrets bounds the refusals remembered; past it the oldest
// is forgotten (and its Secret read whole once more).
const maxRefusedSecrets = 1024

// refusal is a Secret used whole that was over the redaction bound, at
// the version read.
type refusal struct {
	resourceVersion string
	err             error
}

// refusedCache remembers the Secrets used whole that getSecret refused,
// by version: a Secret of 90,000 keys referenced by ten sources is then
// decoded once, not at every reconcile of each of them. Only the refusal
// is kept, never a value.
type refusedCache struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]refusal
	order []types.NamespacedName
}

var refusedSecrets = &refusedCache{}

func (c *refusedCache) get(key types.NamespacedName) *refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.byKey[key]; ok {
		return &r
	}
	return nil
}

func (c *refusedCache) put(key types.NamespacedName, resourceVersion string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byKey == nil {
		c.byKey = map[types.NamespacedName]refusal{}
	}
	if _, ok := c.byKey[key]; !ok {
		c.order = append(c.order, key)
	}
	c.byKey[key] = refusal{resourceVersion: resourceVersion, err: err}
	for len(c.order) > maxRefusedSecrets {
		delete(c.byKey, c.order[0])
		c.order = c.order[1:]
	}
}

// forget drops the refusal of key: its Secret was read whole and fits.
func (c *refusedCache) forget(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; !ok {
		return
	}
	delete(c.byKey, key)
	for i, k := range c.order {
		if k == key {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}
