#!/usr/bin/env bash
# The test guest's hostile_* tests (tests/guest/hostile.c, hostile2.c): a
# guest that abuses its virtio-blk and virtio-net devices on purpose
# (descriptors outside RAM, loops, bad indirect tables, bad ring indices,
# bad queue set-up, writes to every register in every device state, wrong
# status sequences, malformed requests, resets with I/O in flight, a flood
# of notifies, receive buffers never posted or never taken back).  Each
# test passes when the device answers as virtio 1.2 allows, the VMM keeps
# running, and the device works again after a reset.
#
# Prints "PASS vmm/test", "FAIL vmm/test: why", "SKIP vmm/test: why" for
# tests/run, and "# ..." comment lines (timings, counters, measurements).
#
# Boots (each on a fresh 1 MiB disk whose sectors 0-15 start with
# "ember-hostile-sector-N\n", the rest zero; the tests check it after
# every abuse and write only at sector 64 and above):
#   qemu        QEMU microvm, every test in one boot: virtio-blk-device
#               (INDIRECT_DESC, EVENT_IDX on) and a virtio-net-device on the
#               tap below (a restricted user netdev without root), with the
#               QEMU quirks below
#   ember       ember --disk --net --boot-time, one boot per test, so that
#               the counters ember prints on exit are that test's: each
#               boot reports ember/TEST/counters, checked against what
#               the test did (COUNTERS below)
#   ember-asan  every test in one boot of build/ember-asan, when it is
#               built: a hostile guest must not make the VMM touch memory
#               it does not own (TESTGUEST_HOSTILE_ASAN=0 leaves it out)
# Each boot also reports vmm/boot (ember: ember/TEST/boot): the VMM exited
# cleanly (status 0) within TESTGUEST_TIMEOUT seconds and the guest printed
# its summary line.
#
# The network: a private namespace (ember-th-PID, IPv6 off, removed on
# exit) holding one tap, thtap0, which the VMM attaches to; nothing else
# is on it.  Without root, ip(8) or /dev/net/tun, ember gets no NIC (the
# net tests SKIP there) and QEMU a user netdev.
#
# The runner handshake: a test that needs the host prints
# "SYNC <test> <tag>" and waits for one byte on its serial input ('y',
# or 'n' when the runner cannot), so every VMM runs with its stdin and
# stdout on a pipe to this script (a coproc):
#   flood-on, flood-off   start / stop build/netflood (tests/netflood.c)
#                         sending FLOOD_PPS frames a second to the guest's
#                         MAC out of thtap0, into the VMM's tap queue
#   window:NAME           sample the VMM's CPU time (every thread but the
#                         vCPUs': /proc/PID/task/*/schedstat, a vCPU being
#                         a thread with guest time) and RSS, wait WINDOW_S
#                         seconds, sample again: the VMM must have used less
#                         than MAX_CPU_PCT % of a CPU and grown by at most
#                         MAX_RSS_KB (ember and QEMU alike) - it must not
#                         spin or buffer while the guest takes nothing
#   begin:NAME, end:NAME  the same over a window the guest decides (the
#                         notify flood): only the RSS bound, CPU reported
# The results are vmm/test/window-NAME lines.
#
# Environment: EMBER (./ember), EMBER_ASAN (build/ember-asan), TESTGUEST
# (build/testguest.elf), QEMU (qemu-system-x86_64), TESTGUEST_TIMEOUT
# (seconds per boot, 60), TESTGUEST_VERBOSE=1 (show each boot's output),
# TESTGUEST_HOSTILE=a,b (run only these tests), TESTGUEST_HOSTILE_ASAN=0,
# CC (for netflood, cc).
set -u
cd "$(dirname "$0")/../.." || exit 1
EMBER=${EMBER:-$PWD/ember}
EMBER_ASAN=${EMBER_ASAN:-$PWD/build/ember-asan}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${TESTGUEST_TIMEOUT:-60}
VERBOSE=${TESTGUEST_VERBOSE:-0}
FLOOD=$PWD/build/netflood
MAC=52:54:00:7e:57:02
FLOOD_PPS=20000
WINDOW_S=1.5
MAX_CPU_PCT=20
MAX_RSS_KB=1024

HOSTILE_TESTS=(hostile_regs_readonly hostile_config_space hostile_mmio_width
	hostile_status_order hostile_features_unoffered hostile_status_clear
	hostile_queue_size hostile_queue_addr hostile_queue_not_ready hostile_notify_early
	hostile_notify_bad_queue hostile_queue_change_live
	hostile_desc_outside_ram hostile_desc_loop hostile_chain_long hostile_len_overflow
	hostile_indirect_len hostile_indirect_nested hostile_indirect_after_direct
	hostile_avail_head hostile_avail_idx
	hostile_blk_layout hostile_blk_len hostile_blk_sector hostile_blk_type
	hostile_reset_inflight hostile_net_tx
	hostile_regs_states hostile_net_regs_states hostile_net_reset_inflight
	hostile_notify_flood hostile_net_rx_chains hostile_net_rx_starve)
list=${TESTGUEST_HOSTILE:-$(IFS=,; echo "${HOSTILE_TESTS[*]}")}
# The guest reads at most 511 bytes of one command line word: name the
# whole group by its prefix unless a subset was asked for.
names=${TESTGUEST_HOSTILE:-hostile_*}

# What each test must leave in ember's --boot-time counters (its own boot):
# "DEV.COUNTER>=N" words, DEV blk or net; the counters are named in
# counters() below.  They show that ember noticed and counted the abuse
# (bad requests, bad chains, refused set-ups, NEEDS_RESET, drops, ...),
# not just that it survived.
declare -A COUNTERS=(
	[hostile_regs_readonly]="blk.bad_access>=28"
	[hostile_config_space]="blk.bad_access>=20"
	[hostile_mmio_width]="blk.bad_access>=10"
	[hostile_status_order]="blk.bad_status>=3 blk.bad_queue>=1"
	[hostile_features_unoffered]="blk.bad_status>=3"
	[hostile_status_clear]="blk.bad_status>=2"
	[hostile_queue_size]="blk.bad_queue>=6"
	[hostile_queue_addr]="blk.bad_queue>=10"
	[hostile_queue_not_ready]="blk.ignored>=1"
	[hostile_notify_early]="blk.ignored>=1"
	[hostile_notify_bad_queue]="blk.bad_access>=6"
	[hostile_queue_change_live]="blk.bad_access>=6"
	[hostile_desc_outside_ram]="blk.bad_requests>=12"
	[hostile_desc_loop]="blk.bad_requests>=6"
	[hostile_chain_long]="blk.bad_requests>=2"
	[hostile_len_overflow]="blk.bad_requests>=3"
	[hostile_indirect_len]="blk.bad_requests>=6"
	[hostile_indirect_nested]="blk.bad_requests>=2"
	[hostile_indirect_after_direct]="blk.reads>=1"
	[hostile_avail_head]="blk.needs_reset>=2"
	[hostile_avail_idx]="blk.needs_reset>=3"
	[hostile_blk_layout]="blk.bad_requests>=6"
	[hostile_blk_len]="blk.bad_requests>=4"
	[hostile_blk_sector]="blk.bad_requests>=7"
	[hostile_blk_type]="blk.bad_requests>=4"
	[hostile_reset_inflight]="blk.resets>=32 blk.reads>=32 blk.writes>=8"
	[hostile_net_tx]="net.bad_chains>=8 net.tx_dropped>=8 net.needs_reset>=1 net.tx_packets>=10"
	[hostile_regs_states]="blk.bad_access>=2000 blk.bad_status>=20 blk.needs_reset>=1"
	[hostile_net_regs_states]="net.bad_access>=2000 net.bad_status>=20 net.needs_reset>=1"
	[hostile_net_reset_inflight]="net.resets>=24 net.tx_packets>=1 net.rx_packets>=1"
	[hostile_notify_flood]="blk.notifies>=10000 blk.bad_access>=1000 blk.reads>=10"
	[hostile_net_rx_chains]="net.bad_chains>=8 net.needs_reset>=1 net.rx_packets>=10"
	[hostile_net_rx_starve]="net.rx_packets>=32 net.rx_waits>=2 net.rx_dropped>=1"
)

