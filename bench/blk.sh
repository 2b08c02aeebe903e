#!/usr/bin/env bash
# virtio-blk: the test guest's polling driver (ember.bench=blk:RW:BS:QD:SECS,
# tests/guest/bench_blk.c) on ember (--disk FILE,direct) and on QEMU microvm
# (aio=io_uring,cache=none), and host fio (io_uring, direct=1) on the same
# file with the same pattern: 4k random read at QD1 and QD32, 128k
# sequential read and write.
#
# The machine is shared and noisy, so each test's time is split into
# rounds (BLK_ROUNDS, default 5: with BENCH_SECS=10, five windows of 2 s)
# that alternate ember, QEMU and fio (the order rotates every round), one
# boot per round and VMM; every number reported is the median over the
# rounds (so are the ratios' inputs), and the raw per-round IOPS are
# printed to show the spread.
#
# VMM CPU = the time on CPU (/proc/PID/task/*/schedstat, ns) of every VMM
# thread but the vCPU thread: event loop / iothreads, io-wq workers, in
# user space and in the kernel (io_uring, the I/O path), taken when the
# guest prints "BENCH blk begin" and again at its result line (the guest
# waits for the runner's answer each time: ":sync"), so boot and teardown
# are not counted.  The vCPU thread is left out because the polling guest
# keeps it on CPU all the time; its only VMM work in the window, the
# QueueNotify exits, goes to an ioeventfd inside KVM on both VMMs.
# (utime + stime - guest_time would keep those exits, but guest_time is
# sampled per tick, and its error over a round is as large as the VMM's
# whole CPU time.)
#
# Env: BENCH_SECS (10: seconds per test and VMM, all rounds together),
# BLK_ROUNDS (5, at most BENCH_SECS; each round BENCH_SECS/BLK_ROUNDS s,
# rounded down), BLK_FILE_MB (1024: the test file),
# BLK_SEQ_QD (8: queue depth of the 128k sequential tests), BLK_DIR (where
# the test file goes; must be ext4; default build/, and when that is not
# ext4 an ext4 image loop-mounted under it, which needs root), BENCH_OUT
# (build/bench: blk.dat goes there).  Needs fio.  2-3 min with the defaults (60 boots, 20 fio runs).
#
# Prints markdown tables (like startup.sh, churn.sh), logs every round's
# raw result (guest lines with cpu_s= and vcpu_s=, the vCPU thread's time on
# CPU, which falls short of the window when the host is short of CPU; fio's
# numbers) to $BENCH_OUT/blk.log
# and writes $BENCH_OUT/blk.dat, one line per test, whitespace-separated, medians over
# the rounds, "-" where a value is missing, for gnuplot:
#   1 test        label: rr4k_qd1 rr4k_qd32 seqrd128k_qdN seqwr128k_qdN
#   2 rw          fio's name: randread read write
#   3 bs          request size, bytes
#   4 qd          requests in flight
#   5-7   IOPS: ember QEMU fio
#   8-10  MiB/s: ember QEMU fio
#   11-13 mean latency, us: ember QEMU fio
#   14-16 p99 latency, us: ember QEMU fio
#   17-18 IOPS per VMM CPU-second: ember QEMU
#   19    IOPS per fio CPU-second (fio's usr+sys)
#   20-21 VMM CPU seconds per round (vCPU thread left out): ember QEMU
#   22-24 p50 latency, us: ember QEMU fio
#   25-26 the vCPU thread's time on CPU, % of the window: ember QEMU
#   27-29 the best round's IOPS: ember QEMU fio
#   30-31 one QueueNotify exit as the guest timed it, us: ember QEMU
set -u
source "$(dirname "$0")/common.sh"
TOTAL=${BENCH_SECS:-10}
ROUNDS=${BLK_ROUNDS:-5}
[ "$ROUNDS" -ge 1 ] 2>/dev/null || ROUNDS=1
[ "$ROUNDS" -gt "$TOTAL" ] && ROUNDS=$TOTAL
SECS=$((TOTAL / ROUNDS))
FILE_MB=${BLK_FILE_MB:-1024}
SEQ_QD=${BLK_SEQ_QD:-8}
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
DIR=${BLK_DIR:-$PWD/build}

for f in "$EMBER" "$TESTGUEST"; do
	[ -e "$f" ] || { echo "blk: $f missing (make ember testguest)" >&2; exit 1; }
