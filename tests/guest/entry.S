/* The whole CPL0 part of the test guest: boot entries, descriptor tables,
 * static page tables, and the interrupt/exception/service stubs.
 *
 * Everything here runs under KVM's instruction emulator on software KVM
 * (~2 M instructions/s), so it is kept to a few dozen instructions per path:
 *   - page tables are static data (identity map of 4 GiB with 2 MiB pages,
 *     all user-accessible) assembled into the image: no fill loop;
 *   - the IDT is a zeroed table whose gates CPL3 fills in (idt.c);
 *   - an IRQ costs 7 instructions (count, EOI, iretq);
 *   - a ud2-based service call (see layout.h) offers halt/sti/cli/reset;
 *     there is no syscall/sysret and no "int $n" (kvm-pvm gives #UD for it).
 * The boot path loads GDT/IDT/CR3/TSS, masks the 8259 and irets to CPL3
 * with IOPL=3 and IF=0 in user_start.  kvm-pvm ignores IOPL=3 at CPL3, so
 * the TSS also has an I/O permission bitmap allowing every port.
 */
#include "layout.h"

	.set	PTE_P, 0x1
	.set	PTE_RW, 0x2
	.set	PTE_US, 0x4
	.set	PTE_PWT, 0x8
	.set	PTE_PCD, 0x10
	.set	PTE_PS, 0x80

/* ------------------------------------------------------------------ */
/* PVH note: 32-bit entry, EBX = hvm_start_info.                       */
	.section .note.Xen, "a", @note
	.balign 4
	.long	4			/* namesz: "Xen\0" */
	.long	4			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.balign 4
	.long	pvh_entry
	.balign 4

	.section .text.entry, "ax"

/* Linux x86-64 boot protocol: long mode, paging on, RSI = boot_params. */
	.code64
	.globl	entry64
entry64:
	cli
	lgdt	gdt_desc(%rip)
	movl	$CR4_BOOT, %eax
	movq	%rax, %cr4
	movl	$pml4, %eax
	movq	%rax, %cr3
	movl	$BOOT_LINUX64, %edi
	jmp	common64

/* PVH: flat 32-bit protected mode, paging off, EBX = hvm_start_info. */
	.code32
	.globl	pvh_entry
pvh_entry:
	cli
	movl	%ebx, %esi
	lgdt	gdt_desc
	movl	$CR4_BOOT, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx	/* EFER.LME */
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax	/* PG | PE */
	movl	%eax, %cr0
	ljmp	$SEL_KCODE, $pvh64
	.code64
pvh64:
	movl	%esi, %esi		/* upper halves are undefined after the switch */
	movl	$BOOT_PVH, %edi

common64:
	movl	$SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$kstack_top, %esp
	lidt	idt_desc(%rip)
	movb	$0xff, %al		/* mask both 8259s (no-op when absent) */
	outb	%al, $0x21
	outb	%al, $0xa1
	/* TSS descriptor: limit 0x67, base = tss (< 4 GiB), type 0x89. */
	movl	$tss, %eax
	movw	%ax, gdt_tss+2(%rip)
	shrl	$16, %eax
	movb	%al, gdt_tss+4(%rip)
	movb	%ah, gdt_tss+7(%rip)
	movw	$SEL_TSS, %ax
	ltr	%ax
	/* iretq to CPL3: SS, RSP, RFLAGS (IOPL=3, IF=0), CS, RIP.  RDI and
	 * RSI (boot protocol, parameter address) pass through to cmain. */
	pushq	$SEL_UDATA
	pushq	$ustack_top
	pushq	$0x3002
	pushq	$SEL_UCODE
	pushq	$user_start
	iretq

/* ------------------------------------------------------------------ */
/* Exceptions.  From CPL3: record vector, error code, RIP and CR2 in
 * fault_info and iret to user_fault (CPL3) on a fresh user stack.  From
 * CPL0: write a line to COM1 and reset.                               */
	.text
	.macro	EXC vec, has_err
	.balign	16
exc\vec:
	.if	\vec == 6
	jmp	ud_entry
	.else
	.if	\has_err == 0
	pushq	$0
	.endif
	pushq	$\vec
	jmp	exc_common
	.endif
	.endm