# Known QEMU 7.2 answers the guest reports as INFO instead of failing
# (tests/guest/hostile.c and README.md, "Hostile tests"): OK for buffers
# outside RAM, FEATURES_OK kept with unoffered bits, buffers used after
# QueueReady 0 and before DRIVER_OK, no indirect table after direct
# descriptors, and aborts on a virtio-net transmit or receive buffer
# shorter than the header (not tried).  TESTGUEST_HOSTILE_QUIRKS= (empty)
# makes the guest strict on QEMU too.
QEMU_QUIRKS=${TESTGUEST_HOSTILE_QUIRKS-dma_unassigned,features_unoffered,queue_not_ready,notify_early,indirect_after_direct,net_short_tx,net_short_rx}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testguest-hostile.XXXXXX") || exit 1
NS=ember-th-$$
ns_made= vm_pid= flood_pid=
cleanup() {
	[ -n "$vm_pid" ] && kill -9 "$vm_pid" 2>/dev/null
	[ -n "$flood_pid" ] && kill "$flood_pid" 2>/dev/null
	wait 2>/dev/null
	[ -n "$ns_made" ] && ip netns del "$NS" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

all_fail() { # LABEL "LIST" WHY
	local t IFS=,
	for t in $2 boot; do echo "FAIL $1/$t: $3"; done
}
all_skip() {
	local t IFS=,
	for t in $2; do echo "SKIP $1/$t: $3"; done
}

# The disk every boot gets fresh: 1 MiB, sectors 0-15 marked.
make_disk() { # PATH
	rm -f "$1"
	truncate -s 1M "$1"
	for i in $(seq 0 15); do
		printf 'ember-hostile-sector-%d\n' "$i" |
			dd of="$1" bs=512 seek="$i" conv=notrunc status=none
	done
}

# ---- measuring the VMM ----
# cpu_begin PID: T0[TID] = each thread's ns on CPU (schedstat) now, RSS0 =
# VmRSS (kB).  cpu_since PID: "NS RSS": the CPU time since then of every
# thread but the vCPUs' (those with guest time: field 43 of their stat),
# a thread born since counting from 0 (one gone since is lost, a few
# microseconds of an io-wq worker), and VmRSS now.  One window at a time.
declare -A T0
RSS0=0
vmm_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_begin() { # PID
	local t ns
	T0=()
	for t in /proc/"$1"/task/*; do
		read -r ns _ 2>/dev/null <"$t/schedstat" && T0[${t##*/}]=$ns
	done
	RSS0=$(vmm_rss "$1")
}
cpu_since() { # PID
	local t s f ns sum=0
	for t in /proc/"$1"/task/*; do
		{ s=$(<"$t/stat"); } 2>/dev/null || continue
		read -r -a f <<<"${s##*) }" # fields from 3 (state) on: guest_time (43) is f[40]
		read -r ns _ 2>/dev/null <"$t/schedstat" || continue
		[ "${f[40]:-0}" -gt 0 ] || sum=$((sum + ns - ${T0[${t##*/}]:-0}))
	done
	echo "$sum $(vmm_rss "$1")"
}

tap_dropped() {
	ip netns exec "$NS" cat /sys/class/net/thtap0/statistics/tx_dropped 2>/dev/null || echo 0
}

flood_start() {
	local i
	[ -n "$net_ok" ] && [ -x "$FLOOD" ] || return 1
	[ -n "$flood_pid" ] && return 0
	drop0=$(tap_dropped)
	ip netns exec "$NS" "$FLOOD" --if thtap0 --dst "$MAC" --pps "$FLOOD_PPS" --timeout $((TIMEOUT + 5)) \
		>"$tmp/flood.log" 2>&1 &
	flood_pid=$!
	for ((i = 0; i < 200; i++)); do
		grep -q '^FLOOD ready' "$tmp/flood.log" && return 0
		kill -0 "$flood_pid" 2>/dev/null || break
		sleep 0.01
	done
	echo "# netflood did not start: $(head -c 200 "$tmp/flood.log")"
	kill "$flood_pid" 2>/dev/null
	wait "$flood_pid" 2>/dev/null
	flood_pid=
	return 1
}

flood_stop() { # LABEL TEST
	[ -n "$flood_pid" ] || return 0
	kill "$flood_pid" 2>/dev/null
	wait "$flood_pid" 2>/dev/null
	flood_pid=
	echo "# $1: $2: $(grep '^FLOOD sent' "$tmp/flood.log"), the kernel dropped $(($(tap_dropped) - drop0)) at the tap" \
		>>"$tmp/notes"
}

