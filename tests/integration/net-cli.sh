#!/usr/bin/env bash
# --net: every bad network input gives exactly one stderr line naming the
# tap (or the value) and the reason, exit status 2 for a malformed --net
# value, 1 for a tap that cannot be used;
# a good tap boots.  The taps live in a private network namespace
# (ember-nc-PID), removed on every exit path.
. "$(dirname "$0")/lib.sh"

G=$KVMGUEST/hello.elf
NS=ember-nc-$$
EXPECT_GROUP=net-cli

# ---- values rejected before any tap is touched ----
expect missing-value 2 "ember: --net needs a value \(see ember --help\)" "$EMBER" --kernel "$G" --net
expect no-name 2 "ember: --net ',mac=02:00:00:00:00:01': needs a tap name before the options" \
	"$EMBER" --kernel "$G" --net ,mac=02:00:00:00:00:01
expect name-too-long 2 "ember: --net abcdefghijklmnop: interface name longer than 15 characters" \
	"$EMBER" --kernel "$G" --net abcdefghijklmnop
expect bad-name 2 "ember: --net 'a/b': not a valid interface name" "$EMBER" --kernel "$G" --net a/b
expect unknown-option 2 "ember: --net tap0: unknown option 'vhost=on' \(expected mac=XX:XX:XX:XX:XX:XX\)" \
	"$EMBER" --kernel "$G" --net tap0,vhost=on
expect mac-invalid 2 "ember: --net tap0: invalid MAC address '02:00:00:00:00:zz' \(expected six hex bytes like 02:00:00:00:00:01\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=02:00:00:00:00:zz
expect mac-short 2 "ember: --net tap0: invalid MAC address '02:00:00:00:01' \(expected six hex bytes like 02:00:00:00:00:01\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=02:00:00:00:01
expect mac-multicast 2 "ember: --net tap0: MAC address 01:00:5e:00:00:01 is a multicast address \(the first byte must be even\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=01:00:5e:00:00:01
expect mac-zero 2 "ember: --net tap0: MAC address 00:00:00:00:00:00 is all zeros" \
	"$EMBER" --kernel "$G" --net tap0,mac=00:00:00:00:00:00
expect too-many 2 "ember: --net t4: too many network devices \(at most 4\)" \
	"$EMBER" --kernel "$G" --net t0 --net t1 --net t2 --net t3 --net t4
expect same-tap 2 "ember: --net t0: the same tap as an earlier --net" \
	"$EMBER" --kernel "$G" --net t0 --net t1 --net t0,mac=02:00:00:00:00:01
expect empty-name 2 "ember: --net '': needs a tap name before the options" "$EMBER" --kernel "$G" --net ""
expect dot-name 2 "ember: --net '..': not a valid interface name" "$EMBER" --kernel "$G" --net ..
expect space-name 2 "ember: --net 'a b': not a valid interface name" "$EMBER" --kernel "$G" --net "a b"
expect mac-broadcast 2 "ember: --net tap0: MAC address ff:ff:ff:ff:ff:ff is a multicast address \(the first byte must be even\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=ff:ff:ff:ff:ff:ff
expect mac-empty 2 "ember: --net tap0: invalid MAC address '' \(expected six hex bytes like 02:00:00:00:00:01\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=
expect mac-long 2 "ember: --net tap0: invalid MAC address '02:00:00:00:00:01:02' \(expected six hex bytes like 02:00:00:00:00:01\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=02:00:00:00:00:01:02
expect mac-dashes 2 "ember: --net tap0: invalid MAC address '02-00-00-00-00-01' \(expected six hex bytes like 02:00:00:00:00:01\)" \
	"$EMBER" --kernel "$G" --net tap0,mac=02-00-00-00-00-01
expect mac-twice 2 "ember: --net tap0: mac= given twice" "$EMBER" --kernel "$G" --net tap0,mac=02:00:00:00:00:01,mac=02:00:00:00:00:02
expect empty-option 2 "ember: --net tap0: unknown option '' \(expected mac=XX:XX:XX:XX:XX:XX\)" "$EMBER" --kernel "$G" --net tap0,
if "$EMBER" --help | grep -q -- '--net TAP\[,mac=XX:XX:XX:XX:XX:XX\]'; then
	pass net-cli/help
else
	fail net-cli/help "--help does not document --net"
fi

# ---- taps: in a private namespace ----
TAPTESTS=(tap-missing not-a-tap loopback tun-unusable tap-not-owned no-vnet-hdr tap-busy restart-after-kill boots)
why=
if [ "$(id -u)" != 0 ]; then why="needs root (network namespace, taps)"
elif ! command -v ip >/dev/null; then why="no ip(8) (iproute2)"
elif [ ! -e /dev/net/tun ]; then why="no /dev/net/tun"
elif ! have_kvm; then why="/dev/kvm not usable"
fi
if [ -n "$why" ]; then
	for t in "${TAPTESTS[@]}"; do skip "net-cli/$t" "$why"; done
	exit 0
fi
bg=
cleanup() {
	[ -n "$bg" ] && kill "$bg" 2>/dev/null && wait "$bg" 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
nsx() { ip netns exec "$NS" "$@"; }
NSX=(ip netns exec "$NS")
if ! { ip netns add "$NS" && nsx ip tuntap add dev nctap0 mode tap && nsx ip tuntap add dev nctap1 mode tap &&
	nsx ip tuntap add dev nctap2 mode tap user 0 && nsx ip link set nctap0 up && nsx ip link set nctap1 up &&
	nsx ip tuntap add dev nctun0 mode tun; } 2>"$TMP/ns.err"; then
	for t in "${TAPTESTS[@]}"; do fail "net-cli/$t" "namespace setup: $(head -c 200 "$TMP/ns.err")"; done
	exit 1
fi
chmod 755 "$TMP"
cp "$G" "$TMP/pub.elf" && chmod 644 "$TMP/pub.elf"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)

