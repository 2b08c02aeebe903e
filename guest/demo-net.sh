# guest/demo-net.sh: a network for the demo guest, sourced by guest/demo.sh
# when it runs as root.  The same recipe as tests/integration/linux-net.sh:
#
#   host: tap ember-demo0, 10.0.2.1/24, dnsmasq serving 10.0.2.15 on it
#   guest: eth0 (virtio-net), address from busybox udhcpc
#
# The guest side is an /etc/ember-test hook (run by the demo init after its
# banner) in a second cpio archive appended to the initramfs.  Sets
# DEMO_INITRD and DEMO_NET (ember options); demo_net_down undoes it all.
# Without ip(8) or /dev/net/tun nothing happens; without dnsmasq the guest
# gets no address (it says so).  An existing ember-demo0 is used as it is.

DEMO_TAP=ember-demo0
DEMO_NET=()
DEMO_INITRD=$G/initramfs.cpio
demo_tmp= demo_dnsmasq= demo_made_tap=

demo_net_down() {
	[ -n "$demo_dnsmasq" ] && kill "$demo_dnsmasq" 2>/dev/null
	[ -n "$demo_made_tap" ] && ip link del "$DEMO_TAP" 2>/dev/null
	[ -n "$demo_tmp" ] && rm -rf "$demo_tmp"
	return 0
}

demo_net_up() {
	command -v ip >/dev/null && [ -w /dev/net/tun ] && command -v cpio >/dev/null || return 0
	demo_tmp=$(mktemp -d) || return 0
	if ! ip link show "$DEMO_TAP" >/dev/null 2>&1; then
		ip tuntap add dev "$DEMO_TAP" mode tap && ip addr add 10.0.2.1/24 dev "$DEMO_TAP" || return 0
		demo_made_tap=1
	fi
	ip link set "$DEMO_TAP" up
	if command -v dnsmasq >/dev/null; then
		dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root \
			--interface="$DEMO_TAP" --bind-interfaces --except-interface=lo \
			--dhcp-range=10.0.2.15,10.0.2.15,255.255.255.0,1h --leasefile-ro \
			--log-facility="$demo_tmp/dnsmasq.log" &
		demo_dnsmasq=$!
	fi
	mkdir -p "$demo_tmp/x/etc"
	cat >"$demo_tmp/x/etc/ember-net-udhcpc" <<'SCRIPT'
#!/bin/sh
case $1 in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	echo "ember-demo: $interface $ip/${mask:-24} (from ${serverid:-?})"
	;;
esac
exit 0
SCRIPT
	cat >"$demo_tmp/x/etc/ember-test" <<'SCRIPT'
#!/bin/sh
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -t 5 -T 2 -s /etc/ember-net-udhcpc 2>/dev/null ||
	{ echo "ember-demo: no DHCP answer on eth0"; exit 0; }
ping -c 1 -W 3 10.0.2.1 >/dev/null 2>&1 && echo "ember-demo: the host (10.0.2.1) answers ping"
SCRIPT
	chmod 755 "$demo_tmp/x/etc/ember-test" "$demo_tmp/x/etc/ember-net-udhcpc"
	(cd "$demo_tmp/x" && printf '%s\n' etc etc/ember-test etc/ember-net-udhcpc |
		cpio -o -H newc --quiet) >"$demo_tmp/net.cpio" || return 0
	cat "$G/initramfs.cpio" "$demo_tmp/net.cpio" >"$demo_tmp/initrd.cpio"
	DEMO_INITRD=$demo_tmp/initrd.cpio
	DEMO_NET=(--net "$DEMO_TAP")
	echo "demo: network: tap $DEMO_TAP 10.0.2.1/24${demo_dnsmasq:+, dnsmasq gives the guest 10.0.2.15}"
}
