#!/usr/bin/env bash
# Run the virtio-net fuzz target (tests/fuzz/fuzz_net.c, make fuzz) for
# FUZZ_SECONDS (default 60): hostile guest memory, register writes and host
# frames into virtio-mmio + virtqueue + virtio-net (its tap a socket pair)
# under ASan/UBSan.  Any crash, sanitizer report, leak or hang (-timeout)
# fails.  The corpus is kept in build/fuzz/corpus-net, so later runs start
# where earlier ones stopped.
. "$(dirname "$0")/lib.sh"

FUZZ=$ROOT/build/fuzz/fuzz_net
SECS=${FUZZ_SECONDS:-60}
if [ ! -x "$FUZZ" ]; then
	fail net-fuzz "$FUZZ not built (make fuzz)"
	exit 1
fi
mkdir -p "$ROOT/build/fuzz/corpus-net"
if "$FUZZ" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
	-artifact_prefix="$TMP/" "$ROOT/build/fuzz/corpus-net" >"$TMP/log" 2>&1; then
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/log")
	cov=$(grep -o 'cov: [0-9]*' "$TMP/log" | tail -n 1)
	pass "net-fuzz (${SECS} s, ${runs:-?} inputs, $cov)"
else
	fail net-fuzz "the fuzzer found a problem; log:"
	grep -v '^#' "$TMP/log" | tail -n 40
	for a in "$TMP"/crash-* "$TMP"/leak-* "$TMP"/timeout-*; do
		[ -e "$a" ] && cp "$a" "$ROOT/build/fuzz/" && echo "input kept: build/fuzz/$(basename "$a")"
	done
	exit 1
fi
