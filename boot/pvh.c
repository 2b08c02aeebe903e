/* PVH start_info: see pvh.h. */
#include "pvh.h"

#include "layout.h"

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info v1 size");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry size");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry size");
_Static_assert(LAYOUT_PVH_MODLIST >= LAYOUT_PVH_INFO + sizeof(struct hvm_start_info),
	       "modlist overlaps start_info");
_Static_assert(E820_MAX * sizeof(struct hvm_memmap_table_entry) <= 0x1000,
	       "memmap fits its page");

int pvh_write(const struct guest_mem *m, uint64_t cmdline, uint64_t initrd_start,
	      uint64_t initrd_size, const struct e820_entry *map, size_t n, struct err *e)
{
	struct hvm_start_info si = {
		.magic = PVH_MAGIC,
		.version = PVH_VERSION,
		.cmdline_paddr = cmdline,
		.memmap_paddr = LAYOUT_PVH_MEMMAP,
		.memmap_entries = (uint32_t)n,
	};
	struct hvm_memmap_table_entry mm[E820_MAX] = { 0 };

	if (n > E820_MAX)
		return err_set(e, "pvh memory map has %zu entries (at most %d)", n, E820_MAX);
	for (size_t i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){ .addr = map[i].addr,
							 .size = map[i].size,
							 .type = map[i].type };
	/* Built on the host and copied: guest RAM has no alignment promise. */
	if (gm_write(m, LAYOUT_PVH_MEMMAP, mm, n * sizeof(mm[0])))
		return err_set(e, "guest RAM too small for the pvh memory map at 0x%llx",
			       LAYOUT_PVH_MEMMAP);
	if (initrd_size) {
		struct hvm_modlist_entry mod = { .paddr = initrd_start, .size = initrd_size };

		if (gm_write(m, LAYOUT_PVH_MODLIST, &mod, sizeof(mod)))
			return err_set(e, "guest RAM too small for the pvh module list at 0x%llx",
				       LAYOUT_PVH_MODLIST);
		si.nr_modules = 1;
		si.modlist_paddr = LAYOUT_PVH_MODLIST;
	}
	if (gm_write(m, LAYOUT_PVH_INFO, &si, sizeof(si)))
		return err_set(e, "guest RAM too small for the pvh start info at 0x%llx",
			       LAYOUT_PVH_INFO);
	return 0;
}
