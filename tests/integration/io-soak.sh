#!/usr/bin/env bash
# I/O soak: one VM moves verified disk and network traffic for
# IO_SOAK_SECS seconds (20 here, in make test; `make soak` runs 600) while
# this script samples ember every IO_SOAK_INTERVAL seconds (1; 10 for runs
# of 5 minutes and more): VmRSS, the guest RAM's share of it (the mapping of
# --mem MiB in /proc/PID/smaps), the rest ("other": ember's own heap, stacks,
# rings, page cache of its binary), its descriptors and threads.  Each
# sample is printed.
#
#   io-soak/guest        the guest's io_soak test passed (every byte of every
#                        disk round and network frame verified) and ember
#                        exited 0
#   io-soak/rss          steady: the largest "other" RSS of the last window
#                        is at most that of the first window + IO_SOAK_TOL_KIB
#                        (128); a window is a tenth of the run (a quarter
#                        for runs under 5 minutes), counted from the
#                        guest's first SOAK line (after its first round)
#   io-soak/fds-threads  the same descriptor count and the same threads
#                        (io-wq workers aside) in every sample
#
# ember and the peer are started with ip netns exec directly (it execs
# them), so $! is their PID.
# The guest (tests/guest/soak.c) needs the peer (tests/netpeer.c) on the
# other end of its tap, in a private namespace like testguest-net.sh's:
#   ember --- iotap0 ---[ bridge iobr0 ]--- iotap1 --- netpeer
. "$(dirname "$0")/lib.sh"

