/* virtio-blk device model: see blk.h.  Section numbers are virtio 1.2. */
#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SECTOR 512u

/* How a write-zeroes range is carried out; blk->zero_mode remembers the
 * first one the filesystem accepted. */
enum dwz_mode {
	DWZ_DISCARD,       /* PUNCH_HOLE for DISCARD */
	DWZ_ZERO_RANGE,
	DWZ_PUNCH,         /* PUNCH_HOLE for WRITE_ZEROES */
	DWZ_WRITE,         /* WRITEV of zeroes */
};

struct dwz_range {
	uint64_t off, len;
	bool unmap;
};

struct blk_req {
	struct loop_op op;         /* first: the SQE's user_data */
	struct blk *b;
	struct blk_req *next_free;
	struct blk_req *next_member; /* the next one in its merged I/O (or group) */
	uint32_t gen;              /* queue generation when popped */
	uint16_t head;
	uint8_t *status;           /* the status byte, in guest RAM */
	uint32_t used_len;         /* reported when the request succeeds */
	uint32_t type;
	int file;                  /* fixed-file index: b->file or b->file_buffered */
	uint64_t off;              /* file offset of the next transfer */
	uint64_t left;             /* bytes still to transfer */
	unsigned iov_first, niov;
	struct iovec iov[VQ_CHAIN_MAX];
	enum dwz_mode mode;
	unsigned nrange, range;
	struct dwz_range ranges[BLK_DWZ_SEG_MAX];
};

/* One host READV/WRITEV carrying several requests (see rw_queue()).  Its
 * iovecs are the members' own, copied one after the other; members are
 * listed in sector order, 'first' being the first not yet complete. */
struct blk_merge {
	struct loop_op op;         /* first: the SQE's user_data */
	struct blk *b;
	struct blk_merge *next_free;
	struct blk_req *first;
	uint64_t off;              /* file offset of the next transfer */
	unsigned iov_first, niov;
	struct iovec *iov;         /* BLK_MERGE_MAX_IOV of them, in b->merge_iov */
};

/* Merged I/Os in flight at once per disk.  Each has at least two members,
 * so 16 is what 32 requests in one sequential stream need at the smallest;
 * a group that finds none free goes out one request at a time, which is
 * only slower.  Their iovecs (16 x 16 KiB) are one allocation of their own,
 * apart from the slots, so that its pages are touched only as far as
 * merged I/Os use them. */
#define BLK_MERGE_SLOTS 16

struct blk {
	struct blk_opts opts;
	unsigned index;
	char name[24];             /* "virtio-blk<N>" */
	int fd;                    /* the image; O_DIRECT with ,direct */
	int fd_buffered;           /* ,direct: buffered fd for unaligned I/O; else fd */
	int file, file_buffered;   /* their indexes in the loop's fixed-file table */
	dev_t st_dev;
	ino_t st_ino;
	uint64_t capacity;         /* sectors */
	uint32_t dio_mem_align, dio_off_align;
	enum dwz_mode zero_mode;
	uint8_t config[BLK_CONFIG_SIZE];

	struct virtio_mmio t;
	struct loop *loop;
	struct loop_hook hook;
	struct vq_chain chain;     /* scratch for vq_pop */
	struct blk_req *reqs, *free;
	unsigned busy;             /* request slots in use (in flight) */
	struct blk_merge *merges, *merge_free;
	struct iovec *merge_iov;   /* BLK_MERGE_SLOTS x BLK_MERGE_MAX_IOV */
	/* The group being built by process(): READs or WRITEs, validated, not
	 * yet submitted, each starting where the one before ended. */
	struct blk_req *group, *group_last;
	uint64_t group_bytes;
	unsigned group_niov;
	pthread_cond_t idle;       /* signalled when busy drops to 0 */
	bool idle_ok;              /* idle was initialised */
	pthread_t loop_thread;     /* the thread that runs the loop (attached from it) */
	bool dirty;                /* used entries pushed, not yet published */
	bool starved;              /* stopped popping for want of a request slot */
	struct blk_stats stats;
	atomic_flag host_logged;   /* one log line for host I/O errors */
};

/* Zeroes for the write-zeroes fallback. */
static const uint8_t zero_buf[64 * 1024];

/* ---- options and opening ---- */

int blk_parse(const char *arg, struct blk_opts *o, struct err *e)
{
	const char *p = strchr(arg, ',');
	size_t plen = p ? (size_t)(p - arg) : strlen(arg);

	memset(o, 0, sizeof(*o));
	if (plen == 0)
		return err_set(e, "--disk '%s': needs a path before the options", arg);
	if (plen >= sizeof(o->path))
		return err_set(e, "--disk: path too long");
	memcpy(o->path, arg, plen);
	o->path[plen] = 0;
	while (p) {
		const char *opt = p + 1, *end = strchr(opt, ',');
		size_t n = end ? (size_t)(end - opt) : strlen(opt);
		bool *flag = NULL;

		if (n == 2 && !strncmp(opt, "ro", 2))
			flag = &o->ro;
		else if (n == 4 && !strncmp(opt, "root", 4))
			flag = &o->root;
		else if (n == 6 && !strncmp(opt, "direct", 6))
			flag = &o->direct;
		if (flag) {
			/* Harmless, but a sign the caller built the word wrong. */
			if (*flag)
				return err_set(e, "--disk %s: '%.*s' given twice", o->path, (int)n,
					       opt);
			*flag = true;
		} else if (n >= 7 && !strncmp(opt, "serial=", 7)) {
			size_t sl = n - 7;

			if (o->serial[0])
				return err_set(e, "--disk %s: serial= given twice", o->path);

			if (sl == 0 || sl > BLK_SERIAL_MAX)
				return err_set(e, "--disk %s: serial must be 1 to %d characters",
					       o->path, BLK_SERIAL_MAX);
			for (size_t i = 0; i < sl; i++)
				if (opt[7 + i] < 0x21 || opt[7 + i] > 0x7e)
					return err_set(e, "--disk %s: serial must be printable "
						       "ASCII without spaces", o->path);
			memcpy(o->serial, opt + 7, sl);
			o->serial[sl] = 0;
		} else {
			return err_set(e, "--disk %s: unknown option '%.*s' (expected ro, root, "
				       "direct or serial=ID)", o->path, (int)n, opt);
		}
		p = end;
	}
	return 0;
}

