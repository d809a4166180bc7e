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

// Command probe is the hook the sandbox tests whitelist besides jq and yq:
// it does what those cannot (open sockets, send signals, write files,
// fork, allocate, spin) so that each Landlock rule and each limit is
// proven by a program that tries it. It is built by the tests, never
// shipped.
//
// usage: probe read PATH | write PATH | connect HOST:PORT | udp HOST:PORT |
// unix PATH | abstract NAME | signal PID | ptrace PID | setsid SECONDS |
// hold SECONDS | threads N SECONDS | mem BYTES | fork | syscalls N | i386 | x32 | spin | fsize BYTES |
// nofile N | fill SECONDS [MiB] | limits
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: probe MODE [ARG]"))
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	switch os.Args[1] {
	case "read":
		b, err := os.ReadFile(arg)
		check(err)
		os.Stdout.Write(b)
	case "write":
		check(os.WriteFile(arg, []byte("written by a hook\n"), 0o644))
	case "connect":
		c, err := net.DialTimeout("tcp", arg, 5*time.Second)
		check(err)
		fmt.Fprintln(c, "hello from a hook")
		c.Close()
		fmt.Println("connected")
	case "udp":
		// Datagrams need no connection: each one sent is one received.
		c, err := net.Dial("udp", arg)
		check(err)
		for i := 0; i < 10; i++ {
			_, err := fmt.Fprintln(c, "hello from a hook")
			check(err)
		}
		c.Close()
		fmt.Println("sent")
	case "unix":
		c, err := net.Dial("unix", arg)
		check(err)
		c.Close()
		fmt.Println("connected")
	case "setsid":
		// A child in a session of its own would leave the process group
		// the sidecar kills at the timeout, and outlive it.
		s, _ := strconv.Atoi(arg)
		cmd := exec.Command(os.Args[0], "setsid-child", fmt.Sprint(s))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		check(cmd.Start())
		fmt.Println("escaped")
		_ = cmd.Wait()
	case "setsid-child":
		s, _ := strconv.Atoi(arg)
		time.Sleep(time.Duration(s) * time.Second)
	case "threads":
		// N threads of this uid, held: tasks the kernel counts for
		// RLIMIT_NPROC wherever they are.
		n, err := strconv.Atoi(arg)
		check(err)
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				time.Sleep(time.Hour)
			}()
		}
		fmt.Println("holding")
		s := 60
		if len(os.Args) > 3 {
			s, _ = strconv.Atoi(os.Args[3])
		}
		time.Sleep(time.Duration(s) * time.Second)
	case "abstract":
		c, err := net.Dial("unix", "@"+arg)
		check(err)
		c.Close()
		fmt.Println("connected")
	case "signal":
		// A pid, or its own (self) or its group's (group, as kill takes it).
		var pid int
		switch arg {
		case "self":
			pid = os.Getpid()
		case "group":
			pid = -syscall.Getpgrp()
		default:
			var err error
			pid, err = strconv.Atoi(arg)
			check(err)
		}
		check(syscall.Kill(pid, syscall.SIGURG))
		fmt.Println("signalled")
	case "ptrace":
		// Attaches to another process (to read its memory), then lets go.
		pid, err := strconv.Atoi(arg)
		check(err)
		runtime.LockOSThread()
		check(syscall.PtraceAttach(pid))
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WALL, nil)
		check(syscall.PtraceDetach(pid))
		fmt.Println("attached")
	case "hold":
		// Keeps stdin unread (its data stays in the pipe) for a while,
		// with a file in its working directory.
		check(os.WriteFile("mine", []byte(VictimFileContent+"\n"), 0o600))
		s, _ := strconv.Atoi(arg)
		time.Sleep(time.Duration(s) * time.Second)
	case "mem":
		n, err := strconv.ParseInt(arg, 10, 64)
		check(err)
		var keep [][]byte
		for done := int64(0); done < n; done += 16 << 20 {
			b := make([]byte, 16<<20)
			for i := range b {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println(len(keep))
	case "fork":
		// A bounded bomb (each process starts two more, eight levels deep:
		// 511 at most) so that a broken limit cannot take the machine down.
		depth, _ := strconv.Atoi(os.Getenv("PROBE_DEPTH"))
		if depth >= 8 {
			time.Sleep(time.Minute)
			return
		}
		for i := 0; i < 2; i++ {
			cmd := exec.Command(os.Args[0], "fork")
			cmd.Env = []string{fmt.Sprintf("PROBE_DEPTH=%d", depth+1)}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := cmd.Start(); err != nil {
				fail(err)
			}
		}
		time.Sleep(time.Minute)
	case "i386", "x32":
		check(otherABI(os.Args[1]))
		fmt.Println("called")
	case "syscalls":
		// N cheap system calls: what each costs under the seccomp filter.
		n, err := strconv.Atoi(arg)
		check(err)
		for i := 0; i < n; i++ {
			syscall.Getppid()
		}
	case "spin":
		for {
		}
	case "fsize":
		n, err := strconv.Atoi(arg)
		check(err)
		check(os.WriteFile("big", make([]byte, n), 0o644))
	case "fill":
		// A hook that writes without end: files of 512 KiB (under any
		// fileSize limit of 1Mi or more) in its working directory until
		// a write fails or MiB are written, then holds them SECONDS (so
		// that the kubelet, which measures volumes every few seconds,
		// sees the peak).
		s, _ := strconv.Atoi(arg)
		limit := 1 << 20
		if len(os.Args) > 3 {
			limit, _ = strconv.Atoi(os.Args[3])
		}
		chunk := make([]byte, 512<<10)
		var err error
		n := 0
		for ; err == nil && n < 2*limit; n++ {
			err = os.WriteFile(fmt.Sprintf("fill%d", n), chunk, 0o644)
		}
		if err != nil {
			n-- // the last one failed
		}
		fmt.Fprintf(os.Stderr, "probe: wrote %d files of 512 KiB\n", n)
		if err == nil {
			err = fmt.Errorf("wrote %d MiB", limit)
		}
		time.Sleep(time.Duration(s) * time.Second)
		fail(err)
	case "nofile":
		n, err := strconv.Atoi(arg)
		check(err)
		for i := 0; i < n; i++ {
			_, err := os.Create(fmt.Sprintf("f%d", i))
			check(err)
		}
	case "limits":
		for _, l := range []struct {
			name string
			r    int
		}{{"cpu", syscall.RLIMIT_CPU}, {"data", syscall.RLIMIT_DATA}, {"fsize", syscall.RLIMIT_FSIZE},
			{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6}, {"core", syscall.RLIMIT_CORE}} {
			var r syscall.Rlimit
			check(syscall.Getrlimit(l.r, &r))
			fmt.Printf("%s=%d/%d\n", l.name, r.Cur, r.Max)
		}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

// VictimFileContent is what "hold" leaves in its working directory (kept
// in step with sandboxtest.VictimFileContent).
const VictimFileContent = "victim-workdir-data"

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "probe:", err)
	os.Exit(3)
}
