// Copyright 2026 The externalsource-controller authors.
// Licensed under the Apache License, Version 2.0.

#include "textflag.h"

// func int80getpid() int64: getpid (20) through i386's int 0x80.
TEXT ·int80getpid(SB),NOSPLIT,$0-8
	MOVL $20, AX
	INT $0x80
	MOVQ AX, ret+0(FP)
	RET
