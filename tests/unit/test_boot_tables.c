/* The memory map, initrd placement, MP table and size formatting. */
#define CHECK_FILE "boot_tables"
#include "../check.h"
#include "../../boot/boot.h"
#include "../../boot/fmt.h"
#include "../../boot/initrd.h"
#include "../../boot/layout.h"
#include "../../boot/mptable.h"
#include "../../boot/zeropage.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Never dereferenced: e820_build() and initrd_place() are arithmetic. */
static uint8_t *const fake_host = (uint8_t *)0x10000000000ULL;

#define CHECK_E820(ent, a, s, t)                 \
	do {                                     \
		CHECK_EQ((ent).addr, (a));       \
		CHECK_EQ((ent).size, (s));       \
		CHECK_EQ((ent).type, (t));       \
	} while (0)

TEST(e820_128mib)
{
	struct guest_mem m;
	struct e820_entry map[E820_MAX];

	gm_init(&m, fake_host, 128ULL << 20);
	CHECK_EQ(e820_build(&m, map), 3);
	CHECK_E820(map[0], 0, 0x9fc00, E820_RAM);
	CHECK_E820(map[1], 0x9fc00, 0x100000 - 0x9fc00, E820_RESERVED);
	CHECK_E820(map[2], 0x100000, (128ULL << 20) - 0x100000, E820_RAM);
}

TEST(e820_5gib_has_ram_above_4gib)
{
	struct guest_mem m;
	struct e820_entry map[E820_MAX];

	gm_init(&m, fake_host, 5ULL << 30);
	CHECK_EQ(e820_build(&m, map), 4);
	CHECK_E820(map[0], 0, 0x9fc00, E820_RAM);
	CHECK_E820(map[1], 0x9fc00, 0x60400, E820_RESERVED);
	CHECK_E820(map[2], 0x100000, 0xc0000000ULL - 0x100000, E820_RAM);
	CHECK_E820(map[3], 0x100000000ULL, 2ULL << 30, E820_RAM);
}

TEST(e820_exactly_3gib_has_no_high_part)
{
	struct guest_mem m;
	struct e820_entry map[E820_MAX];

	gm_init(&m, fake_host, 3ULL << 30);
	CHECK_EQ(e820_build(&m, map), 3);
	CHECK_E820(map[2], 0x100000, 0xc0000000ULL - 0x100000, E820_RAM);
}

TEST(e820_tiny_guest)
{
	struct guest_mem m;
	struct e820_entry map[E820_MAX];

	gm_init(&m, fake_host, 0x80000);
	CHECK_EQ(e820_build(&m, map), 1);
	CHECK_E820(map[0], 0, 0x80000, E820_RAM);
}

TEST(initrd_placement)
{
	struct guest_mem m;
	struct err e = { { 0 } };
	uint64_t at = 0;

	gm_init(&m, fake_host, 128ULL << 20);
	/* Top of low RAM, page aligned. */
	CHECK_EQ(initrd_place(&m, 12345, 0x2000000, UINT64_MAX, &at, &e), 0);
	CHECK_EQ(at, ((128ULL << 20) - 12345) & ~0xfffULL);
	CHECK_EQ(at % 4096, 0);
	/* initrd_addr_max is the last byte it may use. */
	CHECK_EQ(initrd_place(&m, 0x1000, 0x2000000, 0x4ffffff, &at, &e), 0);
	CHECK_EQ(at, 0x4fff000);
	CHECK_EQ(initrd_place(&m, 0x1001, 0x2000000, 0x4ffffff, &at, &e), 0);
	CHECK_EQ(at, 0x4ffe000);
	/* Right up against the kernel is fine; one byte more is not. */
	CHECK_EQ(initrd_place(&m, (128ULL << 20) - 0x2000000, 0x2000000, UINT64_MAX, &at, &e), 0);
	CHECK_EQ(at, 0x2000000);
	CHECK_EQ(initrd_place(&m, (128ULL << 20) - 0x2000000 + 1, 0x2000000, UINT64_MAX, &at,
			      &e), -1);
	CHECK_STR_HAS(e.msg, "does not fit in guest RAM below 0x8000000: it would overlap the "
		      "kernel, which ends at 0x2000000");
	CHECK_EQ(initrd_place(&m, 200ULL << 20, 0x2000000, UINT64_MAX, &at, &e), -1);
	CHECK_STR_HAS(e.msg, "initrd (200 MiB) does not fit in guest RAM below 0x8000000");
}