static int dio_alignment(struct blk *b, struct err *e)
{
#ifdef STATX_DIOALIGN
	struct statx sx;

	if (statx(b->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0)
			return err_set(e, "direct I/O is not supported on this file (drop ,direct)");
		b->dio_mem_align = sx.stx_dio_mem_align;
		b->dio_off_align = sx.stx_dio_offset_align;
		return 0;
	}
#endif
	/* Unknown: assume the strictest common case (4 KiB sectors). */
	b->dio_mem_align = b->dio_off_align = 4096;
	return 0;
}

/* Advisory whole-file lock (exclusive, shared for ,ro), held as long as
 * ember runs: a second VM (or a tool that uses flock) cannot write the image
 * under us.  It is taken on the descriptor the io_uring ring is given, on
 * purpose: the kernel frees the ring of a killed ember asynchronously, some
 * tens of milliseconds after the process is gone, and only once every
 * request it had in flight is done; until then an O_DIRECT write of the dead
 * VM can still land on the image, so the lock -- released with the ring's
 * last reference to the file -- must keep a restarted VM out until then.
 * Such a VM waits up to BLK_LOCK_WAIT_MS for it, as a tap does (net.c); an
 * image a live process holds is reported as in use after the wait.
 * Returns 0, or -1 with errno (EWOULDBLOCK: still locked). */
#define BLK_LOCK_WAIT_MS 500

