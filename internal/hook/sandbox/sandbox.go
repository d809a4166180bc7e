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

// Package sandbox confines one hook run: Landlock (at the ABI the sidecar
// asks for), rlimits and a seccomp-bpf filter, applied to the run's first
// process before it execs the hook's command, which inherits all three
// for good. Two ways apply them: Start (direct.go), the sidecar's own
// child between clone and exec, the default; or the trampoline
// (RunIfAsked), a program the sidecar starts, which confines itself and
// execs the command. The package depends on nothing of the controller, so
// that a trampoline made of it alone (./trampoline) starts in a
// millisecond; the sidecar's own binary can serve as well.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// MinLandlockABI is the Landlock ABI below which hook runs are refused:
// the filesystem rules (ABI 1) have no other layer. What newer ABIs add
// (refer 2, truncate 3, TCP 4, ioctl on devices 5, the abstract Unix
// socket and signal scopes 6) is used when the kernel has it; the
// seccomp filter gives the network, Unix socket and signal protections on
// every kernel.
const MinLandlockABI = 1

// NprocBackstop is what RLIMIT_NPROC allows a run above the tasks its
// uid has when it starts. The kernel counts RLIMIT_NPROC per uid over
// every PID namespace (other pods running as the same uid included), so
// it cannot bound one run; the watchdog's count of the run's process
// group does, now that a run cannot leave its group. The rlimit only
// stops a bomb between two looks of the watchdog, and is far above what
// every concurrent run may hold together (the controller's workers times
// the largest processes limit), so that no tenant's runs, nor a few
// hidden tasks of the uid, can push another tenant's run into it.
const NprocBackstop = 4096

// maxABI is the newest ABI this build of go-landlock knows.
const maxABI = 11

// ExecArg is the hidden first argument that makes a binary the
// trampoline (see RunIfAsked).
const ExecArg = "hook-sandbox-exec"

// ErrFD is the trampoline's error pipe: closed on exec when all went well,
// or carrying why the sandbox could not be applied.
const ErrFD = 3

// SpecFD is the pipe the trampoline reads its Spec from (JSON, to EOF).
// Not an argument: one argument holds at most 128 KiB, and a hook's
// arguments together may be more; nor visible in /proc/<pid>/cmdline.
const SpecFD = 4

// maxSpec bounds what the trampoline reads from SpecFD.
const maxSpec = 16 << 20

var (
	abiOnce sync.Once
	abi     int
)

// LandlockABI returns the kernel's Landlock ABI version, 0 when the kernel
// has no Landlock (or it is disabled at boot).
func LandlockABI() int {
	abiOnce.Do(func() {
		v, err := llsys.LandlockGetABIVersion()
		if err == nil {
			abi = v
		}
	})
	return abi
}

// Spec is what the sidecar hands the trampoline (as JSON on SpecFD): the
// command and how to confine it.
type Spec struct {
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
	Env  []string `json:"env,omitempty"`
	// Dir is the run's working directory, the only writable place.
	Dir string `json:"dir"`
	// LandlockABI is the ABI whose rights are enforced; 0 is no Landlock.
	LandlockABI int `json:"landlockABI"`
	// Seccomp installs the system call filter (seccomp.go).
	Seccomp    bool     `json:"seccomp,omitempty"`
	ReadPaths  []string `json:"readPaths,omitempty"`
	Network    bool     `json:"network,omitempty"`
	DataBytes  int64    `json:"dataBytes"`
	CPUSeconds int64    `json:"cpuSeconds"`
	FileSize   int64    `json:"fileSize"`
	Processes  int64    `json:"processes"`
	OpenFiles  int64    `json:"openFiles"`
}

// RunIfAsked turns the process into the trampoline when its first
// argument is ExecArg: it confines itself as the spec (read from SpecFD)
// says and execs the hook's command, or reports why not on ErrFD and exits
// 127. It returns when the process was not started as one.
func RunIfAsked() {
	if len(os.Args) < 2 || os.Args[1] != ExecArg {
		return
	}
	// Whatever happens, the hook's command never inherits the pipes.
	syscall.CloseOnExec(ErrFD)
	syscall.CloseOnExec(SpecFD)
	err := sandboxExec()
	// Only reached when the sandbox or the exec failed.
	pipe := os.NewFile(ErrFD, "sandbox-errors")
	_, _ = fmt.Fprint(pipe, err.Error())
	os.Exit(127)
}

