#!/usr/bin/env bash
# virtio-net: the test guest's polling driver (ember.bench=net:DIR:LEN:SECS,
# tests/guest/bench_net.c) against a host peer (bench/netpeer-bench.c) on
# the other side of a tap, on ember and on QEMU microvm, and the host alone
# (a stand-in for the VMM that reads/writes the tap one frame per system
# call).  Four tests: guest -> host and host -> guest, 1514-byte frames
# (1500-byte MTU; throughput) and 60-byte frames (64 bytes on the wire with
# the FCS; frame rate).
#
# Everything happens in a private network namespace (ember-nb-PID) with one
# tap, bnt0 (IPv6 off, no addresses: nothing else talks on it), removed on
# every exit path.  The VMM holds the tap's file descriptor; the peer sits
# on the tap's network-interface side with a raw AF_PACKET socket:
#
#   guest --virtio-net-- VMM ==tap fd== [bnt0] --AF_PACKET-- netpeer-bench
#
# guest -> host (dir=tx): the guest keeps its transmit ring full; the peer
#   counts what arrives (TPACKET_V3 ring: the kernel copies each frame in
#   the VMM's write, so the peer needs next to no CPU).  The rate is the
#   frames the VMM moved per second (the guest's count), times the share
#   of them the peer received.
# host -> guest (dir=rx): the peer sends as fast as the kernel takes
#   frames (sendmmsg, qdisc bypassed); the tap drops what the VMM does not
#   read in time (if_tx_dropped); the rate is what the guest received.
#
# QEMU gets -netdev tap,vhost=off: this machine has no /dev/vhost-net (and
# ember has no vhost either); both VMMs move every frame through their own
# threads.  Rounds alternate ember, QEMU and the host alone (order rotates);
# numbers are medians over the rounds.  VMM CPU = /proc/PID/task/*/schedstat
# of every thread but the vCPU's over the guest's window (as bench/blk.sh);
# it includes the host network stack's work done in the VMM's system calls
# (the tap write delivers the frame to the peer's socket in the writer's
# context), alike for both VMMs.
#
# Env: BENCH_SECS (6 per test and VMM, all rounds together), NET_ROUNDS (3;
# each round BENCH_SECS/NET_ROUNDS s), NET_TESTS (which of tx1514 tx60
# rx1514 rx60, all by default), BENCH_OUT (build/bench: net.dat and net.log
# go there).  Needs root (namespace, tap), ip(8).  ~1.5 min with the
# defaults.
#
# Prints markdown tables; writes $BENCH_OUT/net.dat, one line per test,
# medians, "-" where missing:
#   1 test  2 dir (tx = guest -> host)  3 len (bytes, no FCS)
#   4-6   frames/s: ember QEMU host-alone
#   7-9   Mbit/s (Ethernet bytes, no FCS): ember QEMU host-alone
#   10-11 VMM CPU us per frame (vCPU thread left out): ember QEMU
#   12    host-alone stand-in's CPU us per frame
#   13-14 the vCPU thread's time on CPU, % of the window: ember QEMU
#   15-16 the peer's CPU, % of the window: in the ember runs, the QEMU runs
#   17-18 frames the tap dropped on the way to the VMM (rx) / the peer lost (tx), % of those offered: ember QEMU
set -u
source "$(dirname "$0")/common.sh"
TOTAL=${BENCH_SECS:-6}
ROUNDS=${NET_ROUNDS:-3}
[ "$ROUNDS" -ge 1 ] 2>/dev/null || ROUNDS=1
[ "$ROUNDS" -gt "$TOTAL" ] && ROUNDS=$TOTAL
SECS=$((TOTAL / ROUNDS))
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
PEER=${NETPEER_BENCH:-$PWD/build/netpeer-bench}
MAC=52:54:00:be:ec:01
TAP=bnt0
NS=ember-nb-$$

for f in "$EMBER" "$TESTGUEST" "$PEER"; do
	[ -e "$f" ] || { echo "net: $f missing (make ember testguest build/netpeer-bench)" >&2; exit 1; }
