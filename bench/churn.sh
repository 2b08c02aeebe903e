#!/usr/bin/env bash
# VM churn: test-guest VMs created, booted and destroyed per second, 1 and 2
# at a time, ember and QEMU microvm.  Env: CHURN_VMS (200 per cell),
# BENCH_OUT (build/bench: churn.dat, "K ember_per_s qemu_per_s" lines).
set -u
source "$(dirname "$0")/common.sh"
N=${CHURN_VMS:-200}
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
mkdir -p "$OUTDIR" || exit 1
declare -A r
for k in 1 2; do
	r[e$k]=$("$EXECBENCH" -n "$N" -c "$k" -- "${EMBER_CMD[@]}") || { echo "churn: ember failed: ${r[e$k]}" >&2; exit 1; }
	r[q$k]=$("$EXECBENCH" -n "$N" -c "$k" -- "${QEMU_CMD[@]}") || { echo "churn: QEMU failed: ${r[q$k]}" >&2; exit 1; }
done
echo "### Churn: VMs created + booted + destroyed per second ($N VMs per cell)"
echo
echo "| at a time | ember VM/s | QEMU VM/s | ember / QEMU | ember p50 ms | QEMU p50 ms |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
echo "# at_a_time ember_vm_per_s qemu_vm_per_s" >"$OUTDIR/churn.dat"
for k in 1 2; do
	e=$(field per_s "${r[e$k]}") q=$(field per_s "${r[q$k]}")
	echo "| $k | $e | $q | $(ratio "$e" "$q") | $(field p50 "${r[e$k]}") | $(field p50 "${r[q$k]}") |"
	echo "$k $e $q" >>"$OUTDIR/churn.dat"
done
echo
