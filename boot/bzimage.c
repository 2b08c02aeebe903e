/* bzImage loader: see bzimage.h.
 *
 * Only the 64-bit entry is used, so the real-mode setup code is never loaded
 * or run: the setup header is all ember takes from the first
 * (setup_sects + 1) * 512 bytes. */
#include "bzimage.h"

#include <string.h>

#include "fmt.h"
#include "layout.h"

#define HDR_JUMP_END 0x202      /* the header's end is 0x202 + byte at 0x201 */
#define HDR_NEEDED_END 0x264    /* through init_size, the last field read */

int bz_is_bzimage(const uint8_t *img, size_t len)
{
	uint32_t magic;

	if (len < 0x206)
		return 0;
	memcpy(&magic, img + 0x202, 4);
	return magic == BP_HDR_MAGIC;
}

/* Where the kernel decompresses to and runs, as the decompressor's
 * startup_64 computes it (arch/x86/boot/compressed/head_64.S). */
static int runtime_start(const struct setup_header *h, uint64_t *rs, struct err *e)
{
	uint32_t align = h->kernel_alignment;

	if (!h->relocatable_kernel) {
		*rs = h->pref_address;
		return 0;
	}
	if (align == 0 || (align & (align - 1)))
		return err_set(e, "bzImage kernel_alignment 0x%x is not a power of two", align);
	*rs = (LAYOUT_KERNEL_LOAD + align - 1) & ~((uint64_t)align - 1);
	if (*rs < h->pref_address)
		*rs = h->pref_address;
	return 0;
}

int bz_load(const struct guest_mem *m, const uint8_t *img, size_t len, struct bz_kernel *k,
	    struct boot_params *bp, struct err *e)
{
	char s1[FMT_SIZE_LEN], s2[FMT_SIZE_LEN];
	struct setup_header h;
	uint64_t setup_len, pm_len, rs = 0, end;
	size_t hdr_end;
	unsigned sects;

	if (!bz_is_bzimage(img, len))
		return err_set(e, "not a bzImage: no \"HdrS\" setup header at 0x202");
	if (len < BP_HDR_OFFSET + sizeof(h))
		return err_set(e, "bzImage is %zu bytes, too short for its setup header", len);
	memcpy(&h, img + BP_HDR_OFFSET, sizeof(h));

	if (h.version < BZ_MIN_VERSION)
		return err_set(e, "bzImage boot protocol %u.%02u is too old (need >= %u.%02u)",
			       h.version >> 8, h.version & 0xff, BZ_MIN_VERSION >> 8,
			       BZ_MIN_VERSION & 0xff);
	if (!(h.loadflags & BP_LOADED_HIGH))
		return err_set(e, "kernel is a zImage (loadflags 0x%x lacks LOADED_HIGH); only "
			       "bzImage is supported", h.loadflags);
	if (!(h.xloadflags & BP_XLF_KERNEL_64))
		return err_set(e, "bzImage has no 64-bit entry point (xloadflags 0x%x lacks "
			       "XLF_KERNEL_64)", h.xloadflags);
	hdr_end = HDR_JUMP_END + img[0x201];
	if (hdr_end < HDR_NEEDED_END)
		return err_set(e, "bzImage setup header ends at 0x%zx, before init_size (0x260)",
			       hdr_end);

	sects = h.setup_sects ? h.setup_sects : 4; /* boot.rst: 0 means 4 */
	setup_len = ((uint64_t)sects + 1) * 512;
	if (setup_len >= len)
		return err_set(e, "bzImage setup is %u sectors (%llu bytes) but the file is only "
			       "%zu bytes, leaving no kernel after it", sects,
			       (unsigned long long)setup_len, len);
	pm_len = len - setup_len;
	if (pm_len <= BZ_ENTRY64_OFFSET)
		return err_set(e, "bzImage kernel is %llu bytes, too short to hold its 64-bit "
			       "entry at offset 0x%x", (unsigned long long)pm_len,
			       BZ_ENTRY64_OFFSET);
	if (pm_len > m->low_size || LAYOUT_KERNEL_LOAD > m->low_size - pm_len)
		return err_set(e, "bzImage kernel (%s) does not fit in guest RAM (%s) at 0x%llx",
			       fmt_size(s1, pm_len), fmt_size(s2, m->low_size),
			       LAYOUT_KERNEL_LOAD);

	if (runtime_start(&h, &rs, e))
		return -1;
	if (rs < LAYOUT_KERNEL_LOAD)
		return err_set(e, "bzImage wants to run at 0x%llx (pref_address), below 1 MiB",
			       (unsigned long long)rs);
	if (rs > m->low_size || h.init_size > m->low_size - rs)
		return err_set(e, "bzImage needs init_size %s at 0x%llx but guest RAM ends at "
			       "0x%llx", fmt_size(s1, h.init_size), (unsigned long long)rs,
			       (unsigned long long)m->low_size);
	end = rs + h.init_size;
	if (end < LAYOUT_KERNEL_LOAD + pm_len)
		end = LAYOUT_KERNEL_LOAD + pm_len;

	memcpy(gm_ptr(m, LAYOUT_KERNEL_LOAD, pm_len), img + setup_len, pm_len);

	/* boot.rst, 64-bit protocol: copy the header as found, up to its end,
	 * into a zeroed zero page, then write the loader's fields. */
	if (hdr_end > BP_HDR_OFFSET + BP_HDR_ROOM)
		hdr_end = BP_HDR_OFFSET + BP_HDR_ROOM;
	memcpy((uint8_t *)bp + BP_HDR_OFFSET, img + BP_HDR_OFFSET, hdr_end - BP_HDR_OFFSET);
	bp->hdr.type_of_loader = BP_LOADER_OTHER;
	bp->hdr.loadflags |= BP_CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = BZ_HEAP_END_PTR;

	k->entry = LAYOUT_KERNEL_LOAD + BZ_ENTRY64_OFFSET;
	k->start = LAYOUT_KERNEL_LOAD;
	k->end = end;
	k->initrd_max = h.initrd_addr_max ? h.initrd_addr_max : BZ_DEFAULT_INITRD_MAX;
	k->cmdline_max = (uint64_t)h.cmdline_size + 1 < LAYOUT_CMDLINE_MAX
				 ? (size_t)h.cmdline_size + 1
				 : (size_t)LAYOUT_CMDLINE_MAX;
	return 0;
}
