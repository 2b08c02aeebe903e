/* ELF vmlinux loading and the PVH entry, on synthetic images built here. */
#define CHECK_FILE "boot_elf"
#include "../check.h"
#include "../../boot/boot.h"
#include "../../boot/layout.h"
#include "../../boot/pvh.h"
#include "../../boot/zeropage.h"

#include <elf.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE (64ULL << 20)
#define KBASE    0x200000ULL        /* p_paddr of the text segment */
#define KVIRT    0xffffffff81000000ULL
#define TEXT_OFF 0x1000             /* file offset of the text segment */
#define TEXT_LEN 0x300
#define TEXT_MEM 0x3000             /* memsz: the rest is bss */
#define DATA_OFF 0x1400
#define DATA_LEN 0x80
#define DATA_PA  0x400000ULL
#define NOTE_OFF 0x1600
#define PVH_ENTRY (KBASE + 0x40)
#define IMG_LEN  0x2000

/* A two-segment kernel with a PT_NOTE (or, with note_in_section, an
 * SHT_NOTE section instead) holding the Xen PVH entry note. */
struct elf_img {
	uint8_t b[IMG_LEN];
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph; /* [0] text, [1] data, [2] note */
};

static void put_note(uint8_t *at, unsigned descsz, uint64_t value)
{
	Elf64_Nhdr n = { .n_namesz = 4, .n_descsz = descsz, .n_type = 18 };

	memcpy(at, &n, sizeof(n));
	memcpy(at + sizeof(n), "Xen", 4);
	memcpy(at + sizeof(n) + 4, &value, descsz);
}

static void build_elf(struct elf_img *im, int with_note, unsigned descsz)
{
	memset(im, 0, sizeof(*im));
	im->len = IMG_LEN;
	im->eh = (Elf64_Ehdr *)im->b;
	im->ph = (Elf64_Phdr *)(im->b + sizeof(Elf64_Ehdr));
	memcpy(im->eh->e_ident, ELFMAG, SELFMAG);
	im->eh->e_ident[EI_CLASS] = ELFCLASS64;
	im->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	im->eh->e_ident[EI_VERSION] = EV_CURRENT;
	im->eh->e_type = ET_EXEC;
	im->eh->e_machine = EM_X86_64;
	im->eh->e_version = EV_CURRENT;
	im->eh->e_entry = KBASE + 0x10;
	im->eh->e_phoff = sizeof(Elf64_Ehdr);
	im->eh->e_ehsize = sizeof(Elf64_Ehdr);
	im->eh->e_phentsize = sizeof(Elf64_Phdr);
	im->eh->e_phnum = with_note ? 3 : 2;

	im->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = TEXT_OFF, .p_vaddr = KVIRT,
				  .p_paddr = KBASE, .p_filesz = TEXT_LEN, .p_memsz = TEXT_MEM };
	im->ph[1] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = DATA_OFF,
				  .p_vaddr = KVIRT + DATA_PA - KBASE, .p_paddr = DATA_PA,
				  .p_filesz = DATA_LEN, .p_memsz = DATA_LEN };
	for (int i = 0; i < TEXT_LEN; i++)
		im->b[TEXT_OFF + i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < DATA_LEN; i++)
		im->b[DATA_OFF + i] = (uint8_t)(0xd0 + i);
	if (with_note) {
		/* An unrelated note first, so the walker must step over one. */
		Elf64_Nhdr other = { .n_namesz = 4, .n_descsz = 6, .n_type = 1 };

		memcpy(im->b + NOTE_OFF, &other, sizeof(other));
		memcpy(im->b + NOTE_OFF + 12, "GNU", 4);
		put_note(im->b + NOTE_OFF + 12 + 4 + 8, descsz, PVH_ENTRY);
		im->ph[2] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = NOTE_OFF,
					  .p_filesz = 24 + 12 + 4 + ((descsz + 3) & ~3u),
					  .p_align = 4 };
	}
}

static uint8_t *ram_new(struct guest_mem *m, uint64_t size)
{
	uint8_t *ram = calloc(1, size);

	gm_init(m, ram, size);
	return ram;
}

static struct boot_config cfg(const struct elf_img *im, enum boot_entry entry)
{
	return (struct boot_config){ .kernel = im->b, .kernel_len = im->len,
				     .cmdline = "console=ttyS0", .ncpus = 1, .entry = entry };
}

/* boot_load must fail and say 'why'. */
static void expect_error(const struct elf_img *im, enum boot_entry entry, const char *why)
{
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c = cfg(im, entry);
	struct boot_info bi;
	struct err e = { { 0 } };

	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, why);
	CHECK(strchr(e.msg, '\n') == NULL);
	free(ram);
}

