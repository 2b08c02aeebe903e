#!/usr/bin/env bash
# guest/build.sh OUTDIR -- build the ember demo guest from Debian packages:
#   OUTDIR/vmlinux         Linux 6.1 (linux-source-6.1): tinyconfig + guest/kernel.config
#                          + guest/patches/*.patch; the uncompressed ELF
#   OUTDIR/initramfs.cpio  busybox-static + guest/rootfs (init.c, etc/init.sh);
#                          uncompressed newc cpio
#   OUTDIR/config, OUTDIR/System.map, OUTDIR/cache-dir (where they come from)
#
# Results are cached in ${XDG_CACHE_HOME:-$HOME/.cache}/ember/guest-<key>/, where
# <key> hashes every input: this script, kernel.config, the patches, the rootfs
# files, the installed linux-source-6.1 and busybox-static versions and the
# compiler version.  A cache hit only hard-links (or copies) the results into
# OUTDIR.  The kernel alone is cached too, in kernel-<kkey>/ (the same inputs
# minus rootfs and busybox), so that editing the rootfs does not recompile Linux.
# Builds run in temporary directories inside the cache that are renamed into
# place only when complete: an interrupted build never leaves a half cache.
#
# Debian packages needed: linux-source-6.1 busybox-static build-essential flex
# bison bc libelf-dev libssl-dev xz-utils (patch, make, gcc, dpkg-dev come
# with build-essential).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
KTAR=/usr/src/linux-source-6.1.tar.xz
BUSYBOX=/bin/busybox
# Busybox applets that get a symlink.  The shell runs every applet without one
# (Debian's busybox has FEATURE_SH_STANDALONE); each cpio entry costs boot time
# on a software KVM (~400 symlinks: ~5 s there).  /init execs /bin/sh.
APPLET_LINKS="bin/sh bin/ash bin/mount bin/umount sbin/reboot sbin/poweroff sbin/halt usr/bin/env"
export ARCH=x86_64

step() { printf 'guest: %s\n' "$*"; }
die() { printf 'guest: error: %s\n' "$*" >&2; exit 1; }

pkgver() {
	local v
	v=$(dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null) ||
		die "Debian package $1 is not installed (run make deps)"
	case $v in
	"install ok installed "*) echo "${v##* }" ;;
	*) die "Debian package $1 is not fully installed ($v; run make deps)" ;;
	esac
}

# hash FILE... plus extra lines on stdin -> 16 hex digits
hash_inputs() {
	(
		cd "$HERE"
		for f in "$@"; do printf '== %s\n' "$f"; cat "$f"; done
		cat
	) | sha256sum | cut -c1-16
}

# ---- cache keys --------------------------------------------------------------
KVER=$(pkgver linux-source-6.1)
BBVER=$(pkgver busybox-static)
GCCVER=$(gcc -dumpfullversion -dumpversion) || die "gcc missing (build-essential)"
mapfile -t PATCHES < <(cd "$HERE" && find patches -name '*.patch' -type f | LC_ALL=C sort)
mapfile -t ROOTFS < <(cd "$HERE" && find rootfs -type f | LC_ALL=C sort)
kkey=$(printf 'linux-source-6.1 %s\ngcc %s\n' "$KVER" "$GCCVER" |
	hash_inputs build.sh kernel.config "${PATCHES[@]}")
key=$(printf 'kernel %s\nbusybox-static %s\n' "$kkey" "$BBVER" |
	hash_inputs build.sh "${ROOTFS[@]}")
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ember
DIR=$CACHE/guest-$key
KDIR=$CACHE/kernel-$kkey
KFILES=(vmlinux config System.map gen_init_cpio)
RESULTS=(vmlinux initramfs.cpio config System.map)

complete() { # DIR FILE...
	local d=$1 f
	shift
	for f in "$@"; do [ -f "$d/$f" ] || return 1; done
}

install_results() {
	mkdir -p "$OUT"
	local f
	for f in "${RESULTS[@]}"; do
		rm -f "$OUT/$f"
		ln "$DIR/$f" "$OUT/$f" 2>/dev/null || cp "$DIR/$f" "$OUT/$f"
	done
	echo "$DIR" >"$OUT/cache-dir"
	step "cached: $DIR -> $OUT"
}

if complete "$DIR" "${RESULTS[@]}"; then
	install_results
	exit 0
fi

# ---- build: one build per cache at a time; stale temporaries are removed -----
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
if ! flock -n 9; then
	step "waiting for another guest build (lock $CACHE/build.lock)"
	flock 9
fi
if complete "$DIR" "${RESULTS[@]}"; then # a concurrent run built it meanwhile
	install_results
	exit 0
