/* Installing the seccomp allowlist (seccomp/policy.h) on a thread.
 *
 * seccomp filters are per thread (ember does not use TSYNC): each thread
 * installs its own policy before it runs or services guest code — a vCPU
 * thread right before its first KVM_RUN, the main thread after it started
 * the vCPUs and before the event loop runs.  Everything ember opens
 * (images, taps, eventfds, RAM, the io_uring ring) exists by then.
 *
 * A forbidden syscall raises SIGSYS (SCMP_ACT_TRAP); the handler writes
 * "ember: blocked syscall N (name) on thread T (kind)" with write(2) only
 * and exits with status SC_EXIT_STATUS (148, Firecracker's convention).
 * A syscall from another architecture's ABI (i386 int 0x80, x32) kills the
 * process outright. */
#ifndef EMBER_SECCOMP_FILTER_H
#define EMBER_SECCOMP_FILTER_H

#include <stdio.h>

#include "err.h"
#include "seccomp/policy.h"

#define SC_EXIT_STATUS 148

/* Syscall numbers the SIGSYS handler can name; higher ones print "?".
 * The names come from a table generated at build time
 * (seccomp/gen_names.c): libseccomp's resolver is not async-signal-safe. */
#define SC_MAX_NR 512

/* Once, from the main thread before any thread installs a filter: install
 * the SIGSYS handler.  Fails with e set. */
int sc_prepare(struct err *e);

/* Install policy t on the calling thread.  index numbers vCPUs in the log
 * line.  Fails with e set (the thread is then unfiltered). */
int sc_install(enum sc_thread t, int index, struct err *e);

/* ember --print-policy: every thread's allowlist with its reasons. */
void sc_print_policy(FILE *f);

#endif