expect tap-missing 1 "ember: --net nope0: no such network interface \(create the tap first: ip tuntap add dev nope0 mode tap\)" \
	"${NSX[@]}" "$EMBER" --kernel "$G" --net nope0
expect not-a-tap 1 "ember: --net nctun0: not a tap device, or a multi-queue one \(ember attaches to a single-queue tap: ip tuntap add dev NAME mode tap\)" \
	"${NSX[@]}" "$EMBER" --kernel "$G" --net nctun0
expect loopback 1 "ember: --net lo: not a tap device, or a multi-queue one \(ember attaches to a single-queue tap: ip tuntap add dev NAME mode tap\)" \
	"${NSX[@]}" "$EMBER" --kernel "$G" --net lo
# No permission, both ways: /dev/net/tun closed to the user (a copy of the
# node with mode 0600 bound over it), and open but the tap owned by root
# (nctap2, "user 0"; a copy with mode 0666: TUNSETIFF refuses; a tap without
# an owner is open to anyone who can open /dev/net/tun).  The copies live on a tmpfs of
# a private mount namespace, so the host's node is never touched.
as_nobody_with_tun() { # MODE: the command prefix, in WITH_TUN
	WITH_TUN=("${NSX[@]}" unshare -m bash -c 'mount -t tmpfs none "$1" && mknod -m "$2" "$1/tun" c 10 200 &&
		mount --bind "$1/tun" /dev/net/tun && shift 2 && exec "$@"' _ "$TMP/dev" "$1" "${nobody[@]}")
}
mkdir -p "$TMP/dev"
as_nobody_with_tun 600
expect tun-unusable 1 "ember: --net nctap0: /dev/net/tun: permission denied \(run as root, or give ember's user access to /dev/net/tun\)" \
	"${WITH_TUN[@]}" "$EMBER" --kernel "$TMP/pub.elf" --net nctap0
as_nobody_with_tun 666
expect tap-not-owned 1 "ember: --net nctap2: permission denied: the tap belongs to another user \(create it with ip tuntap add dev nctap2 mode tap user USER, or run as root\)" \
	"${WITH_TUN[@]}" "$EMBER" --kernel "$TMP/pub.elf" --net nctap2
# A tun driver without virtio-net headers cannot be found on a current
# kernel: an LD_PRELOAD shim makes TUNGETFEATURES deny IFF_VNET_HDR (in
# build/ember-dynamic: ./ember is static, and LD_PRELOAD needs the loader).
cat >"$TMP/novnet.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/if_tun.h>
#include <stdarg.h>
#include <sys/ioctl.h>
int ioctl(int fd, unsigned long req, ...);
int ioctl(int fd, unsigned long req, ...)
{
	static int (*real)(int, unsigned long, ...);
	va_list ap;
	void *arg;
	int rc;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	rc = real(fd, req, arg);
	if (rc == 0 && req == TUNGETFEATURES)
		*(unsigned *)arg &= ~(unsigned)IFF_VNET_HDR;
	return rc;
}
C
if ${CC:-cc} -shared -fPIC -O2 -Wall -Wextra -Werror -o "$TMP/novnet.so" "$TMP/novnet.c" -ldl 2>"$TMP/cc.err"; then
	expect no-vnet-hdr 1 "ember: --net nctap0: the kernel's tun driver lacks IFF_VNET_HDR \(virtio-net headers\), which ember needs" \
		"${NSX[@]}" env LD_PRELOAD="$TMP/novnet.so" "$EMBER_DYNAMIC" --kernel "$G" --net nctap0
else
	fail net-cli/no-vnet-hdr "cannot build the LD_PRELOAD shim: $(head -c 200 "$TMP/cc.err")"
fi
# A tap has one reader: while one ember holds nctap1 (the test guest waiting
# for serial input, up to 10 s), a second one is refused.
# hold_nctap1: an ember in the background ($bg) attached to nctap1 (carrier
# up), its test guest waiting for serial input for up to 10 s.
hold_nctap1() {
	"${NSX[@]}" "$EMBER" --kernel "${TESTGUEST:-$ROOT/build/testguest.elf}" --console none --net nctap1 \
		--cmdline ember.test=serial_rx_poll </dev/null >/dev/null 2>&1 &
	bg=$!
	for ((i = 0; i < 200; i++)); do
		nsx ip -d link show nctap1 2>/dev/null | grep -q 'NO-CARRIER' || break
		sleep 0.05
	done
}
if [ -r "${TESTGUEST:-$ROOT/build/testguest.elf}" ]; then
	hold_nctap1
	expect tap-busy 1 "ember: --net nctap1: in use by another process \(a tap has one reader\)" \
		"${NSX[@]}" "$EMBER" --kernel "$G" --net nctap1
	kill "$bg" 2>/dev/null
	wait "$bg" 2>/dev/null
	bg=
	# Killed outright, ember cannot clean up: the kernel frees its ring
	# (and the tap in its fixed-file table) tens of milliseconds after the
	# process is gone.  A VM restarted at once on the tap must still boot.
	hold_nctap1
	kill -KILL "$bg" 2>/dev/null
	wait "$bg" 2>/dev/null
	bg=
	expect restart-after-kill 0 "" "${NSX[@]}" "$EMBER" --kernel "$G" --console none --net nctap1
else
	skip net-cli/tap-busy "the test guest is not built (make testguest)"
	skip net-cli/restart-after-kill "the test guest is not built (make testguest)"
fi
expect boots 0 "" "${NSX[@]}" "$EMBER" --kernel "$G" --console none --net nctap0 --net nctap1,mac=02:00:00:00:00:01
