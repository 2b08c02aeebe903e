/* Userspace I/O APIC for the split irqchip: see ioapic.h.  Register layout
 * and redirection-entry format from the Intel 82093AA datasheet, §3.2. */
#include "ioapic.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REG_ID   0x00
#define REG_VER  0x01
#define REG_ARB  0x02
#define REG_RTE0 0x10

/* Redirection-table entry bits (82093AA §3.2.4). */
#define RTE_VECTOR     0xffULL
#define RTE_DELMODE    (7ULL << 8)
#define RTE_DESTMODE   (1ULL << 11)
#define RTE_DELIVS     (1ULL << 12)
#define RTE_POLARITY   (1ULL << 13)
#define RTE_REMOTE_IRR (1ULL << 14)
#define RTE_LEVEL      (1ULL << 15)
#define RTE_MASKED     (1ULL << 16)
#define RTE_DEST_SHIFT 56
/* Bits the guest may write; DELIVS and Remote IRR are read-only. */
#define RTE_WRITABLE   (~(RTE_DELIVS | RTE_REMOTE_IRR))
/* Fields that change the MSI a pin sends (mask and status excluded). */
#define RTE_ROUTE      (RTE_VECTOR | RTE_DELMODE | RTE_DESTMODE | RTE_LEVEL | \
			(0xffULL << RTE_DEST_SHIFT))

struct ioapic {
	pthread_mutex_t lock;
	const struct ioapic_ops *ops;
	void *opaque;
	uint8_t id;
	uint32_t ioregsel;
	uint32_t irr;                   /* pin input levels */
	uint64_t rte[IOAPIC_NUM_PINS];
};

struct ioapic *ioapic_new(uint8_t id, const struct ioapic_ops *ops, void *opaque)
{
	struct ioapic *io = calloc(1, sizeof(*io));

	if (!io)
		return NULL;
	pthread_mutex_init(&io->lock, NULL);
	io->ops = ops;
	io->opaque = opaque;
	io->id = id;
	for (int i = 0; i < IOAPIC_NUM_PINS; i++)
		io->rte[i] = RTE_MASKED;
	return io;
}

void ioapic_free(struct ioapic *io)
{
	if (!io)
		return;
	pthread_mutex_destroy(&io->lock);
	free(io);
}

/* The MSI the IOAPIC sends for an entry (Intel SDM vol. 3 §11.11: address
 * 0xFEExxxxx with destination and mode, data with vector, delivery mode and
 * trigger mode). */
static struct ioapic_msi rte_msi(uint64_t rte)
{
	struct ioapic_msi m;

	m.addr = 0xfee00000ULL | ((rte >> RTE_DEST_SHIFT) & 0xff) << 12 |
		 ((rte & RTE_DESTMODE) ? 1ULL << 2 : 0);
	m.data = (uint32_t)(rte & (RTE_VECTOR | RTE_DELMODE)) |
		 ((rte & RTE_LEVEL) ? 1U << 15 : 0);
	m.masked = (rte & RTE_MASKED) != 0;
	return m;
}

static void fire(struct ioapic *io, unsigned pin)
{
	uint64_t *rte = &io->rte[pin];
	struct ioapic_msi m = rte_msi(*rte);

	if (*rte & RTE_LEVEL)
		*rte |= RTE_REMOTE_IRR;  /* held until the EOI for this vector */
	io->ops->deliver(io->opaque, m.addr, m.data);
}

/* Deliver a pending level interrupt if nothing blocks it. */
static void service_level(struct ioapic *io, unsigned pin)
{
	uint64_t rte = io->rte[pin];

	if ((rte & RTE_LEVEL) && (io->irr & (1U << pin)) &&
	    !(rte & (RTE_MASKED | RTE_REMOTE_IRR)))
		fire(io, pin);
}

static void publish_routes(struct ioapic *io)
{
	struct ioapic_msi r[IOAPIC_NUM_PINS];

	for (int i = 0; i < IOAPIC_NUM_PINS; i++)
		r[i] = rte_msi(io->rte[i]);
	if (io->ops->routes_changed)
		io->ops->routes_changed(io->opaque, r);
}

