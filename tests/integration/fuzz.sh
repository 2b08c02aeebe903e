#!/usr/bin/env bash
# Run every libFuzzer target (tests/fuzz/fuzz_*.c, built by make fuzz) for
# FUZZ_SECONDS each (default 15: the six take about 1.5 minutes in all),
# under ASan/UBSan, from its seed corpus tests/fuzz/corpus/<target>/ plus
# what earlier runs found (build/fuzz/corpus/<target>/, where new inputs
# go).  FUZZ_TARGETS="mmio queue" runs a subset.  One PASS/FAIL line per
# target: a crash, sanitizer report, leak, broken oracle or hang
# (-timeout) fails it, and the line names the reproducer (kept in
# build/fuzz/) and the first lines of the report follow.
. "$(dirname "$0")/lib.sh"

SECS=${FUZZ_SECONDS:-15}
TARGETS=${FUZZ_TARGETS:-mmio queue blk net serial boot}
status=0

for t in $TARGETS; do
	bin=$ROOT/build/fuzz/fuzz_$t
	seeds=$ROOT/tests/fuzz/corpus/$t
	work=$ROOT/build/fuzz/corpus/$t
	name=fuzz/$t
	if [ ! -x "$bin" ]; then
		fail "$name" "$bin not built (make fuzz)"
		status=1
		continue
	fi
	if [ ! -d "$seeds" ]; then
		fail "$name" "no seed corpus $seeds (make fuzz-seeds)"
		status=1
		continue
	fi
	# The UART's inputs are register accesses one at a time: longer ones
	# only run slower without reaching further.
	extra=
	[ "$t" = serial ] && extra=-max_len=512
	mkdir -p "$work" "$TMP/$t"
	if nice -n 10 "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 $extra \
		-print_final_stats=1 -artifact_prefix="$TMP/$t/" "$work" "$seeds" \
		>"$TMP/$t.log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$TMP/$t.log")
		cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$TMP/$t.log" | tail -n 1)
		pass "$name (${SECS} s, ${runs:-?} runs, ${cov:-no coverage line})"
		continue
	fi
	status=1
	repro=
	for a in "$TMP/$t"/*; do
		[ -f "$a" ] || continue
		cp "$a" "$ROOT/build/fuzz/$t-$(basename "$a")"
		repro="build/fuzz/$t-$(basename "$a")"
	done
	if [ -n "$repro" ]; then
		fail "$name" "crash, reproducer $repro (rerun: build/fuzz/fuzz_$t $repro)"
	else
		fail "$name" "the fuzzer exited with an error and left no reproducer"
	fi
	# The report: from the first sanitizer/oracle/libFuzzer error line on.
	grep -m 1 -A 14 -E 'ERROR: |runtime error|fuzz oracle failed|Test unit written|==[0-9]+==' \
		"$TMP/$t.log" | head -n 15 | sed 's/^/    /'
done
exit $status
