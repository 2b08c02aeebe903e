/* seccomp filters from the allowlist in policy.c (libseccomp 2.5). */
#include "seccomp/filter.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The SIGSYS handler's names, indexed by x86-64 syscall number (gaps are
 * NULL): generated at build time, see seccomp/gen_names.c. */
static const char *const sc_names[SC_MAX_NR] = {
#include "build/gen/sc_names.h"
};

/* Who this thread is, for the log line: set at install, read by the
 * handler (initial-exec TLS in the executable: async-signal-safe). */
static _Thread_local const char *sc_kind = "unfiltered";
static _Thread_local int sc_index = -1;
static _Thread_local long sc_tid;

/* Async-signal-safe helpers: append to buf, no stdio. */
static size_t put_str(char *buf, size_t len, size_t cap, const char *s)
{
	while (*s && len < cap)
		buf[len++] = *s++;
	return len;
}

static size_t put_num(char *buf, size_t len, size_t cap, long v)
{
	char tmp[24];
	size_t n = 0;
	unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;

	if (v < 0 && len < cap)
		buf[len++] = '-';
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n < sizeof(tmp));
	while (n && len < cap)
		buf[len++] = tmp[--n];
	return len;
}

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char buf[160];
	size_t len = 0, cap = sizeof(buf) - 1;
	int nr = si->si_syscall;

	(void)sig;
	(void)uctx;
	len = put_str(buf, len, cap, "ember: blocked syscall ");
	len = put_num(buf, len, cap, nr);
	len = put_str(buf, len, cap, " (");
	len = put_str(buf, len, cap, nr >= 0 && nr < SC_MAX_NR && sc_names[nr] ?
		      sc_names[nr] : "?");
	len = put_str(buf, len, cap, ") on thread ");
	len = put_num(buf, len, cap, sc_tid);
	len = put_str(buf, len, cap, " (");
	len = put_str(buf, len, cap, sc_kind);
	if (sc_index >= 0)
		len = put_num(buf, len, cap, sc_index);
	len = put_str(buf, len, cap, ")\n");
	(void)!write(STDERR_FILENO, buf, len);
	_exit(SC_EXIT_STATUS);
}

int sc_prepare(struct err *e)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return err_errno(e, "seccomp: sigaction(SIGSYS)");
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, const struct sc_policy *p,
		    const struct sc_rule *r, struct err *e)
{
	int nr = seccomp_syscall_resolve_name(r->name);
	int rc = 0;

	if (nr == __NR_SCMP_ERROR)
		return err_set(e, "seccomp: unknown syscall %s", r->name);
	switch (r->arg) {
	case SC_ARG_ANY:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		break;
	case SC_ARG_NOEXEC:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		break;
	case SC_ARG_UNREG:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
				      SCMP_A1(SCMP_CMP_EQ, IORING_UNREGISTER_FILES, 0));
		break;
	case SC_ARG_IOCTL:
		/* The kernel reads the request as a 32-bit int: compare
		 * only those bits. */
		for (size_t i = 0; i < p->nioctls && rc == 0; i++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu,
						      p->ioctls[i].req));
		break;
	}
	if (rc < 0) {
		errno = -rc;
		return err_errno(e, "seccomp: rule for %s", r->name);
	}
	return 0;
}

int sc_install(enum sc_thread t, int index, struct err *e)
{
	const struct sc_policy *p = sc_policy(t);
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int rc;

	if (!ctx)
		return err_set(e, "seccomp: seccomp_init failed");
	/* Only x86-64's own ABI: a syscall through the i386 ABI (int 0x80)
	 * or with the x32 bit set kills the process (libseccomp's native
	 * x86-64 filter sends x32 numbers to this action too). */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	for (size_t i = 0; rc == 0 && i < p->nrules; i++)
		if (add_rule(ctx, p, &p->rules[i], e) < 0) {
			seccomp_release(ctx);
			return -1;
		}
	sc_kind = p->thread;
	sc_index = t == SC_VCPU ? index : -1;
	sc_tid = syscall(SYS_gettid);
	if (rc == 0)
		rc = seccomp_load(ctx);   /* also sets no_new_privs */
	seccomp_release(ctx);
	if (rc < 0) {
		errno = -rc;
		return err_errno(e, "seccomp: installing the %s filter", p->thread);
	}
	return 0;
}

void sc_print_policy(FILE *f)
{
	for (int t = 0; t < SC_NTHREADS; t++) {
		const struct sc_policy *p = sc_policy((enum sc_thread)t);

		fprintf(f, "%s thread: %zu syscalls (anything else: SIGSYS, exit %d)\n",
			p->thread, p->nrules, SC_EXIT_STATUS);
		for (size_t i = 0; i < p->nrules; i++)
			fprintf(f, "  %-16s %s%s\n", p->rules[i].name,
				p->rules[i].arg == SC_ARG_NOEXEC ? "[no PROT_EXEC] " :
				p->rules[i].arg == SC_ARG_UNREG ? "[IORING_UNREGISTER_FILES only] " :
				p->rules[i].arg == SC_ARG_IOCTL ? "[requests below] " : "",
				p->rules[i].why);
		fprintf(f, "  ioctl requests:\n");
		for (size_t i = 0; i < p->nioctls; i++)
			fprintf(f, "    %-20s %s\n", p->ioctls[i].name, p->ioctls[i].why);
	}
}
