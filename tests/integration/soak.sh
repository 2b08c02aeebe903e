#!/usr/bin/env bash
# Soak: many short test-guest VMs, then nothing may be left behind.
#
#   per-vm          while VMs run, each one holds exactly the descriptors and
#                   threads its devices need (counted in /proc/PID/fd, task)
#   sequential      SOAK_SEQ (1000) VMs one after another, every 10th with
#                   the same disk image (a lock not released fails the next)
#   concurrent      SOAK_CONC (100) VMs alive at the same time, each with its
#                   own disk and tap (in a private network namespace); each
#                   runs blk_rw and net_config, then waits in serial_rx_irq
#                   until all of them are up, and is released by its input
# and after each batch, each a PASS/FAIL of its own: every VM exited 0 and
# its guest passed; no ember process of ours left (/proc/*/exe); the runner
# has the descriptors it had; every tap released (carrier down) and every image
# lock free; MemAvailable (corrected for other processes' anonymous memory and the per-CPU free lists)
# and the kernel's own memory back to where they were (within
# SOAK_MEM_TOL_MIB, 64, and SOAK_KERN_TOL_MIB, 16).
#
# The VMs run a private copy of ember ($TMP/ember-soak), so the /proc scan
# sees only this script's VMs, not other ones on the machine.
. "$(dirname "$0")/lib.sh"

TG=${TESTGUEST:-$ROOT/build/testguest.elf}
SEQ=${SOAK_SEQ:-1000}
CONC=${SOAK_CONC:-100}
MEM_TOL_MIB=${SOAK_MEM_TOL_MIB:-64}
KERN_TOL_MIB=${SOAK_KERN_TOL_MIB:-16}
NS=ember-soak-$$
RX_IRQ_LINE='ember-testguest-rx-irq 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ'
E=$TMP/ember-soak
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

TESTS=(per-vm per-vm-threads sequential/exit sequential/no-process sequential/runner-fds
	sequential/lock-free sequential/memory concurrent/alive concurrent/per-vm concurrent/exit
	concurrent/no-process concurrent/runner-fds concurrent/taps-released concurrent/locks-free
	concurrent/memory)
why=$(why_no_vm_net "$TG")
if [ -n "$why" ]; then
	for t in "${TESTS[@]}"; do skip "soak/$t" "$why"; done
	exit 0
fi
cp "$EMBER" "$E"

# avail_kib: MemAvailable plus AnonPages plus the free pages parked in the
# per-CPU free lists.  On a shared machine other processes allocate and free
# hundreds of MiB meanwhile, which moves MemAvailable and AnonPages by the
# same amount; memory ember left behind in the kernel (a VM, a ring, a tap)
# lowers MemAvailable alone.  Once our VMs are gone none of the AnonPages are
# ours.  The guest RAM 100 VMs free at once goes first to the per-CPU lists
# (/proc/zoneinfo "count:"), which MemFree does not include and which the
# kernel drains back over several seconds: measured here, 100-140 MiB of
# "missing" MemAvailable right after the VMs exit is all there.
pcp_kib() { awk '$1 == "count:" { s += $2 } END { print s * 4 }' /proc/zoneinfo; }
avail_kib() { echo $(($(awk '/^(MemAvailable|AnonPages):/ { s += $2 } END { print s }' /proc/meminfo) + $(pcp_kib))); }
mem_avail_kib() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
runner_fds() { ls /proc/$$/fd | wc -l; }
# ours: PIDs of live processes running $E (a VM that lingers shows here).
ours() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/exe" 2>/dev/null)" = "$E" ] && echo "${p#/proc/}"
	done
}
# own_fds PID: descriptors ember opened itself (not the inherited stdio):
# KVM, io_uring, eventfds, taps, disk images.
own_fds() {
	ls -l "/proc/$1/fd" 2>/dev/null | awk -v img="^$TMP/.*[.]img\$" '
		$NF == "/dev/kvm" || $NF == "/dev/net/tun" || $NF ~ /^anon_inode:/ || $NF ~ img { n++ }
		END { print n + 0 }'
}
# vm_threads PID: threads other than io-wq workers (iou-wrk-*, come and go
# with blocking I/O, at most 4+4) and KVM's NX huge-page recovery worker
# (kvm-nx-lpage-re, one per VM on kernels that have it).
vm_threads() { cat "/proc/$1"/task/*/comm 2>/dev/null | grep -vcE '^(iou-wrk-|kvm-nx-lpage-re)'; }
# expected_fds CPUS DISKS DIRECT_DISKS NICS CONSOLE_STDIO(0/1): what main.c,
# blk.c and net.c open, and why:
#   5    /dev/kvm, the VM, the io_uring ring, the stop eventfd, 1 vCPU
#   +1   per further vCPU
#   +3   per disk: the image (which also holds its lock), queue-notify
#        eventfd, irqfd
#   +1   per ,direct disk: the buffered descriptor for unaligned requests
#   +5   per NIC: the tap, 2 queue-notify eventfds, irqfd, quiesce eventfd
#   +2   --console stdio: UART room and output-pending eventfds
expected_fds() { echo $((5 + ($1 - 1) + 3 * $2 + $3 + 5 * $4 + 2 * $5)); }
# taps_busy: taps in the namespace still attached: carrier up (LOWER_UP),
# which the tun driver drops as its last reader goes.  Not NO-CARRIER: that
# follows the operational state, which the kernel's link watcher updates up
# to a second later (for a hundred taps going down at once, it did).
taps_busy() { ip netns exec "$NS" ip -o link show 2>/dev/null | grep 'sctap' | grep -c 'LOWER_UP'; }
# kern_kib: kernel memory a leaked VM, ring or tap would hold and user
# space elsewhere on the machine barely moves: unreclaimable slab, kernel
# stacks, page tables.
kern_kib() { awk '/^(SUnreclaim|KernelStack|PageTables):/ { s += $2 } END { print s }' /proc/meminfo; }
# mem_back NAME AVAIL_KIB KERN_KIB: avail_kib within SOAK_MEM_TOL_MIB and
# kernel memory within SOAK_KERN_TOL_MIB of before, polled for up to 5 s
# (KVM and io_uring free some memory after the process is gone).
# meminfo_moved BEFORE_FILE: the /proc/meminfo fields that moved most (by at
# least 4 MiB) since BEFORE_FILE was saved, for the failure message.
meminfo_moved() {
	awk 'NR == FNR { b[$1] = $2; next } ($1 in b) { d = $2 - b[$1]; if (d < 0) d = -d
		if (d >= 4096) printf "%d %s%+d MiB\n", d, $1, ($2 - b[$1]) / 1024 }' "$1" /proc/meminfo |
		sort -rn | head -8 | cut -d' ' -f2- | tr '\n' ' '
}
mem_back() {
	local name=$1 before=$2 kbefore=$3 now best=-1 know kbest= i
	for ((i = 0; i < 25; i++)); do
		now=$(avail_kib)
		know=$(kern_kib)
		[ "$now" -gt "$best" ] && best=$now
		[ -z "$kbest" ] || [ "$know" -lt "$kbest" ] && kbest=$know
		[ $(((before - best) / 1024)) -le "$MEM_TOL_MIB" ] &&
			[ $(((kbest - kbefore) / 1024)) -le "$KERN_TOL_MIB" ] && break
		sleep 0.2
	done
	if [ $(((before - best) / 1024)) -gt "$MEM_TOL_MIB" ]; then
		fail "soak/$name" "MemAvailable+AnonPages+per-CPU free $((before / 1024)) MiB before, $((best / 1024)) MiB after (tolerance $MEM_TOL_MIB MiB); moved: $(meminfo_moved "$TMP/meminfo0")"
	elif [ $(((kbest - kbefore) / 1024)) -gt "$KERN_TOL_MIB" ]; then
		fail "soak/$name" "kernel memory (SUnreclaim+KernelStack+PageTables) $((kbefore / 1024)) MiB before, $((kbest / 1024)) MiB after (tolerance $KERN_TOL_MIB MiB); moved: $(meminfo_moved "$TMP/meminfo0")"
	else
		pass "soak/$name"
	fi
	echo "INFO soak/$name: MemAvailable+AnonPages+per-CPU free $((before / 1024)) -> $((best / 1024)) MiB (MemAvailable alone $((MEMRAW0 / 1024)) -> $(($(mem_avail_kib) / 1024)) MiB), kernel (SUnreclaim+KernelStack+PageTables) $((kbefore / 1024)) -> $((kbest / 1024)) MiB"
}

if ! { ip netns add "$NS" && ip netns exec "$NS" ip link set lo up; } 2>"$TMP/ns.err"; then
	for t in "${TESTS[@]}"; do fail "soak/$t" "namespace setup: $(head -c 200 "$TMP/ns.err")"; done
	exit 0
fi
for ((i = 0; i < CONC; i++)); do echo "tuntap add dev sctap$i mode tap"; echo "link set sctap$i up"; done |
	ip netns exec "$NS" ip -batch - 2>"$TMP/ns.err" || { fail soak/setup "taps: $(head -c 200 "$TMP/ns.err")"; exit 0; }

# ---- per-vm: a VM with 2 vCPUs, 2 disks (one ,direct) and a NIC ----
truncate -s 1M "$TMP/p0.img" "$TMP/p1.img"
ip netns exec "$NS" "$E" --kernel "$TG" --console none --cpus 2 --disk "$TMP/p0.img" \
	--disk "$TMP/p1.img,direct" --net sctap0 --cmdline ember.test=serial_rx_poll </dev/null >/dev/null 2>"$TMP/pv.err" &
pv=$!
pids+=("$pv")
want=$(expected_fds 2 2 1 1 0)
for ((i = 0; i < 100; i++)); do
	[ "$(ip netns exec "$NS" ip -o link show sctap0 | grep -c LOWER_UP)" = 1 ] && break
	sleep 0.05
done
sleep 0.2   # the vCPUs are running: past every open
got=$(own_fds "$pv")
threads=$(vm_threads "$pv")
if [ "$got" = "$want" ]; then pass soak/per-vm; else
	fail soak/per-vm "ember with 2 vCPUs, 2 disks (1 direct), 1 NIC holds $got descriptors of its own, want $want: $(ls -l /proc/$pv/fd | awk '{print $NF}' | sort | uniq -c | tr '\n' ' ')"
fi
echo "INFO soak/per-vm: 2 vCPUs, 2 disks (1 direct), 1 NIC: $got descriptors of its own, $threads threads (+ $(cat /proc/$pv/task/*/comm | grep -cE '^(iou-wrk-|kvm-nx-lpage-re)') io-wq/kvm workers)"
if [ "$threads" = 3 ]; then pass soak/per-vm-threads; else
	fail soak/per-vm-threads "$threads threads besides io-wq and kvm-nx-lpage-recovery, want 3 (main + 2 vCPUs): $(cat /proc/$pv/task/*/comm | tr '\n' ' ')"
fi
# SIGTERM: a clean shutdown (128 + 15), everything released like a normal exit.
kill -TERM "$pv"
wait "$pv"
rc=$?
pids=()
[ "$rc" = 143 ] || fail soak/per-vm "SIGTERM: exit status $rc, want 143: $(head -c 300 "$TMP/pv.err")"

# ---- sequential ----
truncate -s 1M "$TMP/seq.img"
fds0=$(runner_fds)
cp /proc/meminfo "$TMP/meminfo0"
mem0=$(avail_kib)
MEMRAW0=$(mem_avail_kib)
kern0=$(kern_kib)
bad=0 first=
t0=$EPOCHREALTIME
for ((i = 0; i < SEQ; i++)); do
	disk=()
	[ $((i % 10)) = 0 ] && disk=(--disk "$TMP/seq.img")
	"$E" --kernel "$TG" --console none "${disk[@]}" --cmdline ember.test= \
		</dev/null >/dev/null 2>"$TMP/seq.err"
	rc=$?
	if [ "$rc" != 0 ]; then
		bad=$((bad + 1))
		[ -z "$first" ] && first="VM $i: status $rc: $(head -c 200 "$TMP/seq.err")"
	fi
done
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
if [ "$bad" = 0 ]; then pass soak/sequential/exit; else fail soak/sequential/exit "$bad of $SEQ VMs failed; first: $first"; fi
echo "INFO soak/sequential: $SEQ VMs in $secs s ($(awk -v s="$secs" -v n="$SEQ" 'BEGIN { printf "%.1f", 1000 * s / n }') ms each)"
left=$(ours)
if [ -z "$left" ]; then pass soak/sequential/no-process; else fail soak/sequential/no-process "still running: $left"; fi
fds1=$(runner_fds)
if [ "$fds1" = "$fds0" ]; then pass soak/sequential/runner-fds; else
	fail soak/sequential/runner-fds "the runner had $fds0 descriptors, now $fds1"
fi
if flock -n -x "$TMP/seq.img" true; then pass soak/sequential/lock-free; else
	fail soak/sequential/lock-free "the image is still locked"
fi
mem_back sequential/memory "$mem0" "$kern0"

# ---- concurrent ----
fds0=$(runner_fds)
cp /proc/meminfo "$TMP/meminfo0"
mem0=$(avail_kib)
MEMRAW0=$(mem_avail_kib)
kern0=$(kern_kib)
wr=()
for ((i = 0; i < CONC; i++)); do
	truncate -s 1M "$TMP/c$i.img"
	mkfifo "$TMP/in$i"
	exec {fd}<>"$TMP/in$i"   # the writer: opening it read-write never blocks
	wr+=("$fd")
done
t0=$EPOCHREALTIME
for ((i = 0; i < CONC; i++)); do
	ip netns exec "$NS" "$E" --kernel "$TG" --console stdio --disk "$TMP/c$i.img" --net "sctap$i" \
		--cmdline "ember.test=blk_rw,net_config,serial_rx_irq testguest.rx_timeout=120" <"$TMP/in$i" >"$TMP/out$i" 2>"$TMP/err$i" &
	pids+=($!)
done
# All up: every guest waits in serial_rx_irq (halted, no CPU) at once.
ready=0
for ((t = 0; t < 1200; t++)); do
	ready=$(grep -l '^READY serial_rx_irq' "$TMP"/out* 2>/dev/null | wc -l)
	[ "$ready" = "$CONC" ] && break
	sleep 0.05
done
alive=$(ours | wc -l)
memp=$(mem_avail_kib)
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
if [ "$ready" = "$CONC" ] && [ "$alive" = "$CONC" ]; then pass soak/concurrent/alive; else
	fail soak/concurrent/alive "$ready of $CONC guests waiting, $alive VMs alive"
fi
want=$(expected_fds 1 1 0 1 1)
badfd=0 badthr=0 ex=
for p in "${pids[@]}"; do
	got=$(own_fds "$p")
	th=$(vm_threads "$p")
	[ "$got" != "$want" ] && { badfd=$((badfd + 1)); [ -z "$ex" ] && ex="pid $p: $got descriptors"; }
	[ "$th" != 2 ] && { badthr=$((badthr + 1)); [ -z "$ex" ] && ex="pid $p: $th threads"; }
done
if [ "$badfd" = 0 ] && [ "$badthr" = 0 ]; then pass soak/concurrent/per-vm; else
	fail soak/concurrent/per-vm "$badfd VMs without $want descriptors of their own, $badthr without 2 threads (main + vCPU); $ex"
fi
echo "INFO soak/concurrent: $CONC VMs started and waiting in $secs s, alive at once took $(((MEMRAW0 - memp) / 1024)) MiB of MemAvailable; each $want descriptors of its own, 2 threads"
for fd in "${wr[@]}"; do
	printf '%s\n' "$RX_IRQ_LINE" >&"$fd"
done
bad=0 first=
for ((i = 0; i < CONC; i++)); do
	wait "${pids[$i]}"
	rc=$?
	if [ "$rc" != 0 ] || ! grep -q 'TESTGUEST DONE passed=3 failed=0' "$TMP/out$i"; then
		bad=$((bad + 1))
		[ -z "$first" ] && first="VM $i: status $rc, $(grep -E 'FAIL|DONE' "$TMP/out$i" | tr '\r\n' '  ' | head -c 200) $(head -c 200 "$TMP/err$i")"
	fi
done
pids=()
for fd in "${wr[@]}"; do exec {fd}>&-; done
if [ "$bad" = 0 ]; then pass soak/concurrent/exit; else fail soak/concurrent/exit "$bad of $CONC VMs failed; first: $first"; fi
left=$(ours)
if [ -z "$left" ]; then pass soak/concurrent/no-process; else fail soak/concurrent/no-process "still running: $left"; fi
fds1=$(runner_fds)
if [ "$fds1" = "$fds0" ]; then pass soak/concurrent/runner-fds; else
	fail soak/concurrent/runner-fds "the runner had $fds0 descriptors, now $fds1"
fi
busy=$(taps_busy)
if [ "$busy" = 0 ]; then pass soak/concurrent/taps-released; else
	fail soak/concurrent/taps-released "$busy taps still attached: $(ip netns exec "$NS" ip -o link show | grep sctap | grep LOWER_UP | head -c 300)"
fi
locked=0
for ((i = 0; i < CONC; i++)); do flock -n -x "$TMP/c$i.img" true || locked=$((locked + 1)); done
if [ "$locked" = 0 ]; then pass soak/concurrent/locks-free; else fail soak/concurrent/locks-free "$locked images still locked"; fi
mem_back concurrent/memory "$mem0" "$kern0"
