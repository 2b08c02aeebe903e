/* virtio-mmio version 2 transport: see mmio.h.  Section numbers are
 * virtio 1.2. */
#include "virtio/mmio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

uint64_t virtio_mmio_slot_base(unsigned i)
{
	return VIRTIO_MMIO_BASE + (uint64_t)i * VIRTIO_MMIO_SIZE;
}

unsigned virtio_mmio_slot_pin(unsigned i)
{
	return VIRTIO_MMIO_IRQ0 + i;
}

void virtio_mmio_log_once(struct virtio_mmio *t, const char *what, const char *why)
{
	if (!atomic_flag_test_and_set(&t->logged))
		fprintf(stderr, "ember: %s: %s: %s (the VM goes on; further guest errors on "
			"this device are only counted)\n", t->name, what, why);
}

static void kick(struct virtio_mmio_queue *mq)
{
	uint64_t one = 1;

	/* Same eventfd KVM signals on a guest notify: the loop looks at the
	 * queue.  Cannot fail short of a counter overflow, which still leaves
	 * the eventfd readable. */
	(void)!write(mq->notify_fd, &one, sizeof(one));
}

/* Loop thread: queue mq's eventfd fired. */
static void queue_kicked(void *opaque)
{
	struct virtio_mmio_queue *mq = opaque;
	struct virtio_mmio *t = mq->t;

	/* The eventfd READ left the number of writes since the last one (a
	 * guest flooding QueueNotify shows up here, folded into few wakeups);
	 * 0 after a failed read, which still counts as a wakeup. */
	atomic_fetch_add(&t->stats.notifies, mq->watch.value);
	atomic_fetch_add(&t->stats.wakeups, 1);
	mq->watch.value = 0;
	pthread_mutex_lock(&t->lock);
	if (virtio_mmio_live(t) && mq->ready)
		t->ops->notify(t->dev, mq->index);
	else
		atomic_fetch_add(&t->stats.ignored, 1);
	pthread_mutex_unlock(&t->lock);
}

int virtio_mmio_init(struct virtio_mmio *t, const char *name, unsigned slot,
		     const struct virtio_dev_ops *ops, void *dev, uint64_t features,
		     const uint8_t *config, uint32_t config_len,
		     const struct guest_mem *mem, struct loop *loop,
		     const struct virtio_irq *irq, struct err *e)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		t->q[i].notify_fd = -1;
	if (slot >= VIRTIO_MMIO_MAX_DEVS)
		return err_set(e, "too many virtio devices (at most %d)", VIRTIO_MMIO_MAX_DEVS);
	if (ops->num_queues == 0 || ops->num_queues > VIRTIO_MMIO_MAX_QUEUES ||
	    ops->queue_num_max == 0 || ops->queue_num_max > VQ_NUM_MAX)
		return err_set(e, "%s: bad queue layout", name);
	pthread_mutex_init(&t->lock, NULL);
	atomic_flag_clear(&t->logged);
	t->ops = ops;   /* from here on virtio_mmio_fini() cleans up */
	t->dev = dev;
	t->mem = mem;
	t->irq = *irq;
	t->name = name;
	t->base = virtio_mmio_slot_base(slot);
	t->pin = virtio_mmio_slot_pin(slot);
	/* Only the modern interface (§4.2.4 legacy is not offered). */
	t->host_features = features | (1ULL << VIRTIO_F_VERSION_1);
	t->config = config;
	t->config_len = config_len;
	for (unsigned i = 0; i < ops->num_queues; i++) {
		struct virtio_mmio_queue *mq = &t->q[i];

		mq->index = i;
		mq->t = t;
		mq->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (mq->notify_fd < 0)
			return err_errno(e, "%s: eventfd", name);
		if (loop && loop_watch_efd(loop, &mq->watch, mq->notify_fd, queue_kicked, mq, e) < 0)
			return -1;
	}
	return 0;
}

void virtio_mmio_fini(struct virtio_mmio *t)
{
	if (!t->ops)
		return;   /* never initialised (zeroed memory: fds are not 0) */
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		if (t->q[i].notify_fd >= 0) {
			close(t->q[i].notify_fd);
			t->q[i].notify_fd = -1;
		}
	pthread_mutex_destroy(&t->lock);
	t->ops = NULL;
}

bool virtio_mmio_live(const struct virtio_mmio *t)
{
	return (t->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) ==
	       VIRTIO_STATUS_DRIVER_OK;
}

void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t bits)
{
	/* §4.2.2.1: the bit stays set from the event until the driver acks. */
	atomic_fetch_or(&t->isr, bits);
	atomic_fetch_add(&t->stats.irqs, 1);
	t->irq.raise(t->irq.opaque);
}

