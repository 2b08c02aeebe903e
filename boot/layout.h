/* Fixed guest-physical addresses used at boot, and why each is where it is.
 *
 * Below 1 MiB (all page-aligned except the MP table):
 *
 *   0x00000-0x00fff  real-mode IVT and BIOS data area: left zero.  Linux
 *                    reserves page 0, and a zero BDA means "no EBDA", so the
 *                    kernel does not go looking for one.
 *   0x01000          GDT (LAYOUT_GDT): null, null, code 0x10, data 0x18,
 *                    TSS 0x20.  Linux's boot protocols name __BOOT_CS 0x10
 *                    and __BOOT_DS 0x18, so the selectors must be these.
 *   0x02000          PVH hvm_start_info, then its one-entry module list for
 *                    the initrd at LAYOUT_PVH_MODLIST.
 *   0x03000          PVH memory map (hvm_memmap_table_entry[], 24 bytes each;
 *                    the page holds more than the 128 entries E820 allows).
 *   0x07000          zero page (struct boot_params, 4 KiB) for the 64-bit
 *                    Linux entry; the address Firecracker and others use.
 *   0x08000-0x08fff  boot stack; RSP starts at LAYOUT_BOOT_STACK.  Linux
 *                    switches to its own stack at once; small freestanding
 *                    guests may use this one.
 *   0x09000          PML4, 0x0a000 PDPT, 0x0b000-0x0efff four page
 *                    directories of 2 MiB pages: an identity map of the first
 *                    4 GiB (2 MiB pages need no 1 GiB-page CPU support).
 *   0x20000-0x2ffff  kernel command line (LAYOUT_CMDLINE, at most
 *                    LAYOUT_CMDLINE_MAX bytes with the NUL); far above the
 *                    tables so no realistic length can reach them.
 *   0x9fc00-0x9ffff  MP table (floating pointer, then the configuration
 *                    table): the last KiB of base memory, one of the places
 *                    Linux scans for "_MP_", and E820-reserved.
 *   0xa0000-0xfffff  legacy VGA/BIOS hole: E820-reserved, nothing written.
 *
 * Every structure above is read by the kernel before it allocates memory
 * (and Linux reserves the whole first MiB anyway), so all of [0, 0x9fc00)
 * can be E820 RAM.
 *
 * From 1 MiB: the kernel.  An ELF vmlinux goes to its segments' p_paddr
 * (which must be >= 1 MiB); a bzImage's protected-mode part is loaded at
 * LAYOUT_KERNEL_LOAD and decompresses itself at
 * max(align_up(1 MiB, kernel_alignment), pref_address) using init_size bytes
 * there; both ranges count as the kernel.
 *
 * The initrd goes to the top of low RAM: its end is min(low RAM end,
 * initrd_addr_max + 1), its start that minus its size rounded down to a
 * page.  It must start at or above the kernel's end (see boot/initrd.h).
 */
#ifndef EMBER_BOOT_LAYOUT_H
#define EMBER_BOOT_LAYOUT_H

#define LAYOUT_GDT          0x1000ULL
#define LAYOUT_PVH_INFO     0x2000ULL
#define LAYOUT_PVH_MODLIST  0x2040ULL
#define LAYOUT_PVH_MEMMAP   0x3000ULL
#define LAYOUT_ZERO_PAGE    0x7000ULL
#define LAYOUT_BOOT_STACK   0x8ff0ULL /* initial RSP, 16-byte aligned */
#define LAYOUT_PML4         0x9000ULL
#define LAYOUT_PDPT         0xa000ULL
#define LAYOUT_PD           0xb000ULL /* LAYOUT_PD_COUNT pages */
#define LAYOUT_PD_COUNT     4         /* 4 x 1 GiB: identity map of 4 GiB */
#define LAYOUT_CMDLINE      0x20000ULL
#define LAYOUT_CMDLINE_MAX  0x10000ULL
#define LAYOUT_MPTABLE      0x9fc00ULL
#define LAYOUT_EBDA_START   0x9fc00ULL /* E820: reserved from here ... */
#define LAYOUT_HIMEM        0x100000ULL /* ... to 1 MiB, where RAM resumes */
#define LAYOUT_KERNEL_LOAD  0x100000ULL

/* x86 COMMAND_LINE_SIZE: what a vmlinux, which has no setup header to say
 * otherwise, accepts including the NUL. */
#define LAYOUT_ELF_CMDLINE_MAX 2048

/* Highest initrd byte for an ELF vmlinux, which carries no initrd_addr_max:
 * what current bzImages declare (2 GiB - 1). */
#define LAYOUT_ELF_INITRD_MAX 0x7fffffffULL

#endif
