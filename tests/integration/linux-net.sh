#!/usr/bin/env bash
# Linux on virtio-net: the demo kernel (make guest) with --net on a tap in a
# private network namespace (ember-ln-PID) where dnsmasq serves DHCP on the
# tap's host side (10.0.2.1/24).  The guest's test script (an
# /etc/ember-test appended to the initramfs as a second cpio archive; the
# demo init runs it) gets an address with busybox udhcpc, pings the host,
# then moves 16 MiB each way over TCP with busybox nc (nc -e dd in the
# guest, plain nc on the host): host -> guest, and the same bytes back.
# md5 sums are compared on both sides.  The link's MTU is 65000 on both
# ends (virtio-net without VIRTIO_NET_F_MTU lets the guest choose): on a
# software KVM each packet costs the emulated guest kernel ~15 ms, so
# 1500-byte frames would take minutes per direction.
#
#   guest eth0 (DHCP) --- virtio-net --- ember --- lntap0 10.0.2.1 (dnsmasq, nc)
#
# Env: EMBER, GUEST_DIR, EMBER_LINUX_TIMEOUT (s, default 400),
# EMBER_LINUX_NET_MIB (default 16), EMBER_LINUX_NET_MTU (default 65000).
. "$(dirname "$0")/lib.sh"
GUEST_DIR=${GUEST_DIR:-$ROOT/build/guest}
T=${EMBER_LINUX_TIMEOUT:-400}
MIB=${EMBER_LINUX_NET_MIB:-16}
MTU=${EMBER_LINUX_NET_MTU:-65000}
NAME=linux-net/dhcp-ping-tcp-${MIB}MiB
NS=ember-ln-$$

why=
if ! have_kvm; then why="/dev/kvm not usable"
elif [ "$(id -u)" != 0 ]; then why="needs root (network namespace, tap)"
elif [ ! -w /dev/net/tun ]; then why="/dev/net/tun not usable"
fi
for tool in ip dnsmasq cpio busybox md5sum; do
	[ -n "$why" ] || command -v "$tool" >/dev/null || why="$tool not installed (.ci/deps: iproute2, dnsmasq-base, cpio, busybox-static)"
done
if [ -n "$why" ]; then
	skip "$NAME" "$why"
	exit 0
fi
for f in "$GUEST_DIR/vmlinux" "$GUEST_DIR/initramfs.cpio" "$EMBER"; do
	[ -e "$f" ] || { fail "$NAME" "missing $f (make, make guest)"; exit 1; }
done

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
NSX=(ip netns exec "$NS")
if ! { ip netns add "$NS" && "${NSX[@]}" ip link set lo up &&
	"${NSX[@]}" ip tuntap add dev lntap0 mode tap && "${NSX[@]}" ip addr add 10.0.2.1/24 dev lntap0 &&
	"${NSX[@]}" ip link set lntap0 mtu "$MTU" up; } 2>"$TMP/ns.err"; then
	fail "$NAME" "namespace setup: $(head -c 300 "$TMP/ns.err")"
	exit 1
fi

# ---- the guest's side: a second cpio archive with the test hook ----
X=$TMP/extra
mkdir -p "$X/etc"
cat >"$X/etc/ember-net-udhcpc" <<'SCRIPT'
#!/bin/sh
# udhcpc's event script: apply the lease to the interface.
case $1 in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	echo "linux-net: lease $ip/${mask:-24} from ${serverid:-?}"
	;;
esac
exit 0
SCRIPT
cat >"$X/etc/ember-test" <<SCRIPT
#!/bin/sh
# linux-net.sh's guest side (run by the demo init's /etc/ember-test hook).
H=10.0.2.1
mkdir -p /tmp
ip link set lo up
ip link set eth0 mtu $MTU up
echo "linux-net: eth0 \$(cat /sys/class/net/eth0/address)"
udhcpc -i eth0 -n -q -t 10 -T 2 -s /etc/ember-net-udhcpc || { echo "linux-net: no DHCP lease"; exit 1; }
ping -c 3 -W 5 \$H >/tmp/ping.out 2>&1 && echo "linux-net: ping ok" || { echo "linux-net: ping failed"; cat /tmp/ping.out; }
# nc connects and hands the socket to dd (-e): 64 KiB reads and writes
# instead of nc's own 1 KiB ones, each a system call the emulated kernel
# of a software KVM pays dearly for.
t0=\$(cut -d' ' -f1 /proc/uptime)
timeout 200 nc \$H 5001 -e /bin/busybox dd of=/tmp/h2g.bin bs=64k 2>/dev/null
t1=\$(cut -d' ' -f1 /proc/uptime)
echo "linux-net: h2g \$(md5sum </tmp/h2g.bin | cut -d' ' -f1) \$(wc -c </tmp/h2g.bin) bytes, \$t0 -> \$t1 s"
t0=\$(cut -d' ' -f1 /proc/uptime)
timeout 200 nc \$H 5002 -e /bin/busybox dd if=/tmp/h2g.bin bs=64k 2>/dev/null
echo "linux-net: g2h rc=\$? \$t0 -> \$(cut -d' ' -f1 /proc/uptime) s"
echo "linux-net: done"
SCRIPT
chmod 755 "$X/etc/ember-test" "$X/etc/ember-net-udhcpc"
(cd "$X" && printf '%s\n' etc etc/ember-test etc/ember-net-udhcpc | cpio -o -H newc --quiet) >"$TMP/extra.cpio" ||
	{ fail "$NAME" "cpio failed"; exit 1; }
