/* crashcheck: the host half of the crash-consistency test
 * (tests/integration/blk-crash.sh; the guest half is tests/guest/crash.c,
 * the contract between them tests/guest/crashproto.h).
 *
 *   crashcheck init IMG SECTORS      create IMG holding the initial pattern
 *   crashcheck chunks IMG            hashes per 128 sectors, as crash_verify=1
 *                                    prints them in the guest
 *   crashcheck dirty IMG             fail if an fdatasync of IMG would still
 *                                    write pages back (exit 3: no cachestat)
 *   crashcheck check PREV IMG SERIAL check IMG after a run whose serial
 *                                    output is SERIAL, started on PREV
 *   crashcheck after-kill PREV IMG SERIAL MS
 *                                    the same after a kill: first wait (up to
 *                                    MS) until no process can write IMG, and
 *                                    say if it changed meanwhile; then copy
 *                                    IMG to PREV for the next run
 *
 * check recomputes the run's requests from its seed and, for every sector,
 * the chain of requests that touched it (the guest never overlaps requests
 * in flight, so each completed before the next was submitted).  Given a
 * bound B (every request < B completed, or is durable), the sector must
 * hold the value of the last request < B of its chain, or of any later one
 * (those may or may not have reached the disk); a DISCARD leaves zeroes or
 * what was there, so a chain ending in discards also allows the value
 * before them.  Three bounds are checked:
 *
 *   no-garbage  B = 0: a value something in this run (or the image before
 *               it) could have left; nothing torn, misplaced or invented
 *   durable     B = the last "DURABLE d=" line: what virtio 1.2 §5.2.6.1
 *               promises after a FLUSH, reported per operation of the
 *               chain's last durable request (write, write-zeroes, discard)
 *   acked       B = the highest "acked=": every completed request is
 *               visible; beyond the spec (only a process died, the host's
 *               page cache did not), but true of a correct ember
 *
 * It prints one line "result key=value ..." and up to 8 "detail ..." lines
 * naming a sector that failed; exit status 0 all held, 1 a check failed,
 * 2 bad input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest/crashproto.h"

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("crashcheck: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint8_t *read_image(const char *path, uint64_t *sectors)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % CRASH_SECTOR)
		die("%s: size %lld is not a positive multiple of 512", path, (long long)size);
	uint8_t *buf = malloc((size_t)size);
	if (!buf)
		die("out of memory");
	for (off_t off = 0; off < size;) {
		ssize_t n = pread(fd, buf + off, (size_t)(size - off), off);
		if (n <= 0)
			die("%s: read: %s", path, n < 0 ? strerror(errno) : "short");
		off += n;
	}
	close(fd);
	*sectors = (uint64_t)size / CRASH_SECTOR;
	return buf;
}

/* The host's side of the guest's crash_verify=1 lines: one "CRASH CHUNK"
 * line per 128 sectors. */
static int cmd_chunks(const char *path)
{
	uint64_t n;
	const uint8_t *img = read_image(path, &n);
	for (uint64_t s = 0; s < n; s += 128) {
		uint64_t part = 0;
		for (uint64_t k = s; k < n && k < s + 128; k++)
			part += crash_sector_hash((const uint64_t *)(img + k * CRASH_SECTOR), k);
		printf("CRASH CHUNK s=%" PRIu64 " h=0x%" PRIx64 "\n", s, part);
	}
	return 0;
}

static int cmd_init(const char *path, const char *nsect)
{
	uint64_t n = strtoull(nsect, NULL, 0);
	uint64_t w[CRASH_WORDS];
	FILE *f = fopen(path, "w");
	if (!f || !n)
		die("init %s %s: %s", path, nsect, f ? "bad size" : strerror(errno));
	for (uint64_t s = 0; s < n; s++) {
		crash_fill(w, 0, CRASH_IDX_INIT, s);
		if (fwrite(w, sizeof(w), 1, f) != 1)
			die("%s: write: %s", path, strerror(errno));
	}
	if (fflush(f) || fsync(fileno(f)) || fclose(f))
		die("%s: %s", path, strerror(errno));
	return 0;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* A read lease is granted only while no one has the file open for writing
 * (fcntl(2), F_SETLEASE): after a SIGKILL the process is reaped before the
 * kernel has let go of its io_uring ring, whose registered files keep the
 * image open -- and O_DIRECT writes in flight on it may still land.  Wait
 * for the last writer to go, up to max_ms. */
struct settle {
	double waited_ms;
	unsigned tries;     /* failed probes: 0 = nothing held the image */
	bool still_open;
};

static struct settle settle(const char *path, double limit_ms)
{
	struct settle st = { 0 };
	double t0 = now_ms();
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	for (;; st.tries++) {
		if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
			fcntl(fd, F_SETLEASE, F_UNLCK);
			break;
		}
		if (errno != EAGAIN)
			die("%s: F_SETLEASE: %s", path, strerror(errno));
		if (now_ms() - t0 > limit_ms) {
			st.still_open = true;
			break;
		}
		usleep(500);
	}
	close(fd);
	st.waited_ms = now_ms() - t0;
	return st;
}

