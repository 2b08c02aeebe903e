#!/usr/bin/env bash
# Crash consistency of virtio-blk (docs/reliability.md, "Crash consistency").
#
# The test guest's crash_workload (tests/guest/crash.c) runs a
# deterministic mix of WRITE, WRITE_ZEROES, DISCARD and FLUSH with 8
# requests in flight and says on serial what has completed and what a
# FLUSH made durable.  Each iteration boots ember on the image the last one
# killed, SIGKILLs it 20-300 ms into the workload, waits until the dead
# process's io_uring ring has let go of the image, and has tests/crashcheck
# recompute from the seed what every sector may hold.  Per disk mode
# (buffered, ,direct) one result per property:
#   clean         a run to its end (no kill) leaves exactly the modelled image
#                 (also on QEMU's virtio-blk, which validates guest and model)
#   flush         after that run's final FLUSH an fdatasync of the image finds
#                 nothing to write back (cachestat): what a kill cannot show
#   write, write-zeroes, discard
#                 every sector whose last durable request (completed before
#                 a FLUSH that completed) was of that kind holds its value
#                 or a later request's (discard: zeroes or the older value)
#   acked         every request the guest saw complete is there (beyond the
#                 spec: the host kernel survives a process kill)
#   no-garbage    no sector torn, misplaced or holding invented data
#   restart       every boot on a killed image started at once and read the
#                 image exactly as the host holds it
#   coverage      the kills hit each operation type pending
# CRASH_ITERS (default 100) iterations per mode, CRASH_SEED the first seed
# (default: from the clock; a failure names the seed to rerun it with).
. "$(dirname "$0")/lib.sh"

TG=${TESTGUEST:-$ROOT/build/testguest.elf}
CHECK=$ROOT/build/crashcheck
ITERS=${CRASH_ITERS:-100}
SEED0=${CRASH_SEED:-$(( $(date +%s) % 100000 * 1000 ))}
SECTORS=8192   # 4 MiB: small, so requests overwrite each other often
KILL_MIN=20 KILL_SPAN=281   # ms after CRASH START: 20..300

if ! have_kvm; then
	skip blk-crash "/dev/kvm not usable"
	exit 0
fi
if [ ! -x "$EMBER" ] || [ ! -r "$TG" ]; then
	fail blk-crash "needs $EMBER and $TG (make, make testguest)"
	exit 1
fi
if [ ! -x "$CHECK" ] || [ "$ROOT/tests/crashcheck.c" -nt "$CHECK" ] ||
   [ "$ROOT/tests/guest/crashproto.h" -nt "$CHECK" ]; then
	mkdir -p "$ROOT/build"
	if ! ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -I"$ROOT/tests" -o "$CHECK" \
		"$ROOT/tests/crashcheck.c" 2>"$TMP/cc.err"; then
		fail blk-crash "cannot build tests/crashcheck.c: $(head -c 300 "$TMP/cc.err" | tr '\n' ' ')"
		exit 1
	fi
fi

