/* ember: boot a Linux kernel in a KVM microVM.  Command line, file loading,
 * console wiring; the VM itself lives in kvm.c, kernel loading in boot/. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "boot/boot.h"
#include "boottime.h"
#include "err.h"
#include "kvm.h"
#include "kvm_pvm.h"
#include "loop.h"
#include "platform.h"
#include "seccomp/filter.h"
#include "serial.h"
#include "virtio/blk.h"
#include "virtio/net.h"

#define MEM_MIN_MIB     8
#define MEM_MAX_MIB     (1024 * 1024)   /* 1 TiB */
#define MEM_DEFAULT_MIB 128

/* Prepended to every guest command line.  Each word and why:
 *   console=ttyS0       the only console is the 16550 at 0x3f8
 *   reboot=k            reboot through the i8042 reset line, which ends the VM
 *   panic=-1            a panic reboots at once, so it ends the VM too
 *   pci=off nomodule    no PCI bus, no modules in a microVM
 *   io_delay=none       no port-0x80 writes between PIC/PIT accesses
 *   i8042.*             there is no keyboard controller to probe
 *   8250.nr_uarts=1     probe only COM1, not three absent UARTs */
static const char default_cmdline[] =
	"console=ttyS0 reboot=k panic=-1 pci=off nomodule io_delay=none "
	"i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1";

static const char usage_text[] =
"Usage: ember --kernel PATH [options]\n"
"Boot a Linux kernel (ELF vmlinux or bzImage) in a KVM microVM.\n"
"\n"
"  --kernel PATH         kernel image: ELF vmlinux (64-bit or PVH entry) or bzImage\n"
"  --initrd PATH         initial ramdisk (loaded at the top of low RAM)\n"
"  --cmdline STR         appended to ember's default kernel command line\n"
"                        (repeatable: the words accumulate):\n"
"                        \"%s\"\n"
"  --mem MIB             guest RAM in MiB, %d..%d (default %d)\n"
"  --cpus N              vCPUs, 1..%d (default 1)\n"
"  --console MODE        stdio (default: guest console on stdout, stdin to the\n"
"                        guest), none, or file:PATH (output only)\n"
"  --entry MODE          auto (default), linux64 (64-bit Linux boot protocol)\n"
"                        or pvh (ELF PVH note)\n"
"  --disk PATH[,ro][,root][,direct][,serial=ID]\n"
"                        virtio-blk disk on a file or block device whose size is\n"
"                        a multiple of 512 (repeatable, at most %d; the guest sees\n"
"                        /dev/vda, /dev/vdb, ... in this order).  ro: read-only;\n"
"                        root: add root=/dev/vdX to the command line; direct:\n"
"                        O_DIRECT (bypass the host page cache); serial=ID: what\n"
"                        the guest reads as the disk's ID (at most 20 characters,\n"
"                        default ember-diskN).  The image is locked against a\n"
"                        second writer\n"
"  --net TAP[,mac=XX:XX:XX:XX:XX:XX]\n"
"                        virtio-net device on an existing tap interface (repeatable,\n"
"                        at most %d; create one with: ip tuntap add dev TAP mode tap,\n"
"                        addresses and bridges are the host's to set up).  mac: the\n"
"                        guest's MAC (default: 02:xx:xx:xx:xx:xx derived from TAP)\n"
"  --no-seccomp          debugging only: do not install the seccomp allowlist\n"
"                        (ember warns loudly; the io_uring ring stays restricted)\n"
"  --print-policy        print the seccomp allowlist of each thread and exit\n"
"  --boot-time           print boot phases on stderr, in microseconds since exec:\n"
"                        vm-created, kernel-loaded, first-run, boot-complete\n"
"                        (the guest wrote 123 to I/O port 0x3f0), exit; on exit\n"
"                        each device's counters (requests, packets, drops, guest\n"
"                        errors)\n"
"  --help                this text\n"
"  --version             print the version\n"
"Each option that takes one value may be given once; --cmdline, --disk and --net\n"
"accumulate.  --help, --version and --print-policy take no other options.\n"
"\n"
"The VM ends when the guest reboots or powers off (e.g. reboot -f).  Host\n"
"trouble while it runs does not end it: a full or failing disk gives the guest\n"
"I/O errors, a deleted tap takes its link down; one line on stderr each.\n"
"On a software KVM (kvm-pvm) ember also appends \"" KVM_PVM_CMDLINE "\".\n"
"\n"
"Exit status:\n"
"  0  the guest rebooted or powered off\n"
"  1  something the command line names cannot be used (a file, disk, tap,\n"
"     /dev/kvm) or setup failed (one line on stderr says what and why)\n"
"  2  bad command line: an unknown, missing or repeated option, a value that\n"
"     is malformed or out of range, options that conflict (one line on stderr)\n"
"  3  the guest stopped with an exit ember cannot handle (registers on stderr)\n"
"  148  ember made a system call outside its seccomp allowlist (one line on\n"
"       stderr names it and the thread; see --print-policy)\n"
"  128+N  ember was stopped by signal N (SIGINT, SIGTERM, SIGHUP: the VM is\n"
"         shut down cleanly, taps and image locks released; a second signal\n"
"         exits at once)\n";