void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why)
{
	atomic_fetch_add(&t->stats.needs_reset, 1);
	virtio_mmio_log_once(t, "device needs reset", why);
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	/* §2.1.2: with DRIVER_OK set, tell the driver through a configuration
	 * change notification. */
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_mmio_interrupt(t, VIRTIO_INT_CONFIG);
}

static struct virtio_mmio_queue *sel_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->num_queues ? &t->q[t->queue_sel] : NULL;
}

static void queue_reset(struct virtio_mmio *t, struct virtio_mmio_queue *mq)
{
	vq_disable(&mq->vq);
	mq->ready = false;
	mq->gen++;
}

static void queues_off(struct virtio_mmio *t)
{
	for (unsigned i = 0; i < t->ops->num_queues; i++) {
		struct virtio_mmio_queue *mq = &t->q[i];

		if (mq->ready || mq->vq.enabled)
			queue_reset(t, mq);
		mq->vq.num = 0;
		mq->vq.desc_gpa = mq->vq.avail_gpa = mq->vq.used_gpa = 0;
	}
}

/* §2.4 device reset: back to the state after power-on.  The queues stop
 * first (requests in flight become orphans whose completions never reach
 * the rings), then the device waits until none of them can still write
 * guest memory, and only then does Status read 0: §2.4.1, the device must
 * not interact with the queues once it has indicated that the reset is
 * complete. */
static void device_reset(struct virtio_mmio *t)
{
	atomic_fetch_add(&t->stats.resets, 1);
	queues_off(t);
	t->ops->reset(t->dev, -1);
	/* Another vCPU may have touched the queues while reset() waited. */
	queues_off(t);
	t->status = 0;
	t->driver_features = t->features = 0;
	t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
	/* §4.2.2.1: reset clears InterruptStatus. */
	if (atomic_exchange(&t->isr, 0))
		t->irq.lower(t->irq.opaque);
}

static void queue_ready(struct virtio_mmio *t, struct virtio_mmio_queue *mq, uint32_t v)
{
	const char *why;

	if (v == 0) {
		if (mq->ready) {
			queue_reset(t, mq);
			t->ops->reset(t->dev, (int)mq->index);
		}
		return;
	}
	if (mq->ready)
		return;
	/* §3.1.1: queues are set up after FEATURES_OK, which fixes whether
	 * the ring uses EVENT_IDX and indirect descriptors. */
	if (!(t->status & VIRTIO_STATUS_FEATURES_OK) || (t->status & VIRTIO_STATUS_NEEDS_RESET)) {
		atomic_fetch_add(&t->stats.bad_queue, 1);
		virtio_mmio_log_once(t, "QueueReady refused", "FEATURES_OK not set");
		return;
	}
	if (mq->vq.num > t->ops->queue_num_max) {
		/* §4.2.2.2: QueueNum must not exceed QueueNumMax. */
		atomic_fetch_add(&t->stats.bad_queue, 1);
		virtio_mmio_log_once(t, "QueueReady refused", "QueueNum larger than QueueNumMax");
		return;
	}
	mq->vq.event_idx = t->features & (1ULL << VIRTIO_F_RING_EVENT_IDX);
	mq->vq.indirect = t->features & (1ULL << VIRTIO_F_RING_INDIRECT_DESC);
	if (vq_enable(&mq->vq, t->mem, &why) < 0) {
		atomic_fetch_add(&t->stats.bad_queue, 1);
		virtio_mmio_log_once(t, "QueueReady refused", why);
		return;
	}
	mq->ready = true;
	if (virtio_mmio_live(t))
		kick(mq);
}

static void status_write(struct virtio_mmio *t, uint32_t v)
{
	uint32_t keep = t->status & VIRTIO_STATUS_NEEDS_RESET;
	uint32_t want, added;

	if (v == 0) {
		device_reset(t);
		return;
	}
	/* The device status field is one byte (§2.1; the PCI and CCW
	 * transports carry a u8): bits above it are not the driver's to store
	 * and never read back.  NEEDS_RESET belongs to the device; the driver
	 * cannot set or clear it. */
	want = (v & 0xffu & ~VIRTIO_STATUS_NEEDS_RESET) | keep;
	if (t->status & ~want) {
		/* §2.1.2: the driver must not clear status bits (other than by
		 * resetting); ignore the write. */
		atomic_fetch_add(&t->stats.bad_status, 1);
		return;
	}
	added = want & ~t->status;
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		/* §2.2.1 / §3.1.1: accept the driver's subset only if the
		 * device offered all of it and it is a modern driver;
		 * otherwise FEATURES_OK stays clear, which the driver reads
		 * back as "not accepted". */
		if ((t->driver_features & ~t->host_features) ||
		    !(t->driver_features & (1ULL << VIRTIO_F_VERSION_1))) {
			want &= ~VIRTIO_STATUS_FEATURES_OK;
			atomic_fetch_add(&t->stats.bad_status, 1);
		} else {
			t->features = t->driver_features;
		}
	}
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(want & VIRTIO_STATUS_FEATURES_OK)) {
		/* §3.1.1: DRIVER_OK only after FEATURES_OK. */
		want &= ~VIRTIO_STATUS_DRIVER_OK;
		atomic_fetch_add(&t->stats.bad_status, 1);
	}
	t->status = want;
	if ((added & want & VIRTIO_STATUS_DRIVER_OK) && virtio_mmio_live(t)) {
		/* Buffers made available before DRIVER_OK (notifies were
		 * ignored until now) get looked at. */
		for (unsigned i = 0; i < t->ops->num_queues; i++)
			if (t->q[i].ready)
				kick(&t->q[i]);
	}
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	struct virtio_mmio_queue *mq = sel_queue(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (t->dev_features_sel > 1)
			return 0;
		return (uint32_t)(t->host_features >> (32 * t->dev_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		/* 0: no such queue (§4.2.2). */
		return mq ? t->ops->queue_num_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return mq ? mq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&t->isr);
	case VIRTIO_MMIO_STATUS:
		return t->status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->config_gen;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		/* All ones: no shared memory region (§4.2.2). */
		return 0xffffffffu;
	}
	/* Write-only or unassigned register. */
	atomic_fetch_add(&t->stats.bad_access, 1);
	return 0;
}

