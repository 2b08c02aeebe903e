#define CHECK_FILE "mem"
#include "../check.h"
#include "../../mem.h"

#include <stdint.h>
#include <stdlib.h>

TEST(small_guest_bounds)
{
	static uint8_t ram[4096];
	struct guest_mem m;

	gm_init(&m, ram, sizeof(ram));
	CHECK(gm_ptr(&m, 0, 4096) == ram);
	CHECK(gm_ptr(&m, 4095, 1) == ram + 4095);
	CHECK(gm_ptr(&m, 4096, 0) == ram + 4096);
	CHECK(gm_ptr(&m, 4096, 1) == NULL);
	CHECK(gm_ptr(&m, 1, 4096) == NULL);
	CHECK(gm_ptr(&m, UINT64_MAX, 2) == NULL);
	CHECK(gm_ptr(&m, 8, UINT64_MAX) == NULL);
	CHECK(gm_ptr(&m, UINT64_MAX - 4, 8) == NULL);
	CHECK_EQ(gm_end(&m), 4096);
}

TEST(read_write_checked)
{
	static uint8_t ram[64];
	struct guest_mem m;
	uint32_t v = 0xdeadbeef, r = 0;

	gm_init(&m, ram, sizeof(ram));
	CHECK_EQ(gm_write(&m, 60, &v, 4), 0);
	CHECK_EQ(gm_read(&m, 60, &r, 4), 0);
	CHECK_EQ(r, 0xdeadbeef);
	CHECK_EQ(gm_write(&m, 61, &v, 4), -1);
	CHECK_EQ(gm_read(&m, 62, &r, 4), -1);
}

TEST(gap_above_3g)
{
	/* 5 GiB guest: the accessor's arithmetic only, no real 5 GiB buffer
	 * is dereferenced. */
	struct guest_mem m;
	uint8_t *base = (uint8_t *)0x10000000000ULL;

	gm_init(&m, base, 5ULL << 30);
	CHECK_EQ(m.low_size, MEM_LOW_MAX);
	CHECK(gm_ptr(&m, MEM_LOW_MAX - 8, 8) == base + MEM_LOW_MAX - 8);
	CHECK(gm_ptr(&m, MEM_LOW_MAX - 8, 16) == NULL);   /* straddles gap */
	CHECK(gm_ptr(&m, MEM_LOW_MAX + 1, 1) == NULL);    /* inside gap */
	CHECK(gm_ptr(&m, 0xfee00000, 4) == NULL);
	CHECK(gm_ptr(&m, MEM_4G, 4096) == base + MEM_LOW_MAX);
	CHECK(gm_ptr(&m, MEM_4G + (2ULL << 30) - 1, 1) == base + (5ULL << 30) - 1);
	CHECK(gm_ptr(&m, MEM_4G + (2ULL << 30), 1) == NULL);
	CHECK_EQ(gm_end(&m), MEM_4G + (2ULL << 30));
}

CHECK_MAIN(T(small_guest_bounds), T(read_write_checked), T(gap_above_3g))