done
command -v "$QEMU" >/dev/null || { echo "net: $QEMU not installed" >&2; exit 1; }
command -v ip >/dev/null || { echo "net: ip(8) not installed (iproute2)" >&2; exit 1; }
[ -w /dev/kvm ] || { echo "net: /dev/kvm not usable" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "net: needs root (network namespace and tap)" >&2; exit 1; }
mkdir -p "$OUTDIR" || exit 1
LOG=$OUTDIR/net.log
: >"$LOG"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/netbench.XXXXXX") || exit 1
declare -A PFD PPID_
cleanup() {
	local p
	for p in "${!PPID_[@]}"; do kill "${PPID_[$p]}" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE

nsx() { ip netns exec "$NS" "$@"; }
ip netns add "$NS" &&
	nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 &&
	nsx ip link set lo up &&
	nsx ip tuntap add dev "$TAP" mode tap &&
	nsx ip link set "$TAP" address 02:74:67:00:00:01 &&
	nsx ip link set "$TAP" up ||
	{ echo "net: could not set up network namespace $NS with tap $TAP" >&2; exit 1; }

# peer_start NAME ARGS...: netpeer-bench ARGS in the namespace, commands on a
# FIFO (PFD[NAME]), output in $tmp/NAME.out; waits for "PEER ready".
peer_start() {
	local name=$1 i fd
	shift
	rm -f "$tmp/$name.ctl"
	mkfifo "$tmp/$name.ctl"
	: >"$tmp/$name.out"
	ip netns exec "$NS" "$PEER" "$@" <"$tmp/$name.ctl" >"$tmp/$name.out" 2>&1 &
	PPID_[$name]=$!
	exec {fd}>"$tmp/$name.ctl"
	PFD[$name]=$fd
	peer_wait "$name" '^PEER ready' 50
}
# peer_wait NAME REGEX TENTHS: until the peer's output matches (or it died).
peer_wait() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q "$2" "$tmp/$1.out" && return 0
		kill -0 "${PPID_[$1]}" 2>/dev/null || break
		sleep 0.01
	done
	grep -q "$2" "$tmp/$1.out" && return 0
	echo "net: peer $1 never printed /$2/: $(tail -n 3 "$tmp/$1.out" | tr '\n' ' ')" >&2
	return 1
}
peer_cmd() { echo "$2" >&"${PFD[$1]}"; }
# peer_stop NAME: stop it, wait for it; PRES = its result line (or empty).
peer_stop() {
	local fd=${PFD[$1]}
	echo stop >&"$fd"
	exec {fd}>&-
	wait "${PPID_[$1]}" 2>/dev/null
	unset "PPID_[$1]" "PFD[$1]"
	PRES=$(grep -m1 '^PEER result' "$tmp/$1.out")
}

# vm_run LABEL DIR LEN CMD...: start the peer, boot the guest with
# ember.bench=net:DIR:LEN:SECS:sync in the namespace; at "begin": VMM CPU,
# peer go (acknowledged), answer; at the result: VMM CPU, answer, stop the
# peer (after 0.1 s for a transmit tail to land).  Sets RES (the guest's
# result), PRES (the peer's), CPU, VCPU (seconds in the window).
vm_run() {
	local label=$1 dir=$2 len=$3 line rd wr pid rc began=
	shift 3
	RES= PRES= CPU=- VCPU=-
	if [ "$dir" = tx ]; then
		peer_start peer --if "$TAP" --recv "$len" || return 1
	else
		peer_start peer --if "$TAP" --send "$len" --dst "$MAC" || return 1
	fi
	: >"$tmp/$label.out"
	coproc VMPROC { exec ip netns exec "$NS" "$@" 2>"$tmp/$label.err"; }
	pid=$VMPROC_PID
	exec {rd}<&"${VMPROC[0]}" {wr}>&"${VMPROC[1]}"
	while IFS= read -r -t $((SECS + 30)) line <&"$rd"; do
		line=${line%$'\r'}
		printf '%s\n' "$line" >>"$tmp/$label.out"
		case $line in
		"BENCH net begin "*)
			cpu_begin "$pid"
			began=$line
			peer_cmd peer go
			peer_wait peer '^PEER go' 20
			echo >&"$wr" ;;
		"BENCH net dir="*)
			[ -n "$began" ] && read -r CPU VCPU <<<"$(cpu_window "$pid")"
			RES=$line
			echo >&"$wr"
			[ "$dir" = tx ] && sleep 0.1
			peer_stop peer ;;
		esac
	done
	kill "$pid" 2>/dev/null # only if it hung (read timed out)
	wait "$pid"
	rc=$?
	exec {rd}<&- {wr}>&-
	[ -n "${PPID_[peer]:-}" ] && peer_stop peer
	if [ -z "$RES" ] || [ -z "$PRES" ] || [ $rc -ne 0 ]; then
		echo "net: $label: no result (exit status $rc)" >&2
		tail -n 5 "$tmp/$label.out" "$tmp/$label.err" "$tmp/peer.out" >&2
		RES= PRES= CPU=- VCPU=-
		return 1
	fi
	echo "$label ${RES#BENCH net } cpu_s=$CPU vcpu_s=$VCPU tsc_mhz=$(field tsc_mhz "$began") | ${PRES#PEER result }" >>"$LOG"
	return 0
}

