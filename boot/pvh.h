/* The PVH boot ABI's start-of-day structures (Xen's
 * include/public/arch-x86/hvm/start_info.h, version 1), which a kernel
 * entered at its XEN_ELFNOTE_PHYS32_ENTRY finds through EBX. */
#ifndef EMBER_BOOT_PVH_H
#define EMBER_BOOT_PVH_H

#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../mem.h"
#include "zeropage.h"

#define PVH_MAGIC 0x336ec578 /* "xEn3" with the 0x80 bit of the "E" set */
#define PVH_VERSION 1        /* adds the memory map */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;     /* 0: ember has no ACPI */
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;           /* same numbering as E820 */
	uint32_t reserved;
};

/* Write hvm_start_info at LAYOUT_PVH_INFO, the memory map (the n E820
 * entries of map) at LAYOUT_PVH_MEMMAP and, when initrd_size is non-zero, a
 * one-module list for the initrd at LAYOUT_PVH_MODLIST.  cmdline is the
 * command line's guest-physical address.  Returns 0, or -1 with e set when
 * guest RAM does not cover those addresses. */
int pvh_write(const struct guest_mem *m, uint64_t cmdline, uint64_t initrd_start,
	      uint64_t initrd_size, const struct e820_entry *map, size_t n, struct err *e);

#endif
