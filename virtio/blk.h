/* virtio-blk (virtio 1.2 §5.2) on a host file or block device, serviced
 * through the event loop's io_uring ring.
 *
 * --disk PATH[,ro][,root][,direct][,serial=ID], up to BLK_MAX_DISKS times.
 * One request queue of up to 256 entries.  Features: VERSION_1,
 * RING_EVENT_IDX, RING_INDIRECT_DESC, FLUSH, SEG_MAX, BLK_SIZE, and RO on a
 * read-only disk or DISCARD and WRITE_ZEROES on a writable one.
 *
 * Request types (§5.2.6) and what they become on the host, all as SQEs on
 * the loop's ring, never a synchronous system call:
 *   IN            READV into the guest's buffers
 *   OUT           WRITEV from them (with RWF_DSYNC when the driver did not
 *                 negotiate FLUSH: its writes must then be stable on
 *                 completion, §5.2.6.2)
 *   FLUSH         FSYNC with IORING_FSYNC_DATASYNC (fdatasync)
 *   GET_ID        the serial (no host I/O)
 *   DISCARD       FALLOCATE PUNCH_HOLE|KEEP_SIZE
 *   WRITE_ZEROES  FALLOCATE ZERO_RANGE, or PUNCH_HOLE when the driver set
 *                 the unmap flag; falls back to PUNCH_HOLE and then to
 *                 writing zeroes where the filesystem lacks a mode
 * A request the device cannot honour gets VIRTIO_BLK_S_IOERR (bad header,
 * out-of-range sectors, a length that is not a multiple of 512, a write to a
 * read-only disk, a host I/O error) or VIRTIO_BLK_S_UNSUPP (unknown type or
 * flag).  A chain without a writable status byte is returned with used length
 * 0; a corrupt ring puts the device in NEEDS_RESET (virtio/mmio.h).
 *
 * ,direct opens the image with O_DIRECT.  A request whose guest buffers or
 * sectors do not meet the file's O_DIRECT alignment (statx STATX_DIOALIGN) is
 * served through a second, buffered descriptor of the same file instead, so
 * it is neither refused nor torn; Linux keeps the two coherent.
 *
 * Merging: the READs (or WRITEs) one wakeup finds that follow on from each
 * other on the disk, in the order the driver made them available, and go to
 * the same descriptor become one READV (WRITEV) of up to BLK_MERGE_MAX_BYTES
 * and BLK_MERGE_MAX_IOV iovecs; each request still completes on its own
 * (status, used length, counters), a host failure is retried request by
 * request so that each gets its own outcome, and nothing is merged across
 * any other request (a FLUSH above all).  The rules and why they keep the
 * ordering ember has: rw_queue() in blk.c.
 *
 * A writable image is locked with flock(LOCK_EX | LOCK_NB), a read-only one
 * with LOCK_SH, so two VMs never write one image.
 */
#ifndef EMBER_VIRTIO_BLK_H
#define EMBER_VIRTIO_BLK_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "loop.h"
#include "mem.h"
#include "virtio/mmio.h"

#define BLK_MAX_DISKS   8
#define BLK_SERIAL_MAX  20         /* VIRTIO_BLK_ID_BYTES */

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2
#define VIRTIO_BLK_WZ_FLAG_UNMAP  1

/* Limits offered in the configuration space. */
#define BLK_SEG_MAX         (VQ_CHAIN_MAX - 2)  /* data segments per request */
#define BLK_QUEUE_SIZE      256
#define BLK_DWZ_SEG_MAX     16                  /* ranges per discard/write zeroes */
#define BLK_DWZ_SECTORS_MAX 0x400000u           /* 2 GiB per range */
#define BLK_CONFIG_SIZE     60

/* Merged I/O limits.  1 MiB: what merging is for -- fewer, larger host I/Os
 * -- is mostly had by then: per I/O the host spends a few microseconds
 * (submission, completion, bio setup), which at 1 MiB is well under 1 % of
 * the transfer at the ~1 GB/s of a fast disk, so larger ones gain little;
 * while every member waits for the whole I/O, so the first one's latency
 * grows with the size (1 MiB: about a millisecond), an O_DIRECT I/O pins
 * all of its guest pages, and the host's block layer splits requests above
 * max_sectors_kb (1280 KiB by default in Linux) anyway.  It also holds
 * exactly eight 128 KiB requests, Linux's usual sequential I/O at QD8.
 * IOV_MAX (UIO_MAXIOV, 1024): the kernel refuses a READV/WRITEV with more
 * iovecs (EINVAL). */
#define BLK_MERGE_MAX_BYTES (1u << 20)
#define BLK_MERGE_MAX_IOV   IOV_MAX

struct blk_opts {
	char path[4096];
	bool ro, root, direct;
	char serial[BLK_SERIAL_MAX + 1];   /* "" = default (ember-disk<N>) */
};

struct blk_stats {
	/* reads, writes: requests completed OK; bytes_*: bytes the image
	 * actually transferred (a failed request's partial part included). */
	atomic_ulong reads, writes, flushes, get_ids, discards, write_zeroes;
	atomic_ulong bytes_read, bytes_written;
	atomic_ulong io_errors;    /* host I/O failed: IOERR to the guest */
	atomic_ulong bad_requests; /* guest sent something invalid */
	atomic_ulong unaligned;    /* ,direct requests served buffered */
	atomic_ulong merged;       /* READs/WRITEs sent to the host merged with others */
	atomic_ulong merged_ios;   /* the host I/Os those made */
};

struct blk;

/* Parse one --disk value, "PATH[,ro][,root][,direct][,serial=ID]" (a path
 * cannot contain a comma).  Fails with e naming the offending option. */
int blk_parse(const char *arg, struct blk_opts *o, struct err *e);

/* Open, check and lock the image (setup time, synchronous).  index is the
 * disk's number (default serial); others[0..index) are the disks opened
 * before, which must not be the same file.  Fails with e saying what is wrong
 * with the file, without the "--disk PATH:" prefix the caller adds. */
struct blk *blk_open(const struct blk_opts *o, unsigned index, struct blk *const *others,
		     struct err *e);

/* Create the virtio device in virtio-mmio slot 'slot', watching its queue on
 * 'loop' and raising 'irq'.  Call it from the thread that will run the loop,
 * before loop_enable() (the image's descriptors and the queue's eventfd go
 * into the ring's fixed-file table).  Register blk_transport(b) on the MMIO
 * bus at blk_transport(b)->base afterwards. */
int blk_attach(struct blk *b, unsigned slot, const struct guest_mem *mem,
	       struct loop *loop, const struct virtio_irq *irq, struct err *e);

struct virtio_mmio *blk_transport(struct blk *b);
uint64_t blk_capacity(const struct blk *b);          /* in 512-byte sectors */
const struct blk_stats *blk_get_stats(const struct blk *b);
/* Is the image this file (device and inode, as stat() gives them)? */
bool blk_is_file(const struct blk *b, dev_t dev, ino_t ino);

/* Close the image and free b.  The loop must be finished (loop_fini). */
void blk_close(struct blk *b);

#endif