# One SYNC line: act, then answer (y or n) on the VMM's serial input.
# Window results go to $tmp/win as "TEST NAME KIND CPU_NS WALL_NS RSS0 RSS1".
T_BEGIN=
sync_line() { # LABEL PID WRFD TEST TAG
	local label=$1 pid=$2 wr=$3 test=$4 tag=$5 s1 t1 ans=y
	case $tag in
	flood-on) flood_start || ans=n ;;
	flood-off) flood_stop "$label" "$test" ;;
	window:*)
		T_BEGIN=$(date +%s%N)
		cpu_begin "$pid"
		sleep "$WINDOW_S"
		s1=$(cpu_since "$pid"); t1=$(date +%s%N)
		echo "$test ${tag#window:} window ${s1% *} $((t1 - T_BEGIN)) $RSS0 ${s1#* }" >>"$tmp/win" ;;
	begin:*) T_BEGIN=$(date +%s%N); cpu_begin "$pid" ;;
	end:*)
		s1=$(cpu_since "$pid"); t1=$(date +%s%N)
		echo "$test ${tag#end:} span ${s1% *} $((t1 - ${T_BEGIN:-$t1})) $RSS0 ${s1#* }" >>"$tmp/win" ;;
	*) ans=n ;;
	esac
	printf '%s\n' "$ans" >&"$wr"
}

# Judge the windows of one boot.
report_windows() { # LABEL
	local label=$1 test name kind cpu wall r0 r1 pct grow bad
	[ -s "$tmp/win" ] || return 0
	while read -r test name kind cpu wall r0 r1; do
		pct=$(awk -v c="$cpu" -v w="$wall" 'BEGIN { p = w > 0 ? 100 * c / w : 0; printf "%.1f", p }')
		grow=$((r1 - r0))
		echo "# $label: $test: $name: VMM CPU ${pct}% of one CPU over $((wall / 1000000)) ms (vCPU threads left out), RSS ${r0} -> ${r1} kB"
		bad=
		if [ "$kind" = window ] && awk -v p="$pct" -v m="$MAX_CPU_PCT" 'BEGIN { exit !(p >= m) }'; then
			bad="the VMM used ${pct}% of a CPU while the guest took nothing (bound ${MAX_CPU_PCT}%): it spins"
		fi
		if [ "$grow" -gt "$MAX_RSS_KB" ]; then
			bad="${bad:+$bad; }the VMM's RSS grew by $grow kB (bound $MAX_RSS_KB kB)"
		fi
		if [ -n "$bad" ]; then echo "FAIL $label/$test/window-$name: $bad"; else echo "PASS $label/$test/window-$name"; fi
	done <"$tmp/win"
	: >"$tmp/win"
}

