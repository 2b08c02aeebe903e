/* boot_load(): picks the loader for the image, then writes the command line,
 * initrd, entry-protocol structures, GDT, page tables and MP table.  The
 * pieces live in the other boot/ modules; the addresses in layout.h. */
#include "boot.h"

#include <string.h>

#include "bzimage.h"
#include "cpu.h"
#include "elf.h"
#include "fmt.h"
#include "initrd.h"
#include "layout.h"
#include "mptable.h"
#include "pvh.h"
#include "zeropage.h"

/* The setup header a vmlinux lacks, as a boot loader copying a bzImage's
 * would have left it.  Linux ignores the initrd unless type_of_loader is
 * non-zero (setup.c: reserve_initrd), and version 2.12 is what its own PVH
 * path fills in for the same situation. */
static void elf_setup_header(struct boot_params *bp, size_t cmdline_max)
{
	bp->hdr.boot_flag = BP_BOOT_FLAG;
	bp->hdr.header = BP_HDR_MAGIC;
	bp->hdr.version = BZ_MIN_VERSION;
	bp->hdr.type_of_loader = BP_LOADER_OTHER;
	bp->hdr.cmdline_size = (uint32_t)(cmdline_max - 1);
}

static int load_kernel(const struct guest_mem *m, const struct boot_config *c,
		       struct boot_info *bi, uint64_t *initrd_max, struct boot_params *bp,
		       struct err *e)
{
	if (elf_is_elf(c->kernel, c->kernel_len)) {
		struct elf_kernel k;

		bi->kind = BOOT_KIND_ELF;
		bi->entry = c->entry == BOOT_ENTRY_PVH ? BOOT_ENTRY_PVH : BOOT_ENTRY_LINUX64;
		if (elf_load(m, c->kernel, c->kernel_len, bi->entry == BOOT_ENTRY_PVH, &k, e))
			return -1;
		bi->entry_addr = bi->entry == BOOT_ENTRY_PVH ? k.pvh_entry : k.entry64;
		bi->kernel_start = k.start;
		bi->kernel_end = k.end;
		bi->cmdline_max = LAYOUT_ELF_CMDLINE_MAX;
		*initrd_max = LAYOUT_ELF_INITRD_MAX;
		elf_setup_header(bp, bi->cmdline_max);
		return 0;
	}
	if (bz_is_bzimage(c->kernel, c->kernel_len)) {
		struct bz_kernel k;

		if (c->entry == BOOT_ENTRY_PVH)
			return err_set(e, "pvh boot needs an ELF vmlinux with a "
				       "XEN_ELFNOTE_PHYS32_ENTRY note; this kernel is a bzImage");
		bi->kind = BOOT_KIND_BZIMAGE;
		bi->entry = BOOT_ENTRY_LINUX64;
		if (bz_load(m, c->kernel, c->kernel_len, &k, bp, e))
			return -1;
		bi->entry_addr = k.entry;
		bi->kernel_start = k.start;
		bi->kernel_end = k.end;
		bi->cmdline_max = k.cmdline_max;
		*initrd_max = k.initrd_max;
		return 0;
	}
	return err_set(e, "not a Linux kernel: no ELF header and no bzImage setup header");
}

int boot_load(const struct guest_mem *m, const struct boot_config *c,
	      struct boot_info *out, struct err *e)
{
	const char *cmdline = c->cmdline ? c->cmdline : "";
	size_t cmdlen = strlen(cmdline), n;
	struct e820_entry map[E820_MAX];
	struct boot_info bi = { 0 };
	struct boot_params bp;
	uint64_t initrd_max = 0;
	char s[FMT_SIZE_LEN];

	if (!c->kernel || c->kernel_len == 0)
		return err_set(e, "kernel image is empty");
	if (c->ncpus < 1 || c->ncpus > BOOT_MAX_CPUS)
		return err_set(e, "%d vcpus is outside 1..%d", c->ncpus, BOOT_MAX_CPUS);
	if (c->entry != BOOT_ENTRY_AUTO && c->entry != BOOT_ENTRY_LINUX64 &&
	    c->entry != BOOT_ENTRY_PVH)
		return err_set(e, "unknown boot entry %d", (int)c->entry);
	if (c->initrd && c->initrd_len == 0)
		return err_set(e, "initrd is empty");
	if (!c->initrd && c->initrd_len)
		return err_set(e, "initrd of %zu bytes has no data", c->initrd_len);
	if (m->low_size <= LAYOUT_HIMEM)
		return err_set(e, "guest RAM (%s) is too small: the kernel goes above 1 MiB",
			       fmt_size(s, m->size));

	memset(&bp, 0, sizeof(bp));
	if (load_kernel(m, c, &bi, &initrd_max, &bp, e))
		return -1;

	if (cmdlen > bi.cmdline_max - 1)
		return err_set(e, "command line is %zu bytes; the kernel accepts at most %zu",
			       cmdlen, bi.cmdline_max - 1);
	if (gm_write(m, LAYOUT_CMDLINE, cmdline, cmdlen + 1))
		return err_set(e, "guest RAM too small for the command line at 0x%llx",
			       LAYOUT_CMDLINE);

	if (c->initrd) {
		if (initrd_place(m, c->initrd_len, bi.kernel_end, initrd_max, &bi.initrd_start, e))
			return -1;
		/* initrd_place() kept it inside low RAM. */
		memcpy(gm_ptr(m, bi.initrd_start, c->initrd_len), c->initrd, c->initrd_len);
		bi.initrd_size = c->initrd_len;
	}

	n = e820_build(m, map);
	if (bi.entry == BOOT_ENTRY_PVH) {
		if (pvh_write(m, LAYOUT_CMDLINE, bi.initrd_start, bi.initrd_size, map, n, e))
			return -1;
		bi.params_addr = LAYOUT_PVH_INFO;
	} else {
		bp.hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
		bp.ext_cmd_line_ptr = 0;
		bp.hdr.ramdisk_image = (uint32_t)bi.initrd_start;
		bp.ext_ramdisk_image = (uint32_t)(bi.initrd_start >> 32);
		bp.hdr.ramdisk_size = (uint32_t)bi.initrd_size;
		bp.ext_ramdisk_size = (uint32_t)(bi.initrd_size >> 32);
		memcpy(bp.e820_table, map, n * sizeof(map[0]));
		bp.e820_entries = (uint8_t)n;
		if (gm_write(m, LAYOUT_ZERO_PAGE, &bp, sizeof(bp)))
			return err_set(e, "guest RAM too small for the zero page at 0x%llx",
				       LAYOUT_ZERO_PAGE);
		bi.params_addr = LAYOUT_ZERO_PAGE;
	}

	if (cpu_write_tables(m, bi.entry, e) || mptable_write(m, c->ncpus, e))
		return -1;
	*out = bi;
	return 0;
}
