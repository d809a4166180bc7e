//go:build linux && (amd64 || arm64)

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

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The direct start: the run's child confines itself between clone and
// execve, as the trampoline does, without a second program. The Go
// runtime cannot run ordinary code in a child of a threaded process, so
// the child here is what package syscall's own is: a vfork (CLONE_VM and
// CLONE_VFORK, the parent's thread suspended until the child execs or
// exits) whose child makes raw system calls only, on arguments the parent
// prepared. Everything that allocates or reads files (the Landlock
// ruleset, the filter, /proc for the tasks of the uid) is done before the
// clone; the child sets the process group, directory, descriptors,
// rlimits, no_new_privs, the Landlock domain and the filter, and execs.
// This saves a run the trampoline's exec and Go runtime start.

// DirectStart says this build can start runs with Start.
const DirectStart = true

// The runtime's fork hooks, which package syscall uses around its own
// vfork: BeforeFork blocks signals and makes any stack growth a crash
// (the child must not grow the shared stack), AfterForkInChild resets
// signal handlers in the child, AfterFork undoes BeforeFork in the parent.

//go:linkname runtime_BeforeFork syscall.runtime_BeforeFork
func runtime_BeforeFork()

//go:linkname runtime_AfterFork syscall.runtime_AfterFork
func runtime_AfterFork()

//go:linkname runtime_AfterForkInChild syscall.runtime_AfterForkInChild
func runtime_AfterForkInChild()

// rawVforkSyscall is a system call that keeps its return address in a
// register (vfork_*.s): after clone(CLONE_VM), parent and child share the
// stack.
func rawVforkSyscall(trap, a1, a2, a3 uintptr) (r1 uintptr, err syscall.Errno)

// The steps of the child, reported with the errno when one fails.
const (
	stepGroup uint32 = iota + 1
	stepCredentials
	stepDir
	stepStdio
	stepLimits
	stepNoNewPrivs
	stepLandlock
	stepSeccomp
	stepExec
)

var stepNames = map[uint32]string{
	stepGroup: "setpgid", stepCredentials: "setting the credentials", stepDir: "chdir",
	stepStdio: "dup3", stepLimits: "setrlimit", stepNoNewPrivs: "no_new_privs",
	stepLandlock: "landlock: restricting the command", stepSeccomp: "seccomp: installing the filter",
	stepExec: "exec",
}

// childArgs is everything the child reads: prepared, allocated and held by
// the parent, which is suspended while the child runs.
type childArgs struct {
	path       *byte
	argv, envv []*byte
	dir        *byte
	stdio      [3]int
	setCred    bool
	uid, gid   uintptr
	limits     []rlimit
	noNewPrivs bool
	ruleset    int
	rulesetFl  uintptr
	// filter is this run's copy of the filter template; pidAt and
	// negPidAt are where the child writes its pid and its negation (the
	// process group, which the child leads), unknown before the clone.
	filter          filter
	prog            unix.SockFprog
	pidAt, negPidAt []int
	errPipe         int
	report          [2]uint32
}

