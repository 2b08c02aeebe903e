/* bzImage loading, the zero page it gets, the command line and the initrd,
 * on synthetic images built here. */
#define CHECK_FILE "boot_bzimage"
#include "../check.h"
#include "../../boot/boot.h"
#include "../../boot/layout.h"
#include "../../boot/zeropage.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RAM_SIZE  (64ULL << 20)
#define SETUP_LEN (5 * 512)   /* setup_sects = 4 */
#define PM_LEN    0x1000
#define IMG_MAX   (256 * 512 + PM_LEN)

struct bz_img {
	uint8_t b[IMG_MAX];
	size_t len;
	struct setup_header h;
};

/* Write im->h into the image and size it for its setup_sects. */
static void bz_finish(struct bz_img *im)
{
	unsigned sects = im->h.setup_sects ? im->h.setup_sects : 4;

	memcpy(im->b + 0x1f1, &im->h, sizeof(im->h));
	im->len = (sects + 1) * 512 + PM_LEN;
	for (size_t i = 0; i < PM_LEN; i++)
		im->b[(sects + 1) * 512 + i] = (uint8_t)(i * 13 + 5);
}

/* Protocol 2.15, relocatable, 2 MiB aligned, running at 16 MiB with an
 * 8 MiB init_size: a small modern x86-64 bzImage. */
static void build_bz(struct bz_img *im)
{
	memset(im, 0, sizeof(*im));
	im->h.setup_sects = 4;
	im->h.boot_flag = 0xaa55;
	im->h.jump = 0x6aeb; /* jmp to 0x26c: header ends at 0x202 + 0x6a */
	im->h.header = 0x53726448;
	im->h.version = 0x020f;
	im->h.loadflags = 0x01;
	im->h.initrd_addr_max = 0x7fffffff;
	im->h.kernel_alignment = 0x200000;
	im->h.relocatable_kernel = 1;
	im->h.min_alignment = 21;
	im->h.xloadflags = 0x0001 | 0x0002;
	im->h.cmdline_size = 2047;
	im->h.pref_address = 0x1000000;
	im->h.init_size = 0x800000;
	bz_finish(im);
}

static uint8_t *ram_new(struct guest_mem *m, uint64_t size)
{
	uint8_t *ram = calloc(1, size);

	gm_init(m, ram, size);
	return ram;
}

static struct boot_config cfg(const struct bz_img *im)
{
	return (struct boot_config){ .kernel = im->b, .kernel_len = im->len,
				     .cmdline = "console=ttyS0 quiet", .ncpus = 2,
				     .entry = BOOT_ENTRY_AUTO };
}

static void expect_error(const struct bz_img *im, const char *why)
{
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c = cfg(im);
	struct boot_info bi;
	struct err e = { { 0 } };

	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, why);
	CHECK(strchr(e.msg, '\n') == NULL);
	CHECK_EQ(ram[LAYOUT_KERNEL_LOAD], 0); /* nothing loaded */
	free(ram);
}

