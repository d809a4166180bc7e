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

package main

import (
	"errors"
	"runtime/debug"
	"syscall"
)

func int80getpid() int64

// errNoI386 says the kernel itself does not serve i386 calls: one built
// without IA32 emulation, or booted with ia32_emulation=0, answers int
// 0x80 with a general protection fault (SIGSEGV) before any seccomp
// filter sees the call.
var errNoI386 = errors.New("no i386 emulation in this kernel (int 0x80 faults)")

// int80 makes the i386 getpid, turning the fault of a kernel without
// i386 emulation into errNoI386 rather than a crash.
func int80() (r int64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if recover() != nil {
			err = errNoI386
		}
	}()
	return int80getpid(), nil
}

// otherABI makes getpid through another ABI of the kernel: i386's int
// 0x80, or x32's numbers (the syscall number with bit 30 set), whose
// numbers a filter written for amd64's would misread.
func otherABI(abi string) error {
	switch abi {
	case "i386":
		r, err := int80()
		if err != nil {
			return err
		}
		if r < 0 {
			return syscall.Errno(-r)
		}
		return nil
	default:
		_, _, errno := syscall.RawSyscall(syscall.SYS_GETPID|0x40000000, 0, 0, 0)
		if errno != 0 {
			return errno
		}
		return nil
	}
}