cat "$GUEST_DIR/initramfs.cpio" "$TMP/extra.cpio" >"$TMP/initrd.cpio"

# ---- the host's side: DHCP, and the two nc ends ----
head -c $((MIB << 20)) /dev/urandom >"$TMP/h2g.bin"
want=$(md5sum <"$TMP/h2g.bin" | cut -d' ' -f1)
mkfifo "$TMP/hold"
"${NSX[@]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root \
	--interface=lntap0 --bind-interfaces --dhcp-range=10.0.2.15,10.0.2.15,255.255.255.0,1h \
	--dhcp-authoritative --leasefile-ro --log-dhcp --log-facility="$TMP/dnsmasq.log" \
	--pid-file="$TMP/dnsmasq.pid" 2>"$TMP/dnsmasq.err" &
pids+=($!)
"${NSX[@]}" busybox nc -l -p 5001 <"$TMP/h2g.bin" >/dev/null 2>"$TMP/nc1.err" &
pids+=($!)
"${NSX[@]}" busybox nc -l -p 5002 <>"$TMP/hold" >"$TMP/g2h.bin" 2>"$TMP/nc2.err" &
nc2=$!
pids+=($nc2)

cmdline=
# Software KVM: kernel copies use rep movsq instead of byte-wise rep movsb
# (8x fewer emulated steps; ember's own clearcpuid= is replaced by this one).
[ -d /sys/module/kvm_pvm ] && cmdline="clearcpuid=smap,popcnt,cx16,erms,fsrm"
t0=$EPOCHREALTIME
"${NSX[@]}" timeout -k 5 "$T" "$EMBER" --kernel "$GUEST_DIR/vmlinux" --initrd "$TMP/initrd.cpio" \
	--mem 256 --net lntap0 --boot-time ${cmdline:+--cmdline "$cmdline"} </dev/null >"$TMP/out" 2>"$TMP/err"
rc=$?
secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
# The receiving nc ends when the guest closes; give it a moment.
for ((i = 0; i < 50; i++)); do kill -0 "$nc2" 2>/dev/null || break; sleep 0.1; done
tr -d '\r' <"$TMP/out" >"$TMP/out.txt"
got=$(md5sum <"$TMP/g2h.bin" | cut -d' ' -f1)
bytes=$((MIB << 20))
h2g=$(sed -n 's/^linux-net: h2g \([0-9a-f]*\) \([0-9]*\) bytes.*/\1 \2/p' "$TMP/out.txt")
why=
if [ "$rc" -ne 0 ]; then
	why="ember exited with status $rc"
elif ! grep -q '^linux-net: lease 10.0.2.15/24' "$TMP/out.txt"; then
	why="no DHCP lease in the guest"
elif ! grep -q 'DHCPACK(lntap0) 10.0.2.15' "$TMP/dnsmasq.log" 2>/dev/null; then
	why="dnsmasq did not acknowledge a lease"
elif ! grep -qx 'linux-net: ping ok' "$TMP/out.txt"; then
	why="the guest could not ping the host"
elif [ "$h2g" != "$want $bytes" ]; then
	why="host -> guest: the guest got '${h2g:-nothing}', sent $want $bytes"
elif ! grep -q '^linux-net: g2h rc=0 ' "$TMP/out.txt"; then
	why="guest -> host: the guest's nc failed"
elif [ "$got" != "$want" ] || [ "$(stat -c %s "$TMP/g2h.bin")" != "$bytes" ]; then
	why="guest -> host: the host got $(stat -c %s "$TMP/g2h.bin") bytes, md5 $got; want $bytes, $want"
fi
if [ -z "$why" ]; then
	times=$(sed -n 's/^linux-net: \(h2g\|g2h\) .* \([0-9.]*\) -> \([0-9.]*\) s$/\1 \2 \3/p' "$TMP/out.txt" |
		awk '{ printf "%s%s %.1f s", (NR > 1 ? ", " : ""), $1, $3 - $2 }')
	pass "$NAME (${secs} s; $times)"
	grep '^ember: virtio-net' "$TMP/err" | sed 's/^/# /'
else
	fail "$NAME" "$why (after ${secs} s)"
	echo "---- ember stderr (last 15 lines)"
	tail -n 15 "$TMP/err"
	echo "---- guest console (last 30 lines)"
	tail -n 30 "$TMP/out.txt"
	echo "---- dnsmasq"
	tail -n 10 "$TMP/dnsmasq.log" "$TMP/dnsmasq.err" 2>/dev/null
	exit 1
fi