TEST(valid_bzimage_loads_at_1mib)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct boot_params bp;
	struct err e = { { 0 } };

	build_bz(&im);
	c = cfg(&im);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.kind, BOOT_KIND_BZIMAGE);
	CHECK_EQ(bi.entry, BOOT_ENTRY_LINUX64);
	CHECK_EQ(bi.entry_addr, 0x100200);
	CHECK_EQ(bi.kernel_start, 0x100000);
	CHECK_EQ(bi.kernel_end, 0x1000000 + 0x800000); /* pref_address + init_size */
	CHECK_EQ(bi.params_addr, LAYOUT_ZERO_PAGE);
	CHECK_EQ(bi.cmdline_max, 2048);
	CHECK_EQ(bi.initrd_start, 0);
	CHECK(memcmp(ram + 0x100000, im.b + SETUP_LEN, PM_LEN) == 0);
	CHECK_EQ(ram[0x100000 + PM_LEN], 0);

	memcpy(&bp, ram + LAYOUT_ZERO_PAGE, sizeof(bp));
	/* Header copied as found ... */
	CHECK_EQ(bp.hdr.setup_sects, 4);
	CHECK_EQ(bp.hdr.version, 0x020f);
	CHECK_EQ(bp.hdr.header, 0x53726448);
	CHECK_EQ(bp.hdr.kernel_alignment, 0x200000);
	CHECK_EQ(bp.hdr.init_size, 0x800000);
	CHECK_EQ(bp.hdr.pref_address, 0x1000000);
	CHECK_EQ(bp.hdr.xloadflags, 3);
	/* ... then the loader's fields. */
	CHECK_EQ(bp.hdr.type_of_loader, 0xff);
	CHECK_EQ(bp.hdr.loadflags, 0x81); /* LOADED_HIGH kept, CAN_USE_HEAP set */
	CHECK_EQ(bp.hdr.heap_end_ptr, 0xde00);
	CHECK_EQ(bp.hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	CHECK_EQ(bp.ext_cmd_line_ptr, 0);
	CHECK_EQ(bp.hdr.ramdisk_image, 0);
	CHECK_EQ(bp.hdr.ramdisk_size, 0);
	CHECK(strcmp((char *)ram + LAYOUT_CMDLINE, "console=ttyS0 quiet") == 0);
	/* The zero page's E820 map is e820_build()'s. */
	CHECK_EQ(bp.e820_entries, 3);
	CHECK_EQ(bp.e820_table[2].addr, 0x100000);
	CHECK_EQ(bp.e820_table[2].size, RAM_SIZE - 0x100000);
	CHECK_EQ(bp.e820_table[2].type, E820_RAM);
	free(ram);
}

TEST(setup_sects_zero_means_four)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_bz(&im);
	im.h.setup_sects = 0;
	bz_finish(&im);
	c = cfg(&im);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK(memcmp(ram + 0x100000, im.b + SETUP_LEN, PM_LEN) == 0);
	free(ram);
}

TEST(non_relocatable_runs_at_pref_address)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_bz(&im);
	im.h.relocatable_kernel = 0;
	im.h.pref_address = 0x2000000;
	bz_finish(&im);
	c = cfg(&im);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.kernel_end, 0x2000000 + 0x800000);
	/* Relocatable with a larger alignment than pref_address: aligned up. */
	build_bz(&im);
	im.h.kernel_alignment = 0x2000000;
	bz_finish(&im);
	c = cfg(&im);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.kernel_end, 0x2000000 + 0x800000);
	free(ram);
}

TEST(old_protocol_is_rejected)
{
	struct bz_img im;

	build_bz(&im);
	im.h.version = 0x020a;
	bz_finish(&im);
	expect_error(&im, "bzImage boot protocol 2.10 is too old (need >= 2.12)");
}

TEST(no_64bit_entry_is_rejected)
{
	struct bz_img im;

	build_bz(&im);
	im.h.xloadflags = 0x0002;
	bz_finish(&im);
	expect_error(&im, "xloadflags 0x2 lacks XLF_KERNEL_64");
}

TEST(zimage_is_rejected)
{
	struct bz_img im;

	build_bz(&im);
	im.h.loadflags = 0;
	bz_finish(&im);
	expect_error(&im, "zImage");
}

TEST(truncated_setup)
{
	struct bz_img im;

	build_bz(&im);
	im.len = 2000; /* inside the 2560-byte setup */
	expect_error(&im, "bzImage setup is 4 sectors (2560 bytes) but the file is only 2000 bytes");
	im.len = SETUP_LEN; /* setup only, no kernel */
	expect_error(&im, "leaving no kernel after it");
	im.len = 0x240; /* "HdrS" present, header cut short */
	expect_error(&im, "bzImage is 576 bytes, too short for its setup header");
	im.len = SETUP_LEN + 0x100; /* kernel shorter than its entry offset */
	expect_error(&im, "too short to hold its 64-bit entry");
}