/* cachestat(2) (Linux 6.5): how many of the file's pages in the page
 * cache are dirty or under writeback.  After a FLUSH (fdatasync) that no
 * write followed, another fdatasync must find nothing to write back: the
 * part of a FLUSH that a process kill cannot show (the page cache survives
 * it).  Not "no dirty page": this host's kernel (6.18, ext4) keeps the
 * odd page tagged dirty through fsync and sync after fallocate punches
 * and zeroes next to it -- plain pwrite/fallocate/fdatasync calls do it
 * too -- and such a page stays dirty whatever ember does. */
struct cs_range { uint64_t off, len; };
struct cs_stat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };
#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

static int cmd_dirty(const char *path)
{
	struct cs_range rg = { 0, 0 };   /* len 0: to the end of the file */
	struct cs_stat a, b;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	if (syscall(SYS_cachestat, fd, &rg, &a, 0) < 0) {
		printf("dirty unsupported=%s\n", strerror(errno));
		return 3;
	}
	if (fdatasync(fd) < 0)
		die("%s: fdatasync: %s", path, strerror(errno));
	if (syscall(SYS_cachestat, fd, &rg, &b, 0) < 0)
		die("%s: cachestat: %s", path, strerror(errno));
	printf("dirty nr_cache=%" PRIu64 " nr_dirty=%" PRIu64 " nr_writeback=%" PRIu64
	       " after_fdatasync_nr_dirty=%" PRIu64 "\n", a.nr_cache, a.nr_dirty, a.nr_writeback, b.nr_dirty);
	return a.nr_writeback || a.nr_dirty != b.nr_dirty;
}

/* ---- check ---- */

struct hent {
	uint64_t idx;
	enum crash_op op;
};

struct hist {
	struct hent *e;
	uint32_t n, cap;
};

struct run {
	uint64_t seed, cap, digest, d, v, u, end;
	unsigned ops;
	bool started, ended, failed;
	char fail[200];
};

static uint64_t field(const char *line, const char *key, bool *ok)
{
	const char *p = strstr(line, key);
	if (!p) {
		*ok = false;
		return 0;
	}
	return strtoull(p + strlen(key), NULL, 0);
}

static void parse_serial(const char *path, struct run *r)
{
	FILE *f = fopen(path, "r");
	char line[512];
	if (!f)
		die("%s: %s", path, strerror(errno));
	memset(r, 0, sizeof(*r));
	while (fgets(line, sizeof(line), f)) {
		bool ok = true;
		if (!strncmp(line, "CRASH START ", 12)) {
			r->seed = field(line, " seed=", &ok);
			r->cap = field(line, " cap=", &ok);
			r->ops = (unsigned)field(line, " ops=", &ok);
			r->digest = field(line, " digest=", &ok);
			r->started = ok;
		} else if (!strncmp(line, "CRASH UPTO ", 11)) {
			uint64_t u = field(line, " u=", &ok), v = field(line, " acked=", &ok);
			if (ok) {
				r->u = u > r->u ? u : r->u;
				r->v = v > r->v ? v : r->v;
			}
		} else if (!strncmp(line, "CRASH DURABLE ", 14)) {
			uint64_t d = field(line, " d=", &ok), v = field(line, " acked=", &ok);
			if (ok) {
				r->d = d > r->d ? d : r->d;
				r->v = v > r->v ? v : r->v;
			}
		} else if (!strncmp(line, "CRASH END ", 10)) {
			r->end = field(line, " n=", &ok);
			r->ended = ok;
		} else if (!strncmp(line, "CRASH FAIL ", 11)) {
			r->failed = true;
			snprintf(r->fail, sizeof(r->fail), "%.199s", line + 11);
			r->fail[strcspn(r->fail, "\r\n")] = 0;
		}
	}
	fclose(f);
	/* A line the kill cut short is either ignored (a field missing) or
	 * parsed with a truncated last number: for d= and acked= that is a
	 * weaker claim.  u= is never the last field, and the guest submits
	 * nothing an UPTO line allows before the whole line (ember writes a
	 * line out when its newline arrives) is in the file. */
	if (r->ended)
		r->u = r->end;   /* everything submitted, completed and flushed */
}