TG=${TESTGUEST:-$ROOT/build/testguest.elf}
SECS=${IO_SOAK_SECS:-20}
INTERVAL=${IO_SOAK_INTERVAL:-$([ "$SECS" -ge 300 ] && echo 10 || echo 1)}
TOL=${IO_SOAK_TOL_KIB:-128}
MEM=128
PEER=$ROOT/build/netpeer
NS=ember-io-$$
MAC=52:54:00:7e:57:01
vm= peer=
cleanup() {
	[ -n "$vm" ] && kill "$vm" 2>/dev/null && wait "$vm" 2>/dev/null
	[ -n "$peer" ] && kill "$peer" 2>/dev/null && wait "$peer" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

TESTS=(guest rss fds-threads)
why=$(why_no_vm_net "$TG")
if [ -n "$why" ]; then
	for t in "${TESTS[@]}"; do skip "io-soak/$t" "$why"; done
	exit 0
fi
if [ ! -x "$PEER" ] || [ "$ROOT/tests/netpeer.c" -nt "$PEER" ] || [ "$ROOT/tests/guest/netproto.h" -nt "$PEER" ]; then
	mkdir -p "$ROOT/build"
	if ! ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$PEER" "$ROOT/tests/netpeer.c" 2>"$TMP/cc.err"; then
		for t in "${TESTS[@]}"; do fail "io-soak/$t" "cannot build tests/netpeer.c: $(head -c 200 "$TMP/cc.err")"; done
		exit 0
	fi
fi
nsx() { ip netns exec "$NS" "$@"; }
if ! { ip netns add "$NS" &&
	nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
	nsx ip link add iobr0 type bridge stp_state 0 forward_delay 0 &&
	nsx ip tuntap add dev iotap0 mode tap && nsx ip tuntap add dev iotap1 mode tap &&
	nsx ip link set iotap0 master iobr0 && nsx ip link set iotap1 master iobr0 &&
	nsx ip link set iobr0 up && nsx ip link set iotap0 up && nsx ip link set iotap1 up; } 2>"$TMP/ns.err"; then
	for t in "${TESTS[@]}"; do fail "io-soak/$t" "namespace setup: $(head -c 200 "$TMP/ns.err")"; done
	exit 0
fi
ip netns exec "$NS" "$PEER" --tap iotap1 --guest-mac "$MAC" --timeout $((SECS + 60)) >"$TMP/peer.log" 2>&1 &
peer=$!
for ((i = 0; i < 100; i++)); do grep -q '^PEER ready' "$TMP/peer.log" && break; sleep 0.05; done

truncate -s 64M "$TMP/disk.img"
: >"$TMP/out"
ip netns exec "$NS" "$EMBER" --kernel "$TG" --mem "$MEM" --console "file:$TMP/out" --disk "$TMP/disk.img" \
	--net "iotap0,mac=$MAC" --cmdline "ember.test=io_soak testguest.soak_secs=$SECS" \
	</dev/null 2>"$TMP/err" &
vm=$!

# sample: "t vmrss guest other fds threads" (KiB), or nothing once gone.
sample() {
	local rss guest fds thr
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$vm/status" 2>/dev/null) || return 1
	guest=$(awk -v want=$((MEM * 1024)) '/^Size:/ { sz = $2 } /^Rss:/ && sz == want { print $2; exit }' \
		"/proc/$vm/smaps" 2>/dev/null)
	fds=$(ls "/proc/$vm/fd" 2>/dev/null | wc -l)
	thr=$(cat "/proc/$vm"/task/*/comm 2>/dev/null | grep -vc '^iou-wrk-')
	[ -n "$rss" ] && [ -n "$guest" ] || return 1
	echo "$1 $rss $guest $((rss - guest)) $fds $thr"
}
t0=$EPOCHREALTIME
started=
: >"$TMP/samples"
echo "INFO io-soak: ${SECS} s, a sample every ${INTERVAL} s (t s, VmRSS, guest RAM, other, in KiB; fds, threads)"
while kill -0 "$vm" 2>/dev/null; do
	t=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a }')
	[ -z "$started" ] && grep -q '^SOAK t=' "$TMP/out" && started=$t
	if s=$(sample "$t"); then
		echo "$s ${started:+soak}" >>"$TMP/samples"
		echo "SAMPLE t=${t}s vmrss=$(echo "$s" | cut -d' ' -f2) guest=$(echo "$s" | cut -d' ' -f3) other=$(echo "$s" | cut -d' ' -f4) fds=$(echo "$s" | cut -d' ' -f5) threads=$(echo "$s" | cut -d' ' -f6)"
	fi
	sleep "$INTERVAL"
done
wait "$vm"
rc=$?
vm=
kill "$peer" 2>/dev/null
wait "$peer" 2>/dev/null
peer=

if [ "$rc" = 0 ] && grep -q 'TEST io_soak PASS' "$TMP/out" && grep -q 'TESTGUEST DONE passed=1 failed=0' "$TMP/out" &&
	! grep -q 'PEER BAD' "$TMP/peer.log"; then
	pass io-soak/guest
else
	fail io-soak/guest "exit status $rc; guest: $(grep -E 'TEST |FATAL|DONE' "$TMP/out" | tr '\r\n' '  ' | head -c 300); peer: $(grep -m1 'PEER BAD' "$TMP/peer.log"); stderr: $(err_lines "$TMP/err" | head -c 200)"
fi
grep -o 'INFO io_soak.*' "$TMP/out" | tr -d '\r' | sed 's/^/INFO io-soak: guest: /'

# Samples taken once the soak ran (the first SOAK line: after one round).
grep ' soak$' "$TMP/samples" >"$TMP/steady"
n=$(wc -l <"$TMP/steady")
span=$([ "$SECS" -ge 300 ] && echo 10 || echo 4)
w=$((n / span))
[ "$w" -lt 1 ] && w=1
if [ "$n" -lt 2 ]; then
	fail io-soak/rss "only $n samples while the soak ran (SOAK line at ${started:-never})"
	fail io-soak/fds-threads "only $n samples"
	exit 0
fi
first=$(head -n "$w" "$TMP/steady" | awk '$4 > m { m = $4 } END { print m }')
last=$(tail -n "$w" "$TMP/steady" | awk '$4 > m { m = $4 } END { print m }')
minall=$(awk 'NR == 1 || $4 < m { m = $4 } END { print m }' "$TMP/steady")
maxall=$(awk '$4 > m { m = $4 } END { print m }' "$TMP/steady")
echo "INFO io-soak: other RSS (VmRSS - guest RAM) over $n samples: min $minall KiB, max $maxall KiB; first $w samples max $first KiB, last $w max $last KiB"
if [ "$last" -le $((first + TOL)) ]; then pass io-soak/rss; else
	fail io-soak/rss "other RSS grew: last window max $last KiB > first window max $first KiB + $TOL KiB"
fi
if [ "$(cut -d' ' -f5,6 "$TMP/steady" | sort -u | wc -l)" = 1 ]; then pass io-soak/fds-threads; else
	fail io-soak/fds-threads "descriptor/thread counts changed: $(cut -d' ' -f5,6 "$TMP/steady" | sort | uniq -c | tr '\n' ' ')"
fi
