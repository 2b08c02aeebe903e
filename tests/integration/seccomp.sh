#!/usr/bin/env bash
# The seccomp lockdown (seccomp/): every thread of a running VM is filtered;
# a forbidden syscall after lockdown (test builds only) ends ember with 148
# and one line naming it; --no-seccomp warns; --print-policy stays smaller
# than Firecracker's allowlists (27 syscalls on vCPU threads, 50 on the VMM
# thread).
. "$(dirname "$0")/lib.sh"

TESTGUEST=${TESTGUEST:-$ROOT/build/testguest.elf}
RX_POLL_LINE="ember-testguest-rx-poll 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# --print-policy needs no KVM.
if "$EMBER" --print-policy >"$TMP/pol" 2>&1; then
	vcpu=$(sed -n 's/^vcpu thread: \([0-9]*\) syscalls.*/\1/p' "$TMP/pol")
	loopn=$(sed -n 's/^loop thread: \([0-9]*\) syscalls.*/\1/p' "$TMP/pol")
	if [ -z "$vcpu" ] || [ -z "$loopn" ]; then
		fail seccomp/print-policy "no per-thread counts: $(head -c 300 "$TMP/pol")"
	elif [ "$vcpu" -ge 27 ] || [ "$loopn" -ge 50 ]; then
		fail seccomp/print-policy "not smaller than Firecracker's: vcpu $vcpu, loop $loopn"
	elif ! grep -q 'KVM_RUN' "$TMP/pol" || grep -qE '^  (open|openat|socket|execve|clone|ptrace|mount) ' "$TMP/pol"; then
		fail seccomp/print-policy "unexpected allowlist: $(cat "$TMP/pol")"
	else
		pass seccomp/print-policy
	fi
else
	fail seccomp/print-policy "exit status $?"
fi

if ! have_kvm; then
	for t in threads violation sigTERM sigINT sigTERM2 no-seccomp; do skip "seccomp/$t" "/dev/kvm is not usable by $(id -un)"; done
	exit 0
fi

# Every thread of a running VM: "Seccomp: 2" (filter mode) and at least one
# filter.  The test guest's serial_rx_poll waits (10 s) for a line on the
# console, which keeps ember running while /proc is read.
if [ ! -r "$TESTGUEST" ]; then
	skip seccomp/threads "test guest not built ($TESTGUEST)"
else
	mkfifo "$TMP/in"
	timeout -k 2 120 "$EMBER" --kernel "$TESTGUEST" --cpus 2 --console stdio \
		--cmdline "ember.test=serial_rx_poll" <"$TMP/in" >"$TMP/o" 2>"$TMP/e" &
	pid=$!
	exec {wr}>"$TMP/in"
	for _ in $(seq 600); do
		grep -q 'READY serial_rx_poll' "$TMP/o" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	epid=$(pgrep -P "$pid" -x ember || true)
	[ -n "$epid" ] || epid=$(pgrep -P "$pid" | head -n1)
	bad= n=0
	if ! grep -q 'READY serial_rx_poll' "$TMP/o"; then
		bad="the guest never got ready: $(head -c 300 "$TMP/e")"
	elif [ -z "$epid" ]; then
		bad="no ember process under timeout"
	else
		for st in /proc/"$epid"/task/*/status; do
			name=$(sed -n 's/^Name:\t//p' "$st")
			mode=$(sed -n 's/^Seccomp:\t//p' "$st")
			nf=$(sed -n 's/^Seccomp_filters:\t//p' "$st")
			n=$((n + 1))
			if [ "$mode" != 2 ] || [ "${nf:-0}" -lt 1 ]; then
				bad="$bad thread $(basename "$(dirname "$st")") ($name): Seccomp $mode, filters $nf;"
			fi
		done
		[ "$n" -ge 3 ] || bad="$bad only $n threads (want main + 2 vCPUs);"
	fi
	printf '%s\n' "$RX_POLL_LINE" >&"$wr"
	exec {wr}>&-
	wait "$pid"
	rc=$?
	if [ -n "$bad" ]; then
		fail seccomp/threads "$bad"
	elif [ "$rc" -ne 0 ] || ! grep -q '^TEST serial_rx_poll PASS' "$TMP/o"; then
		fail seccomp/threads "guest run failed (exit $rc): $(tail -c 300 "$TMP/o") $(head -c 300 "$TMP/e")"
	else
		pass seccomp/threads
	fi
fi

# A forbidden syscall after lockdown: the test build makes socket(2) when
# EMBER_TEST_SECCOMP_VIOLATION is set.
if [ ! -x "$EMBER_ASAN" ]; then
	skip seccomp/violation "test build not built ($EMBER_ASAN)"
else
	EMBER_TEST_SECCOMP_VIOLATION=1 run_vm "$TMP/o" "$TMP/e" 60 "$EMBER_ASAN" \
		--kernel "$KVMGUEST/hello.elf"
	if [ "$RC" -ne 148 ]; then
		fail seccomp/violation "exit status $RC, expected 148: $(head -c 300 "$TMP/e")"
	elif ! grep -qE '^ember: blocked syscall [0-9]+ \(socket\) on thread [0-9]+ \(loop\)$' "$TMP/e"; then
		fail seccomp/violation "no log line naming socket: $(head -c 300 "$TMP/e")"
	else
		pass seccomp/violation
	fi
fi

# SIGTERM and SIGINT after lockdown: the VM stops cleanly with 128+N, and
# nothing the shutdown does is outside the policy (glibc's raise() would
# call gettid: the handler must not use it).  A second signal exits at once.
if [ -r "$TESTGUEST" ]; then
	for sig in TERM INT TERM2; do
		rm -f "$TMP/in$sig"
		mkfifo "$TMP/in$sig"
		"$EMBER" --kernel "$TESTGUEST" --console stdio --cmdline "ember.test=serial_rx_poll" \
			<"$TMP/in$sig" >"$TMP/o" 2>"$TMP/e" &
		pid=$!
		exec {wr}>"$TMP/in$sig"
		for _ in $(seq 300); do
			grep -q 'READY serial_rx_poll' "$TMP/o" 2>/dev/null && break
			sleep 0.1
		done
		if [ "$sig" = TERM2 ]; then
			want=143
			kill -STOP "$pid"           # both arrive before the handler runs
			kill -TERM "$pid"
			kill -CONT "$pid"
			kill -TERM "$pid"
		else
			want=$((128 + $(kill -l "$sig")))
			kill -"$sig" "$pid"
		fi
		wait "$pid"
		rc=$?
		exec {wr}>&-
		if [ "$rc" -ne "$want" ]; then
			fail "seccomp/sig$sig" "exit status $rc, expected $want: $(head -c 300 "$TMP/e")"
		elif grep -q 'blocked syscall' "$TMP/e"; then
			fail "seccomp/sig$sig" "$(grep 'blocked syscall' "$TMP/e")"
		else
			pass "seccomp/sig$sig"
		fi
	done
else
	for sig in TERM INT TERM2; do skip "seccomp/sig$sig" "test guest not built ($TESTGUEST)"; done
fi

run_vm "$TMP/o" "$TMP/e" 30 "$EMBER" --kernel "$KVMGUEST/hello.elf" --no-seccomp
if [ "$RC" -ne 0 ]; then
	fail seccomp/no-seccomp "exit status $RC: $(head -c 300 "$TMP/e")"
elif ! grep -q 'WARNING: --no-seccomp' "$TMP/e"; then
	fail seccomp/no-seccomp "no warning on stderr: $(head -c 300 "$TMP/e")"
else
	pass seccomp/no-seccomp
fi
exit 0