struct options {
	const char *kernel;
	const char *initrd;
	char *cmdline;            /* --cmdline words, accumulated */
	uint64_t mem_mib;
	int cpus;
	const char *console;
	enum boot_entry entry;
	bool boot_time;
	bool no_seccomp;
	struct blk_opts disks[BLK_MAX_DISKS];
	int ndisks;
	struct net_opts nets[NET_MAX_NICS];
	int nnets;
};

struct file_map {
	const uint8_t *data;
	size_t len;
	dev_t dev;                /* which file: --console file: must be another */
	ino_t ino;
};

static void usage(FILE *f)
{
	fprintf(f, usage_text, default_cmdline, MEM_MIN_MIB, MEM_MAX_MIB,
		MEM_DEFAULT_MIB, VM_MAX_CPUS, BLK_MAX_DISKS, NET_MAX_NICS);
}

static void die(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));

static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("ember: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* Parse a decimal number in [min, max]; anything else is a usage error. */
static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s < '0' || *s > '9')
		die(EXIT_USAGE, "%s '%s': not a number", opt, s);
	v = strtoull(s, &end, 10);
	if (*end || errno)
		die(EXIT_USAGE, "%s '%s': not a number", opt, s);
	if (v < min || v > max)
		die(EXIT_USAGE, "%s %llu: must be between %" PRIu64 " and %" PRIu64,
		    opt, v, min, max);
	return v;
}

/* Map a whole input file read-only.  Errors name the option and the path.
 * O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused
 * right after, like every file that is not a regular one). */
