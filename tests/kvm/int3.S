/* Runs int3 at CPL0 with a #BP handler that prints and returns; proves that
 * ember completes int3 on a software KVM (and that it just works on
 * hardware KVM). */
#include "common.inc"
	.text
	.globl _start
_start:
	lea stack_top(%rip), %rsp
	/* IDT entry 3: 64-bit interrupt gate, selector 0x10 (ember's boot
	 * code segment), present, DPL 0, offset = bp_handler. */
	lea bp_handler(%rip), %rax
	lea idt(%rip), %rdi
	mov %ax, 3*16(%rdi)
	movw $0x10, 3*16+2(%rdi)
	movw $0x8e00, 3*16+4(%rdi)
	shr $16, %rax
	mov %ax, 3*16+6(%rdi)
	shr $16, %rax
	mov %eax, 3*16+8(%rdi)
	lea idt(%rip), %rax
	mov %rax, idtr+2(%rip)
	lidt idtr(%rip)
	PUTS before
	int3
	PUTS after
	RESET

bp_handler:
	push %rax
	push %rdx
	push %rsi
	PUTS inhandler
	pop %rsi
	pop %rdx
	pop %rax
	iretq
	DEFINE_PUTS

	.data
before:	.asciz "int3 test: before\n"
inhandler: .asciz "int3 test: #BP handler ran\n"
after:	.asciz "int3 test: after\n"
	.align 16
idt:	.skip 16 * 32
idtr:	.word 16 * 32 - 1
	.quad 0
	.bss
	.align 16
	.skip 4096
stack_top:
