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
#   restart       every boot on a killed image started (once the dead VM's ring
#                 let go of the image lock) and read the
#                 image exactly as the host holds it
#   coverage      at least 10 % of the kills came with each operation type
#                 submitted and not yet seen complete
# CRASH_ITERS kills per mode (default 100).  CRASH_SEED: the clean run's
# seed; kill i runs seed CRASH_SEED+i (default: from the clock; a failure
# names it, and the same CRASH_SEED reruns the same workloads and kill
# times).
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

# A file descriptor that read -t can wait on: sleeping without a fork.
exec {nap}<> <(:)

# verify_read MODE DISK-OPTIONS IMG: after a digest mismatch, read IMG once
# more through ember (crash_verify=1, one hash per 64 KiB) and say whether
# the guest's view and the host's differ now, and where.
verify_read() {
	local out=$TMP/$1.verify diff
	timeout -k 2 20 "$EMBER" --kernel "$TG" --console stdio --disk "$3$2" \
		--cmdline "ember.test=crash_workload testguest.crash_seed=0 testguest.crash_verify=1" \
		</dev/null 2>/dev/null | tr -d '\r' | grep '^CRASH CHUNK' | sort >"$out"
	diff=$(diff "$out" <("$CHECK" chunks "$3" | sort) | grep '^>' | grep -o 's=[0-9]*' | tr '\n' ' ')
	if [ ! -s "$out" ]; then
		echo "a second read through ember failed"
	elif [ -n "$diff" ]; then
		echo "a second read through ember still differs in the 128 sectors from $diff"
	else
		echo "a second read through ember agrees with the host"
	fi
}

