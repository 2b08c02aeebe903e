/* A virtio device's interrupt line (kvm.c vm_irq_raise/vm_irq_lower)
 * against the userspace IOAPIC model, without KVM: the irqfd is a plain
 * eventfd here, so the test sees whether the loop would have written it.
 * Masked or never-programmed pins drop the interrupt, edge pins write the
 * irqfd (KVM then delivers the guest's route), level pins go through the
 * model, which holds the line until InterruptStatus is acknowledged. */
#define CHECK_FILE "virtio_irq"
#include "../check.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "kvm.h"

static int delivered;
static uint32_t last_data;

static void deliver(void *o, uint64_t addr, uint32_t data)
{
	delivered++;
	last_data = data;
}

static void routes_changed(void *o, const struct ioapic_msi *r)
{
}

static const struct ioapic_ops ops = { deliver, routes_changed };

static struct vm vm;
static struct vm_irq irq;

static void setup(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.ioapic = ioapic_new(1, &ops, NULL);
	irq.vm = &vm;
	irq.pin = 5;
	irq.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	atomic_init(&irq.raised, 0);
	atomic_init(&irq.masked, 0);
	delivered = 0;
}

static void teardown(void)
{
	close(irq.fd);
	ioapic_free(vm.ioapic);
}

static void rte(unsigned pin, uint32_t lo)
{
	uint32_t sel = 0x10 + 2 * pin, hi = 0;

	ioapic_mmio(vm.ioapic, 0, (uint8_t *)&sel, 4, true);
	ioapic_mmio(vm.ioapic, 0x10, (uint8_t *)&lo, 4, true);
	sel++;
	ioapic_mmio(vm.ioapic, 0, (uint8_t *)&sel, 4, true);
	ioapic_mmio(vm.ioapic, 0x10, (uint8_t *)&hi, 4, true);
}

static uint64_t irqfd_count(void)
{
	uint64_t n = 0;

	if (read(irq.fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

TEST(never_programmed_pin_drops)
{
	setup();
	vm_irq_raise(&irq);
	CHECK_EQ(irqfd_count(), 0);
	CHECK_EQ(delivered, 0);
	CHECK_EQ(atomic_load(&irq.masked), 1);
	teardown();
}

TEST(edge_pin_writes_irqfd)
{
	setup();
	rte(5, 0x35);                             /* vector 0x35, edge, unmasked */
	vm_irq_raise(&irq);
	vm_irq_raise(&irq);
	CHECK_EQ(irqfd_count(), 2);               /* one edge per raise */
	CHECK_EQ(delivered, 0);                   /* not through the model */
	vm_irq_lower(&irq);
	CHECK_EQ(delivered, 0);
	/* Masked: dropped, like an edge on a masked 82093AA pin. */
	rte(5, 0x35 | 1u << 16);
	vm_irq_raise(&irq);
	CHECK_EQ(irqfd_count(), 0);
	CHECK_EQ(atomic_load(&irq.masked), 1);
	/* Unmasked again: delivered again. */
	rte(5, 0x35);
	vm_irq_raise(&irq);
	CHECK_EQ(irqfd_count(), 1);
	teardown();
}

TEST(level_pin_goes_through_the_model)
{
	setup();
	rte(5, 0x36 | 1u << 15);                  /* level, unmasked */
	vm_irq_raise(&irq);
	CHECK_EQ(irqfd_count(), 0);
	CHECK_EQ(delivered, 1);
	CHECK_EQ(last_data & 0xff, 0x36);
	CHECK(last_data & (1u << 15));
	/* Still asserted, Remote IRR set: no second message... */
	vm_irq_raise(&irq);
	CHECK_EQ(delivered, 1);
	/* ...until the EOI, which re-delivers while the line is high. */
	ioapic_eoi(vm.ioapic, 0x36);
	CHECK_EQ(delivered, 2);
	/* The driver acked InterruptStatus to 0: the line drops; the next
	 * EOI delivers nothing. */
	vm_irq_lower(&irq);
	ioapic_eoi(vm.ioapic, 0x36);
	CHECK_EQ(delivered, 2);
	teardown();
}

TEST(level_pin_masked_delivers_on_unmask)
{
	setup();
	rte(5, 0x37 | 1u << 15 | 1u << 16);       /* level, masked */
	vm_irq_raise(&irq);
	CHECK_EQ(delivered, 0);
	CHECK_EQ(irqfd_count(), 0);
	rte(5, 0x37 | 1u << 15);                  /* unmask: the asserted line fires */
	CHECK_EQ(delivered, 1);
	teardown();
}

CHECK_MAIN(T(never_programmed_pin_drops), T(edge_pin_writes_irqfd),
	   T(level_pin_goes_through_the_model), T(level_pin_masked_delivers_on_unmask))