# host_run DIR LEN: the host alone; a stand-in VMM on the tap's fd
# (netpeer-bench --tun) and the peer, SECS s.  Sets HRES (the receiver's
# result), HSEND (the sender's), HCPU (the stand-in's result).
host_run() {
	local dir=$1 len=$2
	HRES= HSEND= HCPU=
	if [ "$dir" = tx ]; then
		peer_start vmm --if "$TAP" --tun --send "$len" &&
			peer_start peer --if "$TAP" --recv "$len" || return 1
		peer_cmd peer go; peer_wait peer '^PEER go' 20
		peer_cmd vmm go
		sleep "$SECS"
		peer_stop vmm; HCPU=$PRES; HSEND=$PRES
		sleep 0.1
		peer_stop peer; HRES=$PRES
	else
		peer_start vmm --if "$TAP" --tun --recv "$len" &&
			peer_start peer --if "$TAP" --send "$len" --dst "$MAC" || return 1
		peer_cmd vmm go; peer_wait vmm '^PEER go' 20
		peer_cmd peer go
		sleep "$SECS"
		peer_stop peer; HSEND=$PRES
		peer_stop vmm; HRES=$PRES; HCPU=$PRES
	fi
	[ -n "$HRES" ] && [ -n "$HSEND" ] || { echo "net: host-alone $dir $len: no result" >&2; return 1; }
	echo "host-$dir-$len recv: ${HRES#PEER result } | send: ${HSEND#PEER result }" >>"$LOG"
}

EMBER_NET=("$EMBER" --kernel "$TESTGUEST" --console stdio --net "$TAP,mac=$MAC")
QEMU_NET=("$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on
	-enable-kvm -cpu host,-arch-capabilities -m 128 -nodefaults -no-user-config -nographic
	-no-reboot -serial stdio -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false
	-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no,vhost=off"
	-device "virtio-net-device,netdev=n0,mac=$MAC")

tests=()
for t in "tx1514 tx 1514" "tx60 tx 60" "rx1514 rx 1514" "rx60 rx 60"; do
	[[ " ${NET_TESTS:-tx1514 tx60 rx1514 rx60} " == *" ${t%% *} "* ]] && tests+=("$t")
done
declare -A V
add() { V[$1,$2,$3]+="$4 "; }
# record TEST WHO DIR: a VMM round's values from RES, PRES, CPU, VCPU.
record() {
	local n=$1 w=$2 dir=$3 fps frames tail pf lost offered
	fps=$(field fps "$RES") frames=$(field frames "$RES") tail=$(field tail "$RES")
	pf=$(field frames "$PRES")
	if [ "$dir" = tx ]; then
		# Delivered: the guest's rate times the share the peer got.
		offered=$((frames + tail))
		lost=$((offered > pf ? offered - pf : 0))
		add "$n" "$w" fps "$(awk -v f="$fps" -v p="$pf" -v o="$offered" 'BEGIN { s = o ? p / o : 0; if (s > 1) s = 1; printf "%.0f", f * s }')"
	else
		offered=$((pf + $(field if_tx_dropped "$PRES")))
		lost=$(field if_tx_dropped "$PRES")
		add "$n" "$w" fps "$fps"
	fi
	add "$n" "$w" mbps "$(div "$(field bytes "$RES")" "$(field us "$RES")" 8)"
	add "$n" "$w" lost "$(div "$lost" "$offered" 100 %.2f)"
	add "$n" "$w" cpf "$(div "$CPU" "$frames" 1000000 %.3f)"
	add "$n" "$w" vcpu "$(div "$VCPU" "$SECS" 100 %.0f)"
	add "$n" "$w" pcpu "$(div "$(field cpu_us "$PRES")" "$(field us "$PRES")" 100 %.0f)"
	add "$n" "$w" cpu "$CPU"
}
fail=0
for r in $(seq "$ROUNDS"); do
	for t in "${tests[@]}"; do
		read -r name dir len <<<"$t"
		case $((r % 3)) in
		1) order="e q h" ;; 2) order="q h e" ;; 0) order="h e q" ;;
		esac
		for w in $order; do
			case $w in
			e)
				if vm_run "ember-$name-$r" "$dir" "$len" "${EMBER_NET[@]}" --cmdline "ember.bench=net:$dir:$len:$SECS:sync"; then
					record "$name" e "$dir"
				else fail=1; fi ;;
			q)
				if vm_run "qemu-$name-$r" "$dir" "$len" "${QEMU_NET[@]}" -append "ember.bench=net:$dir:$len:$SECS:sync"; then
					record "$name" q "$dir"
				else fail=1; fi ;;
			h)
				if host_run "$dir" "$len"; then
					# Over the sender's time (the receiver's spans the
					# start and stop around it).
					add "$name" h fps "$(div "$(field frames "$HRES")" "$(field us "$HSEND")" 1000000 %.0f)"
					add "$name" h mbps "$(div "$(field bytes "$HRES")" "$(field us "$HSEND")" 8)"
					add "$name" h cpf "$(div "$(field cpu_us "$HCPU")" "$(field frames "$HCPU")" 1 %.3f)"
				else fail=1; fi ;;
			esac
		done
	done