static struct file_map map_file(const char *opt, const char *path)
{
	struct file_map m = { 0 };
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		die(EXIT_SETUP, "%s %s: %s", opt, path, strerror(errno));
	if (fstat(fd, &st) < 0)
		die(EXIT_SETUP, "%s %s: %s", opt, path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		die(EXIT_SETUP, "%s %s: is a directory", opt, path);
	if (!S_ISREG(st.st_mode))
		die(EXIT_SETUP, "%s %s: not a regular file (%s)", opt, path, err_file_kind(st.st_mode));
	if (st.st_size == 0)
		die(EXIT_SETUP, "%s %s: file is empty", opt, path);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die(EXIT_SETUP, "%s %s: %s", opt, path, strerror(errno));
	close(fd);
	m.data = p;
	m.len = (size_t)st.st_size;
	m.dev = st.st_dev;
	m.ino = st.st_ino;
	return m;
}

/* --cmdline may be repeated: the words accumulate, separated by a space,
 * so a wrapper script's words and its caller's both reach the kernel. */
static void add_cmdline(struct options *o, const char *words)
{
	size_t old = o->cmdline ? strlen(o->cmdline) : 0, n = old + strlen(words) + 2;
	char *s = malloc(n);

	if (!s)
		die(EXIT_SETUP, "out of memory");
	snprintf(s, n, "%s%s%s", o->cmdline ? o->cmdline : "", old ? " " : "", words);
	free(o->cmdline);
	o->cmdline = s;
}

/* An option that takes one value may be given once: two values mean two
 * callers (a wrapper and its user, say) disagree, and silently taking the
 * last one would hide it.  (--cmdline, --disk and --net are lists.) */
static void set_once(const char *opt, const char **slot, const char *value)
{
	if (*slot)
		die(EXIT_USAGE, "%s given twice ('%s', then '%s'; give it once)", opt, *slot, value);
	*slot = value;
}

/* --help, --version and --print-policy print something and exit; with
 * anything else on the command line the caller meant something else. */
static void alone(int argc, const char *opt)
{
	if (argc != 2)
		die(EXIT_USAGE, "%s takes no other options", opt);
}

/* Everything wrong with the command line itself is found here, before any
 * file, device or tap is touched, and exits EXIT_USAGE (2).  What is wrong
 * with the things it names (EXIT_SETUP, 1) is found when they are opened. */
static void parse_args(int argc, char **argv, struct options *o)
{
	enum { O_KERNEL = 256, O_INITRD, O_CMDLINE, O_MEM, O_CPUS, O_CONSOLE,
	       O_ENTRY, O_BOOT_TIME, O_HELP, O_VERSION, O_DISK, O_NET,
	       O_NO_SECCOMP, O_PRINT_POLICY };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "mem", required_argument, NULL, O_MEM },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "console", required_argument, NULL, O_CONSOLE },
		{ "entry", required_argument, NULL, O_ENTRY },
		{ "boot-time", no_argument, NULL, O_BOOT_TIME },
		{ "disk", required_argument, NULL, O_DISK },
		{ "net", required_argument, NULL, O_NET },
		{ "no-seccomp", no_argument, NULL, O_NO_SECCOMP },
		{ "print-policy", no_argument, NULL, O_PRINT_POLICY },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *mem = NULL, *cpus = NULL, *console = NULL, *entry = NULL;
	int c;

	*o = (struct options){ .mem_mib = MEM_DEFAULT_MIB, .cpus = 1,
			       .console = "stdio", .entry = BOOT_ENTRY_AUTO };
	opterr = 0;
	/* Leading : makes a missing value return : rather than ?. */
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case O_KERNEL:
		case O_INITRD: {
			const char *opt = c == O_KERNEL ? "--kernel" : "--initrd";

			set_once(opt, c == O_KERNEL ? &o->kernel : &o->initrd, optarg);
			if (!*optarg)
				die(EXIT_USAGE, "%s '': needs a path", opt);
			break;
		}
		case O_CMDLINE: add_cmdline(o, optarg); break;
		case O_MEM:
			set_once("--mem", &mem, optarg);
			o->mem_mib = parse_num("--mem", optarg, MEM_MIN_MIB, MEM_MAX_MIB);
			break;
		case O_CPUS:
			set_once("--cpus", &cpus, optarg);
			o->cpus = (int)parse_num("--cpus", optarg, 1, VM_MAX_CPUS);
			break;
		case O_CONSOLE:
			set_once("--console", &console, optarg);
			o->console = optarg;
			break;
		case O_ENTRY:
			set_once("--entry", &entry, optarg);
			if (!strcmp(optarg, "auto"))
				o->entry = BOOT_ENTRY_AUTO;
			else if (!strcmp(optarg, "linux64"))
				o->entry = BOOT_ENTRY_LINUX64;
			else if (!strcmp(optarg, "pvh"))
				o->entry = BOOT_ENTRY_PVH;
			else
				die(EXIT_USAGE, "--entry '%s': expected auto, linux64 or pvh", optarg);
			break;
		case O_BOOT_TIME: o->boot_time = true; break;
		case O_DISK: {
			struct err e;

			if (o->ndisks == BLK_MAX_DISKS)
				die(EXIT_USAGE, "--disk %s: too many disks (at most %d)", optarg,
				    BLK_MAX_DISKS);
			if (blk_parse(optarg, &o->disks[o->ndisks], &e) < 0)
				die(EXIT_USAGE, "%s", e.msg);
			for (int i = 0; i < o->ndisks; i++)
				if (o->disks[i].root && o->disks[o->ndisks].root)
					die(EXIT_USAGE, "--disk %s: only one disk can be the root "
					    "(%s already is)", optarg, o->disks[i].path);
			o->ndisks++;
			break;
		}
		case O_NET: {
			struct err e;

			if (o->nnets == NET_MAX_NICS)
				die(EXIT_USAGE, "--net %s: too many network devices (at most %d)",
				    optarg, NET_MAX_NICS);
			if (net_parse(optarg, &o->nets[o->nnets], &e) < 0)
				die(EXIT_USAGE, "%s", e.msg);
			for (int i = 0; i < o->nnets; i++)
				if (!strcmp(o->nets[i].tap, o->nets[o->nnets].tap))
					die(EXIT_USAGE, "--net %s: the same tap as an earlier --net",
					    o->nets[i].tap);
			o->nnets++;
			break;
		}
		case O_NO_SECCOMP: o->no_seccomp = true; break;
		case O_PRINT_POLICY: alone(argc, "--print-policy"); sc_print_policy(stdout); exit(0);
		case O_HELP: alone(argc, "--help"); usage(stdout); exit(0);
		case O_VERSION: alone(argc, "--version"); printf("ember %s\n", EMBER_VERSION); exit(0);
		case ':':
			die(EXIT_USAGE, "%s needs a value (see ember --help)", argv[optind - 1]);
		default:
			die(EXIT_USAGE, "unknown option '%s' (see ember --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see ember --help)", argv[optind]);
	if (!o->kernel)
		die(EXIT_USAGE, "--kernel PATH is required (see ember --help)");
	if (strcmp(o->console, "stdio") && strcmp(o->console, "none") &&
	    strncmp(o->console, "file:", 5))
		die(EXIT_USAGE, "--console '%s': expected stdio, none or file:PATH", o->console);
	if (!strcmp(o->console, "file:"))
		die(EXIT_USAGE, "--console file: needs a path");
}

