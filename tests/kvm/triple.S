/* Prints a line, then triple-faults: empty IDT, then #UD. */
#include "common.inc"
	.text
	.globl _start
_start:
	lea stack_top(%rip), %rsp
	PUTS msg
	lidt null_idt(%rip)
	ud2
	DEFINE_PUTS

	.data
msg:	.asciz "about to triple fault\n"
	.align 8
null_idt:
	.word 0
	.quad 0
	.bss
	.align 16
	.skip 4096
stack_top:
