/* The boot vCPU's architectural state: GDT, identity page tables and the
 * register values for each entry protocol (the public boot_vcpu_regs() and
 * boot_msrs() live in cpu.c). */
#ifndef EMBER_BOOT_CPU_H
#define EMBER_BOOT_CPU_H

#include <stdint.h>
#include <linux/kvm.h>

#include "../err.h"
#include "../mem.h"
#include "boot.h"

#define CPU_GDT_ENTRIES 6
#define CPU_SEL_CODE 0x10 /* Linux's __BOOT_CS */
#define CPU_SEL_DATA 0x18 /* Linux's __BOOT_DS */
#define CPU_SEL_TSS  0x20 /* 16-byte system descriptor: entries 4 and 5 */

#define CPU_CR0_PE (1ULL << 0)
#define CPU_CR0_MP (1ULL << 1)
#define CPU_CR0_ET (1ULL << 4)
#define CPU_CR0_NE (1ULL << 5)
#define CPU_CR0_WP (1ULL << 16)
#define CPU_CR0_PG (1ULL << 31)
#define CPU_CR4_PAE (1ULL << 5)
#define CPU_EFER_LME (1ULL << 8)
#define CPU_EFER_LMA (1ULL << 10)

#define CPU_PTE_P  (1ULL << 0)
#define CPU_PTE_RW (1ULL << 1)
#define CPU_PTE_PS (1ULL << 7) /* in a page directory entry: a 2 MiB page */

/* The boot GDT for an entry protocol: null, null, flat code at 0x10 (64-bit
 * for LINUX64, 32-bit for PVH), flat read/write data at 0x18, and a busy TSS
 * (base 0, limit 0x67) at 0x20, which VM entry requires of TR.  Base 0 and a
 * 4 GiB limit everywhere. */
void cpu_gdt(enum boot_entry entry, uint64_t gdt[CPU_GDT_ENTRIES]);

/* The hidden segment state a CPU caches after loading selector sel that
 * refers to descriptor desc; used so that the registers and the GDT in
 * guest memory can never disagree. */
struct kvm_segment cpu_segment(uint64_t desc, uint16_t sel);

/* Write cpu_gdt(entry) at LAYOUT_GDT and, for LINUX64, page tables at
 * LAYOUT_PML4/PDPT/PD that identity-map [0, 4 GiB) with 2 MiB pages.
 * Returns 0, or -1 with e set when guest RAM does not cover them. */
int cpu_write_tables(const struct guest_mem *m, enum boot_entry entry, struct err *e);

#endif
