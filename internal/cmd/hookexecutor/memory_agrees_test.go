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

package hookexecutor

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/externalsource/externalsource-controller/internal/testutil"

	"github.com/externalsource/externalsource-controller/internal/hook"
)

// TestHookMemoryAgrees reads the shipped manifests (config/manager) as the
// sidecar would: its container's memory limit, its budget flags, and the
// whitelist's per-run memory limits and the code's default. Every run the
// whitelist allows must fit a namespace's share, the share the budget, and
// the budget plus the sidecar's own reserve the container: otherwise runs
// within their limits can exhaust the container (issue 23's attack 3), or
// an allowed command can never run.
func TestHookMemoryAgrees(t *testing.T) {
	g := NewWithT(t)
	root := filepath.Join("..", "..", "..", "config", "manager")
	sidecar := testutil.ShippedContainer(g, "hook-executor")
	g.Expect(sidecar.Args).ToNot(BeEmpty())
	g.Expect(sidecar.Args[0]).To(Equal(Subcommand))
	var f flags
	fs := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	f.bind(fs)
	g.Expect(fs.Parse(sidecar.Args[1:])).To(Succeed())
	budget, err := f.budget()
	g.Expect(err).ToNot(HaveOccurred())

	limit, ok := sidecar.Resources.Limits[corev1.ResourceMemory]
	g.Expect(ok).To(BeTrue(), "the sidecar has a memory limit")
	g.Expect(budget.Total).To(BeNumerically(">", 0), "the budget is on")
	// The pages of files in a memory-backed volume (tmpfs) are charged to
	// the container of the process that wrote them: the runs' own files
	// count in the container's memory besides their processes' memory.
	tmpfs := memoryVolumes(g, sidecar)
	g.Expect(budget.Total+hook.SidecarReserve.Value()+tmpfs).To(BeNumerically("<=", limit.Value()),
		"--hook-memory-budget plus the sidecar's reserve plus its memory-backed volumes (%d bytes) fits the container's memory limit %s", tmpfs, limit.String())
	g.Expect(budget.PerNamespace).To(BeNumerically("<=", budget.Total))
	g.Expect(hook.DefaultMemory.Value()).To(BeNumerically("<=", budget.PerNamespace),
		"an entry without limits (memory %s) can run", hook.DefaultMemory.String())

	// The flags' defaults are the manifest's values.
	var defaults flags
	dfs := flag.NewFlagSet(Subcommand, flag.ContinueOnError)
	defaults.bind(dfs)
	g.Expect(dfs.Parse(nil)).To(Succeed())
	db, err := defaults.budget()
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(db.Total).To(Equal(budget.Total), "--hook-memory-budget's default")
	g.Expect(db.PerNamespace).To(Equal(budget.PerNamespace), "--hook-memory-per-namespace's default")

	b, err := os.ReadFile(filepath.Join(root, "hook-whitelist.yaml"))
	g.Expect(err).ToNot(HaveOccurred())
	var cm corev1.ConfigMap
	g.Expect(yaml.Unmarshal(b, &cm)).To(Succeed())
	wl, err := hook.Parse([]byte(cm.Data["whitelist.yaml"]))
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(wl.Commands).ToNot(BeEmpty())
	for _, c := range wl.Commands {
		mem := hook.DefaultMemory.Value()
		if c.Limits != nil && c.Limits.Memory != nil {
			mem = c.Limits.Memory.Value()
		}
		g.Expect(mem).To(BeNumerically("<=", budget.PerNamespace), "whitelist entry %s: memory %d", c.Name, mem)
		// One namespace's reconciles run hooks at once, one each; the
		// share admits that many runs of every shipped entry, or they
		// queue in the sidecar for memory jq and yq never use (issue 27's
		// hooks1000 waited longer for the budget than it ran).
		g.Expect(int64(perNamespaceRuns)*mem).To(BeNumerically("<=", budget.PerNamespace),
			"%d runs of whitelist entry %s (memory %d) fit --hook-memory-per-namespace", perNamespaceRuns, c.Name, mem)
	}
	// perNamespaceRuns is the controller's default: half of --concurrent
	// (10) per namespace; the manifest sets neither flag.
	for _, a := range testutil.ShippedContainer(g, "manager").Args {
		g.Expect(a).ToNot(HavePrefix("--concurrent"), "update perNamespaceRuns")
		g.Expect(a).ToNot(HavePrefix("--max-concurrent-per-namespace"), "update perNamespaceRuns")
	}
}

// perNamespaceRuns is how many reconciles of one namespace run at once with
// the controller's defaults (--max-concurrent-per-namespace 0: half of
// --concurrent, 10), each running its hooks one after another.
const perNamespaceRuns = 5

// memoryVolumes sums the sizeLimits of the memory-backed emptyDirs the
// container mounts (each must have one: a tmpfs without it is half the
// node's memory).
func memoryVolumes(g Gomega, c *corev1.Container) int64 {
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounted[m.Name] = true
	}
	var sum int64
	for _, v := range testutil.ShippedDeployment(g).Spec.Template.Spec.Volumes {
		if !mounted[v.Name] || v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
			continue
		}
		g.Expect(v.EmptyDir.SizeLimit).ToNot(BeNil(), "memory-backed volume %s has a sizeLimit", v.Name)
		sum += v.EmptyDir.SizeLimit.Value()
	}
	return sum
}

// TestHookRunsDirectoryIsBounded: the runs' working directories live in
// the sidecar's temporary directory (its spool, under TMPDIR or /tmp),
// which must be a memory-backed emptyDir with a sizeLimit: the kernel's
// tmpfs size then stops a hook writing file after file with ENOSPC. No
// limit of the whitelist bounds how many files a run writes, and a
// disk-backed emptyDir over its sizeLimit gets the whole pod evicted
// (tests/cluster TestNoTenantEvictsThePod).
func TestHookRunsDirectoryIsBounded(t *testing.T) {
	g := NewWithT(t)
	sidecar := testutil.ShippedContainer(g, "hook-executor")
	tmp := "/tmp"
	for _, e := range sidecar.Env {
		if e.Name == "TMPDIR" {
			tmp = e.Value
		}
	}
	volume := ""
	for _, m := range sidecar.VolumeMounts {
		if m.MountPath == tmp {
			volume = m.Name
		}
	}
	g.Expect(volume).ToNot(BeEmpty(), "%s is a volume, not the read-only root filesystem", tmp)
	found := false
	for _, v := range testutil.ShippedDeployment(g).Spec.Template.Spec.Volumes {
		if v.Name != volume {
			continue
		}
		found = true
		g.Expect(v.EmptyDir).ToNot(BeNil())
		g.Expect(v.EmptyDir.Medium).To(Equal(corev1.StorageMediumMemory), "volume %s is a tmpfs, bounded by the kernel", v.Name)
		g.Expect(v.EmptyDir.SizeLimit).ToNot(BeNil(), "volume %s has a sizeLimit (the tmpfs's size)", v.Name)
	}
	g.Expect(found).To(BeTrue())
}