/* #UD: a service call if it came from CPL3 at SVC_INSN (the magic after
 * the ud2); otherwise an ordinary exception. */
ud_entry:				/* rip, cs, rflags, rsp, ss */
	testb	$3, 8(%rsp)
	jz	1f
	pushq	%rax
	movq	8(%rsp), %rax
	cmpl	$SVC_MAGIC, 5(%rax)
	popq	%rax
	jne	1f
	addq	$SVC_INSN_LEN, (%rsp)
	jmp	svc_entry
1:	pushq	$0
	pushq	$6
	jmp	exc_common

exc_common:				/* vec, err, rip, cs, rflags, rsp, ss */
	testb	$3, 24(%rsp)
	jz	fatal_cpl0
	pushq	%rax
	movq	8(%rsp), %rax
	movq	%rax, fault_info(%rip)
	movq	16(%rsp), %rax
	movq	%rax, fault_info+8(%rip)
	movq	24(%rsp), %rax
	movq	%rax, fault_info+16(%rip)
	movq	%cr2, %rax
	movq	%rax, fault_info+24(%rip)
	movq	48(%rsp), %rax
	movq	%rax, fault_info+32(%rip)
	incq	fault_info+40(%rip)
	movq	$user_fault, 24(%rsp)
	movq	$ustack_top, 48(%rsp)
	popq	%rax
	addq	$16, %rsp
	iretq

fatal_cpl0:
	movl	$fatal_msg, %esi
	movw	$0x3f8, %dx
1:	lodsb
	testb	%al, %al
	jz	reset
	outb	%al, %dx
	jmp	1b

/* Reset: ember ends the VM on 0xFE to port 0x64; QEMU microvm has no
 * i8042, so then triple-fault: empty IDT, then #UD. */
reset:
	movb	$0xfe, %al
	outb	%al, $0x64
	lidt	idt_empty(%rip)
	ud2

/* ------------------------------------------------------------------ */
/* IRQ vectors: count (per vector and in total), EOI to the LAPIC, iretq. */
	.macro	IRQ vec
	.balign	16
irq\vec:
	incq	irq_count+8*\vec(%rip)
	incq	irq_total(%rip)
	pushq	%rax
	movl	$LAPIC_BASE+0xb0, %eax
	movl	$0, (%rax)
	popq	%rax
	iretq
	.endm

/* Spurious LAPIC vector: count, no EOI. */
irq_spurious:
	incq	irq_count+8*VEC_SPURIOUS(%rip)
	iretq

/* ------------------------------------------------------------------ */
/* Services (entered through #UD, an interrupt gate, so IF=0 here).
 * RAX = service.
 *   SVC_HALT  RDI = irq_total the caller saw: return at once if it has
 *             changed, else sti; hlt (woken by the next interrupt).
 *   SVC_STI / SVC_CLI  set / clear IF in the caller's RFLAGS.
 *   SVC_RESET end the VM.                                              */
svc_entry:
	cmpl	$SVC_HALT, %eax
	jne	1f
	cmpq	%rdi, irq_total(%rip)
	jne	9f
	sti
	hlt
	cli
9:	iretq
1:	cmpl	$SVC_STI, %eax
	jne	2f
	orq	$0x200, 16(%rsp)
	iretq
2:	cmpl	$SVC_CLI, %eax
	jne	3f
	andq	$~0x200, 16(%rsp)
	iretq
3:	cmpl	$SVC_RESET, %eax
	je	reset
	iretq

/* Stubs for every vector, and the table of their addresses idt.c reads. */
	.altmacro
	.set	v, 0
	.rept	256
	.if	v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30
	EXC	%v, 1
	.elseif	v < 32
	EXC	%v, 0
	.elseif	v == VEC_SPURIOUS
	.else
	IRQ	%v
	.endif
	.set	v, v+1
	.endr

	.section .rodata
	.balign	8
	.globl	vector_stubs
