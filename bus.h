/* Address buses for guest I/O exits.
 *
 * kvm.c owns one bus for port I/O and one for MMIO.  Devices register the
 * ranges they decode; a vCPU exit is dispatched by a binary search over the
 * sorted, non-overlapping ranges — the run loop never compares addresses
 * itself.  Registration happens during setup, before any vCPU runs, so lookups
 * need no lock.
 */
#ifndef EMBER_BUS_H
#define EMBER_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* One access: 'offset' is relative to the registered base, len is 1..8.  For
 * a read the handler fills data[0..len); for a write it consumes it. */
typedef void (*bus_fn)(void *opaque, uint64_t offset, uint8_t *data,
		       uint32_t len, bool is_write);

struct bus_range {
	uint64_t base, len;
	bus_fn fn;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 32

struct bus {
	const char *name;               /* "pio" or "mmio", for messages */
	struct bus_range r[BUS_MAX_RANGES];
	int n;
};

/* Add [base, base+len).  Fails (e set) on len 0, overflow, overlap with an
 * existing range, or a full table. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_fn fn,
		 void *opaque, const char *name, struct err *e);

/* Dispatch an access that starts at addr.  Returns false when no range
 * contains [addr, addr+len) entirely; the caller then applies the bus's
 * default (reads return all-ones, writes are ignored) and counts it. */
bool bus_dispatch(const struct bus *b, uint64_t addr, uint8_t *data,
		  uint32_t len, bool is_write);

#endif