/* --boot-time: what the guest did to a device's transport (virtio/mmio.h). */
static void print_transport(const struct virtio_mmio *t)
{
	fprintf(stderr, "ember: %s transport: %lu notifies (%lu wakeups, %lu ignored), %lu resets, "
		"%lu bad register accesses, %lu refused queue set-ups, %lu refused status writes, "
		"%lu needs-reset\n", t->name, (unsigned long)t->stats.notifies,
		(unsigned long)t->stats.wakeups, (unsigned long)t->stats.ignored,
		(unsigned long)t->stats.resets,
		(unsigned long)t->stats.bad_access, (unsigned long)t->stats.bad_queue,
		(unsigned long)t->stats.bad_status, (unsigned long)t->stats.needs_reset);
}

/* --console file:PATH.  Opened without O_TRUNC, and truncated only once
 * it is known not to be the kernel, the initrd or a disk: truncating the
 * kernel ember has mapped would crash it (SIGBUS), and a disk image would
 * be lost.  O_NONBLOCK so a FIFO nobody reads is refused instead of
 * waiting forever; the output itself is written blocking, as to a
 * terminal. */
static int open_console_file(const struct options *o, const struct file_map *kernel,
			     const struct file_map *initrd, struct blk *const *disks)
{
	const char *path = o->console + 5;
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);

	if (fd < 0 && errno == ENXIO)
		die(EXIT_SETUP, "--console %s: a FIFO that no process reads", o->console);
	if (fd < 0 && errno == EISDIR)
		die(EXIT_SETUP, "--console %s: is a directory", o->console);
	if (fd < 0)
		die(EXIT_SETUP, "--console %s: %s", o->console, strerror(errno));
	if (fstat(fd, &st) < 0)
		die(EXIT_SETUP, "--console %s: %s", o->console, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		if (st.st_dev == kernel->dev && st.st_ino == kernel->ino)
			die(EXIT_SETUP, "--console %s: the same file as --kernel %s (it would be "
			    "overwritten)", o->console, o->kernel);
		if (initrd->data && st.st_dev == initrd->dev && st.st_ino == initrd->ino)
			die(EXIT_SETUP, "--console %s: the same file as --initrd %s (it would be "
			    "overwritten)", o->console, o->initrd);
		for (int i = 0; i < o->ndisks; i++)
			if (blk_is_file(disks[i], st.st_dev, st.st_ino))
				die(EXIT_SETUP, "--console %s: the same file as --disk %s (it would "
				    "be overwritten)", o->console, o->disks[i].path);
		if (ftruncate(fd, 0) < 0)
			die(EXIT_SETUP, "--console %s: %s", o->console, strerror(errno));
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		die(EXIT_SETUP, "--console %s: %s", o->console, strerror(errno));
	return fd;
}

/* ---- console: stdin in raw mode while the guest runs ---- */

static struct termios saved_tio;
static bool tio_saved;