func sandboxExec() error {
	// No collection between here and exec: once the limits are set, the
	// trampoline's own heap (the whole sidecar binary's) must not grow
	// into them.
	debug.SetGCPercent(-1)
	// One thread from here to exec, never unlocked: no_new_privs, the
	// Landlock domain and the seccomp filter are applied to this thread
	// alone (restrict, applySeccomp), and execve hands the command the
	// calling thread's.
	runtime.LockOSThread()
	f := os.NewFile(SpecFD, "sandbox-spec")
	b, err := io.ReadAll(io.LimitReader(f, maxSpec))
	f.Close()
	if err != nil {
		return fmt.Errorf("reading the sandbox spec: %w", err)
	}
	var s Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("bad sandbox spec: %w", err)
	}
	// Counted while /proc can still be read.
	nproc := runNproc(&s, os.Getuid())
	if s.LandlockABI > 0 {
		if err := restrict(&s); err != nil {
			return err
		}
	}
	// Last: the limits are meant for the command, not for the trampoline.
	if err := setLimits(&s, nproc); err != nil {
		return err
	}
	if s.Seccomp {
		if err := applySeccomp(s.Network); err != nil {
			return err
		}
	}
	argv := append([]string{s.Path}, s.Args...)
	if err := syscall.Exec(s.Path, argv, s.Env); err != nil {
		return fmt.Errorf("exec %s: %w", s.Path, err)
	}
	return nil
}

// rlimit is one limit of a run, soft and hard alike, so the command
// cannot raise it again.
type rlimit struct {
	name     string
	resource int
	lim      unix.Rlimit
}

// runLimits are the rlimits of a run with the spec's policy; nproc is
// RLIMIT_NPROC (see NprocBackstop).
func runLimits(s *Spec, nproc uint64) []rlimit {
	return []rlimit{
		// Exceeding the soft CPU limit sends SIGXCPU (which Go programs
		// ignore); the hard limit one second later SIGKILL.
		{"cpu", unix.RLIMIT_CPU, unix.Rlimit{Cur: uint64(s.CPUSeconds), Max: uint64(s.CPUSeconds) + 1}},
		{"data", unix.RLIMIT_DATA, unix.Rlimit{Cur: uint64(s.DataBytes), Max: uint64(s.DataBytes)}},
		{"fsize", unix.RLIMIT_FSIZE, unix.Rlimit{Cur: uint64(s.FileSize), Max: uint64(s.FileSize)}},
		{"nofile", unix.RLIMIT_NOFILE, unix.Rlimit{Cur: uint64(s.OpenFiles), Max: uint64(s.OpenFiles)}},
		{"nproc", unix.RLIMIT_NPROC, unix.Rlimit{Cur: nproc, Max: nproc}},
		// No core dumps: one would be written into the run's directory.
		{"core", unix.RLIMIT_CORE, unix.Rlimit{}},
	}
}

// runNproc is the run's RLIMIT_NPROC when it runs as uid: a backstop
// only (see NprocBackstop). Root is not held to it by the kernel, and the
// watchdog counts the run's group in any case.
func runNproc(s *Spec, uid int) uint64 {
	if uid == 0 {
		return uint64(s.Processes)
	}
	return uint64(tasksOfUser(uid)) + max(NprocBackstop, uint64(s.Processes))
}

// setLimits applies the run's limits to the trampoline, which passes them
// on through exec.
func setLimits(s *Spec, nproc uint64) error {
	for _, l := range runLimits(s, nproc) {
		// syscall.Setrlimit, not unix's: for RLIMIT_NOFILE it also stops
		// the Go runtime from restoring the soft limit it found at start.
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: l.lim.Cur, Max: l.lim.Max}); err != nil {
			return fmt.Errorf("setrlimit %s: %w", l.name, err)
		}
	}
	return nil
}

