#!/usr/bin/env bash
# SVG plots of a bench run with gnuplot: reads $BENCH_OUT (build/bench) as
# written by startup.sh, churn.sh, memory.sh, blk.sh and net.sh, writes
# $PLOT_DIR (docs)/bench-*.svg and prints the names of those written.  A
# plot whose data is missing is left out (with a line on stderr).
# PLOT_FORMAT=png writes PNGs instead (to look at them without a browser).
set -u
source "$(dirname "$0")/common.sh"
OUTDIR=${BENCH_OUT:-$PWD/build/bench}
PLOTS=${PLOT_DIR:-$PWD/docs}
command -v gnuplot >/dev/null || { echo "plot: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
mkdir -p "$PLOTS" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/benchplot.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Colours: ember, QEMU, the host alone / fio.
FMT=${PLOT_FORMAT:-svg}
case $FMT in
svg) TERM_LINE='set terminal svg size 720,420 dynamic enhanced font "sans,12" background rgb "white"' ;;
png) TERM_LINE='set terminal pngcairo size 720,420 enhanced font "sans,11" background rgb "white"' ;;
*) echo "plot: PLOT_FORMAT must be svg or png" >&2; exit 2 ;;
esac
COMMON=$TERM_LINE'

set datafile missing "-"
set style line 1 lc rgb "#1b9e77" lw 2
set style line 2 lc rgb "#d95f02" lw 2
set style line 3 lc rgb "#7570b3" lw 2
set grid ytics lc rgb "#dddddd"
set border 3
set tics nomirror
set key inside top center horizontal noopaque
set offsets 0, 0, graph 0.15, 0
set bmargin 4
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9'

# plot NAME GNUPLOT-BODY: write $PLOTS/bench-NAME.$FMT.
plot() {
	if printf '%s\nset output "%s"\n%s\n' "$COMMON" "$PLOTS/bench-$1.$FMT" "$2" | gnuplot 2>"$tmp/err"; then
		echo "bench-$1.$FMT"
	else
		echo "plot: $1: $(head -c 300 "$tmp/err")" >&2
	fi
}
have() { [ -s "$OUTDIR/$1" ] || { echo "plot: $OUTDIR/$1 missing: no $2 plot" >&2; return 1; }; }

# Startup: the distribution of every run (both ember batches, QEMU), as a
# cumulative distribution on a log time axis.
if have startup-ember.txt startup && have startup-qemu.txt startup; then
	for w in ember qemu; do
		grep -E '^[0-9.]+$' "$OUTDIR/startup-$w.txt" | sort -g | awk '{ a[NR] = $1 } END { for (i = 1; i <= NR; i++) print a[i], i / NR }' >"$tmp/s-$w"
	done
	plot startup "set title 'Startup: exec -> guest reset -> exit, every run'
set xlabel 'ms (log scale)'
set ylabel 'fraction of runs'
set logscale x
set grid xtics ytics lc rgb '#dddddd'
set key inside bottom right
set yrange [0:1]
plot '$tmp/s-ember' using 1:2 with steps ls 1 title 'ember', '$tmp/s-qemu' using 1:2 with steps ls 2 title 'QEMU microvm'"
fi

if have churn.dat churn; then
	awk '!/^#/ { printf "\"%s at a time\" %s %s\n", $1, $2, $3 }' "$OUTDIR/churn.dat" >"$tmp/churn"
	plot churn "set title 'Churn: VMs created + booted + destroyed per second'
set ylabel 'VMs per second'
set yrange [0:*]
plot '$tmp/churn' using 2:xtic(1) ls 1 title 'ember', '' using 3 ls 2 title 'QEMU microvm'"
fi

if have memory.dat memory; then
	awk '!/^#/ { printf "\"%s MiB guest\" %s %s %s %s\n", $1, $2, $3, $4, $5 }' "$OUTDIR/memory.dat" >"$tmp/mem"
	plot memory "set title 'VMM resident memory outside guest RAM, after boot'
set ylabel 'MiB'
set yrange [0:*]
plot '$tmp/mem' using 2:xtic(1) ls 1 title 'ember', '' using 3 ls 2 title 'QEMU microvm'"
fi

if have blk.dat blk; then
	awk '!/^#/ {
		rw = ($2 == "randread") ? "random read" : ($2 == "read") ? "seq. read" : ($2 == "write") ? "seq. write" : $2
		printf "\"%s\\n%dk QD%s\"", rw, $3 / 1024, $4
		for (i = 5; i <= NF; i++) printf " %s", $i
		printf "\n" }' "$OUTDIR/blk.dat" >"$tmp/blk"
	plot blk-iops "set title 'Block I/O: IOPS (test guest polling driver; host fio on the same file)'
set ylabel 'IOPS (log scale)'
set logscale y
set format y '%.0s%c'
plot '$tmp/blk' using 2:xtic(1) ls 1 title 'ember', '' using 3 ls 2 title 'QEMU microvm', '' using 4 ls 3 title 'host fio'"
	# QD1 4k random read latency: mean (cols 11-13), p50 (22-24), p99 (14-16) of the first line.
	awk '!/^#/ && $1 == "rr4k_qd1" { printf "mean %s %s %s\np50 %s %s %s\np99 %s %s %s\n", $11, $12, $13, $22, $23, $24, $14, $15, $16 }' \
		"$OUTDIR/blk.dat" >"$tmp/lat"
	plot blk-latency "set title 'Block I/O latency, 4k random read at QD1'
set logscale y
set ylabel 'microseconds'
set yrange [10:*]
plot '$tmp/lat' using 2:xtic(1) ls 1 title 'ember', '' using 3 ls 2 title 'QEMU microvm', '' using 4 ls 3 title 'host fio'"
fi

if have net.dat net; then
	awk '!/^#/ {
		printf "\"%s\\n%s B\"", ($2 == "tx" ? "guest -> host" : "host -> guest"), $3
		for (i = 4; i <= NF; i++) printf " %s", $i
		printf "\n" }' "$OUTDIR/net.dat" >"$tmp/net"
	plot net "set title 'Network: frames per second over a tap (no vhost)'
set ylabel 'frames per second'
set format y '%.0s%c'
set yrange [0:*]
plot '$tmp/net' using 2:xtic(1) ls 1 title 'ember', '' using 3 ls 2 title 'QEMU microvm', '' using 4 ls 3 title 'host alone'"
	plot net-cpu "set title 'Network: VMM CPU per frame (all VMM threads but the vCPU)'
set ylabel 'microseconds per frame'
set yrange [0:*]
plot '$tmp/net' using 8:xtic(1) ls 1 title 'ember', '' using 9 ls 2 title 'QEMU microvm', '' using 10 ls 3 title 'host alone (read/write loop)'"
fi
exit 0