fi
rm -rf "$CACHE"/*.tmp-*
TMP=$CACHE/guest-$key.tmp-$$
mkdir -p "$TMP"
LOG=$TMP/build.log
: >"$LOG"
FAILLOG=$CACHE/build-failed.log
trap 'rc=$?; if [ $rc -ne 0 ]; then cp -f "$LOG" "$FAILLOG" 2>/dev/null; rm -rf "$TMP" "${KTMP:-}"; fi' EXIT
trap 'exit 130' INT TERM HUP

# run CMD...: output into the build log; on failure show the log's tail
run() {
	if ! "$@" >>"$LOG" 2>&1; then
		echo "guest: error: '$*' failed; last lines of the build log:" >&2
		tail -n 40 "$LOG" | sed 's/^/    /' >&2
		echo "guest: full log: $FAILLOG" >&2
		exit 1
	fi
}

T0=$(date +%s)

# ---- kernel ------------------------------------------------------------------
if complete "$KDIR" "${KFILES[@]}"; then
	step "kernel: cached in $KDIR"
else
	JOBS=$(nproc)
	KTMP=$CACHE/kernel-$kkey.tmp-$$
	mkdir -p "$KTMP/out"
	step "kernel: building into $KDIR (several minutes; log: $KDIR/build.log)"
	[ -r "$KTAR" ] || die "$KTAR missing (Debian package linux-source-6.1)"
	step "kernel: extract $(basename "$KTAR") ($KVER)"
	run tar -xf "$KTAR" -C "$KTMP"
	K=$KTMP/linux-source-6.1
	[ -f "$K/Makefile" ] || die "unexpected layout of $KTAR"

	for p in "${PATCHES[@]}"; do
		step "kernel: apply $p"
		run patch -d "$K" -p1 --forward --batch -i "$HERE/$p"
	done

	step "kernel: configure (tinyconfig + kernel.config, olddefconfig, verify)"
	run make -C "$K" tinyconfig
	run "$K/scripts/kconfig/merge_config.sh" -m -O "$K" "$K/.config" "$HERE/kernel.config"
	run make -C "$K" olddefconfig
	bad=0
	while IFS= read -r line; do
		if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			opt=${BASH_REMATCH[1]} want=${BASH_REMATCH[2]}
			grep -qxF "$opt=$want" "$K/.config" && continue
		elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			opt=${BASH_REMATCH[1]} want=n
			grep -q "^$opt=" "$K/.config" || continue
		else
			continue
		fi
		got=$(grep -E "^$opt=|^# $opt is not set" "$K/.config" || true)
		echo "guest: error: kernel.config wants $opt=$want; after olddefconfig: ${got:-(absent)}" >&2
		bad=1
	done <"$HERE/kernel.config"
	[ $bad -eq 0 ] || die "kernel.config did not take effect (a dependency missing? see Kconfig)"

	step "kernel: compile vmlinux (make -j$JOBS)"
	run make -C "$K" -j"$JOBS" KBUILD_BUILD_USER=ember KBUILD_BUILD_HOST=ember \
		KBUILD_BUILD_VERSION=1 vmlinux
	run gcc -O2 -o "$KTMP/out/gen_init_cpio" "$K/usr/gen_init_cpio.c"
	cp "$K/vmlinux" "$K/System.map" "$KTMP/out/"
	cp "$K/.config" "$KTMP/out/config"
	cp "$LOG" "$KTMP/out/build.log"
	rm -rf "$KDIR"
	mv "$KTMP/out" "$KDIR"
	rm -rf "$KTMP"
	KTMP=
	step "kernel: built in $(($(date +%s) - T0)) s, vmlinux $(du -k "$KDIR/vmlinux" | cut -f1) KiB"
fi

# ---- initramfs ---------------------------------------------------------------
[ -x "$BUSYBOX" ] || die "$BUSYBOX missing (Debian package busybox-static)"
step "initramfs: busybox-static $BBVER + rootfs/"
R=$TMP/rootfs
mkdir -p "$R"
run gcc -static -nostdlib -ffreestanding -Os -fno-stack-protector \
	-fno-asynchronous-unwind-tables -fno-pie -no-pie -Wl,--build-id=none -s \
	-Wall -Wextra -Werror -o "$R/init" "$HERE/rootfs/init.c"
cp "$BUSYBOX" "$R/busybox"
cp "$HERE/rootfs/etc/init.sh" "$R/init.sh"
touch -d @0 "$R"/*
{
	for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /tmp /root /etc /mnt /run; do
		mode=0755
		case $d in /tmp) mode=1777 ;; /root) mode=0700 ;; esac
		echo "dir $d $mode 0 0"
	done
	echo "nod /dev/console 0600 0 0 c 5 1"
	echo "nod /dev/null 0666 0 0 c 1 3"
	echo "file /init $R/init 0755 0 0 /bin/outb"
	echo "file /etc/init.sh $R/init.sh 0755 0 0"
	echo "file /bin/busybox $R/busybox 0755 0 0"
	for a in $APPLET_LINKS; do echo "slink /$a /bin/busybox 0777 0 0"; done
} >"$TMP/initramfs.list"
mkdir -p "$TMP/out"
"$KDIR/gen_init_cpio" -t 0 "$TMP/initramfs.list" >"$TMP/out/initramfs.cpio" 2>>"$LOG" ||
	die "gen_init_cpio failed: $(tail -n 5 "$LOG")"

for f in vmlinux config System.map; do
	ln "$KDIR/$f" "$TMP/out/$f" 2>/dev/null || cp "$KDIR/$f" "$TMP/out/$f"
done
cp "$LOG" "$TMP/out/build.log"
rm -rf "$DIR"
mv "$TMP/out" "$DIR"
rm -rf "$TMP" "$FAILLOG"
step "built in $(($(date +%s) - T0)) s: vmlinux $(du -k "$DIR/vmlinux" | cut -f1) KiB," \
	"initramfs.cpio $(du -k "$DIR/initramfs.cpio" | cut -f1) KiB"
install_results
