/* Sorted-range dispatch for port I/O and MMIO exits: see bus.h. */
#include "bus.h"

#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_fn fn,
		 void *opaque, const char *name, struct err *e)
{
	int i;

	if (len == 0 || base + len < base)
		return err_set(e, "%s bus: bad range for %s", b->name, name);
	if (b->n == BUS_MAX_RANGES)
		return err_set(e, "%s bus: too many ranges (adding %s)", b->name, name);
	for (i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->r[i];

		if (base < r->base + r->len && r->base < base + len)
			return err_set(e, "%s bus: %s [0x%llx, 0x%llx) overlaps %s",
				       b->name, name, (unsigned long long)base,
				       (unsigned long long)(base + len), r->name);
	}
	/* Insertion sort keeps the table ordered for the binary search. */
	for (i = b->n; i > 0 && b->r[i - 1].base > base; i--)
		b->r[i] = b->r[i - 1];
	b->r[i] = (struct bus_range){ base, len, fn, opaque, name };
	b->n++;
	return 0;
}

bool bus_dispatch(const struct bus *b, uint64_t addr, uint8_t *data,
		  uint32_t len, bool is_write)
{
	int lo = 0, hi = b->n - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &b->r[mid];

		if (addr < r->base) {
			hi = mid - 1;
		} else if (addr - r->base >= r->len) {
			lo = mid + 1;
		} else {
			if (len > r->len - (addr - r->base))
				return false;   /* runs off the end of the device */
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	return false;
}
