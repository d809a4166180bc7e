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

package memory

import (
	"testing"
	"time"

	"github.com/externalsource/externalsource-controller/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Backend {
		s := New(Options{BaseURL: "http://artifacts.example:9090"})
		return storagetest.Backend{
			Store:   s,
			BaseURL: "http://artifacts.example:9090",
			Corrupt: func(t *testing.T, p string) {
				s.mu.Lock()
				defer s.mu.Unlock()
				o := s.objs[p]
				s.objs[p] = &object{data: append([]byte("x"), o.data...), digest: o.digest, modTime: o.modTime}
			},
			TimeResolution: 10 * time.Millisecond,
			HoldsData:      true,
		}
	})
}
