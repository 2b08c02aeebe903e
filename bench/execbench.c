/* execbench: fork/exec a command N times (K at a time), time each
 * exec->exit with CLOCK_MONOTONIC, print min/p50/p99 (ms) and, with K > 1
 * or always, runs per second over the whole batch.  stdin/stdout/stderr of
 * the command go to /dev/null.  Every run must exit 0: failures are counted,
 * reported, and make execbench exit 1.
 *
 *   execbench [-n N] [-c K] [-w W] [-r] -- CMD [ARGS...]
 *     -n N  runs (default 100)       -c K  concurrent runs (default 1)
 *     -w W  warm-up runs, not timed (default 2)
 *     -r    print every sample (ms) on stderr
 * Output (one line, key=value, for scripts):
 *   n=N k=K fail=F min=.. p50=.. p99=.. max=.. mean=.. wall_s=.. per_s=..
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static pid_t spawn(char **argv, int devnull)
{
	pid_t pid = fork();
	if (pid == 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
	int i = (int)(p / 100.0 * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static void usage(void)
{
	fprintf(stderr, "usage: execbench [-n N] [-c K] [-w W] [-r] -- CMD [ARGS...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int n = 100, k = 1, warm = 2, raw = 0, opt;
	while ((opt = getopt(argc, argv, "n:c:w:r")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'c': k = atoi(optarg); break;
		case 'w': warm = atoi(optarg); break;
		case 'r': raw = 1; break;
		default: usage();
		}
	}
	if (optind >= argc || n < 1 || k < 1 || warm < 0)
		usage();
	char **cmd = argv + optind;
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0) {
		perror("execbench: /dev/null");
		return 1;
	}
	int fails = 0;
	for (int i = 0; i < warm; i++) {
		int st;
		pid_t p = spawn(cmd, devnull);
		if (p < 0 || waitpid(p, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "execbench: warm-up run failed (status 0x%x)\n", p < 0 ? -1 : st);
			fails++;
		}
	}

	double *ms = calloc((size_t)n, sizeof(*ms));
	pid_t *pids = calloc((size_t)k, sizeof(*pids));
	double *t0 = calloc((size_t)k, sizeof(*t0));
	if (!ms || !pids || !t0)
		return 1;
	int started = 0, done = 0, running = 0;
	double begin = now_ms();
	while (done < n) {
		while (running < k && started < n) {
			int slot = 0;
			while (pids[slot])
				slot++;
			t0[slot] = now_ms();
			pids[slot] = spawn(cmd, devnull);
			if (pids[slot] < 0) {
				perror("execbench: fork");
				return 1;
			}
			started++;
			running++;
		}
		int st;
		pid_t p = wait(&st);
		double t = now_ms();
		if (p < 0) {
			if (errno == EINTR)
				continue;
			perror("execbench: wait");
			return 1;
		}
		for (int s = 0; s < k; s++) {
			if (pids[s] != p)
				continue;
			pids[s] = 0;
			ms[done] = t - t0[s];
			if (raw)
				fprintf(stderr, "%.3f\n", ms[done]);
			done++;
			running--;
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				fails++;
				if (WIFEXITED(st))
					fprintf(stderr, "execbench: run %d exited with status %d\n", done, WEXITSTATUS(st));
				else
					fprintf(stderr, "execbench: run %d killed by signal %d\n", done, WTERMSIG(st));
			}
			break;
		}
	}
	double wall = (now_ms() - begin) / 1e3, sum = 0;
	for (int i = 0; i < n; i++)
		sum += ms[i];
	qsort(ms, (size_t)n, sizeof(*ms), cmp);
	printf("n=%d k=%d fail=%d min=%.2f p50=%.2f p99=%.2f max=%.2f mean=%.2f wall_s=%.3f per_s=%.1f\n", n, k,
	       fails, ms[0], pct(ms, n, 50), pct(ms, n, 99), ms[n - 1], sum / n, wall, n / wall);
	free(ms);
	free(pids);
	free(t0);
	return fails ? 1 : 0;
}