static uint64_t digest(const uint8_t *img, uint64_t n)
{
	uint64_t sum = 0;
	for (uint64_t s = 0; s < n; s++)
		sum += crash_sector_hash((const uint64_t *)(img + s * CRASH_SECTOR), s);
	return sum;
}

static bool is_zero(const uint64_t *w)
{
	for (unsigned k = 0; k < CRASH_WORDS; k++)
		if (w[k])
			return false;
	return true;
}

static bool is_zeroing(enum crash_op op)
{
	return op == CRASH_WRITE_ZEROES || op == CRASH_WZ_UNMAP || op == CRASH_DISCARD;
}

/* What a sector holds. */
struct content {
	bool zero, prev, stamp;
	uint64_t idx;   /* stamp: the request that wrote it */
};

/* Lowest acceptable chain position for bound b: the last entry < b, and
 * before it any run of discards (which may have left the older value).
 * -1 means the image's previous content is acceptable. */
static long lowest(const struct hist *h, uint64_t b)
{
	long p = -1;
	while (p + 1 < (long)h->n && h->e[p + 1].idx < b)
		p++;
	while (p >= 0 && h->e[p].op == CRASH_DISCARD)
		p--;
	return p;
}

/* Last entry < b (its op names the check), or -1. */
static long last_below(const struct hist *h, uint64_t b)
{
	long p = -1;
	while (p + 1 < (long)h->n && h->e[p + 1].idx < b)
		p++;
	return p;
}

static bool acceptable(const struct hist *h, const struct content *c, uint64_t b)
{
	long lo = lowest(h, b);
	if (c->prev && lo < 0)
		return true;
	for (long k = lo < 0 ? 0 : lo; k < (long)h->n; k++) {
		if (c->zero && is_zeroing(h->e[k].op))
			return true;
		if (c->stamp && h->e[k].op == CRASH_WRITE && h->e[k].idx == c->idx)
			return true;
	}
	return false;
}

static void describe(char *buf, size_t n, const struct content *c, const uint64_t *w, const struct run *r,
		     uint64_t s)
{
	if (c->zero)
		snprintf(buf, n, "zeroes");
	else if (c->prev)
		snprintf(buf, n, "its content from before this run");
	else if (c->stamp)
		snprintf(buf, n, "the data of request %" PRIu64, c->idx);
	else if (w[0] == CRASH_MAGIC && w[1] == r->seed && w[3] == s && w[2] >= r->u)
		snprintf(buf, n, "the header of request %" PRIu64 ", which was never submitted (limit %" PRIu64 ")",
			 w[2], r->u);
	else if (w[0] == CRASH_MAGIC)
		snprintf(buf, n, "a header (seed %" PRIu64 ", request %" PRId64 ", sector %" PRIu64 ") with a "
			 "wrong body or from another run/sector", w[1], (int64_t)w[2], w[3]);
	else
		snprintf(buf, n, "unknown bytes %016" PRIx64 " %016" PRIx64 "...", w[0], w[1]);
}

static void describe_chain(char *buf, size_t n, const struct hist *h, long upto)
{
	size_t o = 0;
	long from = upto - 3 < 0 ? 0 : upto - 3;
	o += (size_t)snprintf(buf + o, n - o, "chain:");
	if (from > 0)
		o += (size_t)snprintf(buf + o, n - o, " ...");
	for (long k = from; k < (long)h->n && k <= upto + 3 && o < n; k++)
		o += (size_t)snprintf(buf + o, n - o, " %" PRIu64 ":%s", h->e[k].idx, crash_op_name(h->e[k].op));
	if (upto + 3 < (long)h->n - 1 && o < n)
		snprintf(buf + o, n - o, " ...");
}