TEST(absurd_setup_sects)
{
	struct bz_img im;

	build_bz(&im);
	im.len = 8192;
	im.b[0x1f1] = 255;
	expect_error(&im, "bzImage setup is 255 sectors (131072 bytes) but the file is only 8192");
}

TEST(short_header_jump)
{
	struct bz_img im;

	build_bz(&im);
	im.h.jump = 0x40eb; /* header would end at 0x242, before init_size */
	bz_finish(&im);
	expect_error(&im, "setup header ends at 0x242");
}

TEST(bad_alignment_and_placement)
{
	struct bz_img im;

	build_bz(&im);
	im.h.kernel_alignment = 0x300000;
	bz_finish(&im);
	expect_error(&im, "kernel_alignment 0x300000 is not a power of two");
	build_bz(&im);
	im.h.relocatable_kernel = 0;
	im.h.pref_address = 0x1000;
	bz_finish(&im);
	expect_error(&im, "run at 0x1000 (pref_address), below 1 MiB");
	build_bz(&im);
	im.h.init_size = 0x3100000; /* 49 MiB from 16 MiB in a 64 MiB guest */
	bz_finish(&im);
	expect_error(&im, "bzImage needs init_size 49 MiB at 0x1000000 but guest RAM ends at 0x4000000");
	build_bz(&im);
	im.h.init_size = 0x3000000; /* exactly up to the end of RAM: fits */
	bz_finish(&im);
	{
		struct guest_mem m;
		uint8_t *ram = ram_new(&m, RAM_SIZE);
		struct boot_config c = cfg(&im);
		struct boot_info bi;
		struct err e = { { 0 } };

		CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
		CHECK_EQ(bi.kernel_end, RAM_SIZE);
		free(ram);
	}
	build_bz(&im);
	im.h.relocatable_kernel = 0;
	im.h.pref_address = UINT64_MAX - 0x100;
	bz_finish(&im);
	expect_error(&im, "bzImage needs init_size");
}

TEST(kernel_larger_than_ram)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, 2ULL << 20);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };
	uint8_t *big = calloc(1, 2ULL << 20);

	build_bz(&im);
	memcpy(big, im.b, SETUP_LEN);
	c = cfg(&im);
	c.kernel = big;
	c.kernel_len = 2ULL << 20;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "bzImage kernel (1.9 MiB) does not fit in guest RAM (2 MiB)");
	free(big);
	free(ram);
}

TEST(pvh_needs_an_elf)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_bz(&im);
	c = cfg(&im);
	c.entry = BOOT_ENTRY_PVH;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "this kernel is a bzImage");
	free(ram);
}

TEST(not_a_kernel)
{
	struct bz_img im;

	memset(&im, 0, sizeof(im));
	memset(im.b, 0x5a, 4096);
	im.len = 4096;
	expect_error(&im, "not a Linux kernel: no ELF header and no bzImage setup header");
	im.len = 3;
	expect_error(&im, "not a Linux kernel");
}

TEST(command_line_longer_than_cmdline_size)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	char line[201];
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_bz(&im);
	im.h.cmdline_size = 100;
	bz_finish(&im);
	memset(line, 'a', 200);
	line[200] = 0;
	c = cfg(&im);
	c.cmdline = line;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "command line is 200 bytes; the kernel accepts at most 100");
	line[100] = 0;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.cmdline_max, 101);
	CHECK_EQ(strlen((char *)ram + LAYOUT_CMDLINE), 100);
	/* A huge cmdline_size is capped at ember's command line area. */
	im.h.cmdline_size = 0xffffffff;
	bz_finish(&im);
	c = cfg(&im);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.cmdline_max, LAYOUT_CMDLINE_MAX);
	free(ram);
}

