/* What the hostile_* tests share (hostile.c, hostile2.c): the raw split
 * ring ("struct hq") on which anything can be written, the answers a
 * device can give, recovery after an abuse, and the runner handshake.
 * See hostile.c for the rules every hostile test follows. */
#ifndef TG_HOSTILE_H
#define TG_HOSTILE_H

#include "virtio.h"

/* virtio-blk (§5.2); blk.c keeps its own copies private. */
#define T_IN     0u
#define T_OUT    1u
#define T_FLUSH  4u
#define S_OK     0u
#define S_IOERR  1u
#define S_UNSUPP 2u
#define BLK_F_RO 5
#define SECTOR   512u

#define KNOWN_SECTORS 16u   /* the runner's content */
#define CHECKED_SECTORS 64u /* below this the content is known */
#define WRITE_SECTOR  64u   /* writes go here and above */
#define QSIZE         8u
#define QUIET_US      30000u   /* silence this long counts as "no reaction" */
#define ANSWER_US     1000000u /* an answer that must come */
#define GAP_ADDR      0xe0000000ull /* MMIO gap, nothing there */
#define FAR_ADDR      (1ull << 40)  /* no RAM anywhere near */
#define WHY_MAX       400u          /* longest failure text */

/* virtio-net: the 12-byte virtio_net_hdr_v1 before every frame. */
#define NET_HDR 12u

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

/* What the device did. */
enum {
	O_OK = 1u << 0,      /* used entry, status byte VIRTIO_BLK_S_OK */
	O_ERR = 1u << 1,     /* used entry, status IOERR or UNSUPP */
	O_USED = 1u << 2,    /* used entry, no status byte written (or none to look at) */
	O_RESET = 1u << 3,   /* DEVICE_NEEDS_RESET in Status */
	O_SILENT = 1u << 4,  /* nothing within the deadline */
	O_REFUSED = 1u << 5, /* a register write did not stick (QueueReady, DRIVER_OK) */
	O_BADSTAT = 1u << 6, /* used entry with a status byte that is no virtio-blk status */
};

#define ST_FEAT (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK)

/* Descriptor flags and next, for set_desc(). */
#define RN(i) VIRTQ_DESC_F_NEXT, (uint16_t)(i)
#define WN(i) (VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT), (uint16_t)(i)
#define W_END VIRTQ_DESC_F_WRITE, 0
#define R_END 0, 0

/* A raw split ring. */
struct hq {
	struct virtio_dev *d;
	uint32_t qidx;               /* the queue (0 unless said otherwise) */
	uint32_t num;                /* the size written to QueueNum */
	uint32_t cap;                /* entries allocated */
	struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	uint16_t avail_idx, last_used;
	bool driver_ok;              /* Status showed DRIVER_OK */
	bool early_reset;            /* NEEDS_RESET seen during set-up (before DRIVER_OK) */
	uint32_t isr;                /* InterruptStatus bits acknowledged */
	uint64_t irqs, acked;        /* interrupts taken; irq_count at the last look */
};

/* What one wait saw. */
struct res {
	bool used, reset, cfg;
	uint32_t id, len, status;
	const char *note;  /* something else odd, for the failure message */
	const char *quirk; /* the answer was accepted under this quirk */
};

/* testguest.quirks=A,B names this known deviation of the device. */
bool quirk(const char *name);

/* The first writable virtio-blk device / the first virtio-net device. */
struct virtio_dev *hdev(void);
const char *no_blk(void);
struct virtio_dev *ndev(void);
const char *no_net(void);

/* The first address past the RAM range holding the image (the heap's end). */
uint64_t ram_end(void);

/* Format a failure text into a static buffer (the next call overwrites it). */
const char *why(const char *fmt, ...) PRINTF(1, 2);

void set_desc(struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);

/* Rings for cap entries (0 or -1 when out of memory). */
int hq_alloc(struct hq *q, uint32_t cap);
/* QueueSel, QueueNum and the three ring addresses. */
void hq_program(struct hq *q, uint32_t qidx, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used);
void hq_program_own(struct hq *q, uint32_t num);
/* Write 1 to QueueReady; true if it reads back 1. */
bool hq_ready(struct hq *q);
/* Set DRIVER_OK (the whole value, never NEEDS_RESET back); true if it stuck. */
bool hq_driver_ok(struct hq *q);
/* Used-buffer interrupts on (avail->flags 0), the pin routed. */
void hq_irq_on(struct hq *q);
/* Reset device d, negotiate VERSION_1 | (offered & want), FEATURES_OK;
 * rings for cap entries, interrupts routed.  NULL or why not. */
const char *hq_begin_dev(struct hq *q, struct virtio_dev *d, uint32_t qidx, uint64_t want, uint32_t cap);
const char *hq_begin(struct hq *q, uint64_t want, uint32_t cap);
/* The whole well-behaved initialisation of queue qidx with num entries
 * (rings for cap), DRIVER_OK, used-buffer interrupts on. */
const char *hq_open_dev(struct hq *q, struct virtio_dev *d, uint32_t qidx, uint64_t want, uint32_t num,
			uint32_t cap);
const char *hq_open(struct hq *q, uint64_t want, uint32_t num, uint32_t cap);
/* Publish one head and notify the queue. */
void hq_post(struct hq *q, uint16_t head);
/* Acknowledge the device's interrupt if its vector fired since the last look. */
void hq_ack(struct hq *q);
/* Wait up to us for a used entry or NEEDS_RESET. */
void hq_wait(struct hq *q, uint64_t us, struct res *r);

/* The outcome (O_*) a wait saw; status: the request's status byte or NULL. */
unsigned classify(const struct res *r, const volatile uint8_t *status);
/* NULL if the outcome got is among accept (and says what it was in an
 * INFO line), else why not; also checks NEEDS_RESET came with a
 * configuration change interrupt. */
const char *judge(const char *what, struct hq *q, const struct res *r, unsigned got, unsigned accept,
		  const volatile uint8_t *status);

/* Sectors first..first+n-1 in buf hold the runner's content. */
const char *check_known(const uint8_t *buf, uint64_t first, unsigned n);
/* One normal read of sectors 0-7 on an open blk queue (descriptors 0-2). */
const char *normal_read(struct hq *q, const char *what);
/* blk: reset (Status reads 0, InterruptStatus and QueueReady cleared),
 * initialise afresh, read sectors 0-7.  NULL or why not. */
const char *recover(const char *what);
/* A 60-byte test frame after a zeroed virtio-net header (NET_HDR + 60 bytes). */
void frame_fill(uint8_t *p);
/* net: reset, set up the transmit queue afresh, a good frame must come back. */
const char *net_recover(const char *what);

/* Runner handshake (tests/integration/testguest-hostile.sh): print
 * "SYNC <test> <tag>" and wait up to timeout_us for the runner's answer
 * on the serial input, one byte: 'y' (done), anything else (it cannot).
 * Returns 'y', 'n' (another byte) or 0 (no answer: no runner). */
char host_sync(const char *tag, uint64_t timeout_us);

#endif