static void set_half(uint64_t *reg, uint32_t v, bool high)
{
	*reg = high ? (*reg & 0xffffffffULL) | (uint64_t)v << 32
		    : (*reg & ~0xffffffffULL) | v;
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtio_mmio_queue *mq = sel_queue(t);

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_features_sel = v;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Fixed once FEATURES_OK is set (§3.1.1). */
		if ((t->status & VIRTIO_STATUS_FEATURES_OK) || t->drv_features_sel > 1) {
			atomic_fetch_add(&t->stats.bad_access, 1);
			return;
		}
		set_half(&t->driver_features, v, t->drv_features_sel == 1);
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_features_sel = v;
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Normally absorbed by the ioeventfd; this is the fallback. */
		if (v < t->ops->num_queues)
			kick(&t->q[v]);
		else
			atomic_fetch_add(&t->stats.bad_access, 1);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		if ((atomic_fetch_and(&t->isr, ~v) & ~v) == 0)
			t->irq.lower(t->irq.opaque);
		return;
	case VIRTIO_MMIO_STATUS:
		status_write(t, v);
		return;
	case VIRTIO_MMIO_SHM_SEL:
		return;
	case VIRTIO_MMIO_QUEUE_READY:
		if (mq)
			queue_ready(t, mq, v);
		else
			atomic_fetch_add(&t->stats.bad_access, 1);
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		/* The device keeps using what it validated at QueueReady:
		 * changes while the queue is ready are ignored (§4.2.2.2
		 * forbids them). */
		if (!mq || mq->ready) {
			atomic_fetch_add(&t->stats.bad_access, 1);
			return;
		}
		switch (off) {
		case VIRTIO_MMIO_QUEUE_NUM:
			/* Values beyond 16 bits become 0, which QueueReady
			 * refuses like any other bad size. */
			mq->vq.num = v > 0xffff ? 0 : (uint16_t)v;
			return;
		case VIRTIO_MMIO_QUEUE_DESC_LOW:
		case VIRTIO_MMIO_QUEUE_DESC_HIGH:
			set_half(&mq->vq.desc_gpa, v, off == VIRTIO_MMIO_QUEUE_DESC_HIGH);
			return;
		case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
		case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
			set_half(&mq->vq.avail_gpa, v, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH);
			return;
		default:
			set_half(&mq->vq.used_gpa, v, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH);
			return;
		}
	}
	/* Read-only or unassigned register. */
	atomic_fetch_add(&t->stats.bad_access, 1);
}

void virtio_mmio_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *t = opaque;
	uint32_t v = 0;

	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		if (is_write) {
			/* ember's configuration spaces are read-only. */
			atomic_fetch_add(&t->stats.bad_access, 1);
			return;
		}
		memset(data, 0, len);
		pthread_mutex_lock(&t->lock);
		if (c < t->config_len && len <= t->config_len - c)
			memcpy(data, t->config + c, len);
		else
			atomic_fetch_add(&t->stats.bad_access, 1);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	/* §4.2.2.2: control registers are accessed 32 bits wide and aligned. */
	if (len != 4 || (off & 3)) {
		atomic_fetch_add(&t->stats.bad_access, 1);
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	if (is_write)
		memcpy(&v, data, 4);
	pthread_mutex_lock(&t->lock);
	if (is_write)
		reg_write(t, off, v);
	else
		v = reg_read(t, off);
	pthread_mutex_unlock(&t->lock);
	if (!is_write)
		memcpy(data, &v, 4);
}
