#!/usr/bin/env bash
# exec->exit of the test guest (no devices, ember.bench=reset) on ember and on
# QEMU microvm, back to back in one run; then ember's --boot-time phases.
# Env: RUNS (200), PHASE_RUNS (50), BENCH_OUT (build/bench).  Prints a
# markdown table; every run's time (ms, one a line) goes to
# $BENCH_OUT/startup-ember.txt (both ember batches) and startup-qemu.txt
# for the plot.
set -u
source "$(dirname "$0")/common.sh"
RUNS=${RUNS:-200}
PHASE_RUNS=${PHASE_RUNS:-50}
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
mkdir -p "$OUTDIR" || exit 1

# Sanity: the guest really resets at once (status 0, not a byte of output,
# a handful of exits; tests/integration/testguest-bench.sh checks the same).
out=$("$EMBER" --kernel "$TESTGUEST" --console stdio --boot-time --cmdline ember.bench=reset </dev/null 2>"$OUTDIR/startup-sanity.err")
rc=$?
exits=$(sed -n 's/^ember: exits \([0-9]*\),.*/\1/p' "$OUTDIR/startup-sanity.err")
if [ $rc -ne 0 ] || [ -n "$out" ] || [ -z "$exits" ] || [ "$exits" -gt 20 ]; then
	echo "startup: ember did not boot the test guest and reset it at once (status $rc, ${exits:-no} exits, output: ${out:0:100})" >&2
	exit 1
fi

# -r: every run's ms on stderr (execbench's own messages are not numbers).
e=$("$EXECBENCH" -r -n "$RUNS" -- "${EMBER_CMD[@]}" 2>"$OUTDIR/startup-ember.txt") ||
	{ echo "startup: ember runs failed: $e" >&2; exit 1; }
q=$("$EXECBENCH" -r -n "$RUNS" -- "${QEMU_CMD[@]}" 2>"$OUTDIR/startup-qemu.txt") ||
	{ echo "startup: QEMU runs failed: $q" >&2; exit 1; }
# A second ember batch after QEMU's, so drift shows.
e2=$("$EXECBENCH" -r -n "$RUNS" -- "${EMBER_CMD[@]}" 2>>"$OUTDIR/startup-ember.txt") ||
	{ echo "startup: ember runs failed: $e2" >&2; exit 1; }

echo "### Startup: exec -> guest reset -> exit (ms, $RUNS runs each)"
echo
echo "| | ember | ember (2nd batch) | QEMU microvm | ember / QEMU |"
echo "| --- | ---: | ---: | ---: | ---: |"
for k in min p50 p99; do
	echo "| $k | $(field $k "$e") | $(field $k "$e2") | $(field $k "$q") | $(ratio "$(field $k "$e")" "$(field $k "$q")") |"
done
echo
echo "raw: ember \`$e\`; ember 2nd \`$e2\`; QEMU \`$q\`"
echo

# --boot-time phases, p50 over PHASE_RUNS runs (us since exec).
tmp=$(mktemp) || exit 1
for _ in $(seq "$PHASE_RUNS"); do
	"${EMBER_CMD[@]}" --boot-time </dev/null 2>>"$tmp" >/dev/null ||
		{ echo "startup: ember --boot-time run failed" >&2; rm -f "$tmp"; exit 1; }
done
echo "### ember --boot-time phases, p50 of $PHASE_RUNS runs (us since exec)"
echo
echo "| phase | p50 us |"
echo "| --- | ---: |"
for ph in vm-created kernel-loaded first-run boot-complete exit; do
	v=$(awk -v ph="$ph" '$2 == "boot-time:" && $3 == ph { print $4 }' "$tmp" | grep -E '^[0-9]+$' | sort -n |
		awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "- (not reported)" }')
	echo "| $ph | $v |"
done
rm -f "$tmp"
echo
