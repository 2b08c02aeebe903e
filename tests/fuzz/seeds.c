/* Writes a fuzz target's seed inputs (its fuzz_seeds(), see fuzz.h) into the
 * directory given as the only argument, one file per seed, and runs each
 * once through the target first, so a seed that crashes it is never
 * committed.  Built per target by make fuzz-seeds. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"

static const char *dir;
static unsigned count;

static void emit(const char *name, const struct fz_buf *b)
{
	char path[4096];
	uint8_t *copy = malloc(b->n ? b->n : 1);   /* exact size, as libFuzzer passes it */
	int fd;

	if (!copy)
		abort();
	memcpy(copy, b->b, b->n);
	LLVMFuzzerTestOneInput(copy, b->n);
	free(copy);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, b->b, b->n) != (ssize_t)b->n || close(fd) < 0) {
		fprintf(stderr, "seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	count++;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	fuzz_seeds(emit);
	printf("%u seeds in %s\n", count, dir);
	return 0;
}