# kv LINE KEY: the value of KEY=... in a crashcheck result line.
kv() { local v=${1#* $2=}; [ "$v" = "$1" ] && echo 0 || echo "${v%% *}"; }

# run_mode NAME DISK-OPTIONS
run_mode() {
	local m=$1 opts=$2 img=$TMP/$1.img prev=$TMP/$1.prev out=$TMP/$1.out
	local i seed pid t ms res rc why
	local -A sum=() bad=()
	local fails=() restart_bad=() clean_why= late_iters=0 settle_max=0 kills=0
	local cov_write=0 cov_wz=0 cov_discard=0 cov_flush=0 ops= late_w=0 late_z=0

	"$CHECK" init "$img" "$SECTORS" || { fail "blk-crash/$m" "crashcheck init failed"; return; }
	cp "$img" "$prev"

	# A run to its end: the final FLUSH makes everything exact.
	timeout -k 2 30 "$EMBER" --kernel "$TG" --console stdio --disk "$img$opts" \
		--cmdline "ember.test=crash_workload testguest.crash_seed=$SEED0 testguest.crash_reqs=3000" \
		</dev/null >"$out" 2>"$TMP/$m.err"
	rc=$?
	res=$("$CHECK" check "$prev" "$img" "$out" 2>&1)
	if [ "$rc" -ne 0 ] || ! grep -q 'TEST crash_workload PASS' "$out"; then
		clean_why="the run ended with status $rc: $(grep -m1 -E 'CRASH FAIL|TEST crash_workload' "$out") $(err_lines "$TMP/$m.err" | head -n 1)"
	elif ! grep -q '^result ok=1 .*ended=1' <<<"$res"; then
		clean_why="seed $SEED0: $(grep -m3 -E '^(detail|result)' <<<"$res" | tr '\n' ' ')"
	fi
	[ -z "$clean_why" ] && pass "blk-crash/$m/clean" || fail "blk-crash/$m/clean" "$clean_why"
	# Its last request was a FLUSH and nothing wrote after it: an fdatasync
	# of the image must find no dirty page to write back.
	res=$("$CHECK" dirty "$img")
	case $? in
	0) pass "blk-crash/$m/flush" ;;
	3) skip "blk-crash/$m/flush" "cachestat(2) unavailable ($res): needs Linux 6.5" ;;
	*) fail "blk-crash/$m/flush" "after the run's final FLUSH the image still had pages to write back ($res): FLUSH did not fdatasync it" ;;
	esac
	ops=$(grep -m1 -o 'ops=0x[0-9a-f]*' "$out")
	ops=$(( ${ops#ops=} + 0 ))   # bit 1 << enum crash_op (crashproto.h)
	cp "$img" "$prev"

	for ((i = 1; i <= ITERS; i++)); do
		seed=$((SEED0 + i))
		ms=$(( (seed * 2654435761 % 4294967296) % KILL_SPAN + KILL_MIN ))
		"$EMBER" --kernel "$TG" --console stdio --disk "$img$opts" \
			--cmdline "ember.test=crash_workload testguest.crash_seed=$seed" \
			</dev/null >"$out" 2>"$TMP/$m.err" &
		pid=$!
		for ((t = 0; t < 1000; t++)); do
			grep -q '^CRASH START' "$out" && break
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.005
		done
		if ! grep -q '^CRASH START' "$out"; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			restart_bad+=("iteration $i (seed $seed): no CRASH START: $(err_lines "$TMP/$m.err" | head -n 1) $(grep -m1 'CRASH FAIL' "$out")")
			continue
		fi
		sleep "$(printf '0.%03d' "$ms")"
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		kills=$((kills + 1))
		# The process is gone; its ring may still hold the image (and
		# O_DIRECT writes in flight may still land) for a moment.
		cp "$img" "$TMP/$m.reaped"
		t=$("$CHECK" settle "$img" 2000)
		t=${t#*waited_ms=}; t=${t%% *}; t=${t%.*}
		[ "$t" -gt "$settle_max" ] && settle_max=$t
		cmp -s "$img" "$TMP/$m.reaped" || late_iters=$((late_iters + 1))
		res=$("$CHECK" check "$prev" "$img" "$out" 2>&1)
		rc=$?
		local r k
		r=$(grep '^result ' <<<"$res")
		for k in write write_zeroes discard acked; do
			local v; v=$(kv "$r" "$k")
			sum[$k]=$(( ${sum[$k]:-0} + ${v%/*} ))
			bad[$k]=$(( ${bad[$k]:-0} + ${v#*/} ))
		done
		bad[garbage]=$(( ${bad[garbage]:-0} + $(kv "$r" garbage) ))
		[ "$(kv "$r" digest)" = ok ] || restart_bad+=("iteration $i (seed $seed): the guest read an image that differs from the host's")
		[ "$(kv "$r" pending_write)" -gt 0 ] && cov_write=$((cov_write + 1))
		[ "$(kv "$r" pending_wz)" -gt 0 ] && cov_wz=$((cov_wz + 1))
		[ "$(kv "$r" pending_discard)" -gt 0 ] && cov_discard=$((cov_discard + 1))
		[ "$(kv "$r" pending_flush)" -gt 0 ] && cov_flush=$((cov_flush + 1))
		[ "$(kv "$r" late_write)" -gt 0 ] && late_w=$((late_w + 1))
		[ "$(kv "$r" late_zero)" -gt 0 ] && late_z=$((late_z + 1))
		if [ "$rc" -ne 0 ]; then
			fails+=("iteration $i (seed $seed, killed after $ms ms, $(grep -o 'd=[0-9]* v=[0-9]* u=[0-9]*' <<<"$r")): $(grep -m1 -E '^detail|^result fail|crashcheck:' <<<"$res")")
		fi
		cp "$img" "$prev"
	done

	# One result per property; a failure names the first iterations.
	local p key name
	for p in write:write write-zeroes:write_zeroes discard:discard acked:acked; do
		name=${p%%:*} key=${p#*:}
		if [ "$name" = write-zeroes ] && [ $(( ops & 2 )) -eq 0 ]; then
			skip "blk-crash/$m/$name" "the device does not offer WRITE_ZEROES"; continue
		fi
		if [ "$name" = discard ] && [ $(( ops & 8 )) -eq 0 ]; then
			skip "blk-crash/$m/$name" "the device does not offer DISCARD"; continue
		fi
		if [ "${bad[$key]:-0}" -ne 0 ]; then
			fail "blk-crash/$m/$name" "${bad[$key]} of ${sum[$key]:-0} sectors wrong over $kills kills (first seed $SEED0); ${fails[*]:0:2}"
		elif [ "${sum[$key]:-0}" -eq 0 ]; then
			fail "blk-crash/$m/$name" "no sector was ever checked: the kills never came after a FLUSH"
		else
			pass "blk-crash/$m/$name"
		fi
	done
	if [ "${bad[garbage]:-0}" -ne 0 ]; then
		fail "blk-crash/$m/no-garbage" "${bad[garbage]} sectors hold data nothing wrote there (first seed $SEED0); ${fails[*]:0:2}"
	else
		pass "blk-crash/$m/no-garbage"
	fi
	if [ ${#restart_bad[@]} -ne 0 ]; then
		fail "blk-crash/$m/restart" "${#restart_bad[@]} of $ITERS boots: ${restart_bad[*]:0:3}"
	else
		pass "blk-crash/$m/restart"
	fi
	local need=$(( kills / 10 ))
	if [ "$kills" -eq 0 ] || [ "$cov_write" -lt "$need" ] || [ "$cov_flush" -lt "$need" ] ||
	   { [ $(( ops & 2 )) -ne 0 ] && [ "$cov_wz" -lt "$need" ]; } ||
	   { [ $(( ops & 8 )) -ne 0 ] && [ "$cov_discard" -lt "$need" ]; }; then
		fail "blk-crash/$m/coverage" "of $kills kills, these many had the operation in flight: write $cov_write, write zeroes $cov_wz, discard $cov_discard, flush $cov_flush (want >= $need each)"
	else
		pass "blk-crash/$m/coverage"
	fi
	echo "INFO blk-crash/$m: $kills kills (seeds $((SEED0 + 1))..$((SEED0 + ITERS))); kills with the operation in flight: write $cov_write, write zeroes $cov_wz, discard $cov_discard, flush $cov_flush; the disk showed an unreported write in $late_w kills, unreported zeroes in $late_z; sectors checked durable: write ${sum[write]:-0}, write zeroes ${sum[write_zeroes]:-0}, discard ${sum[discard]:-0}; acked ${sum[acked]:-0}; image changed after the process was reaped: $late_iters kills; longest wait for the ring to let go of the image: ${settle_max} ms"
}

# The same run to its end on QEMU's virtio-blk: the workload, its driver
# and the checker's model agree with an independent device (QEMU keeps
# discarded data where the image has no discard=unmap: the model allows it).
qemu_clean() {
	local img=$TMP/qemu.img prev=$TMP/qemu.prev out=$TMP/qemu.out res
	local QEMU=${QEMU:-qemu-system-x86_64}
	if ! command -v "$QEMU" >/dev/null; then
		skip blk-crash/qemu/clean "$QEMU not installed"
		return
	fi
	"$CHECK" init "$img" "$SECTORS" && cp "$img" "$prev"
	timeout -k 2 60 "$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on \
		-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config -nographic \
		-no-reboot -serial stdio -kernel "$TG" -global virtio-mmio.force-legacy=false \
		-drive "id=d0,file=$img,format=raw,if=none,aio=io_uring,cache=writeback,discard=unmap" \
		-device virtio-blk-device,drive=d0 \
		-append "ember.test=crash_workload testguest.crash_seed=$SEED0 testguest.crash_reqs=3000" \
		</dev/null >"$out" 2>"$TMP/qemu.err"
	res=$("$CHECK" check "$prev" "$img" "$out" 2>&1)
	if ! grep -q 'TEST crash_workload PASS' "$out"; then
		fail blk-crash/qemu/clean "$(grep -m1 -E 'CRASH FAIL|TEST crash_workload' "$out") $(head -n 1 "$TMP/qemu.err")"
	elif ! grep -q '^result ok=1 .*ended=1' <<<"$res"; then
		fail blk-crash/qemu/clean "seed $SEED0: $(grep -m3 -E '^(detail|result)' <<<"$res" | tr '\n' ' ')"
	else
		pass blk-crash/qemu/clean
	fi
}

qemu_clean
run_mode buffered ""
if dd if=/dev/zero of="$TMP/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	run_mode direct ",direct"
else
	skip blk-crash/direct "O_DIRECT not supported in $TMP"
fi