done

M() { med "${4:-%.0f}" ${V[$1,$2,$3]:-}; }
label() { [ "$1" = tx ] && echo "guest -> host, $2 B" || echo "host -> guest, $2 B"; }

echo "### Network: test guest's polling virtio-net driver <-> a host peer over a tap (median of $ROUNDS round(s) of $SECS s per test)"
echo
echo "| test | ember frames/s | QEMU frames/s | ember / QEMU | host alone frames/s | ember Mbit/s | QEMU Mbit/s | host alone Mbit/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
dat="# ember vs QEMU microvm (tap, vhost=off) vs the host alone, virtio-net, medians of $ROUNDS rounds of $SECS s (columns: see bench/net.sh)"
dat+=$'\n'"# test dir len ember_fps qemu_fps host_fps ember_mbps qemu_mbps host_mbps ember_cpu_us_per_frame qemu_cpu_us_per_frame host_cpu_us_per_frame ember_vcpu_pct qemu_vcpu_pct peer_cpu_pct_ember peer_cpu_pct_qemu ember_lost_pct qemu_lost_pct"
cpu_rows= raw=
for t in "${tests[@]}"; do
	read -r name dir len <<<"$t"
	ef=$(M "$name" e fps) qf=$(M "$name" q fps) hf=$(M "$name" h fps)
	em=$(M "$name" e mbps) qm=$(M "$name" q mbps) hm=$(M "$name" h mbps)
	echo "| $(label "$dir" "$len") | $ef | $qf | $(ratio "$ef" "$qf") | $hf | $em | $qm | $hm |"
	ec=$(M "$name" e cpf %.2f) qc=$(M "$name" q cpf %.2f) hc=$(M "$name" h cpf %.2f)
	cpu_rows+="| $(label "$dir" "$len") | $ec | $qc | $(ratio "$qc" "$ec") | $hc | $(M "$name" e vcpu) | $(M "$name" q vcpu) | $(M "$name" e pcpu) | $(M "$name" q pcpu) | $(M "$name" e lost %.2f) | $(M "$name" q lost %.2f) |"$'\n'
	dat+=$'\n'"$name $dir $len $ef $qf $hf $em $qm $hm $ec $qc $hc $(M "$name" e vcpu) $(M "$name" q vcpu) $(M "$name" e pcpu) $(M "$name" q pcpu) $(M "$name" e lost %.2f) $(M "$name" q lost %.2f)"
	raw+="| $(label "$dir" "$len") | ${V[$name,e,fps]:-} | ${V[$name,q,fps]:-} | ${V[$name,h,fps]:-} |"$'\n'
done
echo
echo "### Network CPU cost: VMM CPU per frame (us; every VMM thread but the vCPU's, timed window only)"
echo
echo "| test | ember us/frame | QEMU us/frame | QEMU / ember | host alone us/frame | ember vCPU on CPU % | QEMU vCPU on CPU % | peer CPU % (ember runs) | peer CPU % (QEMU runs) | ember lost % | QEMU lost % |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s' "$cpu_rows"
echo
echo "\"host alone\": netpeer-bench --tun in the VMM's place, one read(2)/write(2) per frame, against the same peer: the host's own cost and ceiling for this path on this machine.  \"lost\": host -> guest, the frames the tap dropped because the VMM had not read them in time, % of what the peer sent; guest -> host, the frames the peer did not receive, % of what the VMM took from the guest.  \"vCPU on CPU\": below ~100 % the host was short of CPU (2 cores: the polling vCPU, the VMM's I/O thread and the peer share them)."
echo
echo "Frames/s of each round (the spread behind the medians):"
echo
echo "| test | ember | QEMU microvm | host alone |"
echo "| --- | --- | --- | --- |"
printf '%s' "$raw"
echo
printf '%s\n' "$dat" >"$OUTDIR/net.dat"
exit $fail
