/* Loading a bzImage through the Linux x86 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst). */
#ifndef EMBER_BOOT_BZIMAGE_H
#define EMBER_BOOT_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../err.h"
#include "../mem.h"
#include "zeropage.h"

#define BZ_MIN_VERSION 0x020c /* 2.12: the first with XLF_KERNEL_64 */
#define BZ_ENTRY64_OFFSET 0x200 /* 64-bit entry: load address + 0x200 (ABI) */
#define BZ_HEAP_END_PTR 0xde00  /* boot.rst's sample: heap end 0xe000 - 0x200 */
#define BZ_DEFAULT_INITRD_MAX 0x37ffffffULL /* boot.rst, when the field is 0 */

struct bz_kernel {
	uint64_t entry;      /* guest-physical 64-bit entry */
	uint64_t start;      /* LAYOUT_KERNEL_LOAD */
	uint64_t end;        /* end of the loaded image or of the init_size
			      * bytes it decompresses into, whichever is higher */
	uint64_t initrd_max; /* highest address the initrd may occupy */
	size_t cmdline_max;  /* command line bytes accepted, with the NUL */
};

/* Whether img carries a setup header ("HdrS" at 0x202).  An image that does
 * is a bzImage and every problem with it is reported as a bzImage problem. */
int bz_is_bzimage(const uint8_t *img, size_t len);

/* Validate img (boot protocol >= 2.12, LOADED_HIGH, XLF_KERNEL_64, a setup
 * that leaves a protected-mode kernel in the file) and copy the
 * protected-mode kernel to LAYOUT_KERNEL_LOAD.  The kernel decompresses
 * itself at max(align_up(load, kernel_alignment), pref_address) (relocatable)
 * or pref_address, using init_size bytes there: that range must lie in low
 * RAM too and is included in k->end.  Copies the image's setup header into
 * bp->hdr (bp must be zeroed by the caller) and fills the loader's fields:
 * type_of_loader, CAN_USE_HEAP and heap_end_ptr.  cmd_line_ptr and the
 * ramdisk fields are the caller's.  Nothing is written to guest RAM unless
 * every check passes.  Reads img only within [0, len).  Returns 0, or -1
 * with e set. */
int bz_load(const struct guest_mem *m, const uint8_t *img, size_t len, struct bz_kernel *k,
	    struct boot_params *bp, struct err *e);

#endif