// Start starts the spec's command confined as the trampoline would
// confine it, as the leader of a new process group, with stdio as its
// standard input, output and error, and cred (nil: this process's) as its
// user. It returns once the command has been exec'd, or with why it could
// not be (the child's failed step and errno). The caller waits for pid.
// prepared is when the sandbox's set-up in this process (ruleset, filter,
// limits) ended and the clone began.
func Start(s *Spec, stdio [3]*os.File, cred *syscall.Credential) (pid int, prepared time.Time, err error) {
	c := &childArgs{ruleset: -1}
	if c.path, err = syscall.BytePtrFromString(s.Path); err != nil {
		return 0, prepared, fmt.Errorf("path: %w", err)
	}
	if c.argv, err = syscall.SlicePtrFromStrings(append([]string{s.Path}, s.Args...)); err != nil {
		return 0, prepared, fmt.Errorf("args: %w", err)
	}
	if c.envv, err = syscall.SlicePtrFromStrings(s.Env); err != nil {
		return 0, prepared, fmt.Errorf("env: %w", err)
	}
	if c.dir, err = syscall.BytePtrFromString(s.Dir); err != nil {
		return 0, prepared, fmt.Errorf("dir: %w", err)
	}
	// Every descriptor the child uses must stay above 2: its dup3 onto
	// 0-2 would otherwise replace one (another stdio source, the ruleset,
	// the error pipe) before its use. Only a sidecar started with 0-2
	// closed gets such descriptors.
	var moved []int
	closeMoved := func() {
		for _, fd := range moved {
			unix.Close(fd)
		}
		moved = nil
	}
	defer closeMoved()
	above2 := func(fd int) (int, error) {
		if fd >= len(stdio) {
			return fd, nil
		}
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, len(stdio))
		if err != nil {
			return -1, err
		}
		moved = append(moved, nfd)
		return nfd, nil
	}
	for i, f := range stdio {
		if c.stdio[i], err = above2(int(f.Fd())); err != nil {
			return 0, prepared, fmt.Errorf("stdio: %w", err)
		}
	}
	uid := os.Getuid()
	if cred != nil {
		c.setCred, c.uid, c.gid = true, uintptr(cred.Uid), uintptr(cred.Gid)
		uid = int(cred.Uid)
	}
	c.limits = runLimits(s, runNproc(s, uid))
	if s.LandlockABI > 0 {
		fd, flags, err := rulesetFD(s)
		if err != nil {
			return 0, prepared, err
		}
		defer syscall.Close(fd)
		if c.ruleset, err = above2(fd); err != nil {
			return 0, prepared, fmt.Errorf("landlock: %w", err)
		}
		c.rulesetFl, c.noNewPrivs = uintptr(flags), true
	}
	if s.Seccomp {
		if auditArch == 0 {
			return 0, prepared, fmt.Errorf("seccomp: no filter for %s", runtime.GOARCH)
		}
		t := filterTemplateFor(s.Network)
		c.filter = append(filter(nil), t.f...)
		c.prog = unix.SockFprog{Len: uint16(len(c.filter)), Filter: &c.filter[0]}
		c.pidAt, c.negPidAt, c.noNewPrivs = t.pidAt, t.negPidAt, true
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, prepared, err
	}
	defer errR.Close()
	if c.errPipe, err = above2(int(errW.Fd())); err != nil {
		errW.Close()
		return 0, prepared, err
	}

	prepared = time.Now()
	// As package syscall does: no descriptor made without close-on-exec
	// by another goroutine leaks into the child between two calls.
	syscall.ForkLock.Lock()
	rpid, errno := c.fork()
	runtime_AfterFork()
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(c)
	runtime.KeepAlive(stdio)
	// Our copies of the error pipe closed (a moved one too), its EOF is
	// the exec's.
	errW.Close()
	closeMoved()
	if errno != 0 {
		return 0, prepared, fmt.Errorf("clone: %w", errno)
	}
	// EOF: the command was exec'd (the pipe closes on exec). Otherwise
	// the child wrote its step and errno and exited.
	var rep [8]byte
	n, _ := io.ReadFull(errR, rep[:])
	if n == 0 {
		return int(rpid), prepared, nil
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(int(rpid), &ws, 0, nil)
	if n < len(rep) {
		return 0, prepared, errors.New("the sandboxed child failed without a report")
	}
	step := *(*uint32)(unsafe.Pointer(&rep[0]))
	e := syscall.Errno(*(*uint32)(unsafe.Pointer(&rep[4])))
	if step == stepExec {
		return 0, prepared, fmt.Errorf("exec %s: %w", s.Path, e)
	}
	return 0, prepared, fmt.Errorf("%s: %w", stepNames[step], e)
}