TEST(initrd_at_top_of_ram_below_initrd_addr_max)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	static uint8_t initrd[5000];
	struct boot_config c;
	struct boot_info bi;
	struct boot_params bp;
	struct err e = { { 0 } };

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x3c);
	build_bz(&im);
	c = cfg(&im);
	c.initrd = initrd;
	c.initrd_len = sizeof(initrd);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.initrd_start, 0x3ffe000); /* 64 MiB - 5000, page aligned down */
	CHECK_EQ(bi.initrd_size, sizeof(initrd));
	CHECK(memcmp(ram + bi.initrd_start, initrd, sizeof(initrd)) == 0);
	memcpy(&bp, ram + LAYOUT_ZERO_PAGE, sizeof(bp));
	CHECK_EQ(bp.hdr.ramdisk_image, 0x3ffe000);
	CHECK_EQ(bp.hdr.ramdisk_size, sizeof(initrd));
	CHECK_EQ(bp.ext_ramdisk_image, 0);
	CHECK_EQ(bp.ext_ramdisk_size, 0);

	/* initrd_addr_max is the highest byte it may occupy. */
	build_bz(&im);
	im.h.initrd_addr_max = 0x2ffffff;
	bz_finish(&im);
	c = cfg(&im);
	c.initrd = initrd;
	c.initrd_len = sizeof(initrd);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK_EQ(bi.initrd_start, 0x2ffe000);
	CHECK(bi.initrd_start + bi.initrd_size <= 0x3000000);
	free(ram);
}

TEST(initrd_too_big)
{
	struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, RAM_SIZE);
	uint8_t *initrd = calloc(1, 70ULL << 20);
	struct boot_config c;
	struct boot_info bi;
	struct err e = { { 0 } };

	build_bz(&im);
	c = cfg(&im);
	c.initrd = initrd;
	c.initrd_len = 50ULL << 20;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "initrd (50 MiB) does not fit in guest RAM below 0x4000000: it "
		      "would overlap the kernel, which ends at 0x1800000");
	c.initrd_len = 70ULL << 20; /* larger than RAM itself */
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "initrd (70 MiB) does not fit in guest RAM below 0x4000000");
	c.initrd_len = 0;
	CHECK_EQ(boot_load(&m, &c, &bi, &e), -1);
	CHECK_STR_HAS(e.msg, "initrd is empty");
	free(initrd);
	free(ram);
}

/* Arbitrary corruption of the header and lengths must give an error or a
 * load, never an access outside the image or RAM (ASan aborts on those). */
TEST(mutated_images_never_crash)
{
	static struct bz_img im;
	struct guest_mem m;
	uint8_t *ram = ram_new(&m, 32ULL << 20);
	uint64_t x = 0x2545f4914f6cdd1dULL;
	int loaded = 0, failed = 0;

	for (int iter = 0; iter < 4000; iter++) {
		struct boot_config c;
		struct boot_info bi;
		struct err e = { { 0 } };
		uint8_t *copy;
		size_t len;

		build_bz(&im);
		for (int k = 0; k < 1 + iter % 4; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			im.b[0x1f1 + (x >> 8) % 0x80] = (uint8_t)(x >> 32);
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = iter % 5 == 0 ? (size_t)(x % im.len) : im.len;
		copy = malloc(len ? len : 1);
		memcpy(copy, im.b, len);
		c = (struct boot_config){ .kernel = copy, .kernel_len = len, .cmdline = "x",
					  .ncpus = 1, .entry = BOOT_ENTRY_AUTO };
		if (boot_load(&m, &c, &bi, &e) == 0) {
			loaded++;
			CHECK(bi.kernel_end <= m.low_size);
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

CHECK_MAIN(T(valid_bzimage_loads_at_1mib), T(setup_sects_zero_means_four),
	   T(non_relocatable_runs_at_pref_address), T(old_protocol_is_rejected),
	   T(no_64bit_entry_is_rejected), T(zimage_is_rejected), T(truncated_setup),
	   T(absurd_setup_sects), T(short_header_jump), T(bad_alignment_and_placement),
	   T(kernel_larger_than_ram), T(pvh_needs_an_elf), T(not_a_kernel),
	   T(command_line_longer_than_cmdline_size),
	   T(initrd_at_top_of_ram_below_initrd_addr_max), T(initrd_too_big),
	   T(mutated_images_never_crash))