# ember's --boot-time counters as "DEV.NAME VALUE" lines.
counters() { # ERRFILE
	local line dev re
	while IFS= read -r line; do
		case $line in
		"ember: virtio-blk0: "[0-9]*) dev=blk ;;
		"ember: virtio-blk0 transport: "*) dev=blk ;;
		"ember: virtio-net0 ("*) dev=net ;;
		"ember: virtio-net0 transport: "*) dev=net ;;
		*) continue ;;
		esac
		for re in "reads:([0-9]+) reads" "writes:([0-9]+) writes" "bad_requests:([0-9]+) bad requests" \
			"io_errors:([0-9]+) I/O errors" "notifies:([0-9]+) notifies" "wakeups:([0-9]+) wakeups" \
			"ignored:([0-9]+) ignored" "resets:([0-9]+) resets" "bad_access:([0-9]+) bad register" \
			"bad_queue:([0-9]+) refused queue" "bad_status:([0-9]+) refused status" \
			"needs_reset:([0-9]+) needs-reset" "rx_packets:rx ([0-9]+) packets" \
			"rx_dropped:rx [0-9]+ packets \([0-9]+ bytes\), ([0-9]+) dropped" "rx_waits:([0-9]+) waits" \
			"tx_packets:tx ([0-9]+) packets" "tx_dropped:tx [0-9]+ packets \([0-9]+ bytes\), ([0-9]+) dropped" \
			"bad_chains:([0-9]+) bad chains"; do
			[[ $line =~ ${re#*:} ]] && echo "$dev.${re%%:*} ${BASH_REMATCH[1]}"
		done
	done <"$1"
}

# Counts the guest itself reported that ember's counters must reach: the
# notify flood's INFO line says how many notifies went where.
guest_counts() { # TEST OUTFILE
	local re='([0-9]+) to queue 0, ([0-9]+) to absent queues, ([0-9]+) odd widths, ([0-9]+) to virtio-net' line
	[ "$1" = hostile_notify_flood ] || return 0
	line=$(grep -m1 "^INFO hostile_notify_flood [0-9]* notifies" "$2")
	[[ $line =~ $re ]] || return 0
	echo "blk.notifies>=${BASH_REMATCH[1]} blk.bad_access>=$((BASH_REMATCH[2] + BASH_REMATCH[3]))"
	[ "${BASH_REMATCH[4]}" -gt 0 ] && echo "net.notifies+net.bad_access>=${BASH_REMATCH[4]}"
}

check_counters() { # LABEL TEST ERRFILE OUTFILE
	local label=$1 test=$2 want w key k min got bad=
	want="${COUNTERS[$2]:-} $(guest_counts "$2" "$4")"
	declare -A have=()
	while read -r key got; do have[$key]=$got; done < <(counters "$3")
	echo "# $label: $test: counters: $(for k in $(printf '%s\n' "${!have[@]}" | sort); do
		[ "${have[$k]}" != 0 ] && printf '%s=%s ' "$k" "${have[$k]}"; done)"
	[ -n "${want// /}" ] || return 0
	for w in $want; do
		key=${w%%>=*} min=${w#*>=} got=0
		for k in ${key//+/ }; do
			if [ -z "${have[$k]:-}" ]; then
				bad="${bad:+$bad; }no counter $k in --boot-time's output"
				continue 2
			fi
			got=$((got + have[$k]))
		done
		[ "$got" -lt "$min" ] && bad="${bad:+$bad; }$key is $got, the test makes at least $min"
	done
	if [ -n "$bad" ]; then echo "FAIL $label/$test/counters: $bad"; else echo "PASS $label/$test/counters"; fi
}

report() { # LABEL LIST RC OUT ERR
	local label=$1 list=$2 rc=$3 out=$4 err=$5 t line res why us bad=0
	local IFS=,
	for t in $list; do
		line=$(grep -m1 "^TEST $t " "$out")
		res=$(echo "$line" | cut -d' ' -f3)
		why=$(echo "$line" | cut -d' ' -f4-)
		case $res in
		PASS) echo "PASS $label/$t" ;;
		SKIP) echo "SKIP $label/$t: $why" ;;
		FAIL) echo "FAIL $label/$t: $why"; bad=1 ;;
		*) echo "FAIL $label/$t: no result (the guest never reported this test)"; bad=1 ;;
		esac
		us=$(grep -m1 "^TIME $t " "$out" | cut -d' ' -f3)
		[ -n "$us" ] && echo "# $label: $t $((us / 1000)) ms"
	done
	unset IFS
	us=$(grep -m1 "^TIME total " "$out" | cut -d' ' -f3)
	[ -n "$us" ] && echo "# $label: all tests $((us / 1000)) ms"
	local boot=$label/${BOOT_NAME:-boot}
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL $boot: timed out after ${TIMEOUT}s"
		bad=1
	elif [ "$rc" -ne 0 ]; then
		echo "FAIL $boot: VMM exit status $rc"
		bad=1
	elif ! grep -q '^TESTGUEST DONE passed=[0-9]* failed=[0-9]* skipped=[0-9]*$' "$out"; then
		echo "FAIL $boot: no 'TESTGUEST DONE' summary line"
		bad=1
	else
		echo "PASS $boot"
	fi
	[ -s "$tmp/notes" ] && cat "$tmp/notes" && : >"$tmp/notes"
	report_windows "$label"
	if [ "$bad" -ne 0 ] || [ "$VERBOSE" = 1 ]; then
		echo "---- $label: guest output (last 60 lines) ----"
		tail -n 60 "$out" | sed 's/^/    /'
		if [ -s "$err" ]; then
			echo "---- $label: stderr (last 20 lines) ----"
			tail -n 20 "$err" | sed 's/^/    /'
		fi
	fi
	BAD=$bad
}

# run_vm LABEL LIST CMD...: the VMM as a coproc (its serial console on our
# pipes), answering SYNC lines, killed after TIMEOUT seconds.
run_vm() {
	local label=$1 list=$2 line rd wr rc ms t0 end
	shift 2
	local out=$tmp/$label.out err=$tmp/$label.err
	: >"$out"
	t0=$(date +%s%N)
	end=$(($(date +%s) + TIMEOUT))
	coproc VMPROC { exec "$@" 2>"$err"; }
	vm_pid=$VMPROC_PID
	# Private copies: bash closes the coproc's own fds when it is reaped.
	exec {rd}<&"${VMPROC[0]}" {wr}>&"${VMPROC[1]}"
	rc=
	while :; do
		if ! IFS= read -r -t "$(( end - $(date +%s) > 0 ? end - $(date +%s) : 1 ))" line <&"$rd"; then
			# EOF, or the deadline.
			[ "$(date +%s)" -ge "$end" ] && rc=124
			break
		fi
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$out"
		if [[ $line == "SYNC "* ]]; then
			read -r _ st stag <<<"$line"
			sync_line "$label" "$vm_pid" "$wr" "$st" "$stag"
		fi
	done
	if [ -n "$rc" ]; then
		kill -9 "$vm_pid" 2>/dev/null
		wait "$vm_pid" 2>/dev/null
	else
		wait "$vm_pid"
		rc=$?
	fi
	vm_pid=
	exec {rd}<&- {wr}>&-
	flood_stop "$label" "(left running)"
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "# $label: exit status $rc after $ms ms"
	[ "$VERBOSE" = 1 ] && echo "# $label: $*"
	report "$label" "$list" "$rc" "$out" "$err"
}

