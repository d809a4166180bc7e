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
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp-bpf layer. Landlock confines files on every kernel from
// 5.13, but TCP only from ABI 4, and never UDP, raw, netlink or pathname
// Unix sockets; abstract sockets and signals only from ABI 6. This filter,
// installed by the trampoline for every run on every kernel, closes those
// gaps whatever the Landlock ABI, and keeps a run inside the process
// group the watchdog counts. A filter needs no privilege once
// no_new_privs is set, and it is inherited across fork and exec and can
// never be removed.
//
// The filter is a deny list over an allow-by-default base: hooks are
// ordinary programs (jq, yq, a shell), and an allow list would have to
// follow every libc and Go runtime release. What it denies is what
// container runtimes' default profiles deny, plus what lets a run leave
// its confinement (sockets without network, setsid/setpgid, signals to
// other processes, other processes' rlimits).

// seccomp_data offsets (linux/seccomp.h): nr, arch, instruction pointer,
// then six 64-bit arguments.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// argLow is the offset of the low 32 bits of argument i: every argument
// the filter tests is an int or a pid, of which the kernel reads only the
// low 32 bits (clone's flags too: kernel_clone takes lower_32_bits).
func argLow(i int) uint32 {
	off := uint32(offArgs + 8*i)
	if !littleEndian {
		off += 4
	}
	return off
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// The answers of the filter. Denied system calls fail with EPERM, like
// in container runtimes' default profiles; socket() with EACCES, as
// Landlock's TCP rules answer; clone3 and pidfd_open with ENOSYS, which
// makes glibc fall back to clone (whose flags the filter can read) and the
// Go runtime to plain kill (whose pid it can read).
const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retEACCS = unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// namespaceFlags are the clone flags that make a namespace: with an
// unprivileged user namespace a run could become root inside it.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// deniedSyscalls are refused with EPERM for every run: those container
// runtimes' default seccomp profiles deny (tracing and other processes'
// memory, kernel keyrings, BPF and perf, io_uring, mounts and namespaces,
// modules, kexec, clocks, swap, reboot, accounting, handles), and those
// that would let a run leave its process group or signal by pidfd.
var deniedSyscalls = append([]uintptr{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP,
	unix.SYS_PIDFD_GETFD, unix.SYS_PIDFD_SEND_SIGNAL, unix.SYS_TKILL,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD, unix.SYS_FANOTIFY_INIT,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT, unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_OPEN_BY_HANDLE_AT,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_REBOOT, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_SYSLOG, unix.SYS_VHANGUP,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME,
	unix.SYS_LOOKUP_DCOOKIE, unix.SYS_MOVE_PAGES, unix.SYS_MBIND, unix.SYS_SET_MEMPOLICY, unix.SYS_MIGRATE_PAGES,
	unix.SYS_SETSID, unix.SYS_SETPGID,
}, archDeniedSyscalls...)

// filter is a seccomp-bpf program under construction.
type filter []unix.SockFilter

func (f *filter) stmt(code uint16, k uint32) {
	*f = append(*f, unix.SockFilter{Code: code, K: k})
}

func (f *filter) jump(code uint16, k uint32, jt, jf uint8) {
	*f = append(*f, unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k})
}

// syscall appends a block that applies only to system call nr: body
// runs when the number matches and must end in a return; otherwise the
// block is skipped.
func (f *filter) syscall(nr uintptr, body filter) {
	if len(body) > 255 {
		// A jump's offset is one byte: a longer body is a bug here.
		panic("seccomp: a system call's block is longer than a jump can skip")
	}
	f.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(nr), 0, uint8(len(body)))
	*f = append(*f, body...)
}

// argIn is a body that allows the call when the low 32 bits of argument
// i are one of values, and answers deny otherwise.
func argIn(i int, deny uint32, values ...uint32) filter {
	var b filter
	b.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, argLow(i))
	for j, v := range values {
		// Past the remaining comparisons and the deny: to the allow.
		b.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, v, uint8(len(values)-j), 0)
	}
	b.stmt(unix.BPF_RET|unix.BPF_K, deny)
	b.stmt(unix.BPF_RET|unix.BPF_K, retAllow)
	return b
}

