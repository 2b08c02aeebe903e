/* netflood: a host packet source for the test guest's hostile_net_* tests
 * (tests/guest/hostile2.c), started and stopped by
 * tests/integration/testguest-hostile.sh.
 *
 *   netflood --if IFNAME --dst MAC [--pps N] [--len BYTES] [--timeout SECONDS]
 *
 * Sends Ethernet frames out of IFNAME (the VMM's tap, inside the runner's
 * network namespace) through an AF_PACKET socket, so each one lands in the
 * tap's queue for the VMM to read; a VMM that does not read lets that
 * queue fill, and the kernel drops the rest (the tap's tx_dropped).
 * Frames: to --dst from 02:66:6c:6f:6f:64, ethertype 0x88b5, "EMBERFLD",
 * a little-endian 32-bit sequence number, then bytes (seq + i) & 0xff up
 * to --len bytes in all (60-1514, default 1000) - the layout hostile2.c
 * checks.  --pps frames a second (default 20000), sent in bursts every
 * millisecond, so it never spins.  Prints "FLOOD ready" once the socket
 * is bound, and on SIGTERM/SIGINT (or after --timeout seconds, default
 * 120) "FLOOD sent=N failed=N" and exits 0.
 * Build: cc -O2 -Wall -Wextra -Werror -o netflood netflood.c */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: netflood --if IFNAME --dst MAC [--pps N] [--len BYTES] [--timeout SECONDS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	uint8_t dst[6], frame[1514];
	static const uint8_t src[6] = { 0x02, 0x66, 0x6c, 0x6f, 0x6f, 0x64 };
	long pps = 20000, len = 1000, timeout = 120;
	int have_dst = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--if") && i + 1 < argc)
			ifname = argv[++i];
		else if (!strcmp(argv[i], "--dst") && i + 1 < argc)
			have_dst = parse_mac(argv[++i], dst) == 0;
		else if (!strcmp(argv[i], "--pps") && i + 1 < argc)
			pps = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--len") && i + 1 < argc)
			len = strtol(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = strtol(argv[++i], NULL, 0);
		else
			usage();
	}
	if (!ifname || !have_dst || pps < 1 || pps > 1000000 || len < 60 || len > 1514 || timeout < 1)
		usage();
	unsigned idx = if_nametoindex(ifname);
	if (!idx) {
		fprintf(stderr, "netflood: %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only */
	if (fd < 0) {
		fprintf(stderr, "netflood: AF_PACKET socket: %s\n", strerror(errno));
		return 1;
	}
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = (int)idx, .sll_halen = 6 };
	memcpy(sll.sll_addr, dst, 6);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		fprintf(stderr, "netflood: bind to %s: %s\n", ifname, strerror(errno));
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	memcpy(frame, dst, 6);
	memcpy(frame + 6, src, 6);
	frame[12] = 0x88;
	frame[13] = 0xb5;
	memcpy(frame + 14, "EMBERFLD", 8);
	printf("FLOOD ready if=%s pps=%ld len=%ld\n", ifname, pps, len);
	fflush(stdout);

	unsigned long sent = 0, failed = 0;
	uint32_t seq = 0;
	struct timespec next, t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	next = t0;
	long per_ms = pps / 1000, extra = pps % 1000, acc = 0;
	while (!stop && next.tv_sec - t0.tv_sec < timeout) {
		long n = per_ms;
		acc += extra;
		if (acc >= 1000) {
			acc -= 1000;
			n++;
		}
		for (long k = 0; k < n && !stop; k++, seq++) {
			frame[22] = (uint8_t)seq;
			frame[23] = (uint8_t)(seq >> 8);
			frame[24] = (uint8_t)(seq >> 16);
			frame[25] = (uint8_t)(seq >> 24);
			for (long i = 26; i < len; i++)
				frame[i] = (uint8_t)(seq + (uint32_t)i);
			if (send(fd, frame, (size_t)len, 0) == len)
				sent++;
			else
				failed++; /* ENOBUFS and the like: the queue is full */
		}
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stop)
			;
	}
	printf("FLOOD sent=%lu failed=%lu\n", sent, failed);
	return 0;
}