if [ ! -r "$TESTGUEST" ]; then
	echo "FAIL testguest-hostile: $TESTGUEST not built (make testguest)"
	exit 1
fi
if [ ! -w /dev/kvm ]; then
	all_skip qemu "$list" "/dev/kvm not usable"
	all_skip ember "$list" "/dev/kvm not usable"
	exit 0
fi
cmdline="testguest.times=1"
: >"$tmp/win"
: >"$tmp/notes"

# ---- the network namespace and the packet source ----
in_ns=() net_ok=
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && [ -w /dev/net/tun ] && ip netns add "$NS" 2>/dev/null; then
	ns_made=1
	if ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
		ip -n "$NS" tuntap add dev thtap0 mode tap && ip -n "$NS" link set thtap0 up; then
		in_ns=(ip netns exec "$NS") net_ok=1
	fi
fi
if [ -n "$net_ok" ] && { [ ! -x "$FLOOD" ] || [ tests/netflood.c -nt "$FLOOD" ]; }; then
	mkdir -p build
	${CC:-cc} -O2 -Wall -Wextra -Werror -o "$FLOOD" tests/netflood.c 2>"$tmp/cc.err" ||
		echo "# cannot build tests/netflood.c (the flood tests will SKIP): $(head -c 300 "$tmp/cc.err" | tr '\n' ' ')"
fi

# ---- QEMU microvm ----
if ! command -v "$QEMU" >/dev/null; then
	all_skip qemu "$list" "$QEMU not installed"
else
	if [ -n "$net_ok" ]; then
		qnet=(-netdev tap,id=n0,ifname=thtap0,script=no,downscript=no,vhost=off)
	else
		qnet=(-netdev user,id=n0,restrict=on)
	fi
	make_disk "$tmp/qemu.img"
	run_vm qemu "$list" "${in_ns[@]}" "$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on \
		-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config \
		-nographic -no-reboot -serial stdio -kernel "$TESTGUEST" \
		-global virtio-mmio.force-legacy=false \
		-drive "id=d0,file=$tmp/qemu.img,format=raw,if=none,cache=writeback" \
		-device virtio-blk-device,drive=d0,indirect_desc=on,event_idx=on \
		"${qnet[@]}" -device "virtio-net-device,netdev=n0,mac=$MAC,indirect_desc=on" \
		-append "ember.test=$names $cmdline${QEMU_QUIRKS:+ testguest.quirks=$QEMU_QUIRKS}"
fi

# ---- ember ----
if [ ! -x "$EMBER" ]; then
	all_fail ember "$list" "ember not built ($EMBER)"
	exit 0
fi
net=()
[ -n "$net_ok" ] && net=(--net "thtap0,mac=$MAC")
IFS=, read -r -a tests <<<"$list"
for t in "${tests[@]}"; do
	make_disk "$tmp/ember.img"
	BOOT_NAME=$t/boot run_vm ember "$t" "${in_ns[@]}" "$EMBER" --kernel "$TESTGUEST" --console stdio \
		--boot-time --disk "$tmp/ember.img" "${net[@]}" --cmdline "ember.test=$t $cmdline"
	[ "$BAD" = 0 ] && grep -q "^TEST $t PASS" "$tmp/ember.out" &&
		check_counters ember "$t" "$tmp/ember.err" "$tmp/ember.out"
done
if [ "${TESTGUEST_HOSTILE_ASAN:-1}" != 0 ] && [ -x "$EMBER_ASAN" ]; then
	make_disk "$tmp/asan.img"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
		run_vm ember-asan "$list" "${in_ns[@]}" "$EMBER_ASAN" --kernel "$TESTGUEST" --console stdio \
		--disk "$tmp/asan.img" "${net[@]}" --cmdline "ember.test=$names $cmdline"
fi
exit 0
