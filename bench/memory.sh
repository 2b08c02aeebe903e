#!/usr/bin/env bash
# Resident memory of the VMM excluding guest RAM, after boot, while the test
# guest waits in serial_rx_poll: sum of Rss over /proc/PID/smaps minus the
# guest RAM mapping (the one mapping whose size is exactly the guest's
# --mem / -m).  128 MiB and 1 GiB guests, ember and QEMU microvm.
# Env: BENCH_OUT (build/bench: memory.dat, "MIB ember_mib qemu_mib
# ember_anon_mib qemu_anon_mib" lines).
set -u
source "$(dirname "$0")/common.sh"
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
mkdir -p "$OUTDIR" || exit 1
RX_POLL_LINE='ember-testguest-rx-poll 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ'
tmp=$(mktemp -d "${TMPDIR:-/tmp}/membench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap '' PIPE

# smaps_rss PID MIB -> "rss_excl_kb guest_rss_kb total_rss_kb found anon_excl_kb"
smaps_rss() {
	awk -v want=$(($2 * 1024)) '
	/^[0-9a-f]+-[0-9a-f]+ / { inmap = 1; next }
	$1 == "Size:" { size = $2 }
	$1 == "Rss:" { rss = $2; total += rss
		if (size == want && !found) { found = 1; guest = rss; isguest = 1 } else isguest = 0 }
	$1 == "Anonymous:" { if (!isguest) anon += $2 }
	END { printf "%d %d %d %d %d\n", total - guest, guest, total, found, anon }' "/proc/$1/smaps"
}

# measure LABEL MIB CMD...: boot with the serial input on a FIFO, wait for
# READY serial_rx_poll, read smaps, send the line, expect exit 0.
measure() {
	local label=$1 mib=$2
	shift 2
	local fifo=$tmp/$label.in out=$tmp/$label.out
	rm -f "$fifo"
	mkfifo "$fifo"
	"$@" <"$fifo" >"$out" 2>"$tmp/$label.err" &
	local pid=$! wfd
	exec {wfd}>"$fifo"
	local i
	for i in $(seq 300); do
		grep -q 'READY serial_rx_poll' "$out" 2>/dev/null && break
		sleep 0.1
	done
	if ! grep -q 'READY serial_rx_poll' "$out"; then
		echo "memory: $label never printed READY" >&2
		kill "$pid" 2>/dev/null
		exec {wfd}>&-
		wait "$pid"
		echo "- - - 0 -"
		return 1
	fi
	sleep 0.3 # let the VMM settle after boot
	local r
	r=$(smaps_rss "$pid" "$mib")
	# Top mappings by Rss, for "where the memory goes".
	awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]"); perm = $2 }
	$1 == "Size:" { size = $2 }
	$1 == "Rss:" { if ($2) printf "%d %d %s %s\n", $2, size, perm, name }' "/proc/$pid/smaps" |
		sort -rn | head -12 >"$tmp/$label.top"
	printf '%s\n' "$RX_POLL_LINE" >&"$wfd"
	exec {wfd}>&-
	wait "$pid"
	local rc=$?
	if [ $rc -ne 0 ] || ! grep -q 'TEST serial_rx_poll PASS' "$out"; then
		echo "memory: $label ended with status $rc or without serial_rx_poll PASS" >&2
	fi
	echo "$r"
}

kb2mib() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.2f", k / 1024; else print "-" }'; }

echo "### Memory: VMM resident memory excluding guest RAM, guest waiting after boot (MiB)"
echo
echo "| guest RAM | ember | QEMU microvm | ember / QEMU | ember anon only | QEMU anon only | ember total Rss | QEMU total Rss |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
dat=
for mib in 128 1024; do
	e=$(measure ember$mib $mib "$EMBER" --kernel "$TESTGUEST" --mem $mib --console stdio \
		--cmdline ember.test=serial_rx_poll)
	q=$(measure qemu$mib $mib "$QEMU" -M microvm,acpi=off,x-option-roms=off,pit=off,pic=off,rtc=off,isa-serial=on \
		-enable-kvm -cpu host,-arch-capabilities -m $mib -nodefaults -no-user-config -nographic -no-reboot \
		-serial stdio -kernel "$TESTGUEST" -global virtio-mmio.force-legacy=false -append ember.test=serial_rx_poll)
	read -r ex eg et ef ea <<<"$e"
	read -r qx qg qt qf qa <<<"$q"
	[ "$ef" = 1 ] || echo "memory: no ${mib} MiB mapping found in ember's smaps" >&2
	[ "$qf" = 1 ] || echo "memory: no ${mib} MiB mapping found in QEMU's smaps" >&2
	echo "| $mib MiB | $(kb2mib "$ex") | $(kb2mib "$qx") | $(ratio "$ex" "$qx") | $(kb2mib "$ea") | $(kb2mib "$qa") | $(kb2mib "$et") | $(kb2mib "$qt") |"
	dat+="$mib $(kb2mib "$ex") $(kb2mib "$qx") $(kb2mib "$ea") $(kb2mib "$qa")"$'\n'
done
printf '# guest_mib ember_mib qemu_mib ember_anon_mib qemu_anon_mib\n%s' "$dat" >"$OUTDIR/memory.dat"
echo
echo "\"anon only\" = the Anonymous: lines of the same mappings (private memory the VMM itself allocated), without the file-backed library/binary pages that Rss also counts."
echo
echo "ember's largest resident mappings (128 MiB guest; kB, from smaps; the guest RAM mapping is the one of size 131072):"
echo
echo '```'
echo "rss_kB size_kB perm mapping"
sed "s|$PWD/||" "$tmp/ember128.top"
echo '```'
echo
