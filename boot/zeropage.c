/* Zero page layout checks and the E820 map: see zeropage.h. */
#include "zeropage.h"

#include "layout.h"

/* The offsets Linux reads the fields from; a mistake here would silently
 * boot a kernel with garbage parameters. */
_Static_assert(sizeof(struct setup_header) == 0x26c - BP_HDR_OFFSET, "setup_header size");
_Static_assert(sizeof(struct boot_params) == 0x1000, "boot_params is one page");
_Static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
_Static_assert(offsetof(struct boot_params, ext_cmd_line_ptr) == 0x0c8, "ext_cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
_Static_assert(offsetof(struct boot_params, hdr) == BP_HDR_OFFSET, "hdr");
_Static_assert(offsetof(struct boot_params, hdr.boot_flag) == 0x1fe, "boot_flag");
_Static_assert(offsetof(struct boot_params, hdr.header) == 0x202, "header");
_Static_assert(offsetof(struct boot_params, hdr.type_of_loader) == 0x210, "type_of_loader");
_Static_assert(offsetof(struct boot_params, hdr.ramdisk_image) == 0x218, "ramdisk_image");
_Static_assert(offsetof(struct boot_params, hdr.heap_end_ptr) == 0x224, "heap_end_ptr");
_Static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
_Static_assert(offsetof(struct boot_params, hdr.initrd_addr_max) == 0x22c, "initrd_addr_max");
_Static_assert(offsetof(struct boot_params, hdr.xloadflags) == 0x236, "xloadflags");
_Static_assert(offsetof(struct boot_params, hdr.cmdline_size) == 0x238, "cmdline_size");
_Static_assert(offsetof(struct boot_params, hdr.pref_address) == 0x258, "pref_address");
_Static_assert(offsetof(struct boot_params, hdr.init_size) == 0x260, "init_size");
_Static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
_Static_assert(sizeof(struct e820_entry) == 20, "e820 entry");

static struct e820_entry e820(uint64_t addr, uint64_t end, uint32_t type)
{
	struct e820_entry r = { .addr = addr, .size = end - addr, .type = type };

	return r;
}

size_t e820_build(const struct guest_mem *m, struct e820_entry out[E820_MAX])
{
	uint64_t low = m->low_size;
	size_t n = 0;

	out[n++] = e820(0, low < LAYOUT_EBDA_START ? low : LAYOUT_EBDA_START, E820_RAM);
	if (low > LAYOUT_EBDA_START)
		out[n++] = e820(LAYOUT_EBDA_START, LAYOUT_HIMEM, E820_RESERVED);
	if (low > LAYOUT_HIMEM)
		out[n++] = e820(LAYOUT_HIMEM, low, E820_RAM);
	if (m->size > low)
		out[n++] = e820(MEM_4G, MEM_4G + (m->size - low), E820_RAM);
	return n;
}
