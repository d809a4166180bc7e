// Copyright 2026 The externalsource-controller authors.
// Licensed under the Apache License, Version 2.0.

#include "textflag.h"

// func rawVforkSyscall(trap, a1, a2, a3 uintptr) (r1 uintptr, err uintptr)
//
// A system call for clone(CLONE_VM|CLONE_VFORK): parent and child share
// this stack, and the child runs on (and may overwrite) the stack below
// the caller's frame, including the slot of this function's return
// address. The address is therefore held in R12 across the call, which
// each process restores from its own registers.
TEXT ·rawVforkSyscall(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	MOVQ	$0, R10
	MOVQ	$0, R8
	MOVQ	$0, R9
	MOVQ	trap+0(FP), AX
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, r1+32(FP)
	NEGQ	AX
	MOVQ	AX, err+40(FP)
	RET
ok:
	MOVQ	AX, r1+32(FP)
	MOVQ	$0, err+40(FP)
	RET