static int lock_image(int fd, bool ro)
{
	for (int waited = 0;; waited += 5) {
		if (flock(fd, (ro ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK || waited >= BLK_LOCK_WAIT_MS)
			return -1;
		usleep(5000);
	}
}

struct blk *blk_open(const struct blk_opts *o, unsigned index, struct blk *const *others,
		     struct err *e)
{
	struct blk *b = calloc(1, sizeof(*b));
	struct stat st;
	uint64_t size;
	int flags = O_CLOEXEC | (o->ro ? O_RDONLY : O_RDWR);

	if (!b) {
		err_set(e, "out of memory");
		return NULL;
	}
	b->opts = *o;
	b->index = index;
	snprintf(b->name, sizeof(b->name), "virtio-blk%u", index);
	if (!b->opts.serial[0])
		snprintf(b->opts.serial, sizeof(b->opts.serial), "ember-disk%u", index);
	b->fd = b->fd_buffered = -1;
	atomic_flag_clear(&b->host_logged);

	if (stat(o->path, &st) < 0) {
		err_errno(e, "cannot open");
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		err_set(e, "is a directory");
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		err_set(e, "not a regular file or block device (%s)", err_file_kind(st.st_mode));
		goto fail;
	}
	b->fd = open(o->path, flags | (o->direct ? O_DIRECT : 0));
	if (b->fd < 0) {
		if (o->direct && errno == EINVAL)
			err_set(e, "direct I/O (O_DIRECT) is not supported on this filesystem "
				"(drop ,direct)");
		else if (!o->ro && (errno == EACCES || errno == EROFS || errno == EPERM))
			err_errno(e, "cannot open read-write (add ,ro for a read-only disk)");
		else
			err_errno(e, "cannot open");
		goto fail;
	}
	if (fstat(b->fd, &st) < 0) {
		err_errno(e, "fstat");
		goto fail;
	}
	b->st_dev = st.st_dev;
	b->st_ino = st.st_ino;
	for (unsigned i = 0; others && i < index; i++)
		if (others[i] && others[i]->st_dev == st.st_dev && others[i]->st_ino == st.st_ino) {
			err_set(e, "the same image as --disk %s", others[i]->opts.path);
			goto fail;
		}
	if (S_ISBLK(st.st_mode)) {
		int dev_ro = 0;

		if (ioctl(b->fd, BLKGETSIZE64, &size) < 0) {
			err_errno(e, "BLKGETSIZE64");
			goto fail;
		}
		/* Linux opens a read-only block device for writing all the
		 * same and fails the writes later: the guest would get a
		 * writable disk whose every write is an I/O error. */
		if (!o->ro && ioctl(b->fd, BLKROGET, &dev_ro) == 0 && dev_ro) {
			err_set(e, "is a read-only block device (add ,ro for a read-only disk)");
			goto fail;
		}
	} else {
		size = (uint64_t)st.st_size;
	}
	if (size == 0) {
		err_set(e, "is empty (0 bytes)");
		goto fail;
	}
	if (size % SECTOR) {
		err_set(e, "size %llu bytes is not a multiple of 512", (unsigned long long)size);
		goto fail;
	}
	b->capacity = size / SECTOR;
	if (lock_image(b->fd, o->ro) < 0) {
		if (errno == EWOULDBLOCK)
			err_set(e, "is in use by another process (locked)");
		else
			err_errno(e, "flock");
		goto fail;
	}
	b->fd_buffered = b->fd;
	if (o->direct) {
		if (dio_alignment(b, e) < 0)
			goto fail;
		b->fd_buffered = open(o->path, flags);
		if (b->fd_buffered < 0) {
			err_errno(e, "cannot open");
			goto fail;
		}
	}
	b->zero_mode = DWZ_ZERO_RANGE;
	return b;
fail:
	blk_close(b);
	return NULL;
}

/* ---- configuration space (§5.2.4) ---- */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void build_config(struct blk *b)
{
	uint8_t *c = b->config;
	uint32_t bs = SECTOR;

	if (b->opts.direct && b->dio_off_align > SECTOR && b->dio_off_align <= 4096)
		bs = b->dio_off_align;   /* let the driver issue aligned I/O */
	memset(c, 0, sizeof(b->config));
	put32(c + 0, (uint32_t)b->capacity);               /* capacity, le64 */
	put32(c + 4, (uint32_t)(b->capacity >> 32));
	put32(c + 12, BLK_SEG_MAX);                        /* seg_max */
	put32(c + 20, bs);                                 /* blk_size */
	put32(c + 36, BLK_DWZ_SECTORS_MAX);                /* max_discard_sectors */
	put32(c + 40, BLK_DWZ_SEG_MAX);                    /* max_discard_seg */
	put32(c + 44, bs / SECTOR);                        /* discard_sector_alignment */
	put32(c + 48, BLK_DWZ_SECTORS_MAX);                /* max_write_zeroes_sectors */
	put32(c + 52, BLK_DWZ_SEG_MAX);                    /* max_write_zeroes_seg */
	c[56] = 1;   /* write_zeroes_may_unmap: a punched hole reads as zeroes */
}

/* ---- requests ---- */

static struct vq *queue(struct blk *b)
{
	return &b->t.q[0].vq;
}

static struct blk_req *req_get(struct blk *b)
{
	struct blk_req *r = b->free;

	if (r) {
		b->free = r->next_free;
		b->busy++;
	}
	return r;
}

static void req_put(struct blk *b, struct blk_req *r)
{
	r->next_free = b->free;
	b->free = r;
	if (--b->busy == 0)
		pthread_cond_broadcast(&b->idle);   /* a reset may be waiting */
}

/* Lock held.  Finish r with 'status' and return its chain to the driver. */
static void finish(struct blk_req *r, uint8_t status)
{
	struct blk *b = r->b;

	/* The status byte (and, for reads, the data the kernel wrote before
	 * posting the CQE) reach the driver through vq_publish()'s release
	 * store of used->idx. */
	*r->status = status;
	vq_push(queue(b), r->head, status == VIRTIO_BLK_S_OK ? r->used_len : 1);
	b->dirty = true;
	req_put(b, r);
}

static void bad_request(struct blk *b, const char *why)
{
	atomic_fetch_add(&b->stats.bad_requests, 1);
	virtio_mmio_log_once(&b->t, "bad request", why);
}

/* Fill r->iov with bytes [off, off + len) of the chain's readable
 * (write = false) or writable area.  Returns false when that range is not
 * entirely there. */
static bool chain_iov(struct blk_req *r, const struct vq_chain *c, bool write,
		      uint64_t off, uint64_t len)
{
	uint16_t first = write ? c->nread : 0, end = write ? c->nseg : c->nread;

	r->niov = r->iov_first = 0;
	for (uint16_t i = first; i < end && len; i++) {
		const struct vq_seg *s = &c->seg[i];
		uint64_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len)
			n = len;
		r->iov[r->niov].iov_base = s->host + off;
		r->iov[r->niov].iov_len = n;
		r->niov++;
		len -= n;
		off = 0;
	}
	return len == 0;
}

static bool dio_aligned(const struct blk *b, const struct blk_req *r)
{
	if ((r->off | r->left) & (b->dio_off_align - 1))
		return false;
	for (unsigned i = 0; i < r->niov; i++)
		if (((uintptr_t)r->iov[i].iov_base | r->iov[i].iov_len) & (b->dio_mem_align - 1))
			return false;
	return true;
}

/* Queue a READV (IN) or WRITEV (OUT) of iov[0..n) at 'off' on 'file'. */
static void rw_prep(struct blk *b, struct loop_op *op, uint32_t type, int file,
		    const struct iovec *iov, unsigned n, uint64_t off)
{
	struct io_uring_sqe *sqe = loop_sqe(b->loop, op);

	if (type == VIRTIO_BLK_T_IN) {
		io_uring_prep_readv(sqe, file, iov, n, off);
	} else {
		io_uring_prep_writev(sqe, file, iov, n, off);
		/* §5.2.6.2: without a negotiated FLUSH a completed write must
		 * be stable, so make each one a data-sync write. */
		if (!(b->t.features & (1ULL << VIRTIO_BLK_F_FLUSH)))
			sqe->rw_flags = RWF_DSYNC;
	}
	loop_fixed(sqe);
}

static void rw_submit(struct blk_req *r)
{
	rw_prep(r->b, &r->op, r->type, r->file, &r->iov[r->iov_first], r->niov - r->iov_first,
		r->off);
}

static void merge_submit(struct blk_merge *m)
{
	const struct blk_req *r = m->first;

	rw_prep(m->b, &m->op, r->type, r->file, &m->iov[m->iov_first], m->niov - m->iov_first,
		m->off);
}

/* Skip the first 'done' bytes of iov[*first..n). */
static void iov_skip(struct iovec *iov, unsigned *first, unsigned n, uint64_t done)
{
	while (done && *first < n) {
		struct iovec *v = &iov[*first];

		if (done < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + done;
			v->iov_len -= done;
			return;
		}
		done -= v->iov_len;
		(*first)++;
	}
}

static void iov_advance(struct blk_req *r, uint64_t done)
{
	iov_skip(r->iov, &r->iov_first, r->niov, done);
}

/* Statistics of a READ or WRITE: 'bytes' more moved, and the request
 * counted once it completed OK ('whole'), so a request the host failed
 * counts as an I/O error only, and its bytes as far as they went. */
static void rw_count(struct blk_req *r, uint64_t bytes, bool whole)
{
	struct blk_stats *st = &r->b->stats;
	bool in = r->type == VIRTIO_BLK_T_IN;

	atomic_fetch_add(in ? &st->bytes_read : &st->bytes_written, bytes);
	if (whole)
		atomic_fetch_add(in ? &st->reads : &st->writes, 1);
}

/* The image failed a request (a full host filesystem: ENOSPC, a failing
 * device: EIO): the guest gets IOERR, the VM goes on.  One line per disk,
 * on a flag of its own so that a guest error logged before cannot hide
 * the first host error, the one an operator can act on. */
static void host_error(struct blk *b, const char *what, int err)
{
	atomic_fetch_add(&b->stats.io_errors, 1);
	if (!atomic_flag_test_and_set(&b->host_logged))
		fprintf(stderr, "ember: %s (%s): %s: %s; the guest gets IOERR (the VM goes on; "
			"further host I/O errors on this disk are only counted)\n", b->name,
			b->opts.path, what, strerror(err));
}

/* Do requests popped in queue generation 'gen' no longer belong to the
 * driver (device or queue reset since, or the VM is stopping)?  Lock held. */
static bool stale(const struct blk *b, uint32_t gen)
{
	return gen != b->t.q[0].gen || b->loop->stop;
}

/* A completion for a request that no longer belongs to the driver: just
 * free its slot.  Lock held. */
static bool orphaned(struct blk_req *r)
{
	if (!stale(r->b, r->gen))
		return false;
	req_put(r->b, r);
	return true;
}

static void rw_done(struct loop_op *op, int res)
{
	struct blk_req *r = (struct blk_req *)op;
	struct blk *b = r->b;

	pthread_mutex_lock(&b->t.lock);
	if (orphaned(r))
		goto out;
	if (res == -EINTR || res == -EAGAIN) {
		rw_submit(r);
	} else if (res < 0) {
		host_error(b, r->type == VIRTIO_BLK_T_IN ? "read" : "write", -res);
		finish(r, VIRTIO_BLK_S_IOERR);
	} else if (res == 0) {
		/* The image shrank under us. */
		host_error(b, "read", EIO);
		finish(r, VIRTIO_BLK_S_IOERR);
	} else {
		/* Short transfers happen (signals, 2 GiB per call): go on
		 * with the rest. */
		r->off += (unsigned)res;
		r->left -= (unsigned)res;
		rw_count(r, (unsigned)res, !r->left);
		if (r->left) {
			iov_advance(r, (unsigned)res);
			rw_submit(r);
		} else {
			finish(r, VIRTIO_BLK_S_OK);
		}
	}
out:
	pthread_mutex_unlock(&b->t.lock);
}

static void merge_put(struct blk *b, struct blk_merge *m)
{
	m->next_free = b->merge_free;
	b->merge_free = m;
}

/* Completion of a merged I/O (see rw_queue()).  The bytes transferred
 * complete the members they cover, in sector order, each with its own
 * status, used length and counts, as rw_done() does for one request; a
 * member covered in part keeps its place and the rest of the I/O goes out
 * again (a short transfer), without the members already complete, whose
 * buffers are the driver's again.
 *
 * A failure (or 0 bytes: the image shrank) is not pinned on every member:
 * the members not yet complete go on as single requests from where they
 * stand, so each gets its own outcome from the host; those that fail again
 * are the ones that get IOERR and count as I/O errors (rw_done()), and a
 * member the failure was not about completes OK.  That costs one host I/O
 * more per member, on a path that is rare (a failing or full disk); it
 * keeps --boot-time's I/O error count equal to the IOERRs the guest sees.
 *
 * Reset: the members stay busy (holding their slots) until this runs, so a
 * reset waits for every one of them; a stale completion frees them all
 * without touching the rings or their buffers. */
static void merge_done(struct loop_op *op, int res)
{
	struct blk_merge *m = (struct blk_merge *)op;
	struct blk *b = m->b;
	struct blk_req *r = m->first, *next;

	pthread_mutex_lock(&b->t.lock);
	if (stale(b, r->gen)) {
		for (; r; r = next) {
			next = r->next_member;
			req_put(b, r);
		}
		merge_put(b, m);
		goto out;
	}
	if (res == -EINTR || res == -EAGAIN) {
		merge_submit(m);
		goto out;
	}
	if (res > 0) {
		uint64_t done = (unsigned)res;

		m->off += done;
		iov_skip(m->iov, &m->iov_first, m->niov, done);
		while (r && done) {
			uint64_t n = done < r->left ? done : r->left;

			r->off += n;
			r->left -= n;
			done -= n;
			rw_count(r, n, !r->left);
			if (r->left) {
				iov_advance(r, n);
				break;
			}
			next = r->next_member;
			finish(r, VIRTIO_BLK_S_OK);
			r = next;
		}
		m->first = r;
		if (r && r->next_member) {
			merge_submit(m);
			goto out;
		}
	}
	/* Failed, or one member left: the rest go on alone. */
	for (; r; r = next) {
		next = r->next_member;
		r->next_member = NULL;
		rw_submit(r);
	}
	merge_put(b, m);
out:
	pthread_mutex_unlock(&b->t.lock);
}

static void flush_done(struct loop_op *op, int res)
{
	struct blk_req *r = (struct blk_req *)op;
	struct blk *b = r->b;

	pthread_mutex_lock(&b->t.lock);
	if (!orphaned(r)) {
		if (res < 0)
			host_error(b, "fdatasync", -res);
		finish(r, res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	}
	pthread_mutex_unlock(&b->t.lock);
}

static void dwz_submit(struct blk_req *r);

static void dwz_done(struct loop_op *op, int res)
{
	struct blk_req *r = (struct blk_req *)op;
	struct blk *b = r->b;
	struct dwz_range *g = &r->ranges[r->range];

	pthread_mutex_lock(&b->t.lock);
	if (orphaned(r))
		goto out;
	if (res == -EINTR || res == -EAGAIN) {
		dwz_submit(r);
		goto out;
	}
	if (res < 0 && (res == -EOPNOTSUPP || res == -EINVAL || res == -ENODEV)) {
		/* The filesystem lacks this mode: discard is only a hint;
		 * write zeroes falls back to the next way of zeroing, and
		 * the disk remembers the fallback for later requests. */
		if (r->mode == DWZ_DISCARD) {
			res = 0;
		} else if (r->mode != DWZ_WRITE) {
			r->mode = r->mode == DWZ_ZERO_RANGE ? DWZ_PUNCH : DWZ_WRITE;
			if (b->zero_mode < r->mode)
				b->zero_mode = r->mode;
			r->left = g->len;
			r->off = g->off;
			dwz_submit(r);
			goto out;
		}
	}
	if (res < 0) {
		host_error(b, r->type == VIRTIO_BLK_T_DISCARD ? "discard" : "write zeroes", -res);
		finish(r, VIRTIO_BLK_S_IOERR);
		goto out;
	}
	if (r->mode == DWZ_WRITE && res > 0) {
		r->off += (unsigned)res;
		r->left -= (unsigned)res;
		if (r->left) {
			dwz_submit(r);
			goto out;
		}
	} else if (r->mode == DWZ_WRITE) {
		host_error(b, "write zeroes", EIO);
		finish(r, VIRTIO_BLK_S_IOERR);
		goto out;
	}
	/* This range is done: next one. */
	if (++r->range == r->nrange) {
		finish(r, VIRTIO_BLK_S_OK);
		goto out;
	}
	g = &r->ranges[r->range];
	r->off = g->off;
	r->left = g->len;
	r->mode = r->type == VIRTIO_BLK_T_DISCARD ? DWZ_DISCARD :
		  g->unmap && b->zero_mode <= DWZ_PUNCH ? DWZ_PUNCH : b->zero_mode;
	dwz_submit(r);
out:
	pthread_mutex_unlock(&b->t.lock);
}

/* FLUSH (§5.2.6.2): fdatasync the image. */
static void flush_submit(struct blk_req *r)
{
	struct io_uring_sqe *sqe = loop_sqe(r->b->loop, &r->op);

	io_uring_prep_fsync(sqe, r->b->file, IORING_FSYNC_DATASYNC);
	loop_fixed(sqe);
}

/* Submit the current range of a discard / write zeroes in r->mode, from
 * r->off for r->left bytes. */
static void dwz_submit(struct blk_req *r)
{
	struct io_uring_sqe *sqe = loop_sqe(r->b->loop, &r->op);

	switch (r->mode) {
	case DWZ_DISCARD:
	case DWZ_PUNCH:
		io_uring_prep_fallocate(sqe, r->file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					r->off, r->left);
		break;
	case DWZ_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, r->file, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					r->off, r->left);
		break;
	case DWZ_WRITE: {
		uint64_t left = r->left;

		r->niov = 0;
		while (left && r->niov < 16) {
			size_t n = left < sizeof(zero_buf) ? (size_t)left : sizeof(zero_buf);

			r->iov[r->niov].iov_base = (void *)zero_buf;
			r->iov[r->niov].iov_len = n;
			r->niov++;
			left -= n;
		}
		io_uring_prep_writev(sqe, r->file, r->iov, r->niov, r->off);
		if (!(r->b->t.features & (1ULL << VIRTIO_BLK_F_FLUSH)))
			sqe->rw_flags = RWF_DSYNC;
		break;
	}
	}
	loop_fixed(sqe);
}

/* Validate a DISCARD / WRITE_ZEROES payload (§5.2.6.2) and start it.
 * Returns a status to finish with now, or -1 when submitted. */
static int start_dwz(struct blk *b, struct blk_req *r, const struct vq_chain *c)
{
	bool wz = r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint64_t plen = c->read_len - 16;
	int st = VIRTIO_BLK_S_OK;

	if (!(b->t.features & (1ULL << (wz ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD)))) {
		bad_request(b, "discard/write zeroes not negotiated");
		return VIRTIO_BLK_S_UNSUPP;
	}
	if (b->opts.ro)
		return VIRTIO_BLK_S_IOERR;
	if (plen == 0 || plen % 16 || plen / 16 > BLK_DWZ_SEG_MAX || c->write_len != 1) {
		bad_request(b, "discard/write zeroes payload is not 1..max_seg ranges of 16 bytes");
		return VIRTIO_BLK_S_IOERR;
	}
	r->nrange = 0;
	for (unsigned i = 0; i < plen / 16; i++) {
		struct { uint64_t sector; uint32_t num, flags; } s;

		if (vq_chain_read(c, 16 + 16u * i, &s, sizeof(s)) != sizeof(s))
			return VIRTIO_BLK_S_IOERR;
		/* §5.2.6.2: unknown flags, and unmap on a discard, are
		 * UNSUPP; checked for every range before any is carried out. */
		if ((s.flags & ~(uint32_t)VIRTIO_BLK_WZ_FLAG_UNMAP) ||
		    (!wz && (s.flags & VIRTIO_BLK_WZ_FLAG_UNMAP)))
			st = VIRTIO_BLK_S_UNSUPP;
		else if (st == VIRTIO_BLK_S_OK &&
			 (s.num > BLK_DWZ_SECTORS_MAX || s.sector > b->capacity ||
			  s.num > b->capacity - s.sector)) {
			bad_request(b, "discard/write zeroes range too long or beyond the end");
			st = VIRTIO_BLK_S_IOERR;
		}
		if (st == VIRTIO_BLK_S_OK && s.num)
			r->ranges[r->nrange++] = (struct dwz_range){
				.off = s.sector * SECTOR, .len = (uint64_t)s.num * SECTOR,
				.unmap = s.flags & VIRTIO_BLK_WZ_FLAG_UNMAP,
			};
	}
	if (st != VIRTIO_BLK_S_OK)
		return st;
	if (wz)
		atomic_fetch_add(&b->stats.write_zeroes, 1);
	else
		atomic_fetch_add(&b->stats.discards, 1);
	if (r->nrange == 0)
		return VIRTIO_BLK_S_OK;
	r->op.done = dwz_done;
	r->file = b->file_buffered;
	r->range = 0;
	r->off = r->ranges[0].off;
	r->left = r->ranges[0].len;
	r->mode = !wz ? DWZ_DISCARD :
		  r->ranges[0].unmap && b->zero_mode <= DWZ_PUNCH ? DWZ_PUNCH : b->zero_mode;
	dwz_submit(r);
	return -1;
}

/* Request merging.  process() pops every chain a wakeup finds before it
 * returns; the READs and WRITEs among them are not submitted one by one but
 * gathered here into a group, and a group of several goes to the host as
 * one READV/WRITEV (struct blk_merge, merge_done()).  A request joins the
 * group being built when
 *   - it is of the same type (reads and writes are never mixed),
 *   - it goes to the same descriptor (with ,direct an aligned request goes
 *     to the O_DIRECT one, an unaligned one to the buffered one: a group is
 *     all of one kind, so a merged O_DIRECT I/O is aligned as a whole),
 *   - its sectors start where the group's end, and
 *   - the group stays within BLK_MERGE_MAX_BYTES and BLK_MERGE_MAX_IOV;
 * otherwise the group goes out first and the request starts the next one.
 * Merging only looks at what start_rw() copied out and checked (offset,
 * length, the iovecs built from the validated chain): no guest memory is
 * read again, and the iovecs are the members' own.
 *
 * Ordering.  Requests in flight have no order among themselves: the device
 * may complete them in any order, and a FLUSH covers the writes that had
 * completed when the driver made it available (§5.2.6.2: a write becomes
 * stable once it is completed and a FLUSH sent after that completes).  So
 * ember submits each request when it pops it, without waiting for the ones
 * before (no IOSQE_IO_DRAIN), and what it keeps is the submission order:
 * the ring sees the requests in the order the driver made them available.
 * Merging keeps that order.  Only requests popped one right after the other
 * join a group; any other request (FLUSH, DISCARD, WRITE_ZEROES, GET_ID,
 * one of the other type) first submits the group pending, so a group never
 * spans a FLUSH or a DISCARD/WRITE_ZEROES and nothing is submitted ahead of
 * a request popped before it; and process() submits the group before it
 * returns, so no request waits for a partner.  Members never overlap (each
 * starts where the one before ended): two overlapping writes in one batch
 * are never merged and go to the ring as two I/Os in their order, as before.
 * Members complete in sector order, which is the order they were popped in. */

static void group_submit(struct blk *b)
{
	struct blk_req *r = b->group, *next;
	struct blk_merge *m = b->merge_free;

	if (!r)
		return;
	b->group = b->group_last = NULL;
	if (!r->next_member || !m) {
		/* One request, or no merge slot free: as ever. */
		for (; r; r = next) {
			next = r->next_member;
			r->next_member = NULL;
			rw_submit(r);
		}
		return;
	}
	b->merge_free = m->next_free;
	m->first = r;
	m->off = r->off;
	m->iov_first = m->niov = 0;
	for (; r; r = r->next_member) {
		memcpy(&m->iov[m->niov], r->iov, r->niov * sizeof(r->iov[0]));
		m->niov += r->niov;
		atomic_fetch_add(&b->stats.merged, 1);
	}
	atomic_fetch_add(&b->stats.merged_ios, 1);
	merge_submit(m);
}

/* Lock held, from process().  Queue a validated READ or WRITE whose op,
 * file, offset, length and iovecs are set: see above. */
static void rw_queue(struct blk *b, struct blk_req *r)
{
	const struct blk_req *l = b->group_last;

	if (l && (l->type != r->type || l->file != r->file || l->off + l->left != r->off ||
		  b->group_bytes + r->left > BLK_MERGE_MAX_BYTES ||
		  b->group_niov + r->niov > BLK_MERGE_MAX_IOV))
		group_submit(b);
	r->next_member = NULL;
	if (b->group) {
		b->group_last->next_member = r;
	} else {
		b->group = r;
		b->group_bytes = 0;
		b->group_niov = 0;
	}
	b->group_last = r;
	b->group_bytes += r->left;
	b->group_niov += r->niov;
}

/* IN / OUT (§5.2.6).  Returns a status to finish with now, or -1. */
static int start_rw(struct blk *b, struct blk_req *r, const struct vq_chain *c, uint64_t sector)
{
	bool in = r->type == VIRTIO_BLK_T_IN;
	uint64_t len;

	/* Header alone readable for IN; status alone writable for OUT. */
	if (in ? c->read_len != 16 || c->write_len < 1 : c->write_len != 1) {
		bad_request(b, "request layout does not match its type");
		return VIRTIO_BLK_S_IOERR;
	}
	len = in ? c->write_len - 1 : c->read_len - 16;
	if (len % SECTOR || len > UINT32_MAX - 1) {
		bad_request(b, "data length not a multiple of 512 (or over 4 GiB)");
		return VIRTIO_BLK_S_IOERR;
	}
	if (sector > b->capacity || len / SECTOR > b->capacity - sector) {
		/* §5.2.6.1: the driver must not read or write beyond capacity. */
		bad_request(b, "sectors beyond the end of the disk");
		return VIRTIO_BLK_S_IOERR;
	}
	if (!in && b->opts.ro)
		return VIRTIO_BLK_S_IOERR;   /* §5.2.6.2: VIRTIO_BLK_F_RO */
	if (!chain_iov(r, c, in, in ? 0 : 16, len))
		return VIRTIO_BLK_S_IOERR;
	r->used_len = in ? (uint32_t)len + 1 : 1;
	if (len == 0) {
		rw_count(r, 0, true);
		return VIRTIO_BLK_S_OK;
	}
	r->off = sector * SECTOR;
	r->left = len;
	r->file = b->file;
	if (b->opts.direct && !dio_aligned(b, r)) {
		atomic_fetch_add(&b->stats.unaligned, 1);
		r->file = b->file_buffered;
	}
	r->op.done = rw_done;
	rw_queue(b, r);
	return -1;
}

/* GET_ID (§5.2.6): the serial, NUL-padded to 20 bytes, in as much of the
 * data buffer as there is. */
static int get_id(struct blk *b, struct blk_req *r, const struct vq_chain *c)
{
	uint8_t id[BLK_SERIAL_MAX] = { 0 };
	uint64_t n = c->write_len - 1;

	if (c->read_len != 16 || c->write_len < 2) {
		bad_request(b, "GET_ID without a data buffer");
		return VIRTIO_BLK_S_IOERR;
	}
	if (n > BLK_SERIAL_MAX)
		n = BLK_SERIAL_MAX;
	memcpy(id, b->opts.serial, strlen(b->opts.serial));
	if (!chain_iov(r, c, true, 0, n))
		return VIRTIO_BLK_S_IOERR;
	for (unsigned i = 0, o = 0; i < r->niov; o += (unsigned)r->iov[i].iov_len, i++)
		memcpy(r->iov[i].iov_base, id + o, r->iov[i].iov_len);
	r->used_len = (uint32_t)n + 1;
	atomic_fetch_add(&b->stats.get_ids, 1);
	return VIRTIO_BLK_S_OK;
}

/* Lock held.  Turn one chain into a request. */
static void start_request(struct blk *b, const struct vq_chain *c)
{
	const struct vq_seg *last = &c->seg[c->nseg - 1];
	struct { uint32_t type, reserved; uint64_t sector; } h;
	struct blk_req *r;
	int st;

	/* §5.2.6: the status byte is the last byte of the chain, device-
	 * writable.  Without one there is no way to answer: return the chain
	 * with nothing written. */
	if (!last->write || last->len == 0 || !last->host) {
		bad_request(b, "no device-writable status byte at the end of the chain");
		vq_push(queue(b), c->head, 0);
		b->dirty = true;
		return;
	}
	r = req_get(b);
	r->head = c->head;
	r->gen = b->t.q[0].gen;
	r->status = last->host + last->len - 1;
	r->used_len = 1;
	/* The header is copied out once (the guest may rewrite it). */
	if (c->bad_addr) {
		bad_request(b, "buffer outside guest RAM");
		st = VIRTIO_BLK_S_IOERR;
	} else if (vq_chain_read(c, 0, &h, sizeof(h)) != sizeof(h)) {
		bad_request(b, "request header shorter than 16 device-readable bytes");
		st = VIRTIO_BLK_S_IOERR;
	} else {
		r->type = h.type;
		/* Any other request ends the group of reads or writes being
		 * built (see rw_queue()): nothing is merged across it, and it
		 * goes to the ring after them. */
		if (h.type != VIRTIO_BLK_T_IN && h.type != VIRTIO_BLK_T_OUT)
			group_submit(b);
		switch (h.type) {
		case VIRTIO_BLK_T_IN:
		case VIRTIO_BLK_T_OUT:
			st = start_rw(b, r, c, h.sector);
			break;
		case VIRTIO_BLK_T_FLUSH:
			atomic_fetch_add(&b->stats.flushes, 1);
			if (b->opts.ro) {
				st = VIRTIO_BLK_S_OK;   /* nothing can be unwritten */
				break;
			}
			r->op.done = flush_done;
			flush_submit(r);
			st = -1;
			break;
		case VIRTIO_BLK_T_GET_ID:
			st = get_id(b, r, c);
			break;
		case VIRTIO_BLK_T_DISCARD:
		case VIRTIO_BLK_T_WRITE_ZEROES:
			st = start_dwz(b, r, c);
			break;
		default:
			/* A driver sends only the types it negotiated (GET_ID
			 * always): counted, answered as §5.2.6 says. */
			bad_request(b, "unknown request type");
			st = VIRTIO_BLK_S_UNSUPP;
			break;
		}
	}
	if (st >= 0)
		finish(r, (uint8_t)st);
}

/* Lock held, loop thread.  Pop and start requests until the ring is empty
 * or every request slot is busy.  Returns why the ring is broken, or NULL. */
static const char *pop_requests(struct blk *b)
{
	struct vq *q = queue(b);
	const char *why;

	for (;;) {
		while (b->free) {
			int rc = vq_pop(q, &b->chain, &why);

			if (rc == VQ_EMPTY)
				break;
			if (rc == VQ_BROKEN)
				return why;
			if (rc == VQ_BAD_CHAIN) {
				bad_request(b, why);
				vq_push(q, b->chain.head, 0);
				b->dirty = true;
				continue;
			}
			start_request(b, &b->chain);
		}
		if (!b->free) {
			/* Resumed from the hook when a request completes. */
			b->starved = true;
			return NULL;
		}
		if (!vq_arm_notify(q))
			return NULL;
	}
}

/* Lock held, loop thread.  Start what the ring holds (pop_requests()); the
 * reads and writes among it are merged where they can be (rw_queue()) and
 * all submitted before this returns. */
static void process(struct blk *b)
{
	const char *broken;

	if (!virtio_mmio_live(&b->t) || !b->t.q[0].ready)
		return;
	broken = pop_requests(b);
	group_submit(b);
	if (broken)
		virtio_mmio_needs_reset(&b->t, broken);
}

static void blk_notify(void *dev, unsigned qi)
{
	(void)qi;
	process(dev);
}

/* How long a reset waits for requests in flight (a hung image must not
 * hang the vCPU forever), and how often it looks whether the VM is ending
 * (then the loop no longer reaps completions). */
#define RESET_WAIT_MS  2000
#define RESET_SLICE_MS 20

static void blk_reset(void *dev, int qi)
{
	struct blk *b = dev;
	struct timespec now, until;
	long waited = 0;

	(void)qi;
	b->dirty = false;
	b->starved = false;
	if (pthread_equal(pthread_self(), b->loop_thread))
		return;   /* unit tests and the fuzzer reset from the loop's own
			   * thread: it cannot wait for itself */
	/* Requests in flight complete on the host; the transport bumped the
	 * queue generation, so orphaned() frees them without touching the
	 * rings.  Their data still lands in guest memory, so the reset is not
	 * complete (Status does not read 0, §2.4.1) until they are all back:
	 * wait here, with t->lock released, while the loop reaps them. */
	while (b->busy && !atomic_load(&b->loop->stop)) {
		if (waited >= RESET_WAIT_MS) {
			virtio_mmio_log_once(&b->t, "reset",
					     "requests still in flight after 2 s; their data may "
					     "reach guest memory after the reset");
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		until = now;
		until.tv_nsec += RESET_SLICE_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&b->idle, &b->t.lock, &until) == ETIMEDOUT)
			waited += RESET_SLICE_MS;
	}
}

