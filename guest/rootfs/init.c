/*
 * /init of the ember demo guest, first stage; also /bin/outb.
 *
 * As /init (any name but "outb"):
 *   1. writes the boot-complete marker, byte 123 to I/O port 0x3f0
 *      (Firecracker's convention; ember --boot-time records it), as the very
 *      first thing user space does;
 *   2. mounts /proc, /sys and /dev (devtmpfs);
 *   3. runs /bin/sh /etc/init.sh, the rest of init (banner, test hook,
 *      optional shell), reaping orphans meanwhile;
 *   4. when the script ends, however it ends: sync() and reboot(2), which
 *      ember treats as the end of the VM (never "Attempted to kill init").
 * Doing this in a tiny static program rather than in the shell script saves
 * four fork+exec of busybox, each of which costs a noticeable fraction of a
 * second on a software KVM (guest kernel code is emulated there).
 *
 * As /bin/outb PORT VALUE: writes one byte to an I/O port (numbers decimal
 * or 0x-hex); exit status 0, 1 on bad usage, 2 when ioperm() fails.  For
 * tests.  (/dev/port would need CONFIG_PCI or CONFIG_ISA.)
 *
 * Freestanding (no libc): gcc -static -nostdlib.
 */
#define SYS_write 1
#define SYS_getpid 39
#define SYS_fork 57
#define SYS_execve 59
#define SYS_exit 60
#define SYS_wait4 61
#define SYS_sync 162
#define SYS_mount 165
#define SYS_reboot 169
#define SYS_ioperm 173

#define BOOT_PORT 0x3f0
#define BOOT_VALUE 123

static long sys5(long n, long a, long b, long c, long d, long e)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return r;
}

static long slen(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	return n;
}

static void put(const char *s)
{
	sys5(SYS_write, 2, (long)s, slen(s), 0, 0);
}

__attribute__((noreturn)) static void die(long status)
{
	for (;;)
		sys5(SYS_exit, status, 0, 0, 0, 0);
}

static long num(const char *s)
{
	long v = 0, base = 10;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -1;
	for (; *s; s++) {
		long d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -1;
		v = v * base + d;
		if (v > 0xffff)
			return -1;
	}
	return v;
}

static int outb(long port, long val)
{
	if (sys5(SYS_ioperm, port, 1, 1, 0, 0) != 0)
		return -1;
	__asm__ volatile("outb %b0, %w1" : : "a"(val), "Nd"(port));
	return 0;
}

static void mnt(const char *fstype, const char *dir)
{
	long r = sys5(SYS_mount, (long)fstype, (long)dir, (long)fstype, 0, 0);
	if (r != 0 && r != -16 /* EBUSY: already mounted */) {
		put("init: mounting ");
		put(dir);
		put(" failed\n");
	}
}

static int is_outb(const char *argv0)
{
	const char *b = argv0;
	for (const char *p = argv0; *p; p++)
		if (*p == '/')
			b = p + 1;
	return b[0] == 'o' && b[1] == 'u' && b[2] == 't' && b[3] == 'b' && !b[4];
}

__attribute__((noreturn, used)) void start(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	long port, val;

	if (argc > 0 && is_outb(argv[0])) {
		if (argc != 3 || (port = num(argv[1])) < 0 || (val = num(argv[2])) < 0 ||
		    val > 0xff) {
			put("usage: outb PORT VALUE\n");
			die(1);
		}
		if (outb(port, val) != 0) {
			put("outb: ioperm failed\n");
			die(2);
		}
		die(0);
	}

	if (sys5(SYS_getpid, 0, 0, 0, 0, 0) != 1) {
		put("init: not process 1; as a tool, call me outb\n");
		die(1);
	}
	if (outb(BOOT_PORT, BOOT_VALUE) != 0)
		put("init: ioperm failed: no boot-complete marker\n");
	mnt("proc", "/proc");
	mnt("sysfs", "/sys");
	mnt("devtmpfs", "/dev");

	char *args[] = {"sh", "/etc/init.sh", 0};
	long pid = sys5(SYS_fork, 0, 0, 0, 0, 0);
	if (pid == 0) {
		sys5(SYS_execve, (long)"/bin/sh", (long)args, (long)envp, 0, 0);
		put("init: cannot exec /bin/sh /etc/init.sh\n");
		die(127);
	}
	if (pid < 0) {
		put("init: fork failed\n");
	} else {
		long w; /* reap orphans until the script is done */
		do
			w = sys5(SYS_wait4, -1, 0, 0, 0, 0);
		while (w != pid && w != -10 /* ECHILD */);
	}
	sys5(SYS_sync, 0, 0, 0, 0, 0);
	sys5(SYS_reboot, 0xfee1dead, 672274793, 0x01234567 /* RESTART */, 0, 0);
	put("init: reboot failed\n");
	for (;;)
		sys5(SYS_wait4, -1, 0, 0, 0, 0);
}

__asm__(".text\n.globl _start\n_start:\n"
	"\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n"
	"\tcall start\n\thlt\n");
