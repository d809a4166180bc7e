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
	"testing"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"

	"github.com/externalsource/externalsource-controller/internal/testutil"
)

// TestManagerSpoolSizeLimit: the manager's spool volume has a sizeLimit,
// so a leak cannot fill the node's disk, and the limit is above what the
// controller's own caps let the spool hold with the flags the manifest
// passes (--concurrent reconciles, each at most
// --max-spool-bytes-per-reconcile, or twice --max-response-size, plus
// gzip's overhead): the kubelet evicts a pod over its sizeLimit, and no
// tenant's data must be able to do that.
func TestManagerSpoolSizeLimit(t *testing.T) {
	g := NewWithT(t)
	manager := testutil.ShippedContainer(g, "manager")
	var f flags
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f.bind(fs)
	g.Expect(fs.Parse(manager.Args)).To(Succeed())

	tmpdir := ""
	for _, e := range manager.Env {
		if e.Name == "TMPDIR" {
			tmpdir = e.Value
		}
	}
	g.Expect(tmpdir).ToNot(BeEmpty(), "the spool's place is explicit")
	spoolVolume := ""
	for _, m := range manager.VolumeMounts {
		if m.MountPath == tmpdir {
			spoolVolume = m.Name
		}
	}
	g.Expect(spoolVolume).ToNot(BeEmpty(), "TMPDIR is a volume, not the read-only root filesystem")

	perReconcile := f.hookLimits.MaxSpoolBytes
	if perReconcile <= 0 {
		perReconcile = 2 * f.maxResponseSize
	}
	// The archive step holds the data and its archive: twice the data at
	// most, plus gzip's and tar's few bytes (1% is far above them).
	perReconcile = max(perReconcile, 2*f.maxResponseSize) * 101 / 100
	need := int64(f.concurrent) * perReconcile

	found := false
	for _, v := range testutil.ShippedDeployment(g).Spec.Template.Spec.Volumes {
		if v.Name != spoolVolume {
			continue
		}
		found = true
		g.Expect(v.EmptyDir).ToNot(BeNil())
		g.Expect(v.EmptyDir.SizeLimit).ToNot(BeNil(), "the spool has a sizeLimit")
		g.Expect(v.EmptyDir.SizeLimit.Value()).To(BeNumerically(">=", need),
			"sizeLimit %s is below --concurrent=%d x %d bytes per reconcile", v.EmptyDir.SizeLimit, f.concurrent, perReconcile)
		t.Logf("spool sizeLimit %s, at most %d MiB used by %d reconciles", v.EmptyDir.SizeLimit, need>>20, f.concurrent)
	}
	g.Expect(found).To(BeTrue())
}

// TestManagerGOGC: the controller's GOGC is the manifest's, as Flux sets
// its runtime settings; the binary sets none (docs/benchmarks.md has the
// measurements behind 50).
func TestManagerGOGC(t *testing.T) {
	g := NewWithT(t)
	var gogc []string
	for _, c := range testutil.ShippedDeployment(g).Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "GOGC" {
				gogc = append(gogc, c.Name+"="+e.Value)
			}
		}
	}
	g.Expect(gogc).To(Equal([]string{"manager=50"}))
}