// tasksOfUser counts the tasks (threads) whose real uid is uid.
func tasksOfUser(uid int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	want := strconv.Itoa(uid)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var mine bool
		threads := 0
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				switch f[0] {
				case "Uid:":
					mine = f[1] == want
				case "Threads:":
					threads, _ = strconv.Atoi(f[1])
				}
			}
		}
		if mine {
			n += threads
		}
	}
	return n
}

// landlockConfigs are go-landlock's rulesets by ABI.
var landlockConfigs = map[int]landlock.Config{1: landlock.V1, 2: landlock.V2, 3: landlock.V3, 4: landlock.V4, 5: landlock.V5,
	6: landlock.V6, 7: landlock.V7, 8: landlock.V8, 9: landlock.V9, 10: landlock.V10, 11: landlock.V11}

// landlockConfig is the ruleset for the ABI: every right that ABI knows is
// handled (so denied unless a rule grants it), and no more: strict, so a
// kernel without it fails the run rather than run it with less. The
// network rules (TCP from 4, UDP from 10) are left alone only when the
// entry allows the network.
func landlockConfig(v int, network bool) (landlock.Config, error) {
	if v > maxABI {
		v = maxABI
	}
	cfg, ok := landlockConfigs[v]
	if !ok {
		return cfg, fmt.Errorf("landlock ABI %d: the hook sandbox needs %d or newer", v, MinLandlockABI)
	}
	if network {
		cfg.HandledAccessNet = 0
	}
	return cfg, nil
}

// rulesetFD makes the run's Landlock ruleset: read and execute the binary
// and the read paths, read and write the run's directory and /dev/null,
// nothing else; from ABI 4 no TCP unless allowed; from ABI 6 no abstract
// Unix sockets or signals outside the run. Strict: when the kernel cannot
// enforce what the ABI asked for, the run fails. The caller closes the
// descriptor; flags go to landlock_restrict_self.
func rulesetFD(s *Spec) (fd int, flags uint32, err error) {
	cfg, err := landlockConfig(s.LandlockABI, s.Network)
	if err != nil {
		return -1, 0, err
	}
	rules := []landlock.Rule{landlock.ROFiles(s.Path), landlock.RWDirs(s.Dir),
		// The sink every shell redirects to, and Go's os/exec opens for a
		// missing stdin or stdout: nothing can be learnt from it.
		landlock.PathAccess(llsys.AccessFSReadFile|llsys.AccessFSWriteFile, "/dev/null").IgnoreIfMissing()}
	for _, p := range s.ReadPaths {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue // granting what does not exist grants nothing
		case err != nil:
			return -1, 0, fmt.Errorf("readPaths: %w", err)
		case fi.IsDir():
			rules = append(rules, landlock.RODirs(p))
		default:
			rules = append(rules, landlock.ROFiles(p))
		}
	}
	fd, flags, err = cfg.NewRulesetFD(rules...)
	if err != nil {
		return -1, 0, fmt.Errorf("landlock: %w", err)
	}
	if fd < 0 {
		// Strict configs never come back empty: refuse rather than run
		// unconfined.
		return -1, 0, errors.New("landlock: nothing to enforce")
	}
	return fd, flags, nil
}

// restrict applies the run's Landlock ruleset (rulesetFD) to the
// trampoline's calling thread only, the one that execs (sandboxExec holds
// it from its start): a domain, like no_new_privs and the seccomp filter,
// passes through execve from the thread that calls it, and every other
// thread ends there. cfg.Restrict would stop every thread of the
// trampoline to apply it to each, a quarter of the trampoline's CPU for
// threads that never run the command.
func restrict(s *Spec) error {
	fd, flags, err := rulesetFD(s)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("landlock: no_new_privs: %w", err)
	}
	if err := llsys.LandlockRestrictSelf(fd, flags); err != nil {
		return fmt.Errorf("landlock: restricting the trampoline: %w", err)
	}
	return nil
}