static uint32_t reg_read(struct ioapic *io)
{
	uint32_t sel = io->ioregsel;

	switch (sel) {
	case REG_ID:
	case REG_ARB:
		return (uint32_t)io->id << 24;
	case REG_VER:
		/* version 0x20, maximum redirection entry index in 23:16 */
		return 0x20 | (IOAPIC_NUM_PINS - 1) << 16;
	}
	if (sel >= REG_RTE0 && sel < REG_RTE0 + 2 * IOAPIC_NUM_PINS) {
		uint64_t rte = io->rte[(sel - REG_RTE0) / 2];

		return (sel & 1) ? (uint32_t)(rte >> 32) : (uint32_t)rte;
	}
	return 0xffffffff;
}

static void reg_write(struct ioapic *io, uint32_t val)
{
	uint32_t sel = io->ioregsel;
	unsigned pin;
	uint64_t old, rte;

	if (sel == REG_ID) {
		io->id = (val >> 24) & 0xf;
		return;
	}
	if (sel < REG_RTE0 || sel >= REG_RTE0 + 2 * IOAPIC_NUM_PINS)
		return;                 /* VER, ARB and unknown registers are read-only */
	pin = (sel - REG_RTE0) / 2;
	old = io->rte[pin];
	if (sel & 1)
		rte = (old & 0xffffffffULL) | (uint64_t)val << 32;
	else
		rte = (old & ~0xffffffffULL) | val;
	rte = (rte & RTE_WRITABLE) | (old & (RTE_DELIVS | RTE_REMOTE_IRR));
	/* Switching a pin to edge clears a stale Remote IRR (it only has a
	 * meaning for level-triggered entries). */
	if (!(rte & RTE_LEVEL))
		rte &= ~RTE_REMOTE_IRR;
	io->rte[pin] = rte;
	if ((old ^ rte) & RTE_ROUTE)
		publish_routes(io);
	/* Unmasking a level pin that is still asserted delivers it now. */
	service_level(io, pin);
}

void ioapic_mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct ioapic *io = opaque;
	uint32_t v = 0xffffffff;

	if (len != 4) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write)
		memcpy(&v, data, 4);
	pthread_mutex_lock(&io->lock);
	switch (offset) {
	case 0x00:
		if (is_write)
			io->ioregsel = v & 0xff;
		else
			v = io->ioregsel;
		break;
	case 0x10:
		if (is_write)
			reg_write(io, v);
		else
			v = reg_read(io);
		break;
	case 0x40:
		/* Directed EOI register (version 0x20). */
		if (is_write) {
			for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++)
				if ((io->rte[pin] & RTE_VECTOR) == (v & 0xff)) {
					io->rte[pin] &= ~RTE_REMOTE_IRR;
					service_level(io, pin);
				}
		}
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&io->lock);
	if (!is_write)
		memcpy(data, &v, 4);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, int level)
{
	uint32_t bit;

	if (pin >= IOAPIC_NUM_PINS)
		return;
	bit = 1U << pin;
	pthread_mutex_lock(&io->lock);
	if (level) {
		bool rising = !(io->irr & bit);

		io->irr |= bit;
		if (io->rte[pin] & RTE_LEVEL)
			service_level(io, pin);
		else if (rising && !(io->rte[pin] & RTE_MASKED))
			fire(io, pin);
	} else {
		io->irr &= ~bit;
	}
	pthread_mutex_unlock(&io->lock);
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	pthread_mutex_lock(&io->lock);
	for (unsigned pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
		if ((io->rte[pin] & RTE_VECTOR) != vector || !(io->rte[pin] & RTE_LEVEL))
			continue;
		io->rte[pin] &= ~RTE_REMOTE_IRR;
		service_level(io, pin);
	}
	pthread_mutex_unlock(&io->lock);
}

struct ioapic_msi ioapic_pin_route(struct ioapic *io, unsigned pin)
{
	struct ioapic_msi m = { .masked = true };

	if (pin >= IOAPIC_NUM_PINS)
		return m;
	pthread_mutex_lock(&io->lock);
	m = rte_msi(io->rte[pin]);
	pthread_mutex_unlock(&io->lock);
	return m;
}