done
command -v fio >/dev/null || { echo "blk: fio not installed (apt-get install fio)" >&2; exit 1; }
command -v "$QEMU" >/dev/null || { echo "blk: $QEMU not installed" >&2; exit 1; }
[ -w /dev/kvm ] || { echo "blk: /dev/kvm not usable" >&2; exit 1; }
mkdir -p "$DIR" "$OUTDIR" || exit 1
LOG=$OUTDIR/blk.log
: >"$LOG"

# The test file lives on ext4: the issue's setting, and O_DIRECT works there
# (tmpfs has none).  If DIR is not ext4, make a loop-mounted ext4 image.
tmp=$(mktemp -d "$DIR/blkbench.XXXXXX") || exit 1
mnt=
cleanup() {
	[ -n "$mnt" ] && umount "$mnt" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE # a VMM that died early must not kill us when we answer it
if [ "$(findmnt -n -o FSTYPE -T "$tmp")" = ext4 ]; then
	data=$tmp
else
	[ "$(id -u)" -eq 0 ] || { echo "blk: $DIR is not ext4 and mounting an ext4 image needs root (set BLK_DIR)" >&2; exit 1; }
	truncate -s $((FILE_MB + 64))M "$tmp/ext4.img" &&
		mkfs.ext4 -q -F "$tmp/ext4.img" &&
		mkdir "$tmp/mnt" && mount -o loop "$tmp/ext4.img" "$tmp/mnt" ||
		{ echo "blk: could not make and mount an ext4 image in $tmp" >&2; exit 1; }
	mnt=$tmp/mnt
	data=$mnt
fi
FILE=$data/disk.img
# Written in full (fio's random buffers), so no read hits a hole that ext4
# would answer without any I/O.
fio --name=fill --filename="$FILE" --rw=write --bs=1M --size="${FILE_MB}M" --ioengine=io_uring \
	--direct=1 --output=/dev/null ||
	{ echo "blk: could not write the $FILE_MB MiB test file" >&2; exit 1; }

# common.sh: field KEY LINE reads key=value words of the guest's lines;
# cpu_begin/cpu_window take the VMM's CPU time; div, sub_, med.

# vm_run LABEL CMD...: boot the guest with ember.bench=...:sync; at its
# "begin" and result lines take the VMM's CPU time, then answer with a
# newline on its serial input (the guest waits for it, so the VMM is still
# there and the window has not started / nothing else has run).  Sets RES
# (the result line, or empty), CPU (VMM CPU seconds in the window, vCPU
# left out) and VCPU (the vCPU thread's).
vm_run() {
	local label=$1 line rd wr pid rc began=
	shift
	RES= CPU=- VCPU=-
	: >"$tmp/$label.out"
	coproc VMPROC { exec "$@" 2>"$tmp/$label.err"; }
	pid=$VMPROC_PID
	# Private copies: bash closes the coproc's own fds when it is reaped.
	exec {rd}<&"${VMPROC[0]}" {wr}>&"${VMPROC[1]}"
	while IFS= read -r -t $((SECS + 60)) line <&"$rd"; do
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$tmp/$label.out"
		case $line in
		"BENCH blk begin "*) cpu_begin "$pid"; began=$line; echo >&"$wr" ;;
		"BENCH blk rw="*) [ -n "$began" ] && read -r CPU VCPU <<<"$(cpu_window "$pid")"; RES=$line; echo >&"$wr" ;;
		esac
	done
	kill "$pid" 2>/dev/null # only if it hung (read timed out)
	wait "$pid"
	rc=$?
	exec {rd}<&- {wr}>&-
	if [ -z "$RES" ] || [ $rc -ne 0 ]; then
		echo "blk: $label: no result (exit status $rc)" >&2
		tail -n 5 "$tmp/$label.out" "$tmp/$label.err" >&2
		RES= CPU=- VCPU=-
		return 1
	fi
	echo "$label ${RES#BENCH blk } cpu_s=$CPU vcpu_s=$VCPU tsc_mhz=$(field tsc_mhz "$began") boot_tsc_mhz=$(field boot_tsc_mhz "$began")" >>"$LOG"
	return 0
}

# fio_run RW BS QD: sets FIO to "iops kibps lat_mean_us lat_p99_us cpu_pct lat_p50_us".
fio_run() {
	local t
	t=$(fio --name=blk --filename="$FILE" --ioengine=io_uring --direct=1 --rw="$1" --bs="$2" \
		--iodepth="$3" --runtime="$SECS" --time_based --lat_percentiles=1 --randrepeat=0 \
		--norandommap --output-format=terse 2>"$tmp/fio.err") || { FIO="- - - - - -"; return 1; }
	# Terse v3: read fields 7 bw KiB/s, 8 IOPS, 24 "50.000000%=us", 30
	# "99.000000%=us", 40 total latency mean (us) (percentiles of the
	# total latency with --lat_percentiles); the write ones 41 later;
	# 88/89 usr/sys %.
	FIO=$(awk -F';' -v w=$([ "$1" = write ] && echo 41 || echo 0) '{
		p = $(30 + w); sub(/.*=/, "", p); m = $(24 + w); sub(/.*=/, "", m)
		u = $88; s = $89; sub(/%/, "", u); sub(/%/, "", s)
		printf "%d %d %.1f %s %.1f %s\n", $(8 + w), $(7 + w), $(40 + w), p, u + s, m }' <<<"$t")
}

