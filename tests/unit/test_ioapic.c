#define CHECK_FILE "ioapic"
#include "../check.h"
#include "../../ioapic.h"

static int delivered, route_updates;
static uint64_t last_addr;
static uint32_t last_data;

static void deliver(void *o, uint64_t addr, uint32_t data)
{
	delivered++;
	last_addr = addr;
	last_data = data;
}

static void routes_changed(void *o, const struct ioapic_msi *r)
{
	route_updates++;
}

static const struct ioapic_ops ops = { deliver, routes_changed };

static void wr(struct ioapic *io, uint32_t reg, uint32_t v)
{
	ioapic_mmio(io, 0, (uint8_t *)&reg, 4, true);
	ioapic_mmio(io, 0x10, (uint8_t *)&v, 4, true);
}

static uint32_t rd(struct ioapic *io, uint32_t reg)
{
	uint32_t v;

	ioapic_mmio(io, 0, (uint8_t *)&reg, 4, true);
	ioapic_mmio(io, 0x10, (uint8_t *)&v, 4, false);
	return v;
}

static struct ioapic *fresh(void)
{
	delivered = route_updates = 0;
	return ioapic_new(2, &ops, NULL);
}

TEST(id_version_and_reset_state)
{
	struct ioapic *io = fresh();

	CHECK_EQ(rd(io, 0) >> 24, 2);
	CHECK_EQ(rd(io, 1), 0x170020);
	CHECK(rd(io, 0x10) & (1U << 16));          /* masked after reset */
	wr(io, 1, 0);                               /* version is read-only */
	CHECK_EQ(rd(io, 1), 0x170020);
	CHECK_EQ(rd(io, 0x40), 0xffffffff);         /* past the table */
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(delivered, 0);                     /* masked: nothing sent */
	ioapic_free(io);
}

TEST(edge_pin_sends_msi_on_rising_edge)
{
	struct ioapic *io = fresh();

	wr(io, 0x10 + 2 * 4 + 1, 1U << 24);         /* dest APIC 1 */
	wr(io, 0x10 + 2 * 4, 0x34);                 /* vector 0x34, edge, unmasked */
	CHECK_EQ(route_updates, 2);
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(delivered, 1);
	CHECK_EQ(last_addr, 0xfee01000);
	CHECK_EQ(last_data, 0x34);
	ioapic_set_irq(io, 4, 1);                   /* no new edge */
	CHECK_EQ(delivered, 1);
	ioapic_set_irq(io, 4, 0);
	ioapic_set_irq(io, 4, 1);
	CHECK_EQ(delivered, 2);
	wr(io, 0x10 + 2 * 4, 0x34 | (1U << 16));    /* mask only: no route update */
	CHECK_EQ(route_updates, 2);
	ioapic_set_irq(io, 99, 1);                  /* out of range: ignored */
	CHECK_EQ(delivered, 2);
	ioapic_free(io);
}

TEST(level_pin_waits_for_eoi)
{
	struct ioapic *io = fresh();

	wr(io, 0x10 + 2 * 5, 0x41 | (1U << 15));    /* level, vector 0x41 */
	ioapic_set_irq(io, 5, 1);
	CHECK_EQ(delivered, 1);
	CHECK_EQ(last_data, 0x41 | (1U << 15));
	CHECK(rd(io, 0x10 + 2 * 5) & (1U << 14));   /* Remote IRR */
	ioapic_set_irq(io, 5, 1);
	CHECK_EQ(delivered, 1);                     /* blocked until EOI */
	ioapic_eoi(io, 0x41);
	CHECK_EQ(delivered, 2);                     /* still asserted: again */
	ioapic_set_irq(io, 5, 0);
	ioapic_eoi(io, 0x41);
	CHECK_EQ(delivered, 2);
	CHECK(!(rd(io, 0x10 + 2 * 5) & (1U << 14)));
	/* Remote IRR is read-only to the guest. */
	wr(io, 0x10 + 2 * 5, 0x41 | (1U << 15) | (1U << 14));
	CHECK(!(rd(io, 0x10 + 2 * 5) & (1U << 14)));
	ioapic_free(io);
}

TEST(unmask_delivers_pending_level)
{
	struct ioapic *io = fresh();

	wr(io, 0x10 + 2 * 6, 0x50 | (1U << 15) | (1U << 16));
	ioapic_set_irq(io, 6, 1);
	CHECK_EQ(delivered, 0);
	wr(io, 0x10 + 2 * 6, 0x50 | (1U << 15));
	CHECK_EQ(delivered, 1);
	ioapic_free(io);
}

TEST(odd_sized_access_is_ignored)
{
	struct ioapic *io = fresh();
	uint8_t b[2] = { 0x10, 0 };

	ioapic_mmio(io, 0, b, 2, true);
	ioapic_mmio(io, 0x10, b, 2, false);
	CHECK_EQ(b[0], 0xff);
	CHECK_EQ(b[1], 0xff);
	ioapic_free(io);
}

CHECK_MAIN(T(id_version_and_reset_state), T(edge_pin_sends_msi_on_rising_edge),
	   T(level_pin_waits_for_eoi), T(unmask_delivers_pending_level),
	   T(odd_sized_access_is_ignored))
