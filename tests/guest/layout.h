/* Constants shared by entry.S and the C code: selectors, vectors, services,
 * fixed addresses.  Only #defines, so the assembler can include it. */
#ifndef TG_LAYOUT_H
#define TG_LAYOUT_H

/* Where the image is linked and loaded (identity-mapped: virtual ==
 * physical everywhere). */
#define IMAGE_BASE     0x100000

/* GDT selectors (0x10/0x18 are the Linux boot protocol's __BOOT_CS/DS). */
#define SEL_KCODE      0x10
#define SEL_KDATA      0x18
#define SEL_UCODE      (0x20 | 3)
#define SEL_UDATA      (0x28 | 3)
#define SEL_TSS        0x30

#define CR4_BOOT       0x20          /* PAE only: no SMEP/SMAP/PGE/OSFXSR */

/* How cmain was entered (RDI). */
#define BOOT_LINUX64   1
#define BOOT_PVH       2

/* Interrupt vectors.  IOAPIC pin n (GSI n) -> VEC_GSI_BASE + n. */
#define VEC_GSI_BASE   0x30
#define VEC_TIMER      0x50          /* LAPIC timer (one-shot, timeouts) */
#define VEC_SPURIOUS   0xff

/* CPL0 services (RAX), called with SVC_INSN: "ud2" followed by a 7-byte
 * nopl whose displacement is SVC_MAGIC.  Software KVM (kvm-pvm) answers
 * "int $n" from CPL3 with #UD, so the #UD handler is the gate: it checks the
 * magic, skips the 9 bytes and dispatches.  Any other #UD is a fault. */
#define SVC_MAGIC      0x43565354    /* "TSVC" */
#define SVC_INSN_LEN   9
#define SVC_HALT       0
#define SVC_STI        1
#define SVC_CLI        2
#define SVC_RESET      3

#define LAPIC_BASE     0xfee00000
#define IOAPIC_BASE    0xfec00000

#define KSTACK_SIZE    8192
#define USTACK_SIZE    (128 * 1024)

#endif
