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

package spool

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"
)

// childEnv makes the test binary a spool owner: it creates a spool under
// the directory the variable names, prints its path and blocks until
// killed. The tests use it for an owner in another process.
const childEnv = "SPOOL_TEST_CHILD_PARENT"

func TestMain(m *testing.M) {
	if parent := os.Getenv(childEnv); parent != "" {
		d, err := New(parent)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join(d.Path(), "data"), []byte("spooled"), 0o600); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(d.Path())
		select {}
	}
	os.Exit(m.Run())
}

// startOwner starts a child process that owns a spool under parent and
// returns it with the spool's path.
func startOwner(t *testing.T, parent string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+parent)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's spool path: %v", err)
	}
	p := strings.TrimSpace(line)
	if !strings.HasPrefix(p, parent) {
		t.Fatalf("child: %s", p)
	}
	return cmd, p
}

// TestNewRemovesOnlyDeadOwnersDirs: a starting process removes the spool
// directories of dead owners and keeps those of live ones, in this process
// or another.
func TestNewRemovesOnlyDeadOwnersDirs(t *testing.T) {
	tests := []struct {
		name string
		// sibling creates another owner's directory under parent and
		// returns its path.
		sibling func(t *testing.T, parent string) string
		kept    bool
	}{
		{
			name: "lock file not locked (owner dead)",
			sibling: func(t *testing.T, parent string) string {
				p := mkSibling(t, parent)
				writeFile(t, filepath.Join(p, lockName))
				writeFile(t, filepath.Join(p, "externalsource-123", "data"))
				return p
			},
		},
		{
			name: "owner dead, with a read-only directory inside",
			sibling: func(t *testing.T, parent string) string {
				p := mkSibling(t, parent)
				writeFile(t, filepath.Join(p, lockName))
				writeFile(t, filepath.Join(p, "hook-1", "modcache", "file"))
				if err := os.Chmod(filepath.Join(p, "hook-1", "modcache"), 0o555); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
		{
			name: "no lock file (owner died before locking)",
			sibling: func(t *testing.T, parent string) string {
				p := mkSibling(t, parent)
				writeFile(t, filepath.Join(p, "data"))
				return p
			},
		},
		{
			name: "owner SIGKILLed",
			sibling: func(t *testing.T, parent string) string {
				cmd, p := startOwner(t, parent)
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = cmd.Wait()
				if _, err := os.Stat(filepath.Join(p, "data")); err != nil {
					t.Fatalf("the killed owner left nothing to remove: %v", err)
				}
				return p
			},
		},
		{
			name: "lock held by another open file description",
			sibling: func(t *testing.T, parent string) string {
				p := mkSibling(t, parent)
				f, err := lockFile(filepath.Join(p, lockName), false)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return p
			},
			kept: true,
		},
		{
			name: "live owner in another process",
			sibling: func(t *testing.T, parent string) string {
				_, p := startOwner(t, parent)
				return p
			},
			kept: true,
		},
		{
			name: "live owner in this process",
			sibling: func(t *testing.T, parent string) string {
				d, err := New(parent)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = d.Close() })
				return d.Path()
			},
			kept: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			parent := t.TempDir()
			sib := tt.sibling(t, parent)

			d, err := New(parent)
			g.Expect(err).ToNot(HaveOccurred())
			defer d.Close()

			g.Expect(d.Path()).To(BeADirectory())
			g.Expect(filepath.Dir(d.Path())).To(Equal(filepath.Join(parent, RootName)))
			if tt.kept {
				g.Expect(sib).To(BeADirectory())
				g.Expect(d.Removed()).To(BeEmpty())
			} else {
				g.Expect(sib).ToNot(BeAnExistingFile())
				g.Expect(d.Removed()).To(ConsistOf(sib))
			}
		})
	}
}

func mkSibling(t *testing.T, parent string) string {
	t.Helper()
	p := filepath.Join(parent, RootName, "dead-or-alive")
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentStarts: processes starting together never remove each
// other's directories (the root lock orders sweep and creation).
func TestConcurrentStarts(t *testing.T) {
	g := NewWithT(t)
	parent := t.TempDir()
	const n = 16
	dirs := make([]*Dir, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dirs[i], errs[i] = New(parent) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		g.Expect(errs[i]).ToNot(HaveOccurred())
		g.Expect(dirs[i].Path()).To(BeADirectory())
		g.Expect(dirs[i].Removed()).To(BeEmpty())
		seen[dirs[i].Path()] = true
		defer dirs[i].Close()
	}
	g.Expect(seen).To(HaveLen(n))
}

// TestCloseRemovesPerReconcileDirectories: the reconciler and the hook
// executor make their per-run directories inside Path (os.MkdirTemp), and
// Close removes everything and lets the next start find nothing.
func TestCloseRemovesPerReconcileDirectories(t *testing.T) {
	g := NewWithT(t)
	parent := t.TempDir()
	d, err := New(parent)
	g.Expect(err).ToNot(HaveOccurred())
	sub, err := os.MkdirTemp(d.Path(), "externalsource-")
	g.Expect(err).ToNot(HaveOccurred())
	writeFile(t, filepath.Join(sub, "data"))

	g.Expect(d.Close()).To(Succeed())
	g.Expect(d.Path()).ToNot(BeAnExistingFile())

	next, err := New(parent)
	g.Expect(err).ToNot(HaveOccurred())
	defer next.Close()
	g.Expect(next.Removed()).To(BeEmpty())
}

// TestNewDefaultsToTMPDIR: an empty parent is os.TempDir(), so TMPDIR
// decides, as it does for os.MkdirTemp.
func TestNewDefaultsToTMPDIR(t *testing.T) {
	g := NewWithT(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	d, err := New("")
	g.Expect(err).ToNot(HaveOccurred())
	defer d.Close()
	g.Expect(filepath.Dir(filepath.Dir(d.Path()))).To(Equal(tmp))
}

// TestNewRefusesUnsafeRoot: a root that is a symbolic link or a file is
// refused, not followed.
func TestNewRefusesUnsafeRoot(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		err   string
	}{
		{
			name: "symbolic link",
			setup: func(t *testing.T, root string) {
				if err := os.Symlink(t.TempDir(), root); err != nil {
					t.Fatal(err)
				}
			},
			err: "is not a directory",
		},
		{
			name:  "regular file",
			setup: func(t *testing.T, root string) { writeFile(t, root) },
			err:   "is not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			parent := t.TempDir()
			tt.setup(t, filepath.Join(parent, RootName))
			_, err := New(parent)
			g.Expect(err).To(MatchError(ContainSubstring(tt.err)))
		})
	}
}
