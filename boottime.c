#include "boottime.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static const char *const names[BT_NPHASES] = {
	"vm-created", "kernel-loaded", "first-run", "boot-complete", "exit",
};

static int64_t start_ns;
static _Atomic int64_t marks[BT_NPHASES];

static int64_t ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void bt_init(void)
{
	start_ns = ns(CLOCK_MONOTONIC) - ns(CLOCK_PROCESS_CPUTIME_ID);
}

void bt_mark(enum bt_phase p)
{
	int64_t zero = 0;

	/* compare-exchange: the first mark wins, later ones (e.g. a second
	 * boot-complete write) leave it alone. */
	atomic_compare_exchange_strong(&marks[p], &zero, ns(CLOCK_MONOTONIC));
}

void bt_print(void)
{
	for (int i = 0; i < BT_NPHASES; i++) {
		int64_t t = atomic_load(&marks[i]);

		if (t)
			fprintf(stderr, "ember: boot-time: %s %lld us\n", names[i],
				(long long)((t - start_ns) / 1000));
		else
			fprintf(stderr, "ember: boot-time: %s -\n", names[i]);
	}
}