// fork clones the child and, in the child, confines it and execs. Only
// the parent returns. Like package syscall's child, the child calls
// nothing that may grow the stack or allocate (raw system calls and
// nosplit functions), and the parent returns at once from this frame,
// which the child may have written.
//
//go:norace
//go:nocheckptr
//go:noinline
func (c *childArgs) fork() (pid uintptr, errno syscall.Errno) {
	var (
		err1 syscall.Errno
		i    int
		self uintptr
	)
	runtime_BeforeFork()
	pid, errno = rawVforkSyscall(syscall.SYS_CLONE, uintptr(syscall.CLONE_VM|syscall.CLONE_VFORK|syscall.SIGCHLD), 0, 0)
	if errno != 0 || pid != 0 {
		return
	}
	// The child.
	runtime_AfterForkInChild()
	if _, _, err1 = syscall.RawSyscall(syscall.SYS_SETPGID, 0, 0, 0); err1 != 0 {
		childFail(c, stepGroup, err1)
	}
	if c.setCred {
		if _, _, err1 = syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); err1 != 0 {
			childFail(c, stepCredentials, err1)
		}
		if _, _, err1 = syscall.RawSyscall(syscall.SYS_SETGID, c.gid, 0, 0); err1 != 0 {
			childFail(c, stepCredentials, err1)
		}
		if _, _, err1 = syscall.RawSyscall(syscall.SYS_SETUID, c.uid, 0, 0); err1 != 0 {
			childFail(c, stepCredentials, err1)
		}
	}
	if _, _, err1 = syscall.RawSyscall(syscall.SYS_CHDIR, uintptr(unsafe.Pointer(c.dir)), 0, 0); err1 != 0 {
		childFail(c, stepDir, err1)
	}
	for i = 0; i < len(c.stdio); i++ {
		// Without O_CLOEXEC: these three survive the exec.
		if _, _, err1 = syscall.RawSyscall(syscall.SYS_DUP3, uintptr(c.stdio[i]), uintptr(i), 0); err1 != 0 {
			childFail(c, stepStdio, err1)
		}
	}
	for i = 0; i < len(c.limits); i++ {
		if _, _, err1 = syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(c.limits[i].resource), uintptr(unsafe.Pointer(&c.limits[i].lim)), 0, 0, 0); err1 != 0 {
			childFail(c, stepLimits, err1)
		}
	}
	if c.noNewPrivs {
		if _, _, err1 = syscall.RawSyscall6(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); err1 != 0 {
			childFail(c, stepNoNewPrivs, err1)
		}
	}
	if c.ruleset >= 0 {
		if _, _, err1 = syscall.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(c.ruleset), c.rulesetFl, 0); err1 != 0 {
			childFail(c, stepLandlock, err1)
		}
	}
	if c.prog.Filter != nil {
		self, _, _ = syscall.RawSyscall(syscall.SYS_GETPID, 0, 0, 0)
		for i = 0; i < len(c.pidAt); i++ {
			c.filter[c.pidAt[i]].K = uint32(self)
		}
		for i = 0; i < len(c.negPidAt); i++ {
			c.filter[c.negPidAt[i]].K = uint32(-int32(self))
		}
		if _, _, err1 = syscall.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&c.prog))); err1 != 0 {
			childFail(c, stepSeccomp, err1)
		}
	}
	_, _, err1 = syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(c.path)),
		uintptr(unsafe.Pointer(&c.argv[0])), uintptr(unsafe.Pointer(&c.envv[0])))
	childFail(c, stepExec, err1)
	return
}

// childFail reports the failed step and errno on the error pipe and ends
// the child.
//
//go:nosplit
//go:norace
func childFail(c *childArgs, step uint32, errno syscall.Errno) {
	c.report[0], c.report[1] = step, uint32(errno)
	_, _, _ = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(c.errPipe), uintptr(unsafe.Pointer(&c.report)), unsafe.Sizeof(c.report))
	for {
		_, _, _ = syscall.RawSyscall(syscall.SYS_EXIT, 253, 0, 0)
	}
}

// filterTemplate is a run's seccomp filter before its pid is known: the
// filter holds the run's first process and its group by value, and a
// direct start learns the pid only in the child.
type filterTemplate struct {
	f               filter
	pidAt, negPidAt []int
}

var filterTemplates [2]struct {
	once sync.Once
	t    filterTemplate
}

// filterTemplateFor builds the template once per network setting: the
// filter made for two pids, compared instruction by instruction, gives
// where a pid goes and where its negation (the group, as kill takes it).
func filterTemplateFor(network bool) *filterTemplate {
	i := 0
	if network {
		i = 1
	}
	ft := &filterTemplates[i]
	ft.once.Do(func() {
		a, b := 1001, 2002
		fa, fb := seccompFilter(network, a, a), seccompFilter(network, b, b)
		t := filterTemplate{f: fa}
		for j := range fa {
			if fa[j].K == fb[j].K {
				continue
			}
			switch fa[j].K {
			case uint32(int32(a)):
				t.pidAt = append(t.pidAt, j)
			case uint32(int32(-a)):
				t.negPidAt = append(t.negPidAt, j)
			default:
				panic("seccomp: the filter holds a pid other than the run's or its group's")
			}
		}
		ft.t = t
	})
	return &ft.t
}