static void restore_tty(void)
{
	if (tio_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
}

static struct vm *signal_vm;
static volatile sig_atomic_t signal_seen;

/* SIGINT, SIGTERM, SIGHUP.  The first one stops the VM the normal way
 * (the loop ends, in-flight I/O drains, loop_fini() hands the taps and
 * image locks back before ember exits), with status 128+N.  A second one,
 * or one before the VM exists, exits at once.  Nothing here but a
 * compare-and-swap, write(2), tcsetattr and _exit: async-signal-safe, and
 * all in the main thread's seccomp policy (raise() is not: glibc's makes a
 * gettid call). */
static void on_signal(int sig)
{
	if (!signal_seen && signal_vm) {
		signal_seen = 1;
		vm_request_stop(signal_vm, 128 + sig);
		return;
	}
	restore_tty();
	_exit(128 + sig);
}

/* Raw input so the guest sees every key, but ISIG stays on for Ctrl-C
 * alone: it stops ember (the handler above restores the terminal first).
 * Ctrl-Z and Ctrl-\ are disabled as signal keys and reach the guest, so
 * ember is never suspended or killed with the terminal left raw. */
static void raw_tty(void)
{
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return;
	tio_saved = true;
	atexit(restore_tty);
	t = saved_tio;
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	t.c_cc[VSUSP] = _POSIX_VDISABLE;
	t.c_cc[VQUIT] = _POSIX_VDISABLE;
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
}

struct console {
	struct serial *uart;
	int wake_fd;    /* eventfd: the UART has room for input again */
	int flush_fd;   /* eventfd: guest output waits in the UART's buffer */
	atomic_bool flush_armed;   /* flush_fd written, flush not yet done */
	bool eof;
};

/* UART rx_ready callback (vCPU thread): wake the main loop. */
static void console_rx_ready(void *opaque)
{
	struct console *c = opaque;
	uint64_t one = 1;

	(void)!write(c->wake_fd, &one, sizeof(one));
}

static bool console_want_input(void *opaque)
{
	struct console *c = opaque;

	return !c->eof && serial_rx_space(c->uart) > 0;
}

static void console_input(void *opaque)
{
	struct console *c = opaque;
	uint8_t buf[SERIAL_FIFO_SIZE];
	size_t room = serial_rx_space(c->uart);
	ssize_t n;

	if (room > sizeof(buf))
		room = sizeof(buf);
	if (room == 0)
		return;
	n = read(STDIN_FILENO, buf, room);
	if (n > 0)
		serial_rx(c->uart, buf, (size_t)n);   /* room was free: all fit */
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		c->eof = true;   /* stop polling a closed stdin */
}

/* UART out_pending callback (vCPU thread): have the loop flush the
 * partial line in a moment.  One eventfd write until that flush, however
 * many lines start meanwhile. */
static void console_out_pending(void *opaque)
{
	struct console *c = opaque;
	uint64_t one = 1;

	if (!atomic_exchange(&c->flush_armed, true))
		(void)!write(c->flush_fd, &one, sizeof(one));
}

/* Loop thread, LOOP_FLUSH_MS after console_out_pending().  The flag is
 * cleared first: a byte buffered from here on arms another flush. */
static void console_flush(void *opaque)
{
	struct console *c = opaque;

	atomic_store(&c->flush_armed, false);
	serial_flush(c->uart);
}

static void uart_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	for (uint32_t i = 0; i < len; i++)
		serial_io(opaque, (uint16_t)(off + i), &data[i], is_write);
}

/* ember's defaults, the software-KVM words, one virtio_mmio.device= word
 * per device (Linux's CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES; slot i as
 * virtio/mmio.h allocates it: the disks first, then the network devices),
 * root= for a --disk ...,root, then the user's --cmdline (last, so it can
 * override any of them). */
static char *build_cmdline(const struct options *o, bool software_kvm)
{
	size_t n = sizeof(default_cmdline) + sizeof(KVM_PVM_CMDLINE) + 2 +
		   (o->cmdline ? strlen(o->cmdline) : 0) +
		   64 * ((size_t)o->ndisks + (size_t)o->nnets + 1);
	char *s = malloc(n);
	size_t len;

	if (!s)
		die(EXIT_SETUP, "out of memory");
	len = (size_t)snprintf(s, n, "%s%s%s", default_cmdline, software_kvm ? " " : "",
			       software_kvm ? KVM_PVM_CMDLINE : "");
	for (int i = 0; i < o->ndisks + o->nnets; i++)
		len += (size_t)snprintf(s + len, n - len, " virtio_mmio.device=4K@0x%" PRIx64 ":%u",
					virtio_mmio_slot_base((unsigned)i),
					virtio_mmio_slot_pin((unsigned)i));
	for (int i = 0; i < o->ndisks; i++)
		if (o->disks[i].root)
			len += (size_t)snprintf(s + len, n - len, " root=/dev/vd%c %s", 'a' + i,
						o->disks[i].ro ? "ro" : "rw");
	if (o->cmdline)
		snprintf(s + len, n - len, " %s", o->cmdline);
	return s;
}

#if defined(__SANITIZE_ADDRESS__)
void __lsan_do_leak_check(void);
#endif