TEST(initrd_placement_in_a_5gib_guest)
{
	struct guest_mem m;
	struct err e = { { 0 } };
	uint64_t at = 0;

	gm_init(&m, fake_host, 5ULL << 30);
	/* Below the 3 GiB gap even without a kernel limit ... */
	CHECK_EQ(initrd_place(&m, 1 << 20, 0x2000000, UINT64_MAX, &at, &e), 0);
	CHECK_EQ(at, 0xc0000000ULL - (1 << 20));
	/* ... and below 2 GiB with the vmlinux default. */
	CHECK_EQ(initrd_place(&m, 1 << 20, 0x2000000, LAYOUT_ELF_INITRD_MAX, &at, &e), 0);
	CHECK_EQ(at, 0x80000000ULL - (1 << 20));
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static void check_mptable(int ncpus)
{
	uint8_t *ram = calloc(1, 1 << 20);
	struct guest_mem m;
	struct err e = { { 0 } };
	struct mpf_intel mpf;
	struct mpc_table mpc;
	const uint8_t *p, *end;
	int cpus = 0, buses = 0, ioapics = 0, ints = 0, lints = 0, bsps = 0;
	int irq_ok = 1;

	gm_init(&m, ram, 1 << 20);
	CHECK_EQ(mptable_write(&m, ncpus, &e), 0);
	memcpy(&mpf, ram + 0x9fc00, sizeof(mpf));
	CHECK(memcmp(mpf.signature, "_MP_", 4) == 0);
	CHECK_EQ(mpf.length, 1);
	CHECK_EQ(mpf.specification, 4);
	CHECK_EQ(sum(ram + 0x9fc00, 16), 0);
	CHECK(mpf.physptr >= 0x9fc10 && mpf.physptr < 0xa0000);

	memcpy(&mpc, ram + mpf.physptr, sizeof(mpc));
	CHECK(memcmp(mpc.signature, "PCMP", 4) == 0);
	CHECK_EQ(mpc.spec, 4);
	CHECK_EQ(mpc.lapic, 0xfee00000u);
	CHECK_EQ(sum(ram + mpf.physptr, mpc.length), 0);
	CHECK(mpf.physptr + mpc.length <= 0xa0000); /* stays in the EBDA KiB */
	CHECK_EQ(16 + mpc.length, mptable_size(ncpus));

	p = ram + mpf.physptr + sizeof(mpc);
	end = ram + mpf.physptr + mpc.length;
	for (int i = 0; i < mpc.oemcount && p < end; i++) {
		switch (p[0]) {
		case MP_PROCESSOR: {
			struct mpc_cpu c;

			memcpy(&c, p, sizeof(c));
			CHECK_EQ(c.apicid, cpus);
			CHECK(c.cpuflag & 1);
			bsps += (c.cpuflag & 2) != 0;
			CHECK_EQ((c.cpuflag & 2) != 0, cpus == 0);
			cpus++;
			p += sizeof(c);
			break;
		}
		case MP_BUS:
			CHECK(memcmp(p + 2, "ISA   ", 6) == 0);
			buses++;
			p += 8;
			break;
		case MP_IOAPIC: {
			struct mpc_ioapic io;

			memcpy(&io, p, sizeof(io));
			CHECK_EQ(io.apicid, ncpus);
			CHECK_EQ(io.apicver, MP_IOAPIC_VER);
			CHECK_EQ(io.flags, 1);
			CHECK_EQ(io.apicaddr, 0xfec00000u);
			ioapics++;
			p += 8;
			break;
		}
		case MP_INTSRC: {
			struct mpc_intsrc s;

			memcpy(&s, p, sizeof(s));
			irq_ok &= s.irqtype == 0 && s.irqflag == 0 && s.srcbus == 0 &&
				  s.srcbusirq == ints && s.dstirq == ints && s.dstapic == ncpus;
			ints++;
			p += 8;
			break;
		}
		case MP_LINTSRC: {
			struct mpc_intsrc s;

			memcpy(&s, p, sizeof(s));
			if (lints == 0)
				CHECK(s.irqtype == 3 && s.dstirq == 0); /* ExtINT -> LINT0 */
			else
				CHECK(s.irqtype == 1 && s.dstirq == 1); /* NMI -> LINT1 */
			lints++;
			p += 8;
			break;
		}
		default:
			CHECK(!"unknown MP entry type");
			p = end;
		}
	}
	CHECK(p == end);
	CHECK_EQ(cpus, ncpus);
	CHECK_EQ(bsps, 1);
	CHECK_EQ(buses, 1);
	CHECK_EQ(ioapics, 1);
	CHECK_EQ(ints, 24);
	CHECK(irq_ok);
	CHECK_EQ(lints, 2);
	CHECK_EQ(mpc.oemcount, ncpus + 1 + 1 + 24 + 2);
	free(ram);
}

TEST(mptable_one_cpu)
{
	check_mptable(1);
}

TEST(mptable_four_cpus)
{
	check_mptable(4);
}

TEST(mptable_max_cpus)
{
	check_mptable(BOOT_MAX_CPUS);
}

TEST(mptable_rejects_bad_counts_and_small_ram)
{
	uint8_t *ram = calloc(1, 1 << 20);
	struct guest_mem m;
	struct err e = { { 0 } };

	gm_init(&m, ram, 1 << 20);
	CHECK_EQ(mptable_write(&m, 0, &e), -1);
	CHECK_STR_HAS(e.msg, "0 vcpus is outside 1..32");
	CHECK_EQ(mptable_write(&m, 33, &e), -1);
	gm_init(&m, ram, 0x9fd00);
	CHECK_EQ(mptable_write(&m, 1, &e), -1);
	CHECK_STR_HAS(e.msg, "mp table");
	free(ram);
}

TEST(boot_load_writes_the_mptable)
{
	/* A minimal ELF: boot_load must put the MP table for c.ncpus in place. */
	uint8_t img[0x300] = { 0x7f, 'E', 'L', 'F', 2, 1, 1 };
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	uint8_t *ram = calloc(1, 4 << 20);
	struct guest_mem m;
	struct boot_config c = { .kernel = img, .kernel_len = sizeof(img), .cmdline = "",
				 .ncpus = 3 };
	struct boot_info bi;
	struct err e = { { 0 } };
	struct mpc_table mpc;
	uint32_t physptr;

	u16 = 2, memcpy(img + 16, &u16, 2);          /* e_type ET_EXEC */
	u16 = 62, memcpy(img + 18, &u16, 2);         /* e_machine */
	u64 = 0x100000, memcpy(img + 24, &u64, 8);   /* e_entry */
	u64 = 64, memcpy(img + 32, &u64, 8);         /* e_phoff */
	u16 = 56, memcpy(img + 54, &u16, 2);         /* e_phentsize */
	u16 = 1, memcpy(img + 56, &u16, 2);          /* e_phnum */
	u32 = 1, memcpy(img + 64, &u32, 4);          /* p_type PT_LOAD */
	u64 = 0x200, memcpy(img + 64 + 8, &u64, 8);  /* p_offset */
	u64 = 0x100000, memcpy(img + 64 + 24, &u64, 8); /* p_paddr */
	u64 = 0x100, memcpy(img + 64 + 32, &u64, 8); /* p_filesz */
	u64 = 0x100, memcpy(img + 64 + 40, &u64, 8); /* p_memsz */
	gm_init(&m, ram, 4 << 20);
	CHECK_EQ(boot_load(&m, &c, &bi, &e), 0);
	CHECK(memcmp(ram + 0x9fc00, "_MP_", 4) == 0);
	memcpy(&physptr, ram + 0x9fc04, 4);
	memcpy(&mpc, ram + physptr, sizeof(mpc));
	CHECK_EQ(mpc.oemcount, 3 + 1 + 1 + 24 + 2);
	free(ram);
}

TEST(sizes_are_formatted_readably)
{
	char b[FMT_SIZE_LEN];

	CHECK(strcmp(fmt_size(b, 128ULL << 20), "128 MiB") == 0);
	CHECK(strcmp(fmt_size(b, 3ULL << 19), "1.5 MiB") == 0);
	CHECK(strcmp(fmt_size(b, (2ULL << 20) - 1), "1.9 MiB") == 0);
	CHECK(strcmp(fmt_size(b, 12 << 10), "12 KiB") == 0);
	CHECK(strcmp(fmt_size(b, 100), "100 bytes") == 0);
	CHECK(strcmp(fmt_size(b, 0), "0 bytes") == 0);
}

CHECK_MAIN(T(e820_128mib), T(e820_5gib_has_ram_above_4gib), T(e820_exactly_3gib_has_no_high_part),
	   T(e820_tiny_guest), T(initrd_placement), T(initrd_placement_in_a_5gib_guest),
	   T(mptable_one_cpu), T(mptable_four_cpus), T(mptable_max_cpus),
	   T(mptable_rejects_bad_counts_and_small_ram), T(boot_load_writes_the_mptable),
	   T(sizes_are_formatted_readably))