# run_mode NAME DISK-OPTIONS
run_mode() {
	local m=$1 opts=$2 img=$TMP/$1.img prev=$TMP/$1.prev out=$TMP/$1.out
	local i seed pid t ms res rc why
	local -A sum=() bad=()
	local fails=() restart_bad=() clean_why= late_iters=0 settle_max=0 kills=0
	local cov_write=0 cov_wz=0 cov_discard=0 cov_flush=0 ops= late_w=0 late_z=0 ring_late=0 ring_stuck=0
	local st lines=()

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
		# Empty it here: the background job's own redirection may come
		# after the first poll, which would find the last boot's lines.
		: >"$out"
		"$EMBER" --kernel "$TG" --console stdio --disk "$img$opts" \
			--cmdline "ember.test=crash_workload testguest.crash_seed=$seed" \
			</dev/null >"$out" 2>"$TMP/$m.err" &
		pid=$!
		# Poll for the START line without forking (mapfile, read -t).
		for ((t = 0; t < 2000; t++)); do
			mapfile -t lines <"$out"
			[[ "${lines[*]}" == *"CRASH START"* ]] && break
			kill -0 "$pid" 2>/dev/null || break
			read -rt 0.005 -u "$nap" || :
		done
		if [[ "${lines[*]}" != *"CRASH START"* ]]; then
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			rc=$?
			restart_bad+=("iteration $i (seed $seed): no CRASH START after $t polls (exit status $rc): $(err_lines "$TMP/$m.err" | head -n 1) $(tail -n 2 "$out" | tr '\r\n' '  ')")
			continue
		fi
		printf -v st '0.%03d' "$ms"
		read -rt "$st" -u "$nap" || :
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		kills=$((kills + 1))
		# The process is reaped, but the kernel frees its io_uring ring
		# (whose registered files keep the image open) only a moment
		# later, and O_DIRECT writes in flight could land until then:
		# crashcheck waits for it, says whether the image changed, checks
		# it and copies it to $prev for the next boot.
		res=$("$CHECK" after-kill "$prev" "$img" "$out" 10000 2>&1)
		rc=$?
		local -A R=()
		local line kvp first=
		while IFS= read -r line; do
			if [[ $line == "result "* ]]; then
				for kvp in $line; do
					[[ $kvp == *=* ]] && R[${kvp%%=*}]=${kvp#*=}
				done
			elif [[ $line == "settle "* ]]; then
				t=${line#*waited_ms=}; t=${t%% *}
				[ "$t" -gt "$settle_max" ] && settle_max=$t
				[[ $line == *" tries=0 "* ]] || ring_late=$((ring_late + 1))
				[[ $line == *" changed=0"* ]] || late_iters=$((late_iters + 1))
				[[ $line == *" still_open=0"* ]] || ring_stuck=$((ring_stuck + 1))
			elif [ -z "$first" ] && [[ $line == detail* || $line == crashcheck:* ]]; then
				first=$line
			fi
		done <<<"$res"
		local k v
		for k in write write_zeroes discard acked; do
			v=${R[$k]:-0/0}
			sum[$k]=$(( ${sum[$k]:-0} + ${v%/*} ))
			bad[$k]=$(( ${bad[$k]:-0} + ${v#*/} ))
		done
		bad[garbage]=$(( ${bad[garbage]:-0} + ${R[garbage]:-0} ))
		[ "${R[digest]:-}" = ok ] ||
			restart_bad+=("iteration $i (seed $seed): the guest's digest of the image it started on differs from the host's ($(verify_read "$m" "$opts" "$img"))")
		[ "${R[pending_write]:-0}" -gt 0 ] && cov_write=$((cov_write + 1))
		[ "${R[pending_wz]:-0}" -gt 0 ] && cov_wz=$((cov_wz + 1))
		[ "${R[pending_discard]:-0}" -gt 0 ] && cov_discard=$((cov_discard + 1))
		[ "${R[pending_flush]:-0}" -gt 0 ] && cov_flush=$((cov_flush + 1))
		[ "${R[late_write]:-0}" -gt 0 ] && late_w=$((late_w + 1))
		[ "${R[late_zero]:-0}" -gt 0 ] && late_z=$((late_z + 1))
		if [ "$rc" -ne 0 ]; then
			fails+=("iteration $i (seed $seed, killed after $ms ms, d=${R[d]:-?} v=${R[v]:-?} u=${R[u]:-?}): ${first:-$(head -c 200 <<<"$res")}")
			[[ $res == *"crashcheck: "* ]] && cp "$img" "$prev"   # it stopped before saving
		fi
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
			fail "blk-crash/$m/$name" "${bad[$key]} of ${sum[$key]:-0} sectors wrong over $kills kills (CRASH_SEED=$SEED0 reruns the same seeds and kill times); ${fails[*]:0:2}"
		elif [ "${sum[$key]:-0}" -eq 0 ]; then
			fail "blk-crash/$m/$name" "no sector was ever checked: the kills never came after a FLUSH"
		else
			pass "blk-crash/$m/$name"
		fi
	done
	if [ "${bad[garbage]:-0}" -ne 0 ]; then
		fail "blk-crash/$m/no-garbage" "${bad[garbage]} sectors hold data nothing wrote there (CRASH_SEED=$SEED0 reruns the same seeds and kill times); ${fails[*]:0:2}"
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
	echo "INFO blk-crash/$m: $kills kills (seeds $((SEED0 + 1))..$((SEED0 + ITERS))); kills with the operation in flight: write $cov_write, write zeroes $cov_wz, discard $cov_discard, flush $cov_flush; the disk showed an unreported write in $late_w kills, unreported zeroes in $late_z; sectors checked durable: write ${sum[write]:-0}, write zeroes ${sum[write_zeroes]:-0}, discard ${sum[discard]:-0}; acked ${sum[acked]:-0}; the ring still held the image when the process was reaped: $ring_late kills, for up to ${settle_max} ms (still after 10 s: $ring_stuck); the image changed after the process was reaped: $late_iters kills"
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

# The two disk modes run side by side (each on its own image): most of an
# iteration is waiting (for the kill, for the ring to let go), so this
# about halves the wall time; each mode's lines come out together.
qemu_clean
run_mode buffered "" >"$TMP/buffered.res" 2>&1 &
bpid=$!
if dd if=/dev/zero of="$TMP/probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
	run_mode direct ",direct" >"$TMP/direct.res" 2>&1
else
	skip blk-crash/direct "O_DIRECT not supported in $TMP" >"$TMP/direct.res"
fi
wait "$bpid"
cat "$TMP/buffered.res" "$TMP/direct.res"
