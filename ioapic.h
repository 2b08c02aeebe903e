/* Userspace I/O APIC (82093AA, version 0x20) for KVM's split irqchip.
 *
 * Why split: tearing down a VM with KVM's full in-kernel irqchip costs
 * 15.8 ms here (22.8 ms with the PIT) against 0.19 ms with the split irqchip
 * (bench/irqchip-cost.c), and ember's users create and destroy VMs by the
 * thousand.  With the split irqchip the LAPICs stay in the kernel and this
 * model turns pin assertions into MSIs (the message the real IOAPIC would
 * send on the APIC bus).
 *
 * The model is pure: it calls back to deliver an MSI and to publish the
 * pin -> MSI routes (KVM needs those to know which vectors are
 * level-triggered and must exit with KVM_EXIT_IOAPIC_EOI).  All entry points
 * take the internal lock; callbacks are invoked with it held and must not
 * re-enter the model.
 */
#ifndef EMBER_IOAPIC_H
#define EMBER_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#define IOAPIC_BASE     0xfec00000ULL
#define IOAPIC_SIZE     0x1000ULL
#define IOAPIC_NUM_PINS 24

struct ioapic_msi {
	uint64_t addr;
	uint32_t data;
	bool masked;
};

struct ioapic_ops {
	/* Send one MSI (KVM_SIGNAL_MSI). */
	void (*deliver)(void *opaque, uint64_t addr, uint32_t data);
	/* The routing-relevant fields of some pin changed: republish all
	 * IOAPIC_NUM_PINS routes (KVM_SET_GSI_ROUTING).  Mask-only changes do
	 * not call this. */
	void (*routes_changed)(void *opaque, const struct ioapic_msi *routes);
};

struct ioapic;

/* id is the IOAPIC's APIC-bus id (the MP table must say the same).  Returns
 * NULL on allocation failure.  All pins start masked, as after reset. */
struct ioapic *ioapic_new(uint8_t id, const struct ioapic_ops *ops, void *opaque);
void ioapic_free(struct ioapic *io);

/* Bus handler for [IOAPIC_BASE, +IOAPIC_SIZE): IOREGSEL at 0x00, IOWIN at
 * 0x10, EOI at 0x40.  Accesses of other sizes or offsets read as all-ones
 * and are ignored on write. */
void ioapic_mmio(void *io, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Drive an input pin (0 = low, 1 = high).  Edge pins send an MSI on a
 * rising edge when unmasked; level pins send one while high, unmasked and
 * not awaiting EOI (Remote IRR).  Out-of-range pins are ignored. */
void ioapic_set_irq(struct ioapic *io, unsigned pin, int level);

/* The local APIC acknowledged 'vector' (KVM_EXIT_IOAPIC_EOI): clear Remote
 * IRR on level pins with that vector and re-deliver if still asserted. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);

/* The MSI pin 'pin' sends now (what routes_changed published for it, with
 * the current mask bit; data bit 15 set = level-triggered).  Out-of-range
 * pins read as masked.  Lets a device that raises its interrupt through a
 * KVM irqfd (which bypasses this model) honour the mask and the trigger mode
 * the guest programmed; see kvm.c vm_irq_raise(). */
struct ioapic_msi ioapic_pin_route(struct ioapic *io, unsigned pin);

#endif
