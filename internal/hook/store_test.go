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

package hook

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrl "sigs.k8s.io/controller-runtime"

	exsv1beta1 "github.com/externalsource/externalsource-controller/api/v1beta1"
)

const allowJq = "commands: [{name: jq, path: /usr/bin/jq, args: ['.*']}]\n"
const allowYq = "commands: [{name: yq, path: /usr/bin/yq, args: ['.*']}]\n"

var jqHook = exsv1beta1.Hook{Name: "h", Command: "jq", Args: []string{"."}}

// watch starts the store's watch, waits until it is in place, and returns
// a function that waits until the decision on jqHook becomes want.
func watch(t *testing.T, s *Store) func(want bool) {
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.watch(ctx, watching) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-watching:
	case <-time.After(10 * time.Second):
		t.Fatal("the watch was not set up")
	}
	return func(want bool) {
		NewWithT(t).Eventually(func() bool {
			_, err := s.Get().Check(jqHook)
			return err == nil
		}, 10*time.Second, 20*time.Millisecond).Should(Equal(want))
	}
}

func TestStoreReloadsAnInPlaceWrite(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "whitelist.yaml")
	g.Expect(os.WriteFile(path, []byte(allowJq), 0o644)).To(Succeed())
	s, err := NewStore(path, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())
	changes := make(chan struct{}, 10)
	s.OnChange(func() { changes <- struct{}{} })
	allowed := watch(t, s)
	allowed(true)

	g.Expect(os.WriteFile(path, []byte(allowYq), 0o644)).To(Succeed())
	allowed(false)
	g.Eventually(changes).Should(Receive())

	// An invalid file keeps the last good whitelist, and says so.
	failures := testutil.ToFloat64(reloads.WithLabelValues("failure"))
	g.Expect(os.WriteFile(path, []byte("commands: {"), 0o644)).To(Succeed())
	g.Eventually(func() float64 { return testutil.ToFloat64(reloads.WithLabelValues("failure")) }, 10*time.Second).Should(BeNumerically(">", failures))
	g.Expect(testutil.ToFloat64(lastReloadOK)).To(Equal(0.0))
	_, err = s.Get().Check(exsv1beta1.Hook{Name: "h", Command: "yq"})
	g.Expect(err).ToNot(HaveOccurred(), "the last good whitelist is still in force")

	g.Expect(os.WriteFile(path, []byte(allowJq), 0o644)).To(Succeed())
	allowed(true)
	g.Expect(testutil.ToFloat64(lastReloadOK)).To(Equal(1.0))

	// A pattern that escapes its anchoring is refused the same way: the
	// last good whitelist stays.
	failures = testutil.ToFloat64(reloads.WithLabelValues("failure"))
	g.Expect(os.WriteFile(path, []byte(`commands: [{name: yq, path: /usr/bin/yq, args: ['-r)|(\.[a-z]+']}]`), 0o644)).To(Succeed())
	g.Eventually(func() float64 { return testutil.ToFloat64(reloads.WithLabelValues("failure")) }, 10*time.Second).Should(BeNumerically(">", failures))
	g.Expect(testutil.ToFloat64(lastReloadOK)).To(Equal(0.0))
	_, err = s.Get().Check(jqHook)
	g.Expect(err).ToNot(HaveOccurred(), "the last good whitelist is still in force")
}

// TestStoreReloadsAConfigMapSwap mimics the kubelet's ConfigMap update:
// the file is a symlink through ..data, and an update points ..data at a
// new timestamped directory with one atomic rename.
func TestStoreReloadsAConfigMapSwap(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	version := func(name, content string) {
		g.Expect(os.MkdirAll(filepath.Join(dir, name), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(dir, name, "whitelist.yaml"), []byte(content), 0o644)).To(Succeed())
		tmp := filepath.Join(dir, "..data_tmp")
		g.Expect(os.Symlink(name, tmp)).To(Succeed())
		g.Expect(os.Rename(tmp, filepath.Join(dir, "..data"))).To(Succeed())
	}
	version("..2026_11_26_01", allowJq)
	path := filepath.Join(dir, "whitelist.yaml")
	g.Expect(os.Symlink(filepath.Join("..data", "whitelist.yaml"), path)).To(Succeed())

	s, err := NewStore(path, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())
	allowed := watch(t, s)
	allowed(true)

	version("..2026_11_26_02", allowYq)
	g.Expect(os.RemoveAll(filepath.Join(dir, "..2026_11_26_01"))).To(Succeed())
	allowed(false)

	version("..2026_11_26_03", allowJq)
	allowed(true)
}

// TestStoreSeesAWriteBeforeTheWatch: a change between the first load and
// the watch raises no event; Watch reads the file again once it watches.
func TestStoreSeesAWriteBeforeTheWatch(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "whitelist.yaml")
	g.Expect(os.WriteFile(path, []byte(allowYq), 0o644)).To(Succeed())
	s, err := NewStore(path, ctrl.Log)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(os.WriteFile(path, []byte(allowJq), 0o644)).To(Succeed())
	_, err = s.Get().Check(jqHook)
	g.Expect(IsRejected(err)).To(BeTrue(), "not reloaded yet")
	changes := make(chan struct{}, 1)
	s.OnChange(func() { changes <- struct{}{} })

	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.watch(ctx, watching) }()
	t.Cleanup(func() { cancel(); <-done })
	g.Eventually(watching, 10*time.Second).Should(BeClosed())
	// Reloaded before the watch said it is in place: no waiting.
	_, err = s.Get().Check(jqHook)
	g.Expect(err).ToNot(HaveOccurred())
	g.Expect(changes).To(Receive(), "subscribers are told")
}

func TestNewStoreFailsOnABadWhitelist(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "w.yaml")
	_, err := NewStore(path, ctrl.Log)
	g.Expect(err).To(HaveOccurred())
	g.Expect(os.WriteFile(path, []byte("commands: [{name: x, path: rel}]"), 0o644)).To(Succeed())
	_, err = NewStore(path, ctrl.Log)
	g.Expect(err).To(MatchError(ContainSubstring("clean absolute path")))
}
