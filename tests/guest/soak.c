/* io_soak: continuous verified disk and network traffic for a long time
 * (tests/integration/io-soak.sh samples the VMM's memory meanwhile).
 *
 * testguest.soak_secs=N (default 10, at most 86400) sets the length.  Each
 * round does one disk round (blk.c: a 1 MiB window written and read back,
 * varying request sizes and depths, a FLUSH every 8th) and one network round
 * (net.c: 32 frames to the peer and 32 from it, every byte checked), on
 * whichever of the two devices exist; the network half needs
 * tests/netpeer.c on the other end of the tap.  A line "SOAK t=<s> rounds=N
 * blk_mib=N net_frames=N" after the first round and then every 10 s shows
 * the guest alive.  Any error
 * fails the test at once.
 */
#include "virtio.h"

static const char *no_io(void)
{
	return virtio_find(VIRTIO_ID_BLOCK, 0) || virtio_find(VIRTIO_ID_NET, 0) ? NULL
										 : "no virtio-blk or virtio-net device";
}

TESTCASE(io_soak, no_io, TF_MANUAL)
{
	char buf[16];
	const char *v = cmdline_value("testguest.soak_secs", buf, sizeof(buf));
	uint64_t secs = v ? parse_u64(v, NULL) : 10, round = 0;
	bool blk = virtio_find(VIRTIO_ID_BLOCK, 0), net = virtio_find(VIRTIO_ID_NET, 0);
	enum test_result r;
	if (!secs || secs > 86400)
		return fail("testguest.soak_secs=%s: want 1..86400", v);
	if (blk && (r = blk_soak_open()) != TEST_PASS)
		return r;
	if (net && (r = net_soak_open()) != TEST_PASS)
		return r;
	uint64_t t0 = now_us(), next_line = t0, end = t0 + secs * 1000000;
	while (now_us() < end) {
		uintptr_t mark = heap_mark();
		if (blk && (r = blk_soak_round(round)) != TEST_PASS)
			return r;
		if (net && (r = net_soak_round(round)) != TEST_PASS)
			return r;
		heap_release(mark);
		round++;
		if (now_us() >= next_line) {
			printf("SOAK t=%lu rounds=%lu blk_mib=%lu net_frames=%lu\n", (now_us() - t0) / 1000000, round,
			       blk_soak_bytes() >> 20, net_soak_frames());
			next_line += 10000000;
		}
	}
	info("%lu s: %lu rounds, %lu MiB through the disk, %lu frames through the NIC", (now_us() - t0) / 1000000,
	     round, blk_soak_bytes() >> 20, net_soak_frames());
	return TEST_PASS;
}