EMBER_BLK=("$EMBER" --kernel "$TESTGUEST" --console stdio --disk "$FILE,direct")
QEMU_BLK=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config -nographic
	-no-reboot -serial stdio -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false
	-drive "id=d0,file=$FILE,format=raw,if=none,aio=io_uring,cache=none"
	-device virtio-blk-device,drive=d0)

tests=("rr4k_qd1 randread 4k 1" "rr4k_qd32 randread 4k 32"
	"seqrd128k_qd$SEQ_QD read 128k $SEQ_QD" "seqwr128k_qd$SEQ_QD write 128k $SEQ_QD")
# V[test,who,metric] = the per-round values, space-separated.
# who: e (ember), q (QEMU), f (fio); metrics: iops kib mean p50 p99 ipc cpu
# vcpu ntf (the guest's time per notifying kick, us)
declare -A V
add() { V[$1,$2,$3]+="$4 "; }
# record TEST WHO RESULT-LINE CPU-SECONDS VCPU-SECONDS (a VMM round)
record() {
	local n=$1 w=$2 l=$3 c=$4 x
	add "$n" "$w" iops "$(field iops "$l")"
	add "$n" "$w" kib "$(field kibps "$l")"
	for x in mean p50 p99; do
		add "$n" "$w" "$x" "$(div "$(field lat_${x}_ns "$l")" 1000)"
	done
	add "$n" "$w" ntf "$(div "$(field notify_ns "$l")" 1000)"
	add "$n" "$w" cpu "$c"
	add "$n" "$w" vcpu "$(div "$5" "$SECS" 100 %.0f)"
	add "$n" "$w" ipc "$(div "$(field ops "$l")" "$c" 1 %.0f)"
}
fail=0
for r in $(seq "$ROUNDS"); do
	for t in "${tests[@]}"; do
		read -r name rw bs qd <<<"$t"
		spec=$rw:$bs:$qd:$SECS
		# Rotate the order so no VMM always runs first (or after fio).
		case $((r % 3)) in
		1) order="f e q" ;; 2) order="e q f" ;; 0) order="q f e" ;;
		esac
		for w in $order; do
			case $w in
			f)
				if fio_run "$rw" "$bs" "$qd"; then
					read -r fi fk fl fp fc f50 <<<"$FIO"
					echo "fio-$name-$r iops=$fi kibps=$fk lat_mean_us=$fl lat_p50_us=$f50 lat_p99_us=$fp cpu_pct=$fc" >>"$LOG"
					add "$name" f iops "$fi"; add "$name" f kib "$fk"; add "$name" f mean "$fl"
					add "$name" f p50 "$f50"; add "$name" f p99 "$fp"
					add "$name" f ipc "$(div "$fi" "$fc" 100 %.0f)"
				else
					echo "blk: fio $spec failed: $(tail -3 "$tmp/fio.err")" >&2
					fail=1
				fi ;;
			e)
				vm_run "ember-$name-$r" "${EMBER_BLK[@]}" --cmdline "ember.bench=blk:$spec:sync" || fail=1
				record "$name" e "$RES" "$CPU" "$VCPU" ;;
			q)
				vm_run "qemu-$name-$r" "${QEMU_BLK[@]}" -append "ember.bench=blk:$spec:sync" || fail=1
				record "$name" q "$RES" "$CPU" "$VCPU" ;;
			esac
		done
	done
done

# M TEST WHO METRIC [FORMAT]: the median over the rounds; mx: the largest.
M() { med "${4:-%.1f}" ${V[$1,$2,$3]:-}; }
mx() { printf '%s\n' ${V[$1,$2,$3]:-} | grep -E '^[0-9.]+$' | sort -g | tail -n 1 | grep . || echo -; }

