/* Byte counts for messages: see fmt.h. */
#include "fmt.h"

#include <stdio.h>

const char *fmt_size(char buf[FMT_SIZE_LEN], uint64_t n)
{
	const uint64_t kib = 1024, mib = 1024 * 1024;

	if (n >= mib && n % mib == 0)
		snprintf(buf, FMT_SIZE_LEN, "%llu MiB", (unsigned long long)(n / mib));
	else if (n >= mib)
		/* Truncated, not rounded: 1.99 MiB must not read "2.0 MiB"
		 * next to a 2 MiB limit. */
		snprintf(buf, FMT_SIZE_LEN, "%llu.%llu MiB", (unsigned long long)(n / mib),
			 (unsigned long long)(n % mib * 10 / mib));
	else if (n >= kib && n % kib == 0)
		snprintf(buf, FMT_SIZE_LEN, "%llu KiB", (unsigned long long)(n / kib));
	else
		snprintf(buf, FMT_SIZE_LEN, "%llu bytes", (unsigned long long)n);
	return buf;
}