/* Sanitizer builds: LeakSanitizer's end-of-process check clones a tracer
 * and reads /proc, which the seccomp policy forbids.  Check for leaks now,
 * before lockdown, which also turns the exit-time check off (the unit
 * tests keep the full check).  Nothing in other builds. */
static void lsan_check_now(void)
{
#if defined(__SANITIZE_ADDRESS__)
	__lsan_do_leak_check();
#endif
}

/* Every descriptor ember will hold must fit under RLIMIT_NOFILE, and the
 * io_uring fixed-file table (LOOP_MAX_FILES slots) is refused outright
 * (EMFILE) by a smaller limit: raise the soft limit to the hard one if need
 * be, and otherwise say so once, before anything is opened, instead of
 * failing at whichever open comes first.  need: stdio and the console's
 * 3, the VM's 5, one per vCPU, up to 5 per device, and room for what the
 * caller let us inherit. */
static void check_fd_limit(const struct options *o)
{
	struct rlimit rl;
	unsigned long need = 3 + 3 + 5 + (unsigned long)o->cpus + 5ul * (unsigned long)(o->ndisks + o->nnets) + 16;

	if (need < LOOP_MAX_FILES)
		need = LOOP_MAX_FILES;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max >= need || rl.rlim_max == RLIM_INFINITY) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
	}
	die(EXIT_SETUP, "too few open files allowed: this VM needs %lu descriptors, RLIMIT_NOFILE "
	    "is %llu (raise it: ulimit -n %lu)", need, (unsigned long long)rl.rlim_max, need);
}