echo "### Block I/O: test guest's polling virtio-blk driver vs host fio (median of $ROUNDS round(s) of $SECS s per test, $FILE_MB MiB file on ext4, O_DIRECT)"
echo
echo "| test | ember IOPS | QEMU IOPS | ember / QEMU | host fio IOPS | ember % of fio | QEMU % of fio | ember MiB/s | QEMU MiB/s | fio MiB/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
dat="# ember vs QEMU microvm vs host fio, virtio-blk, medians of $ROUNDS rounds of $SECS s (columns: see bench/blk.sh)"
dat+=$'\n'"# test rw bs qd ember_iops qemu_iops fio_iops ember_mibps qemu_mibps fio_mibps ember_lat_us qemu_lat_us fio_lat_us ember_p99_us qemu_p99_us fio_p99_us ember_iops_per_cpus qemu_iops_per_cpus fio_iops_per_cpus ember_cpu_s qemu_cpu_s ember_p50_us qemu_p50_us fio_p50_us ember_vcpu_pct qemu_vcpu_pct ember_best_iops qemu_best_iops fio_best_iops ember_notify_us qemu_notify_us"
cpu_rows= raw=
for t in "${tests[@]}"; do
	read -r name rw bs qd <<<"$t"
	ei=$(M "$name" e iops %.0f) qi=$(M "$name" q iops %.0f) fi=$(M "$name" f iops %.0f)
	em=$(div "$(M "$name" e kib)" 1024) qm=$(div "$(M "$name" q kib)" 1024) fm=$(div "$(M "$name" f kib)" 1024)
	echo "| $rw $bs QD$qd | $ei | $qi | $(ratio "$ei" "$qi") | $fi | $(div "$ei" "$fi" 100) | $(div "$qi" "$fi" 100) | $em | $qm | $fm |"
	epc=$(M "$name" e ipc %.0f) qpc=$(M "$name" q ipc %.0f) fpc=$(M "$name" f ipc %.0f)
	ecs=$(M "$name" e cpu %.2f) qcs=$(M "$name" q cpu %.2f)
	cpu_rows+="| $rw $bs QD$qd | $epc | $qpc | $(ratio "$epc" "$qpc") | $ecs | $qcs | $fpc | $(M "$name" e vcpu %.0f) | $(M "$name" q vcpu %.0f) |"$'\n'
	dat+=$'\n'"$name $rw $(numfmt --from=iec "${bs^^}") $qd $ei $qi $fi $em $qm $fm"
	for x in mean p99; do
		dat+=" $(M "$name" e $x) $(M "$name" q $x) $(M "$name" f $x)"
	done
	dat+=" $epc $qpc $fpc $ecs $qcs $(M "$name" e p50) $(M "$name" q p50) $(M "$name" f p50)"
	dat+=" $(M "$name" e vcpu %.0f) $(M "$name" q vcpu %.0f)"
	dat+=" $(mx "$name" e iops) $(mx "$name" q iops) $(mx "$name" f iops) $(M "$name" e ntf) $(M "$name" q ntf)"
	raw+="| $rw $bs QD$qd | ${V[$name,e,iops]:-} | ${V[$name,q,iops]:-} | ${V[$name,f,iops]:-} |"$'\n'
done
echo
echo "### Block I/O latency at QD1 (4k random read, us, medians of the rounds; added = VMM - host fio)"
echo
echo "| | ember | QEMU microvm | host fio | ember added | QEMU added |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for x in mean p50 p99; do
	ev=$(M rr4k_qd1 e $x) qv=$(M rr4k_qd1 q $x) fv=$(M rr4k_qd1 f $x)
	echo "| $x | $ev | $qv | $fv | $(sub_ "$ev" "$fv") | $(sub_ "$qv" "$fv") |"
done
echo "| one QueueNotify exit (guest-timed, part of every request) | $(M rr4k_qd1 e ntf) | $(M rr4k_qd1 q ntf) | - | | |"
echo
echo "### Block I/O CPU cost: IOPS per VMM CPU-second (CPU time of the VMM's threads but the vCPU's, timed window only)"
echo
echo "| test | ember | QEMU microvm | ember / QEMU | ember CPU s per round | QEMU CPU s per round | host fio IOPS per fio CPU-second | ember vCPU on CPU % | QEMU vCPU on CPU % |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s' "$cpu_rows"
echo
echo "\"vCPU on CPU\": the polling guest keeps its vCPU busy, so below ~100 % the host was short of CPU (other load) and the guest could not reap and resubmit at full speed."
echo
echo "IOPS of each round (the spread behind the medians):"
echo
echo "| test | ember | QEMU microvm | host fio |"
echo "| --- | --- | --- | --- |"
printf '%s' "$raw"
echo
printf '%s\n' "$dat" >"$OUTDIR/blk.dat"
exit $fail
