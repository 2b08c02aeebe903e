#define CHECK_FILE "bus"
#include "../check.h"
#include "../../bus.h"

static uint64_t last_off;
static int hits[3];

static void h0(void *o, uint64_t off, uint8_t *d, uint32_t len, bool w) { hits[0]++; last_off = off; d[0] = 0xa0; }
static void h1(void *o, uint64_t off, uint8_t *d, uint32_t len, bool w) { hits[1]++; last_off = off; d[0] = 0xa1; }
static void h2(void *o, uint64_t off, uint8_t *d, uint32_t len, bool w) { hits[2]++; last_off = off; d[0] = 0xa2; }

TEST(dispatch_sorted_ranges)
{
	struct bus b = { .name = "pio" };
	struct err e;
	uint8_t d[8] = { 0 };

	CHECK_EQ(bus_register(&b, 0x3f8, 8, h1, NULL, "serial", &e), 0);
	CHECK_EQ(bus_register(&b, 0x60, 1, h0, NULL, "i8042 data", &e), 0);
	CHECK_EQ(bus_register(&b, 0xfec00000, 0x1000, h2, NULL, "ioapic", &e), 0);
	CHECK(bus_dispatch(&b, 0x3fd, d, 1, false));
	CHECK_EQ(d[0], 0xa1);
	CHECK_EQ(last_off, 5);
	CHECK(bus_dispatch(&b, 0x60, d, 1, true));
	CHECK_EQ(d[0], 0xa0);
	CHECK(bus_dispatch(&b, 0xfec00010, d, 4, false));
	CHECK_EQ(d[0], 0xa2);
	CHECK_EQ(last_off, 0x10);
	CHECK(!bus_dispatch(&b, 0x61, d, 1, false));
	CHECK(!bus_dispatch(&b, 0x3f7, d, 1, false));
	CHECK(!bus_dispatch(&b, 0x400, d, 1, false));
	CHECK(!bus_dispatch(&b, 0x3ff, d, 2, false));          /* runs off the end */
	CHECK(!bus_dispatch(&b, UINT64_MAX, d, 8, false));
	CHECK_EQ(hits[0] + hits[1] + hits[2], 3);
}

TEST(register_rejects_overlap_and_bad_ranges)
{
	struct bus b = { .name = "mmio" };
	struct err e;

	CHECK_EQ(bus_register(&b, 0x1000, 0x100, h0, NULL, "a", &e), 0);
	CHECK_EQ(bus_register(&b, 0x10ff, 1, h1, NULL, "b", &e), -1);
	CHECK_STR_HAS(e.msg, "overlaps a");
	CHECK_EQ(bus_register(&b, 0xf00, 0x101, h1, NULL, "c", &e), -1);
	CHECK_EQ(bus_register(&b, 0x1100, 0, h1, NULL, "d", &e), -1);
	CHECK_EQ(bus_register(&b, UINT64_MAX, 2, h1, NULL, "e", &e), -1);
	CHECK_EQ(bus_register(&b, 0x1100, 1, h1, NULL, "f", &e), 0);
	for (int i = 2; i < BUS_MAX_RANGES; i++)
		CHECK_EQ(bus_register(&b, 0x10000 + i * 16, 16, h2, NULL, "g", &e), 0);
	CHECK_EQ(bus_register(&b, 0x90000, 1, h2, NULL, "h", &e), -1);
	CHECK_STR_HAS(e.msg, "too many");
}

CHECK_MAIN(T(dispatch_sorted_ranges), T(register_rejects_overlap_and_bad_ranges))
