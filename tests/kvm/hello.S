/* Prints a line, writes the boot-complete marker, resets. */
#include "common.inc"
	.text
	.globl _start
_start:
	lea stack_top(%rip), %rsp
	PUTS msg
	mov $123, %al
	mov $0x3f0, %dx
	outb %al, %dx
	RESET
	DEFINE_PUTS

	.data
msg:	.asciz "hello from the ember test guest\n"
	.bss
	.align 16
	.skip 4096
stack_top:
