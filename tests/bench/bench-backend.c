/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark of the vhost-user-vsock back-end driven by guestsim, beside a raw Unix
 * socketpair measured in the same run with the same write sizes:
 *   guest->host throughput (64 KiB writes), host->guest throughput (4 KiB rx buffers)
 *   with the host client in its own process,
 *   64-byte ping-pong latency p50/p99, connections opened+closed per second, and
 *   back-end RSS per idle connection at 10,000 connections.
 * Usage: bench-backend [SECONDS-PER-MEASUREMENT]   (needs top_builddir or ./backend)
 *        bench-backend --idle [N]   N (100) idle back-ends: start time, RSS and CPU each
 * BENCH_BACKEND_OPTS="--buffer-size=N" passes one more option to the back-end;
 * BENCH_BACKEND_ONLY=g2h|h2g measures only the raw socketpair and that direction
 * (to profile or trace one phase: it starts SECONDS after the back-end). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gstest.h"
#include "macro.h"

#define PORT 5000
#define CHUNK 65536
#define PING 64

static struct gt_backend b;
static double seconds = 2.0;

/* CPU shares during a measurement: who is the bottleneck, back-end, guestsim or the
 * host client (a child process, counted once it was waited for)? */
struct cpu_mark {
	double wall;
	long backend_ms;
	double self_s, children_s;
};

static double cpu_s(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static struct cpu_mark cpu_mark(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (struct cpu_mark){ (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
		gt_backend_cpu_ms(&b), cpu_s(RUSAGE_SELF), cpu_s(RUSAGE_CHILDREN) };
}

static void cpu_report(const char *what, struct cpu_mark a)
{
	struct cpu_mark z = cpu_mark();
	double wall = z.wall - a.wall;

	printf("    (%s: back-end CPU %.0f%%, guestsim CPU %.0f%%, host client CPU %.0f%%)\n", what,
		(double)(z.backend_ms - a.backend_ms) / 10.0 / wall,
		(z.self_s - a.self_s) * 100 / wall, (z.children_s - a.children_s) * 100 / wall);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b2)
{
	double x = *(const double *)a, y = *(const double *)b2;

	return x < y ? -1 : x > y;
}

/* ---- raw socketpair baselines (writer/echo in a child process) ---- */

static double raw_throughput(void)
{
	static uint8_t buf[CHUNK];
	int sv[2];
	pid_t pid;
	double t0, t = 0;
	uint64_t got = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		memset(buf, 'r', sizeof(buf));
		for (;;)
			if (write(sv[1], buf, sizeof(buf)) < 0)
				_exit(0);
	}
	close(sv[1]);
	t0 = now_s();
	do {
		ssize_t n = read(sv[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		got += (uint64_t)n;
		t = now_s();
	} while (t - t0 < seconds);
	close(sv[0]);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return (double)got * 8 / (t - t0) / 1e9;
}

static void raw_latency(double *p50, double *p99)
{
	static double lat[2000000];
	char buf[PING];
	unsigned n = 0;
	int sv[2];
	pid_t pid;
	double t0;

	memset(buf, 'p', sizeof(buf));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (;;) {
			if (recv(sv[1], buf, sizeof(buf), MSG_WAITALL) != sizeof(buf))
				_exit(0);
			if (write(sv[1], buf, sizeof(buf)) != sizeof(buf))
				_exit(0);
		}
	}
	close(sv[1]);
	t0 = now_s();
	while (now_s() - t0 < seconds && n < ELEMENTSOF(lat)) {
		double s = now_s();

		if (write(sv[0], buf, sizeof(buf)) != sizeof(buf) ||
			recv(sv[0], buf, sizeof(buf), MSG_WAITALL) != sizeof(buf))
			break;
		lat[n++] = (now_s() - s) * 1e6;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	qsort(lat, n, sizeof(double), cmp_double);
	*p50 = n ? lat[n / 2] : -1;
	*p99 = n ? lat[n * 99 / 100] : -1;
}

/* ---- through the back-end ---- */

static struct gs_conn *open_pair(struct gs *gs, int *ret_fd)
{
	struct gs_conn *c = NULL;
	double t0 = now_s();

	if (gt_host_connect(&b, gs, PORT, 5000, ret_fd) < 0)
		return NULL;
	while (!(c = gs_accept(gs, PORT)) && now_s() - t0 < 5)
		gs_step(gs, NULL, 0, 10);
	return c;
}

/* The host client runs in its own process, like a real one: it connects, then reads
 * (guest->host) or writes (host->guest) for the measurement time and reports the
 * byte count it read through a pipe. */
static pid_t host_client(bool reader, int *ret_pipe)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		static uint8_t buf[CHUNK];
		uint64_t got = 0;
		double t0;
		int fd;

		close(pfd[0]);
		if (gt_host_connect(&b, NULL, PORT, 5000, &fd) < 0)
			_exit(1);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		memset(buf, 'h', sizeof(buf));
		t0 = now_s();
		while (now_s() - t0 < seconds) {
			ssize_t n = reader ? read(fd, buf, sizeof(buf)) : write(fd, buf, sizeof(buf));

			if (n <= 0)
				break;
			got += (uint64_t)n;
		}
		if (write(pfd[1], &got, sizeof(got)) != sizeof(got))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	*ret_pipe = pfd[0];
	return pid;
}

static double gs_guest_to_host(struct gs *gs)
{
	static uint8_t buf[CHUNK];
	struct gs_conn *c = NULL;
	uint64_t got = 0;
	double t0 = now_s();
	int pfd = -1;
	pid_t pid = host_client(true, &pfd);

	if (pid < 0)
		return -1;
	while (!(c = gs_accept(gs, PORT)) && now_s() - t0 < 5)
		gs_step(gs, NULL, 0, 10);
	memset(buf, 'g', sizeof(buf));
	t0 = now_s();
	for (;;) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		ssize_t n = c ? gs_conn_send(c, buf, sizeof(buf)) : -EIO;

		gs_step(gs, &p, 1, n > 0 ? 0 : 10);
		if (p.revents || !c)
			break;
	}
	if (read(pfd, &got, sizeof(got)) != sizeof(got))
		got = 0;
	close(pfd);
	waitpid(pid, NULL, 0);
	if (c)
		gs_conn_reset(c);
	return (double)got * 8 / seconds / 1e9;
}

static double gs_host_to_guest(struct gs *gs)
{
	static uint8_t in[CHUNK];
	struct gs_conn *c = NULL;
	uint64_t got = 0, first = 0;
	double t0 = now_s(), t1 = 0;
	int pfd = -1;
	pid_t pid = host_client(false, &pfd);

	if (pid < 0)
		return -1;
	while (!(c = gs_accept(gs, PORT)) && now_s() - t0 < 5)
		gs_step(gs, NULL, 0, 10);
	t0 = now_s();
	while (c) {
		struct pollfd p = { .fd = pfd, .events = POLLIN };
		ssize_t n;
		bool progress = false;

		while ((n = gs_conn_recv(c, in, sizeof(in))) > 0) {
			got += (uint64_t)n;
			progress = true;
		}
		if (n == 0 || (n < 0 && n != -EAGAIN))
			break;
		gs_step(gs, &p, 1, progress ? 0 : 10);
		if (p.revents && !t1) {
			t1 = now_s();
			first = got;
		}
		if (t1)
			break;
	}
	if (read(pfd, &first, sizeof(first)) != sizeof(first))
		first = 0;
	close(pfd);
	waitpid(pid, NULL, 0);
	if (c)
		gs_conn_reset(c);
	/* bytes the guest received while the writer was writing */
	return t1 > t0 ? (double)got * 8 / (t1 - t0) / 1e9 : -1;
}

static void gs_latency(struct gs *gs, double *p50, double *p99)
{
	static double lat[1000000];
	char buf[PING], in[PING];
	struct gs_conn *c;
	unsigned n = 0;
	double t0;
	int fd;

	*p50 = *p99 = -1;
	c = open_pair(gs, &fd);
	if (!c)
		return;
	memset(buf, 'l', sizeof(buf));
	t0 = now_s();
	while (now_s() - t0 < seconds && n < ELEMENTSOF(lat)) {
		double s = now_s();
		size_t got = 0;

		if (write(fd, buf, sizeof(buf)) != sizeof(buf))
			break;
		while (got < PING) {
			ssize_t r = gs_conn_recv(c, in + got, PING - got);

			if (r > 0)
				got += (size_t)r;
			else if (r != -EAGAIN || gs_step(gs, NULL, 0, 1000) < 0)
				goto out;
		}
		if (gs_send_all(gs, c, in, PING, 1000) < 0)
			break;
		for (got = 0; got < PING;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t r = read(fd, in + got, PING - got);

			if (r > 0)
				got += (size_t)r;
			else if (r == 0 || gs_step(gs, &p, 1, 1000) < 0)
				goto out;
		}
		lat[n++] = (now_s() - s) * 1e6;
	}
out:
	close(fd);
	gs_conn_close(c);
	qsort(lat, n, sizeof(double), cmp_double);
	if (n) {
		*p50 = lat[n / 2];
		*p99 = lat[n * 99 / 100];
	}
}

static double gs_conn_rate(struct gs *gs)
{
	unsigned cycles = 0;
	double t0 = now_s(), t;

	do {
		struct gs_conn *c;
		int fd;

		c = open_pair(gs, &fd);
		if (!c)
			break;
		close(fd);
		gs_conn_close(c);
		cycles++;
		t = now_s();
	} while (t - t0 < seconds);
	/* let the closes finish (RSTs) */
	for (double d = now_s(); now_s() - d < 0.2;)
		gs_step(gs, NULL, 0, 10);
	return cycles / (now_s() - t0);
}

static double gs_rss_per_conn(struct gs *gs, unsigned n)
{
	int *fd = calloc(n, sizeof(int));
	unsigned opened = 0, okc = 0;
	long rss0 = gt_backend_rss_kb(&b), rss1;
	double t0 = now_s();

	while (okc < n && now_s() - t0 < 60) {
		struct gs_conn *c;

		while (opened < n && gt_host_open(&b, &fd[opened]) == 0) {
			if (write(fd[opened], "CONNECT 5000\n", 13) != 13)
				break;
			opened++;
		}
		gs_step(gs, NULL, 0, 5);
		while ((c = gs_accept(gs, PORT)))
			okc++;
	}
	for (double d = now_s(); now_s() - d < 0.5;)
		gs_step(gs, NULL, 0, 10);
	rss1 = gt_backend_rss_kb(&b);
	printf("  %u idle connections: back-end RSS %ld -> %ld kB\n", okc, rss0, rss1);
	for (unsigned i = 0; i < opened; i++)
		close(fd[i]);
	free(fd);
	return okc ? (double)(rss1 - rss0) / okc : -1;
}

/* A field of /proc/PID/smaps_rollup in kB (Pss, Private_Dirty, ...), -1 if absent. */
static long smaps_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t k = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, k) == 0 && line[k] == ':') {
			kb = atol(line + k + 1);
			break;
		}
	fclose(f);
	return kb;
}

/* Hosts run one back-end per VM: n back-ends, each attached to its own idle guest
 * (a guestsim that negotiated and posted rx buffers), then left alone. Prints the
 * time to start one (exec until its socket listens) and to attach it, and each
 * one's RSS and CPU while idle. */
static int bench_idle(unsigned n)
{
	struct gt_backend *bk = calloc(n, sizeof(*bk));
	struct gs **gs = calloc(n, sizeof(*gs));
	double start_sum = 0, start_max = 0, attach_sum = 0, idle_s = 10;
	long rss_sum = 0, rss_max = 0, cpu0 = 0, cpu1 = 0, pss_sum = 0, priv_sum = 0;
	unsigned up = 0;

	if (!bk || !gs)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		struct gs_options o;
		double t0 = now_s(), t1;

		if (gt_backend_start(&bk[i], NULL) < 0)
			break;
		t1 = now_s();
		gt_options(&o, &bk[i]);
		if (gs_new(&o, &gs[i]) < 0) {
			gt_backend_stop(&bk[i], NULL);
			break;
		}
		gs_step(gs[i], NULL, 0, 0);
		start_sum += t1 - t0;
		start_max = t1 - t0 > start_max ? t1 - t0 : start_max;
		attach_sum += now_s() - t1;
		up++;
	}
	for (unsigned i = 0; i < up; i++)
		cpu0 += gt_backend_cpu_ms(&bk[i]);
	usleep((useconds_t)(idle_s * 1e6));
	for (unsigned i = 0; i < up; i++) {
		long rss = gt_backend_rss_kb(&bk[i]);

		cpu1 += gt_backend_cpu_ms(&bk[i]);
		pss_sum += smaps_kb(bk[i].pid, "Pss");
		priv_sum +=
			smaps_kb(bk[i].pid, "Private_Clean") + smaps_kb(bk[i].pid, "Private_Dirty");
		rss_sum += rss;
		rss_max = rss > rss_max ? rss : rss_max;
	}
	printf("%u idle back-ends, each attached to its own guestsim:\n", up);
	printf("  start (exec until the vhost-user socket listens): mean %.1f ms, max %.1f ms\n",
		up ? start_sum / up * 1e3 : 0, start_max * 1e3);
	printf("  attach (guestsim negotiates, maps memory, posts rx): mean %.1f ms\n",
		up ? attach_sum / up * 1e3 : 0);
	printf("  RSS each: mean %.0f kB, max %ld kB (aim <= 2048); of it the back-end's own\n"
	       "  (private) %.0f kB, its proportional share with libraries (PSS) %.0f kB\n",
		up ? (double)rss_sum / up : 0, rss_max, up ? (double)priv_sum / up : 0,
		up ? (double)pss_sum / up : 0);
	printf("  CPU each while idle for %.0f s: %.3f%% (%ld ms in all)\n", idle_s,
		up ? (double)(cpu1 - cpu0) / up / (idle_s * 10) : 0, cpu1 - cpu0);
	for (unsigned i = 0; i < up; i++) {
		gs_free(gs[i]);
		gt_backend_stop(&bk[i], NULL);
	}
	free(bk);
	free(gs);
	return up == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *args[] = { "--max-connections=12000", getenv("BENCH_BACKEND_OPTS"), NULL };
	const char *only = getenv("BENCH_BACKEND_ONLY");
	double raw_bw, g2h, h2g, raw50 = -1, raw99 = -1, l50, l99, rate, rss;
	struct rlimit rl = { 21000, 21000 };
	struct gs_options o;
	struct gs *gs = NULL;
	struct cpu_mark mark;
	int r;

	if (argc > 1 && strcmp(argv[1], "--idle") != 0)
		seconds = atof(argv[1]);
	if (!getenv("top_builddir"))
		setenv("top_builddir", ".", 0);
	if (!gt_backend_binary()) {
		fprintf(stderr, "bench-backend: backend/vhost-user-vsock not built\n");
		return 77;
	}
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "--idle") == 0)
		return bench_idle(argc > 2 ? (unsigned)atoi(argv[2]) : 100);
	r = gt_backend_start(&b, args);
	if (r < 0) {
		fprintf(stderr, "bench-backend: cannot start the back-end: %s\n", strerror(-r));
		return 1;
	}
	gt_options(&o, &b);
	o.quiet = false;
	r = gs_new(&o, &gs);
	if (r < 0) {
		fprintf(stderr, "bench-backend: guestsim: %s\n", strerror(-r));
		gt_backend_stop(&b, NULL);
		return 1;
	}
	gs_listen(gs, PORT);

	printf("bench-backend: %.1f s per measurement\n", seconds);
	raw_bw = raw_throughput();
	printf("throughput, 64 KiB writes:\n");
	printf("  raw Unix socketpair   %7.2f Gbit/s\n", raw_bw);
	if (only && strcmp(only, "h2g") == 0)
		goto h2g;
	mark = cpu_mark();
	g2h = gs_guest_to_host(gs);
	printf("  guest->host           %7.2f Gbit/s  ratio %.2f (aim >= 0.80)\n", g2h, g2h / raw_bw);
	cpu_report("guest->host", mark);
	if (only)
		goto done;
h2g:
	mark = cpu_mark();
	h2g = gs_host_to_guest(gs);
	printf("  host->guest (4K rx)   %7.2f Gbit/s  ratio %.2f (aim >= 0.60)\n", h2g, h2g / raw_bw);
	cpu_report("host->guest", mark);
	if (only)
		goto done;
	raw_latency(&raw50, &raw99);
	gs_latency(gs, &l50, &l99);
	printf("64-byte ping-pong round trip:\n");
	printf("  raw Unix socketpair   p50 %7.1f us  p99 %7.1f us\n", raw50, raw99);
	printf("  host<->guest          p50 %7.1f us  p99 %7.1f us  p50 ratio %.2f (aim <= 2.00)\n",
		l50, l99, l50 / raw50);
	rate = gs_conn_rate(gs);
	printf("connections opened and closed: %.0f per second\n", rate);
	rss = gs_rss_per_conn(gs, 10000);
	printf("back-end RSS per idle connection: %.2f KiB (aim <= 16)\n", rss);
done:
	printf("guestsim violations: %u %s\n", gs_violations(gs), gs_last_violation(gs));
	gs_free(gs);
	gt_backend_stop(&b, NULL);
	return 0;
}