vector_stubs:
	.macro	STUBADDR vec
	.if	\vec == VEC_SPURIOUS
	.quad	irq_spurious
	.elseif	\vec < 32
	.quad	exc\vec
	.else
	.quad	irq\vec
	.endif
	.endm
	.set	v, 0
	.rept	256
	STUBADDR %v
	.set	v, v+1
	.endr
	.noaltmacro

fatal_msg:
	.asciz	"\r\nTESTGUEST FATAL exception at CPL0\r\n"

/* ------------------------------------------------------------------ */
/* Tables.                                                            */
	.data
	.balign	16
	.globl	gdt
gdt:
	.quad	0			/* 0x00 null */
	.quad	0x00cf9a000000ffff	/* 0x08 32-bit code (unused) */
	.quad	0x00af9a000000ffff	/* 0x10 64-bit code, DPL0 */
	.quad	0x00cf92000000ffff	/* 0x18 data, DPL0 */
	.quad	0x00affa000000ffff	/* 0x20 64-bit code, DPL3 */
	.quad	0x00cff2000000ffff	/* 0x28 data, DPL3 */
gdt_tss:
	.quad	0x0000890000002068	/* 0x30 TSS (base filled at boot) */
	.quad	0
gdt_end:

	.balign	8
gdt_desc:
	.word	gdt_end - gdt - 1
	.quad	gdt
	.balign	8
idt_desc:
	.word	256*16 - 1
	.quad	idt
	.balign	8
idt_empty:
	.word	0
	.quad	0

	.balign	16
	.globl	tss
tss:
	.long	0
	.quad	kstack_top		/* RSP0 */
	.quad	0, 0			/* RSP1, RSP2 */
	.quad	0			/* reserved */
	.quad	0, 0, 0, 0, 0, 0, 0	/* IST1-7 */
	.quad	0
	.word	0
	.word	104			/* I/O permission bitmap offset */
	.fill	8192, 1, 0		/* every port allowed */
	.byte	0xff
tss_end:

/* Page tables: PML4 -> one PDPT -> four PDs of 2 MiB pages covering
 * [0, 4 GiB), identity, present, writable, user.  [3 GiB, 4 GiB) (the MMIO
 * window: virtio-mmio, IOAPIC, LAPIC) is also cache-disabled.  CPL3 adds
 * 1 GiB mappings for RAM above 4 GiB (mm.c) in pdpt[4..511]. */
	.section .data.pagetables, "aw"
	.balign	4096
	.globl	pml4, pdpt
pml4:
	.quad	pdpt + PTE_P + PTE_RW + PTE_US
	.fill	511, 8, 0
pdpt:
	.quad	pd + 0x0000 + PTE_P + PTE_RW + PTE_US
	.quad	pd + 0x1000 + PTE_P + PTE_RW + PTE_US
	.quad	pd + 0x2000 + PTE_P + PTE_RW + PTE_US
	.quad	pd + 0x3000 + PTE_P + PTE_RW + PTE_US
	.fill	508, 8, 0
pd:
	.set	i, 0
	.rept	2048
	.if	i >= 1536
	.quad	(i << 21) + PTE_P + PTE_RW + PTE_US + PTE_PS + PTE_PCD + PTE_PWT
	.else
	.quad	(i << 21) + PTE_P + PTE_RW + PTE_US + PTE_PS
	.endif
	.set	i, i+1
	.endr

/* The IDT: zero (no gates) until CPL3 fills it (idt.c).  In .data, not
 * .bss, so it is zero before anything runs. */
	.balign	4096
	.globl	idt
idt:
	.fill	256*16, 1, 0

/* Stacks: not zeroed, so they live outside .bss (user_start zeroes .bss
 * while running on the user stack). */
	.section .stack, "aw", @nobits
	.balign	4096
	.space	KSTACK_SIZE
	.globl	kstack_top
kstack_top:
	.space	USTACK_SIZE
	.globl	ustack_top
ustack_top:

/* ------------------------------------------------------------------ */
/* CPL3 entry points (iretq lands here).                              */
	.text
	.globl	user_start
user_start:
	call	cmain
	ud2
	.globl	user_fault
user_fault:
	call	fault_resume
	ud2