// ret is a body that answers r.
func ret(r uint32) filter {
	return filter{{Code: unix.BPF_RET | unix.BPF_K, K: r}}
}

// seccompFilter builds the filter of one run: pid is the run's first
// process (the trampoline, which execs the command in place) and pgid
// its process group, both known before exec, so signals can be held to
// them by value.
func seccompFilter(network bool, pid, pgid int) filter {
	var f filter
	// Another architecture's system call numbers (i386's int 0x80 on
	// amd64) mean other calls: refused outright.
	f.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch)
	f.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, auditArch, 1, 0)
	f.stmt(unix.BPF_RET|unix.BPF_K, retEPERM)
	f.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr)
	if x32Bit != 0 {
		// amd64's x32 ABI: the same calls with the bit set.
		f.jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, x32Bit, 0, 1)
		f.stmt(unix.BPF_RET|unix.BPF_K, retEPERM)
	}
	for _, nr := range deniedSyscalls {
		f.syscall(nr, ret(retEPERM))
	}
	f.syscall(unix.SYS_CLONE3, ret(retNOSYS))
	f.syscall(unix.SYS_PIDFD_OPEN, ret(retNOSYS))
	// No namespaces: load the flags, deny when any namespace bit is set.
	f.syscall(unix.SYS_CLONE, filter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: argLow(0)},
		{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: namespaceFlags, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: retEPERM},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	})
	if network {
		// IP (and netlink, which getaddrinfo reads the addresses with);
		// never Unix (the sidecar's hook.sock, abstract sockets) nor
		// packet.
		f.syscall(unix.SYS_SOCKET, argIn(0, retEACCS, unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK))
		f.syscall(unix.SYS_SOCKETPAIR, ret(retEACCS))
	} else {
		f.syscall(unix.SYS_SOCKET, ret(retEACCS))
		f.syscall(unix.SYS_SOCKETPAIR, ret(retEACCS))
	}
	// Signals: to the run's own group (kill(0), kill(-pgid)) or its first
	// process, and thread-directed ones to that process's own threads
	// (the Go runtime preempts with tgkill(getpid(), tid, SIGURG)). A
	// child's threads are not known here: a Go child runs without
	// asynchronous preemption, which costs it nothing but latency.
	self, group := uint32(int32(pid)), uint32(int32(-pgid))
	f.syscall(unix.SYS_KILL, argIn(0, retEPERM, 0, self, uint32(int32(pgid)), group))
	f.syscall(unix.SYS_TGKILL, argIn(0, retEPERM, self))
	f.syscall(unix.SYS_RT_SIGQUEUEINFO, argIn(0, retEPERM, self))
	f.syscall(unix.SYS_RT_TGSIGQUEUEINFO, argIn(0, retEPERM, self))
	// personality: the values container runtimes allow (Linux, the
	// query, and two compatibility flags), never e.g. READ_IMPLIES_EXEC.
	f.syscall(unix.SYS_PERSONALITY, argIn(0, retEPERM, 0x0, 0x8, 0x20000, 0x20008, 0xffffffff))
	// Lowering another process's limits (a run of another tenant has the
	// same uid) is a denial of service: only its own.
	f.syscall(unix.SYS_PRLIMIT64, argIn(0, retEPERM, 0, self))
	f.stmt(unix.BPF_RET|unix.BPF_K, retAllow)
	return f
}

// SeccompAvailable reports whether this build and kernel can filter
// system calls: an architecture the filter knows, and a kernel built with
// seccomp.
func SeccompAvailable() bool {
	if auditArch == 0 {
		return false
	}
	_, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	return err == nil
}

// applySeccomp installs the run's filter on the calling thread, which
// sandboxExec holds locked until it execs: the command inherits that
// thread's filter, and the trampoline's other threads end at execve.
func applySeccomp(network bool) error {
	if auditArch == 0 {
		return fmt.Errorf("seccomp: no filter for %s", runtime.GOARCH)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	f := seccompFilter(network, unix.Getpid(), unix.Getpgrp())
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return fmt.Errorf("seccomp: installing the filter: %w", errno)
	}
	return nil
}