TEST(loads_segments_at_paddr_and_zeroes_bss)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct boot_params bp;
	struct err e = { { 0 } };
	int ok = 1;

	build_elf(&im, 1, 4);
	c = cfg(&im, BOOT_ENTRY_AUTO);
	memset(ram + KBASE, 0xaa, TEXT_MEM); /* stale bytes where the bss goes */
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.kind, BOOT_KIND_ELF);
	CHECK_EQ(bi.entry, BOOT_ENTRY_LINUX64); /* AUTO ignores the PVH note */
	CHECK_EQ(bi.entry_addr, KBASE + 0x10);
	CHECK_EQ(bi.kernel_start, KBASE);
	CHECK_EQ(bi.kernel_end, DATA_PA + DATA_LEN);
	CHECK_EQ(bi.params_addr, LAYOUT_ZERO_PAGE);
	CHECK_EQ(bi.cmdline_max, 2048);
	CHECK(memcmp(ram + KBASE, im.b + TEXT_OFF, TEXT_LEN) == 0);
	for (uint64_t i = TEXT_LEN; i < TEXT_MEM; i++)
		ok &= ram[KBASE + i] == 0;
	CHECK(ok);
	CHECK(memcmp(ram + DATA_PA, im.b + DATA_OFF, DATA_LEN) == 0);

	/* The zero page a vmlinux gets: a fabricated header Linux accepts. */
	memcpy(&bp, ram + LAYOUT_ZERO_PAGE, sizeof(bp));
	CHECK_EQ(bp.hdr.type_of_loader, 0xff);
	CHECK_EQ(bp.hdr.boot_flag, 0xaa55);
	CHECK_EQ(bp.hdr.header, 0x53726448);
	CHECK_EQ(bp.hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	CHECK_EQ(bp.ext_cmd_line_ptr, 0);
	CHECK_EQ(bp.hdr.cmdline_size, 2047);
	CHECK_EQ(bp.hdr.ramdisk_image, 0);
	CHECK(strcmp((char *)ram + LAYOUT_CMDLINE, "console=ttyS0") == 0);
	free(ram);
}

TEST(high_virtual_entry_is_translated)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_elf(&im, 0, 4);
	im.eh->e_entry = KVIRT + 0x20;
	c = cfg(&im, BOOT_ENTRY_LINUX64);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.entry_addr, KBASE + 0x20);
	free(ram);
}

static void check_pvh(unsigned descsz, int in_section)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct hvm_start_info si;
	struct hvm_memmap_table_entry mm[4];
	struct err e = { { 0 } };

	build_elf(&im, 1, descsz);
	if (in_section) {
		/* Move the note out of the program headers into a section. */
		Elf64_Shdr sh[2] = { { 0 }, { .sh_type = SHT_NOTE, .sh_offset = NOTE_OFF,
					     .sh_size = im.ph[2].p_filesz } };

		im.eh->e_phnum = 2;
		im.eh->e_shoff = 0x1800;
		im.eh->e_shentsize = sizeof(Elf64_Shdr);
		im.eh->e_shnum = 2;
		memcpy(im.b + 0x1800, sh, sizeof(sh));
	}
	c = cfg(&im, BOOT_ENTRY_PVH);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.entry, BOOT_ENTRY_PVH);
	CHECK_EQ(bi.entry_addr, PVH_ENTRY);
	CHECK_EQ(bi.params_addr, LAYOUT_PVH_INFO);

	memcpy(&si, ram + LAYOUT_PVH_INFO, sizeof(si));
	CHECK_EQ(si.magic, 0x336ec578);
	CHECK_EQ(si.version, 1);
	CHECK_EQ(si.cmdline_paddr, LAYOUT_CMDLINE);
	CHECK_EQ(si.nr_modules, 0);
	CHECK_EQ(si.rsdp_paddr, 0);
	CHECK_EQ(si.memmap_paddr, LAYOUT_PVH_MEMMAP);
	CHECK_EQ(si.memmap_entries, 3);
	memcpy(mm, ram + LAYOUT_PVH_MEMMAP, sizeof(mm));
	CHECK_EQ(mm[0].addr, 0);
	CHECK_EQ(mm[0].size, 0x9fc00);
	CHECK_EQ(mm[0].type, 1);
	CHECK_EQ(mm[1].type, 2);
	CHECK_EQ(mm[2].addr, 0x100000);
	CHECK_EQ(mm[2].size, RAM_SIZE - 0x100000);
	CHECK_EQ(mm[2].type, 1);
	CHECK(strcmp((char *)ram + LAYOUT_CMDLINE, "console=ttyS0") == 0);
	free(ram);
}

