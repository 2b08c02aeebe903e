/* Choosing where the initrd goes. */
#ifndef EMBER_BOOT_INITRD_H
#define EMBER_BOOT_INITRD_H

#include <stdint.h>

#include "../err.h"
#include "../mem.h"

#define INITRD_ALIGN 4096ULL

/* Guest-physical start for an initrd of size bytes (size > 0): as high as
 * possible in low RAM, page-aligned, ending at or below
 * min(low RAM end, max_addr + 1) (max_addr is the highest byte the kernel
 * allows, its initrd_addr_max), and starting at or above kernel_end.  Pure
 * arithmetic: writes nothing.  Returns 0 with *start set, or -1 with e set
 * ("initrd (40 MiB) does not fit in guest RAM below 0x2000000 ..."). */
int initrd_place(const struct guest_mem *m, uint64_t size, uint64_t kernel_end,
		 uint64_t max_addr, uint64_t *start, struct err *e);

#endif
