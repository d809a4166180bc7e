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

package controller

import (
	"os"
	"runtime/debug"
	"testing"

	. "github.com/onsi/gomega"
)

// TestSetGCPercent: without GOGC the controller collects at
// defaultGCPercent; with GOGC set, what the runtime read from it stays.
func TestSetGCPercent(t *testing.T) {
	g := NewWithT(t)
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)

	t.Setenv("GOGC", "")
	g.Expect(os.Unsetenv("GOGC")).To(Succeed())
	g.Expect(setGCPercent()).To(Equal(defaultGCPercent))
	g.Expect(debug.SetGCPercent(defaultGCPercent)).To(Equal(defaultGCPercent), "in effect")

	// As if the runtime had read GOGC=80 at start.
	t.Setenv("GOGC", "80")
	debug.SetGCPercent(80)
	g.Expect(setGCPercent()).To(Equal(80))
	g.Expect(debug.SetGCPercent(80)).To(Equal(80), "left as GOGC set it")
}