TEST(pvh_note_found_and_used)
{
	check_pvh(4, 0);
}

TEST(pvh_note_with_8_byte_value)
{
	check_pvh(8, 0); /* what Linux's _ASM_PTR emits on x86-64 */
}

TEST(pvh_note_in_section_only)
{
	check_pvh(4, 1);
}

TEST(pvh_initrd_in_module_list)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	static const uint8_t initrd[5000] = { 1, 2, 3 };
	struct boot_config c;
	struct boot_info bi;
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct err e = { { 0 } };

	build_elf(&im, 1, 4);
	c = cfg(&im, BOOT_ENTRY_PVH);
	c.initrd = initrd;
	c.initrd_len = sizeof(initrd);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	memcpy(&si, ram + LAYOUT_PVH_INFO, sizeof(si));
	CHECK_EQ(si.nr_modules, 1);
	CHECK_EQ(si.modlist_paddr, LAYOUT_PVH_MODLIST);
	memcpy(&mod, ram + LAYOUT_PVH_MODLIST, sizeof(mod));
	CHECK_EQ(mod.paddr, bi.initrd_start);
	CHECK_EQ(mod.size, sizeof(initrd));
	CHECK_EQ(bi.initrd_start, (RAM_SIZE - sizeof(initrd)) & ~0xfffULL);
	CHECK(memcmp(ram + bi.initrd_start, initrd, sizeof(initrd)) == 0);
	free(ram);
}

TEST(pvh_without_note_is_an_error)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	expect_error(&im, BOOT_ENTRY_PVH, "no XEN_ELFNOTE_PHYS32_ENTRY note");
}

TEST(pvh_note_with_bad_size)
{
	struct elf_img im;

	build_elf(&im, 1, 2);
	expect_error(&im, BOOT_ENTRY_PVH, "2-byte value");
}

TEST(pvh_note_running_past_its_segment)
{
	struct elf_img im;

	build_elf(&im, 1, 4);
	im.ph[2].p_filesz -= 4;
	expect_error(&im, BOOT_ENTRY_PVH, "runs past the end of segment 2");
}

TEST(truncated_elf_header)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.len = 40;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF image is 40 bytes, shorter than an ELF64 header");
}

TEST(program_headers_beyond_file)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.eh->e_phoff = IMG_LEN - 64;
	expect_error(&im, BOOT_ENTRY_AUTO, "program headers at offset 0x1fc0 (2 of them) lie beyond");
	build_elf(&im, 0, 4);
	im.eh->e_phoff = UINT64_MAX - 8; /* offset + size wraps */
	expect_error(&im, BOOT_ENTRY_AUTO, "lie beyond the end of the file (8192 bytes)");
}

TEST(segment_file_range_beyond_file)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.ph[1].p_offset = IMG_LEN - 0x10;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF segment 1 file range [0x1ff0, +0x80) lies beyond");
	build_elf(&im, 0, 4);
	im.ph[1].p_offset = UINT64_MAX;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF segment 1 file range");
}

TEST(segment_outside_ram)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.ph[1].p_paddr = 0x1000000;
	im.ph[1].p_memsz = 0x4000000;
	expect_error(&im, BOOT_ENTRY_AUTO,
		     "ELF segment 1 [0x1000000, 0x5000000) lies outside guest RAM (64 MiB)");
	build_elf(&im, 0, 4);
	im.ph[1].p_paddr = UINT64_MAX - 0x10;
	expect_error(&im, BOOT_ENTRY_AUTO, "wraps around the address space");
}

TEST(segment_below_1mib)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.ph[1].p_paddr = 0x9f000;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF segment 1 [0x9f000, 0x9f080) starts below 1 MiB");
}

TEST(overlapping_segments)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.ph[1].p_paddr = KBASE + TEXT_MEM - 0x10; /* lands in the text's bss */
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF segments 0 [0x200000, 0x203000) and 1 "
		     "[0x202ff0, 0x203070) overlap");
}

TEST(filesz_larger_than_memsz)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.ph[1].p_memsz = DATA_LEN - 1;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF segment 1 has p_filesz 0x80 > p_memsz 0x7f");
}

