#!/usr/bin/env bash
# The test guest's virtio-net tests (tests/guest/net.c) against QEMU
# microvm's virtio-net-device, and later against ember, with the host peer
# (tests/netpeer.c) on the other end of the link.  Prints "PASS vmm/test",
# "FAIL vmm/test: why", "SKIP vmm/test: why" for tests/run.
#
# Everything happens in a private network namespace (ember-tg-PID), removed
# on every exit path with all its links:
#
#   VMM --- tgtap0 ---[ bridge tgbr0 ]--- tgtap1 --- netpeer
#
# tgtap0 is the VMM's tap (QEMU opens it with vnet headers and switches
# its offloads as the guest negotiates); tgtap1 is the peer's, opened with
# vnet headers but no offloads, so the kernel completes partial checksums
# and segments TSO packets on their way to the peer, as a NIC would for
# the wire.  No addresses, no routes, IPv6 off: nothing else talks on it.
#
# The guest and the peer coordinate in-band (tests/guest/netproto.h), so
# this script only starts the peer before each boot and stops it after.
#
# Boots:
#   qemu        every net test, offloads and mergeable buffers on
#   qemu-plain  again with CSUM/TSO/MRG_RXBUF/EVENT_IDX/INDIRECT off: the
#               driver's other paths (csum/tso/mrg tests SKIP there)
#   ember       same as qemu once ember has --net (SKIP until then)
#
# Environment: EMBER, TESTGUEST, QEMU, TESTGUEST_TIMEOUT (seconds per
# boot, 30), TESTGUEST_VERBOSE=1, CC (for the peer, cc).
set -u
cd "$(dirname "$0")/../.."
EMBER=${EMBER:-$PWD/ember}
TESTGUEST=${TESTGUEST:-$PWD/build/testguest.elf}
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${TESTGUEST_TIMEOUT:-30}
VERBOSE=${TESTGUEST_VERBOSE:-0}
PEER=$PWD/build/netpeer
MAC=52:54:00:7e:57:01
NS=ember-tg-$$

# Known QEMU 7.2 deviations the guest reports instead of failing on
# (tests/guest/README.md): num_buffers is not set to 1 without MRG_RXBUF.
# TESTGUEST_NET_QUIRKS= (empty) makes the guest strict on QEMU too.
QEMU_QUIRKS=${TESTGUEST_NET_QUIRKS-testguest.quirks=net_num_buffers}

NET_TESTS=(net_config net_tx net_rx net_echo net_csum net_tso net_mrg_rx net_rx_backpressure)
net=$(IFS=,; echo "${NET_TESTS[*]}")

all_fail() { # LABEL "LIST" WHY
	local t IFS=,
	for t in $2 boot; do echo "FAIL $1/$t: $3"; done
}
all_skip() {
	local t IFS=,
	for t in $2; do echo "SKIP $1/$t: $3"; done
}

if [ ! -r "$TESTGUEST" ]; then
	echo "FAIL testguest-net: $TESTGUEST not built (make testguest)"
	exit 1
fi
why=
if [ ! -w /dev/kvm ]; then why="/dev/kvm not usable"
elif [ "$(id -u)" != 0 ]; then why="needs root (network namespace, taps)"
elif ! command -v ip >/dev/null; then why="no ip(8) (iproute2)"
elif [ ! -w /dev/net/tun ]; then why="/dev/net/tun not usable"
fi
if [ -n "$why" ]; then
	all_skip qemu "$net" "$why"
	all_skip ember "$net" "$why"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/testguest-net.XXXXXX") || exit 1
