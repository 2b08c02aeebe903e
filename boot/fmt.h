/* Human-readable byte counts for boot error messages. */
#ifndef EMBER_BOOT_FMT_H
#define EMBER_BOOT_FMT_H

#include <stdint.h>

#define FMT_SIZE_LEN 32

/* Write n as "128 MiB", "1.5 MiB", "12 KiB" or "100 bytes" into buf and
 * return buf: whole MiB or KiB when exact, one decimal of MiB from 1 MiB up,
 * bytes below that when not a whole KiB. */
const char *fmt_size(char buf[FMT_SIZE_LEN], uint64_t n);

#endif