int main(int argc, char **argv)
{
	struct options o;
	struct file_map kernel, initrd = { 0 };
	struct vm vm;
	struct err e = { { 0 } };
	struct boot_config bc;
	struct boot_info bi;
	struct console con = { 0 };
	struct loop_console hooks = { .input_fd = -1, .wake_fd = -1, .flush_fd = -1 };
	struct loop loop;
	struct blk *disks[BLK_MAX_DISKS] = { NULL };
	struct vm_irq disk_irq[BLK_MAX_DISKS];
	struct net *nets[NET_MAX_NICS] = { NULL };
	struct vm_irq net_irq[NET_MAX_NICS];
	int out_fd = -1, status;
	char *cmdline;

	bt_init();
	parse_args(argc, argv, &o);
	check_fd_limit(&o);
	kernel = map_file("--kernel", o.kernel);
	if (o.initrd)
		initrd = map_file("--initrd", o.initrd);
	for (int i = 0; i < o.ndisks; i++) {
		disks[i] = blk_open(&o.disks[i], (unsigned)i, disks, &e);
		if (!disks[i])
			die(EXIT_SETUP, "--disk %s: %s", o.disks[i].path, e.msg);
	}
	for (int i = 0; i < o.nnets; i++) {
		nets[i] = net_open(&o.nets[i], (unsigned)i, &e);
		if (!nets[i])
			die(EXIT_SETUP, "--net %s: %s", o.nets[i].tap, e.msg);
	}

	if (!strcmp(o.console, "stdio")) {
		out_fd = STDOUT_FILENO;
	} else if (!strncmp(o.console, "file:", 5)) {
		out_fd = open_console_file(&o, &kernel, &initrd, disks);
	}

	if (vm_open(&vm, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);
	if (vm.software_kvm)
		fprintf(stderr, "ember: software KVM (kvm-pvm) detected: completing int3/fwait "
			"in the VMM, guest command line gets \"%s\"\n", KVM_PVM_CMDLINE);
	if (vm_create(&vm, o.mem_mib, o.cpus, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);
	vm.seccomp = !o.no_seccomp;
	bt_mark(BT_VM_CREATED);

	con.uart = serial_new(out_fd, vm_serial_irq, &vm);
	if (!con.uart)
		die(EXIT_SETUP, "out of memory");
	if (bus_register(&vm.pio, SERIAL_COM1_BASE, 8, uart_io, con.uart, "serial", &e) < 0 ||
	    platform_init(&vm, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);

	if (loop_init(&loop, 256, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);
	for (int i = 0; i < o.ndisks; i++) {
		struct virtio_irq irq = { vm_irq_raise, vm_irq_lower, &disk_irq[i] };
		struct virtio_mmio *t;

		disk_irq[i].fd = -1;
		if (vm_irq_init(&vm, &disk_irq[i], virtio_mmio_slot_pin((unsigned)i), &e) < 0 ||
		    blk_attach(disks[i], (unsigned)i, &vm.mem, &loop, &irq, &e) < 0)
			die(EXIT_SETUP, "--disk %s: %s", o.disks[i].path, e.msg);
		t = blk_transport(disks[i]);
		if (vm_ioeventfd(&vm, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, 0, t->q[0].notify_fd,
				 &e) < 0 ||
		    bus_register(&vm.mmio, t->base, VIRTIO_MMIO_SIZE, virtio_mmio_io, t,
				 "virtio-blk", &e) < 0)
			die(EXIT_SETUP, "--disk %s: %s", o.disks[i].path, e.msg);
	}
	for (int i = 0; i < o.nnets; i++) {
		/* Slots after the disks' (build_cmdline() numbers them alike). */
		unsigned slot = (unsigned)(o.ndisks + i);
		struct virtio_irq irq = { vm_irq_raise, vm_irq_lower, &net_irq[i] };
		struct virtio_mmio *t;

		net_irq[i].fd = -1;
		if (vm_irq_init(&vm, &net_irq[i], virtio_mmio_slot_pin(slot), &e) < 0 ||
		    net_attach(nets[i], slot, &vm.mem, &loop, &irq, &e) < 0)
			die(EXIT_SETUP, "--net %s: %s", o.nets[i].tap, e.msg);
		t = net_transport(nets[i]);
		/* One ioeventfd per queue: the queue index is the datamatch. */
		for (unsigned q = 0; q < t->ops->num_queues; q++)
			if (vm_ioeventfd(&vm, t->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q,
					 t->q[q].notify_fd, &e) < 0)
				die(EXIT_SETUP, "--net %s: %s", o.nets[i].tap, e.msg);
		if (bus_register(&vm.mmio, t->base, VIRTIO_MMIO_SIZE, virtio_mmio_io, t,
				 "virtio-net", &e) < 0)
			die(EXIT_SETUP, "--net %s: %s", o.nets[i].tap, e.msg);
	}

	cmdline = build_cmdline(&o, vm.software_kvm);
	bc = (struct boot_config){
		.kernel = kernel.data, .kernel_len = kernel.len,
		.initrd = initrd.data, .initrd_len = initrd.len,
		.cmdline = cmdline, .ncpus = o.cpus, .entry = o.entry,
	};
	memset(&e, 0, sizeof(e));
	if (boot_load(&vm.mem, &bc, &bi, &e) < 0) {
		/* boot_load names the problem; say which input it concerns. */
		if (strstr(e.msg, "initrd"))
			die(EXIT_SETUP, "--initrd %s: %s", o.initrd ? o.initrd : "", e.msg);
		if (strstr(e.msg, "command line")) {
			/* Say how much of it the user can shorten: the devices'
			 * virtio_mmio.device= words count too. */
			size_t user = o.cmdline ? strlen(o.cmdline) : 0;

			die(EXIT_SETUP, "--cmdline: %s (%zu bytes from --cmdline, %zu added by ember "
			    "for its defaults and %d devices)", e.msg, user, strlen(cmdline) - user,
			    o.ndisks + o.nnets);
		}
		die(EXIT_SETUP, "--kernel %s: %s", o.kernel, e.msg);
	}
	if (vm_set_boot_regs(&vm, &bi, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);
	munmap((void *)kernel.data, kernel.len);
	if (initrd.data)
		munmap((void *)initrd.data, initrd.len);
	free(cmdline);
	free(o.cmdline);
	bt_mark(BT_KERNEL_LOADED);

	if (!strcmp(o.console, "stdio")) {
		raw_tty();
		hooks.input_fd = STDIN_FILENO;
		hooks.input = console_input;
		hooks.want_input = console_want_input;
		con.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (con.wake_fd < 0)
			die(EXIT_SETUP, "eventfd: %s", strerror(errno));
		hooks.wake_fd = con.wake_fd;
		serial_set_rx_ready(con.uart, console_rx_ready, &con);
	}
	signal_vm = &vm;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);   /* a closed stdout must not kill the VM */
	if (out_fd >= 0) {
		con.flush_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (con.flush_fd < 0)
			die(EXIT_SETUP, "eventfd: %s", strerror(errno));
		hooks.flush_fd = con.flush_fd;
		hooks.flush = console_flush;
		serial_set_out_pending(con.uart, console_out_pending, &con);
	}
	hooks.opaque = &con;
	/* Last of the ring's setup: every descriptor it will touch is in
	 * its fixed-file table now, so it can be restricted and enabled. */
	if (loop_set_console(&loop, &hooks, &e) < 0 || loop_set_stop(&loop, vm.stop_efd, &e) < 0 ||
	    loop_enable(&loop, &e) < 0)
		die(EXIT_SETUP, "%s", e.msg);

	if (vm.seccomp) {
		if (sc_prepare(&e) < 0)
			die(EXIT_SETUP, "%s", e.msg);
		lsan_check_now();
	} else {
		fprintf(stderr, "ember: WARNING: --no-seccomp: running WITHOUT the seccomp "
			"allowlist; a guest escape into ember gets every system call. "
			"Debugging only.\n");
	}
	status = vm_run(&vm, &loop);
	serial_flush(con.uart);
	restore_tty();
	if (o.boot_time) {
		bt_print();
		fprintf(stderr, "ember: exits %lu, unclaimed pio %lu, unclaimed mmio %lu\n",
			(unsigned long)vm.stats.exits, (unsigned long)vm.stats.pio_unclaimed,
			(unsigned long)vm.stats.mmio_unclaimed);
		fprintf(stderr, "ember: serial: %llu bytes of console output lost\n",
			(unsigned long long)serial_dropped(con.uart));
		kvm_pvm_print_stats();
		fprintf(stderr, "ember: io_uring: setup %llu us, %llu waits, %llu sqes, %llu cqes\n",
			(unsigned long long)(loop.stats.setup_ns / 1000),
			(unsigned long long)loop.stats.enters, (unsigned long long)loop.stats.sqes,
			(unsigned long long)loop.stats.cqes);
		for (int i = 0; i < o.ndisks; i++) {
			const struct blk_stats *st = blk_get_stats(disks[i]);
			struct virtio_mmio *t = blk_transport(disks[i]);

			fprintf(stderr, "ember: virtio-blk%d: %lu reads (%lu bytes), %lu writes "
				"(%lu bytes), %lu flushes, %lu interrupts (%lu while masked), "
				"%lu bad requests, %lu I/O errors, %lu unaligned direct, "
				"%lu merged into %lu host I/Os\n", i,
				(unsigned long)st->reads, (unsigned long)st->bytes_read,
				(unsigned long)st->writes, (unsigned long)st->bytes_written,
				(unsigned long)st->flushes, (unsigned long)t->stats.irqs,
				(unsigned long)disk_irq[i].masked, (unsigned long)st->bad_requests,
				(unsigned long)st->io_errors, (unsigned long)st->unaligned,
				(unsigned long)st->merged, (unsigned long)st->merged_ios);
			print_transport(t);
		}
		for (int i = 0; i < o.nnets; i++) {
			const struct net_stats *st = net_get_stats(nets[i]);
			struct virtio_mmio *t = net_transport(nets[i]);

			fprintf(stderr, "ember: virtio-net%d (%s): rx %lu packets (%lu bytes), "
				"%lu dropped, %lu errors, %lu waits for buffers; tx %lu packets "
				"(%lu bytes), %lu dropped, %lu errors; %lu bad chains, %lu "
				"interrupts (%lu while masked)\n", i, o.nets[i].tap,
				(unsigned long)st->rx_packets, (unsigned long)st->rx_bytes,
				(unsigned long)st->rx_dropped, (unsigned long)st->rx_errors,
				(unsigned long)st->rx_waits, (unsigned long)st->tx_packets,
				(unsigned long)st->tx_bytes, (unsigned long)st->tx_dropped,
				(unsigned long)st->tx_errors, (unsigned long)st->bad_chains,
				(unsigned long)t->stats.irqs, (unsigned long)net_irq[i].masked);
			print_transport(t);
		}
	}
	/* Disk I/O still in flight writes into guest RAM and completes into the
	 * disks' request slots: free neither before the ring has drained (if it
	 * never does, exit without freeing). */
	if (loop_fini(&loop, 5000) == 0) {
		vm_destroy(&vm);
		for (int i = 0; i < o.ndisks; i++) {
			blk_close(disks[i]);
			vm_irq_fini(&disk_irq[i]);
		}
		for (int i = 0; i < o.nnets; i++) {
			net_close(nets[i]);
			vm_irq_fini(&net_irq[i]);
		}
	}
	serial_free(con.uart);
	if (hooks.wake_fd >= 0)
		close(hooks.wake_fd);
	if (hooks.flush_fd >= 0)
		close(hooks.flush_fd);
	if (out_fd > STDERR_FILENO)
		close(out_fd);
	return status;
}