TEST(wrong_class_machine_type)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.eh->e_ident[EI_CLASS] = ELFCLASS32;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF class 1 is not ELF64");
	build_elf(&im, 0, 4);
	im.eh->e_machine = EM_386;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF machine 3 is not x86-64");
	build_elf(&im, 0, 4);
	im.eh->e_type = ET_DYN;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF type 3 is not an executable");
	build_elf(&im, 0, 4);
	im.eh->e_phnum = 0;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF has no program headers");
	build_elf(&im, 0, 4);
	im.eh->e_phnum = 100; /* would overflow the loader's segment table */
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF has 100 program headers; ember supports at most 64");
	build_elf(&im, 0, 4);
	im.eh->e_phentsize = 32;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF program header size 32 is not 56");
	build_elf(&im, 0, 4);
	im.eh->e_ident[EI_DATA] = ELFDATA2MSB;
	expect_error(&im, BOOT_ENTRY_AUTO, "not little-endian");
	build_elf(&im, 0, 4);
	im.ph[0].p_type = PT_NULL;
	im.ph[1].p_type = PT_NULL;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF has no loadable segments");
}

TEST(entry_outside_segments)
{
	struct elf_img im;

	build_elf(&im, 0, 4);
	im.eh->e_entry = 0x300000;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF entry point 0x300000 is not inside");
	build_elf(&im, 0, 4);
	im.eh->e_entry = 0xffffffff90000000ULL;
	expect_error(&im, BOOT_ENTRY_AUTO, "ELF entry point 0xffffffff90000000 is not inside");
}

TEST(nothing_written_when_a_later_segment_is_bad)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_elf(&im, 0, 4);
	im.ph[1].p_memsz = 0; /* filesz > memsz */
	c = cfg(&im, BOOT_ENTRY_AUTO);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_EQ(ram[KBASE], 0);
	CHECK_EQ(ram[KBASE + 1], 0);
	free(ram);
}

TEST(command_line_too_long_for_vmlinux)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	static char line[3001];
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_elf(&im, 0, 4);
	memset(line, 'x', 3000);
	c = cfg(&im, BOOT_ENTRY_AUTO);
	c.cmdline = line;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "command line is 3000 bytes; the kernel accepts at most 2047");
	line[2047] = 0; /* exactly the limit fits */
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(strlen((char *)ram + LAYOUT_CMDLINE), 2047);
	free(ram);
}

/* Arbitrary corruption of a valid image must give an error or a load, never
 * a read outside the image or a write outside RAM (ASan aborts on those). */
TEST(mutated_images_never_crash)
{
	struct elf_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, 8ULL << 20);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int loaded = 0, failed = 0;

	for (int iter = 0; iter < 4000; iter++) {
		struct boot_config c;
		struct boot_info bi;
		struct err e = { { 0 } };
		uint8_t *copy;
		size_t len;

		build_elf(&im, 1, 4);
		for (int k = 0; k < 1 + iter % 8; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Bias towards the headers, where the numbers are. */
			size_t at = (x >> 8) % (iter & 1 ? 0x200 : IMG_LEN);

			im.b[at] = (uint8_t)(x >> 32);
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = iter % 5 == 0 ? (size_t)(x % IMG_LEN) : IMG_LEN;
		/* An exact-size heap copy, so ASan sees any read past len. */
		copy = malloc(len ? len : 1);
		memcpy(copy, im.b, len);
		c = (struct boot_config){ .kernel = copy, .kernel_len = len, .cmdline = "x",
					  .ncpus = 2,
					  .entry = iter % 3 == 0 ? BOOT_ENTRY_PVH : BOOT_ENTRY_AUTO };
		if (boot_load(&m, &c, &bi, &e) == 0) {
			loaded++;
		} else {
			failed++;
			CHECK(e.msg[0] != 0);
		}
		free(copy);
	}
	CHECK(loaded > 0);
	CHECK(failed > 0);
	free(ram);
}

CHECK_MAIN(T(loads_segments_at_paddr_and_zeroes_bss), T(high_virtual_entry_is_translated),
	   T(pvh_note_found_and_used), T(pvh_note_with_8_byte_value),
	   T(pvh_note_in_section_only), T(pvh_initrd_in_module_list),
	   T(pvh_without_note_is_an_error), T(pvh_note_with_bad_size),
	   T(pvh_note_running_past_its_segment), T(truncated_elf_header),
	   T(program_headers_beyond_file), T(segment_file_range_beyond_file),
	   T(segment_outside_ram), T(segment_below_1mib), T(overlapping_segments),
	   T(filesz_larger_than_memsz), T(wrong_class_machine_type),
	   T(entry_outside_segments), T(nothing_written_when_a_later_segment_is_bad),
	   T(command_line_too_long_for_vmlinux), T(mutated_images_never_crash))