enum kind { K_WRITE, K_WZ, K_DISCARD, K_NKIND };
static const char *const kind_name[K_NKIND] = { "write", "write_zeroes", "discard" };

static enum kind kind_of(enum crash_op op)
{
	return op == CRASH_WRITE ? K_WRITE : op == CRASH_DISCARD ? K_DISCARD : K_WZ;
}

static void write_image(const char *path, const uint8_t *img, uint64_t n)
{
	FILE *f = fopen(path, "w");
	if (!f || fwrite(img, CRASH_SECTOR, n, f) != n || fclose(f))
		die("%s: %s", path, strerror(errno));
}

/* settle_ms >= 0: IMG was just left by a killed VM; wait for its ring to
 * let go first (and say whether the image changed meanwhile).  Then, if
 * save is set, copy the image there (the next run's PREV). */
static int cmd_check(const char *prev_path, const char *img_path, const char *serial, double settle_ms,
		     const char *save)
{
	struct run r;
	uint64_t n, pn;
	parse_serial(serial, &r);
	uint8_t *img = read_image(img_path, &n), *prev = read_image(prev_path, &pn);
	if (settle_ms >= 0) {
		struct settle st = settle(img_path, settle_ms);
		uint64_t n2;
		uint8_t *now = read_image(img_path, &n2);
		bool changed = n2 != n || memcmp(now, img, n * CRASH_SECTOR);
		printf("settle waited_ms=%.0f tries=%u still_open=%d changed=%d\n", st.waited_ms, st.tries,
		       st.still_open, changed);
		free(img);
		img = now;
		n = n2;
	}
	if (save)
		write_image(save, img, n);
	if (r.failed) {
		printf("result fail=guest detail=\"%s\"\n", r.fail);
		return 1;
	}
	if (!r.started) {
		printf("result fail=no-start\n");
		return 1;
	}
	if (r.cap != n || pn != n)
		die("the guest saw %" PRIu64 " sectors, %s has %" PRIu64 ", %s %" PRIu64, r.cap, img_path, n,
		    prev_path, pn);
	if (r.ended)
		r.d = r.v = r.end;
	if (r.v < r.d)
		r.v = r.d;   /* completed before a FLUSH means completed */
	bool digest_ok = digest(prev, n) == r.digest;

	/* Every request up to the announced limit, per sector. */
	struct hist *h = calloc(n, sizeof(*h));
	if (!h)
		die("out of memory");
	for (uint64_t i = 0; i < r.u; i++) {
		struct crash_req q;
		crash_req(r.seed, i, n, r.ops, &q);
		for (unsigned k = 0; k < q.nrange; k++)
			for (uint64_t s = q.r[k].sector; s < q.r[k].sector + q.r[k].count; s++) {
				struct hist *e = &h[s];
				if (e->n == e->cap) {
					e->cap = e->cap ? 2 * e->cap : 8;
					e->e = realloc(e->e, e->cap * sizeof(*e->e));
					if (!e->e)
						die("out of memory");
				}
				e->e[e->n++] = (struct hent){ i, q.op };
			}
	}

	unsigned long checked[K_NKIND] = { 0 }, bad[K_NKIND] = { 0 }, acked_checked = 0, acked_bad = 0,
		      garbage = 0, late_write = 0, late_zero = 0, zero_after_discard = 0, old_after_discard = 0;
	unsigned details = 0;
	uint64_t submitted = r.v;   /* every request below had been submitted at the kill */
	char what[160], chain[200];
	for (uint64_t s = 0; s < n; s++) {
		const uint64_t *w = (const uint64_t *)(img + s * CRASH_SECTOR);
		struct content c = { 0 };
		uint64_t want[CRASH_WORDS];
		c.zero = is_zero(w);
		c.prev = !memcmp(w, prev + s * CRASH_SECTOR, CRASH_SECTOR);
		if (!c.zero && w[0] == CRASH_MAGIC && w[1] == r.seed && w[3] == s && w[2] < r.u) {
			crash_fill(want, r.seed, w[2], s);
			c.stamp = !memcmp(w, want, CRASH_SECTOR);
			c.idx = w[2];
		}
		const struct hist *e = &h[s];
		long pd = last_below(e, r.d), pv = last_below(e, r.v);
		const char *failed = NULL;
		if (!acceptable(e, &c, 0)) {
			garbage++;
			failed = "no-garbage";
		}
		if (pd >= 0) {
			enum kind k = kind_of(e->e[pd].op);
			checked[k]++;
			if (!failed && !acceptable(e, &c, r.d)) {
				bad[k]++;
				failed = kind_name[k];
			}
			/* Discarded and never touched again: zeroes or old. */
			if (e->e[pd].op == CRASH_DISCARD && !failed && pd == (long)e->n - 1) {
				if (c.zero)
					zero_after_discard++;
				else
					old_after_discard++;
			}
		}
		if (pv >= 0) {
			acked_checked++;
			if (!failed && !acceptable(e, &c, r.v)) {
				acked_bad++;
				failed = "acked";
			}
		}
		/* Effects of requests the guest had not seen complete. */
		if (c.stamp && c.idx >= r.v) {
			late_write++;
			if (c.idx >= submitted)
				submitted = c.idx + 1;
		}
		else if (c.zero && !failed) {
			bool old_zero = c.prev && lowest(e, r.v) < 0;
			for (long k = lowest(e, r.v) < 0 ? 0 : lowest(e, r.v); k <= pv && !old_zero; k++)
				old_zero = is_zeroing(e->e[k].op);
			if (!old_zero)
				late_zero++;
		}
		if (failed && details++ < 8) {
			long p = !strcmp(failed, "acked") ? pv : pd;
			describe(what, sizeof(what), &c, w, &r, s);
			describe_chain(chain, sizeof(chain), e, p);
			printf("detail %s sector=%" PRIu64 " holds %s; last %s request below %" PRIu64 ": %s (%s)\n",
			       failed, s, what, !strcmp(failed, "acked") ? "completed" : "durable",
			       !strcmp(failed, "acked") ? r.v : r.d,
			       p >= 0 ? crash_op_name(e->e[p].op) : "none", chain);
		}
	}
	/* Requests submitted but not seen complete when the kill came: those
	 * below the newest write found on the disk.  (More may have been in
	 * flight; this many certainly were, or had completed unreported.) */
	unsigned long pending[CRASH_NOPS] = { 0 };
	for (uint64_t i = r.ended ? r.u : r.v; i < submitted; i++) {
		struct crash_req q;
		crash_req(r.seed, i, n, r.ops, &q);
		pending[q.op]++;
	}
	bool ok = digest_ok && !garbage && !acked_bad && !bad[K_WRITE] && !bad[K_WZ] && !bad[K_DISCARD];
	printf("result ok=%d seed=%" PRIu64 " ended=%d d=%" PRIu64 " v=%" PRIu64 " u=%" PRIu64 " digest=%s "
	       "write=%lu/%lu write_zeroes=%lu/%lu discard=%lu/%lu acked=%lu/%lu garbage=%lu "
	       "late_write=%lu late_zero=%lu discard_zero=%lu discard_old=%lu "
	       "submitted=%" PRIu64 " pending_write=%lu pending_wz=%lu pending_discard=%lu pending_flush=%lu\n",
	       ok, r.seed, r.ended, r.d, r.v, r.u, digest_ok ? "ok" : "differs",
	       checked[K_WRITE], bad[K_WRITE], checked[K_WZ], bad[K_WZ], checked[K_DISCARD], bad[K_DISCARD],
	       acked_checked, acked_bad, garbage, late_write, late_zero, zero_after_discard, old_after_discard,
	       submitted,
	       pending[CRASH_WRITE], pending[CRASH_WRITE_ZEROES] + pending[CRASH_WZ_UNMAP],
	       pending[CRASH_DISCARD], pending[CRASH_FLUSH]);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "init"))
		return cmd_init(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "chunks"))
		return cmd_chunks(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "dirty"))
		return cmd_dirty(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "check"))
		return cmd_check(argv[2], argv[3], argv[4], -1, NULL);
	if (argc == 6 && !strcmp(argv[1], "after-kill"))
		return cmd_check(argv[2], argv[3], argv[4], strtod(argv[5], NULL), argv[2]);
	fprintf(stderr, "usage: crashcheck init IMG SECTORS | chunks IMG | dirty IMG | check PREV IMG SERIAL | "
		"after-kill PREV IMG SERIAL SETTLE_MS\n");
	return 2;
}
