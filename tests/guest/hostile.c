/* hostile_* tests: a guest that misbehaves on purpose, to check that the
 * VMM stays correct (and alive) when its devices are abused.  Reserved for a
 * later issue; none exist yet.
 *
 * How to add one: TESTCASE(hostile_NAME, absent_fn, TF_HOSTILE) { ... } in
 * this file.  TF_HOSTILE keeps it out of "all", so it only runs when named
 * (ember.test=hostile_NAME or ember.test=hostile_*).  Ideas, by device:
 *   - virtio: descriptors pointing outside RAM or at MMIO, descriptor loops
 *     (next chains that cycle), chains longer than the queue, indirect tables
 *     inside indirect tables, avail->idx jumping by more than the queue size,
 *     queue addresses changed while ready, notify before DRIVER_OK, feature
 *     bits outside what was offered, config writes to read-only fields;
 *   - virtio-blk: requests with no status descriptor, a read-only status,
 *     header shorter than 16 bytes, sector counts overflowing 64 bits;
 *   - serial: flooding output, reading an empty FIFO, every register value;
 *   - platform: MMIO/PIO to unassigned addresses, IOAPIC redirection to
 *     absent APICs.
 * The expected outcome is that the VMM refuses the request (error status,
 * NEEDS_RESET, ignored access) and the guest keeps running; the test then
 * checks the device still works after a reset. */
#include "virtio.h"

/* Nothing yet: keep the translation unit non-empty. */
extern int hostile_tests_placeholder;