peer_pid= vm_pid=
cleanup() {
	if [ -n "$vm_pid" ]; then
		kill "$vm_pid" 2>/dev/null
		wait "$vm_pid" 2>/dev/null
	fi
	if [ -n "$peer_pid" ]; then
		kill "$peer_pid" 2>/dev/null
		wait "$peer_pid" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- the peer ----
if [ ! -x "$PEER" ] || [ tests/netpeer.c -nt "$PEER" ] || [ tests/guest/netproto.h -nt "$PEER" ]; then
	mkdir -p build
	if ! ${CC:-cc} -O2 -Wall -Wextra -Werror -o "$PEER" tests/netpeer.c 2>"$tmp/cc.err"; then
		all_fail qemu "$net" "cannot build tests/netpeer.c: $(head -c 300 "$tmp/cc.err" | tr '\n' ' ')"
		exit 0
	fi
fi

# ---- the namespace: tgtap0 (VMM) -- tgbr0 -- tgtap1 (peer) ----
nsx() { ip netns exec "$NS" "$@"; }
setup_ns() {
	ip netns add "$NS" &&
		nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
		nsx ip link add tgbr0 type bridge stp_state 0 forward_delay 0 &&
		nsx ip tuntap add dev tgtap0 mode tap &&
		nsx ip tuntap add dev tgtap1 mode tap &&
		nsx ip link set tgtap0 master tgbr0 &&
		nsx ip link set tgtap1 master tgbr0 &&
		nsx ip link set tgbr0 up &&
		nsx ip link set tgtap0 up &&
		nsx ip link set tgtap1 up
}
if ! setup_ns 2>"$tmp/ns.err"; then
	all_fail qemu "$net" "network namespace setup failed: $(head -c 300 "$tmp/ns.err" | tr '\n' ' ')"
	exit 0
fi

report() { # LABEL LIST RC OUT ERR PEERLOG
	local label=$1 list=$2 rc=$3 out=$4 err=$5 plog=$6 t line res why bad=0
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
	done
	unset IFS
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL $label/boot: timed out after ${TIMEOUT}s"
		bad=1
	elif [ "$rc" -ne 0 ]; then
		echo "FAIL $label/boot: VMM exit status $rc"
		bad=1
	elif ! grep -q '^TESTGUEST DONE passed=[0-9]* failed=[0-9]* skipped=[0-9]*$' "$out"; then
		echo "FAIL $label/boot: no 'TESTGUEST DONE' summary line"
		bad=1
	else
		echo "PASS $label/boot"
	fi
	if [ "$bad" -ne 0 ] || [ "$VERBOSE" = 1 ]; then
		echo "---- $label: guest output (last 40 lines) ----"
		tail -n 40 "$out" | sed 's/^/    /'
		echo "---- $label: peer log (last 30 lines) ----"
		tail -n 30 "$plog" | sed 's/^/    /'
		if [ -s "$err" ]; then
			echo "---- $label: stderr (last 20 lines) ----"
			tail -n 20 "$err" | sed 's/^/    /'
		fi
	fi
}

# run_net LABEL "TEST,LIST" CMD...: start the peer, boot in the namespace,
# stop the peer, report.
run_net() {
	local label=$1 list=$2 i rc ms t0
	shift 2
	local out=$tmp/$label.out err=$tmp/$label.err plog=$tmp/$label.peer
	: >"$out"
	: >"$plog"
	# Not through nsx: $! must be the peer itself (ip netns exec execs it).
	ip netns exec "$NS" "$PEER" --tap tgtap1 --guest-mac "$MAC" --timeout $((TIMEOUT + 5)) >"$plog" 2>&1 &
	peer_pid=$!
	for ((i = 0; i < 500; i++)); do # 5 s
		grep -q '^PEER ready' "$plog" && break
		kill -0 "$peer_pid" 2>/dev/null || break
		sleep 0.01
	done
	if ! grep -q '^PEER ready' "$plog"; then
		all_fail "$label" "$list" "the peer did not start: $(head -c 300 "$plog" | tr '\n' ' ')"
		kill "$peer_pid" 2>/dev/null
		wait "$peer_pid" 2>/dev/null
		peer_pid=
		return
	fi
	# The peer's bridge port forwards once its carrier is up (STP off).
	for ((i = 0; i < 300; i++)); do
		[ "$(nsx cat /sys/class/net/tgtap1/brport/state 2>/dev/null)" = 3 ] && break
		sleep 0.01
	done
	t0=$(date +%s%N)
	# In the background so that a signal to this script is handled at
	# once (cleanup stops the VMM through timeout, which passes it on).
	ip netns exec "$NS" timeout -k 2 "$TIMEOUT" "$@" >"$out" 2>"$err" </dev/null &
	vm_pid=$!
	wait "$vm_pid"
	rc=$?
	vm_pid=
	ms=$((($(date +%s%N) - t0) / 1000000))
	kill "$peer_pid" 2>/dev/null
	wait "$peer_pid" 2>/dev/null
	peer_pid=
	sed -i 's/\r$//' "$out"
	echo "# $label: exit status $rc after $ms ms"
	[ "$VERBOSE" = 1 ] && echo "# $label: $*"
	report "$label" "$list" "$rc" "$out" "$err" "$plog"
}

# ---- QEMU microvm ----
if ! command -v "$QEMU" >/dev/null; then
	all_skip qemu "$net" "$QEMU not installed"
else
	qemu=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
		-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config
		-nographic -no-reboot -serial stdio -kernel "$TESTGUEST"
		-global virtio-mmio.force-legacy=false
		-netdev tap,id=n0,ifname=tgtap0,script=no,downscript=no,vhost=off,vnet_hdr=on)
	run_net qemu "$net" "${qemu[@]}" \
		-device "virtio-net-device,netdev=n0,mac=$MAC,csum=on,guest_csum=on,host_tso4=on,guest_tso4=on,mrg_rxbuf=on,event_idx=on,indirect_desc=on,status=on" \
		-append "ember.test=$net testguest.mac=$MAC testguest.times=1 $QEMU_QUIRKS"
	off=csum=off,guest_csum=off,gso=off,host_tso4=off,host_tso6=off,host_ecn=off,host_ufo=off
	off=$off,guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,mrg_rxbuf=off,event_idx=off,indirect_desc=off
	run_net qemu-plain "$net" "${qemu[@]}" \
		-device "virtio-net-device,netdev=n0,mac=$MAC,$off" \
		-append "ember.test=$net testguest.mac=$MAC testguest.times=1 $QEMU_QUIRKS"
fi

# ---- ember ----
if [ ! -x "$EMBER" ]; then
	all_fail ember "$net" "ember not built ($EMBER)"
elif ! "$EMBER" --help 2>&1 | grep -q -- --net; then
	all_skip ember "$net" "ember has no virtio-net yet (issue 5)"
else
	run_net ember "$net" "$EMBER" --kernel "$TESTGUEST" --console stdio --net "tgtap0,mac=$MAC" \
		--cmdline "ember.test=$net testguest.mac=$MAC testguest.times=1"
fi
exit 0
