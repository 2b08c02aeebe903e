/* Error reporting for setup code: a function that fails fills a struct err
 * with one human-readable line (no trailing newline) and returns -1; the
 * caller adds context (the file or option) and main() prints it once. */
#ifndef EMBER_ERR_H
#define EMBER_ERR_H

#include <sys/types.h>

struct err {
	char msg[512];
};

/* Format into e->msg (truncating) and return -1, so callers can write
 * `return err_set(e, "...", ...);`.  e may be NULL. */
int err_set(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Like err_set() with ": strerror(errno)" appended (errno read at call). */
int err_errno(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What a file that is not a regular one is, for error lines: "a directory",
 * "a character device", "a block device", "a FIFO", "a socket". */
const char *err_file_kind(mode_t mode);

#endif