/* End of a loop iteration: publish the used ring once and interrupt once. */
static void blk_batch(void *opaque)
{
	struct blk *b = opaque;

	pthread_mutex_lock(&b->t.lock);
	if (b->starved && b->free) {
		b->starved = false;
		process(b);
	}
	if (b->dirty) {
		b->dirty = false;
		if (vq_publish(queue(b)))
			virtio_mmio_interrupt(&b->t, VIRTIO_INT_USED);
	}
	pthread_mutex_unlock(&b->t.lock);
}

static const struct virtio_dev_ops blk_ops = {
	.device_id = 2,
	.num_queues = 1,
	.queue_num_max = BLK_QUEUE_SIZE,
	.notify = blk_notify,
	.reset = blk_reset,
};

int blk_attach(struct blk *b, unsigned slot, const struct guest_mem *mem,
	       struct loop *loop, const struct virtio_irq *irq, struct err *e)
{
	uint64_t f = (1ULL << VIRTIO_F_RING_EVENT_IDX) | (1ULL << VIRTIO_F_RING_INDIRECT_DESC) |
		     (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		     (1ULL << VIRTIO_BLK_F_BLK_SIZE);

	if (b->opts.ro)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	else
		f |= (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	build_config(b);
	b->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*b->reqs));
	if (!b->reqs)
		return err_set(e, "out of memory");
	for (int i = BLK_QUEUE_SIZE - 1; i >= 0; i--) {
		b->reqs[i].b = b;
		b->reqs[i].next_free = b->free;
		b->free = &b->reqs[i];
	}
	b->merges = calloc(BLK_MERGE_SLOTS, sizeof(*b->merges));
	b->merge_iov = calloc((size_t)BLK_MERGE_SLOTS * BLK_MERGE_MAX_IOV, sizeof(*b->merge_iov));
	if (!b->merges || !b->merge_iov)
		return err_set(e, "out of memory");
	for (int i = BLK_MERGE_SLOTS - 1; i >= 0; i--) {
		b->merges[i].b = b;
		b->merges[i].op.done = merge_done;
		b->merges[i].iov = b->merge_iov + (size_t)i * BLK_MERGE_MAX_IOV;
		merge_put(b, &b->merges[i]);
	}
	b->loop = loop;
	b->loop_thread = pthread_self();
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&b->idle, &ca);
		pthread_condattr_destroy(&ca);
		b->idle_ok = true;
	}
	b->file = loop_file(loop, b->fd, e);
	if (b->file < 0)
		return -1;
	b->file_buffered = loop_file(loop, b->fd_buffered, e);
	if (b->file_buffered < 0)
		return -1;
	if (virtio_mmio_init(&b->t, b->name, slot, &blk_ops, b, f, b->config,
			     sizeof(b->config), mem, loop, irq, e) < 0)
		return -1;
	loop_add_hook(loop, &b->hook, blk_batch, b);
	return 0;
}

struct virtio_mmio *blk_transport(struct blk *b)
{
	return &b->t;
}

uint64_t blk_capacity(const struct blk *b)
{
	return b->capacity;
}

const struct blk_stats *blk_get_stats(const struct blk *b)
{
	return &b->stats;
}

bool blk_is_file(const struct blk *b, dev_t dev, ino_t ino)
{
	return b->st_dev == dev && b->st_ino == ino;
}

void blk_close(struct blk *b)
{
	if (!b)
		return;
	virtio_mmio_fini(&b->t);
	if (b->idle_ok)
		pthread_cond_destroy(&b->idle);
	if (b->fd_buffered >= 0 && b->fd_buffered != b->fd)
		close(b->fd_buffered);
	if (b->fd >= 0)
		close(b->fd);
	free(b->reqs);
	free(b->merges);
	free(b->merge_iov);
	free(b);
}
