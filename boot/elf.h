/* Loading an ELF64 x86-64 kernel (a Linux vmlinux, or a freestanding test
 * guest) into guest RAM. */
#ifndef EMBER_BOOT_ELF_H
#define EMBER_BOOT_ELF_H

#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../mem.h"

#define ELF_MAX_PHDRS 64 /* a vmlinux has about 5; bounds the overlap check */

struct elf_kernel {
	uint64_t entry64;   /* guest-physical 64-bit entry (from e_entry) */
	uint64_t pvh_entry; /* guest-physical 32-bit PVH entry, when has_pvh */
	int has_pvh;
	uint64_t start;     /* lowest p_paddr of a loaded segment */
	uint64_t end;       /* highest p_paddr + p_memsz */
};

/* Whether img begins with the ELF magic.  An image that does is an ELF and
 * every problem with it is reported as an ELF problem. */
int elf_is_elf(const uint8_t *img, size_t len);

/* Validate img as an ELF64 little-endian x86-64 ET_EXEC and copy each
 * PT_LOAD segment to its p_paddr, zeroing p_memsz beyond p_filesz.  Segments
 * must lie in low guest RAM at or above 1 MiB (below it are ember's boot
 * structures), inside the file, and not overlap one another; the entry must
 * lie inside a loaded segment.  e_entry is used as physical unless it is in
 * the kernel's high mapping (>= 0xffffffff80000000), in which case it is
 * translated through the segment containing it.  When want_pvh is set, the
 * XEN_ELFNOTE_PHYS32_ENTRY note is looked up in PT_NOTE segments, then in
 * SHT_NOTE sections, and its absence is an error.  Nothing is written to
 * guest RAM unless every check passes.  Reads img only within [0, len).
 * Returns 0, or -1 with e set. */
int elf_load(const struct guest_mem *m, const uint8_t *img, size_t len, int want_pvh,
	     struct elf_kernel *k, struct err *e);

#endif
