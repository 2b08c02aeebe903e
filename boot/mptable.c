/* MP table: see mptable.h. */
#include "mptable.h"

#include <string.h>

#include "boot.h"
#include "layout.h"

#define MP_BUS_ISA 0 /* our single bus's id */
#define MP_IRQ_INT 0
#define MP_IRQ_NMI 1
#define MP_IRQ_EXTINT 3
#define MP_APIC_ALL 0xff
#define MP_CPU_ENABLED 1
#define MP_CPU_BSP 2
/* Family 6 and CPUID.1 EDX FPU|APIC: informational, Linux only prints them. */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES ((1u << 0) | (1u << 9))

_Static_assert(sizeof(struct mpf_intel) == 16, "mpf_intel");
_Static_assert(sizeof(struct mpc_table) == 44, "mpc_table");
_Static_assert(sizeof(struct mpc_cpu) == 20, "mpc_cpu");
_Static_assert(sizeof(struct mpc_bus) == 8, "mpc_bus");
_Static_assert(sizeof(struct mpc_ioapic) == 8, "mpc_ioapic");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "mpc_intsrc");

#define MP_MAX_SIZE                                                               \
	(sizeof(struct mpf_intel) + sizeof(struct mpc_table) +                    \
	 BOOT_MAX_CPUS * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +        \
	 sizeof(struct mpc_ioapic) + (MP_IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc))
/* The whole table must stay in the reserved last KiB of base memory. */
_Static_assert(LAYOUT_MPTABLE + MP_MAX_SIZE <= 0xa0000, "MP table leaves the EBDA KiB");

size_t mptable_size(int ncpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       (size_t)ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) + (MP_IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc);
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

int mptable_write(const struct guest_mem *m, int ncpus, struct err *e)
{
	uint8_t buf[MP_MAX_SIZE];
	struct mpf_intel mpf = { .signature = "_MP_",
				 .physptr = (uint32_t)(LAYOUT_MPTABLE + sizeof(mpf)),
				 .length = 1, .specification = 4 };
	struct mpc_table mpc = { .signature = "PCMP", .spec = 4, .oem = "EMBER   ",
				 .productid = "MICROVM     ", .lapic = MP_LAPIC_ADDR };
	struct mpc_bus bus = { .type = MP_BUS, .busid = MP_BUS_ISA, .bustype = "ISA   " };
	struct mpc_ioapic io = { .type = MP_IOAPIC, .apicid = (uint8_t)ncpus,
				 .apicver = MP_IOAPIC_VER, .flags = 1,
				 .apicaddr = MP_IOAPIC_ADDR };
	size_t size, pos = sizeof(mpf) + sizeof(mpc);
	uint16_t count = 0;

	if (ncpus < 1 || ncpus > BOOT_MAX_CPUS)
		return err_set(e, "%d vcpus is outside 1..%d", ncpus, BOOT_MAX_CPUS);
	size = mptable_size(ncpus);
	memset(buf, 0, sizeof(buf));

	for (int i = 0; i < ncpus; i++) {
		struct mpc_cpu c = { .type = MP_PROCESSOR, .apicid = (uint8_t)i,
				     .apicver = MP_LAPIC_VER,
				     .cpuflag = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
				     .cpufeature = MP_CPU_SIGNATURE,
				     .featureflag = MP_CPU_FEATURES };

		memcpy(buf + pos, &c, sizeof(c));
		pos += sizeof(c);
		count++;
	}
	memcpy(buf + pos, &bus, sizeof(bus));
	pos += sizeof(bus);
	count++;
	memcpy(buf + pos, &io, sizeof(io));
	pos += sizeof(io);
	count++;
	/* IRQ n on IOAPIC pin n, polarity and trigger as the ISA bus says
	 * (edge, active high): ember wires each device's IRQ n to pin n, with
	 * no IRQ 0 -> pin 2 override as on real PCs. */
	for (int irq = 0; irq < MP_IOAPIC_PINS; irq++) {
		struct mpc_intsrc s = { .type = MP_INTSRC, .irqtype = MP_IRQ_INT,
					.srcbus = MP_BUS_ISA, .srcbusirq = (uint8_t)irq,
					.dstapic = (uint8_t)ncpus, .dstirq = (uint8_t)irq };

		memcpy(buf + pos, &s, sizeof(s));
		pos += sizeof(s);
		count++;
	}
	/* Virtual-wire mode: the PIC's output on the BSP's LINT0, NMI on every
	 * CPU's LINT1. */
	{
		struct mpc_intsrc ext = { .type = MP_LINTSRC, .irqtype = MP_IRQ_EXTINT,
					  .srcbus = MP_BUS_ISA, .dstapic = 0, .dstirq = 0 };
		struct mpc_intsrc nmi = { .type = MP_LINTSRC, .irqtype = MP_IRQ_NMI,
					  .srcbus = MP_BUS_ISA, .dstapic = MP_APIC_ALL,
					  .dstirq = 1 };

		memcpy(buf + pos, &ext, sizeof(ext));
		pos += sizeof(ext);
		memcpy(buf + pos, &nmi, sizeof(nmi));
		pos += sizeof(nmi);
		count += 2;
	}

	mpc.length = (uint16_t)(size - sizeof(mpf));
	mpc.oemcount = count;
	memcpy(buf + sizeof(mpf), &mpc, sizeof(mpc));
	buf[sizeof(mpf) + offsetof(struct mpc_table, checksum)] =
		checksum(buf + sizeof(mpf), mpc.length);
	memcpy(buf, &mpf, sizeof(mpf));
	buf[offsetof(struct mpf_intel, checksum)] = checksum(buf, sizeof(mpf));

	if (gm_write(m, LAYOUT_MPTABLE, buf, size))
		return err_set(e, "guest RAM too small for the mp table at 0x%llx",
			       LAYOUT_MPTABLE);
	return 0;
}
