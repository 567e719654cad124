/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Calls per second and p50/p99 latency of agent.ping over a Unix socket with
 * 1, 10, 100 and 1000 concurrent closed-loop clients, beside a minimal raw
 * server that answers each line with a line of exactly the agent's answer
 * size, measured in the same run by the same client code. Prints the ratio.
 *
 * Usage: bench-agent [SECONDS-PER-POINT]   (agent from $top_builddir, or ./agent)
 * BENCH_AGENT_CLIENTS=100 measures that one level only (to compare builds in
 * alternating rounds). BENCH_AGENT_CALLS=N makes each client send exactly N
 * calls instead of running for a time, and BENCH_AGENT_PREFIX runs the agent
 * under a command, to count instructions per call:
 *   BENCH_AGENT_CLIENTS=100 BENCH_AGENT_CALLS=100 \
 *   BENCH_AGENT_PREFIX="valgrind --tool=callgrind --callgrind-out-file=cg.out" bench-agent
 * BENCH_AGENT_PARAMS='{}' adds "params":{} (any JSON value of up to 64
 * bytes) to every request; the answer, and so the raw server's line, is the
 * same as long as the value leaves agent.ping's delay at 0. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 1000
#define WARMUP_NS 300000000ull
#define MAX_PREFIX_ARGS 16

/* BENCH_AGENT_CALLS: calls per client, 0 = run for the time given. */
static unsigned fixed_calls;
/* BENCH_AGENT_PARAMS: the params member of every request, or "" for none. */
static char params_member[80];

struct bconn {
	int fd;
	uint64_t sent_ns;
	unsigned id;
	char in[4096];
	size_t in_len;
};

struct result {
	double rate;
	double p50_us, p99_us;
	double cpu_us; /* server CPU time (user + system) per call */
	long calls, errors;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* utime + stime of a process, in microseconds. */
static double cpu_usec(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* after ") ": state(3) ... utime is field 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* --- the raw reference server: one epoll loop, no JSON --- */

static void raw_server(int lfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[256];
	static char bufs[MAX_CLIENTS + 64][2048];
	static size_t lens[MAX_CLIENTS + 64];

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
					0) {
					if (c >= MAX_CLIENTS + 64) {
						close(c);
						continue;
					}
					lens[c] = 0;
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			ssize_t r = read(fd, bufs[fd] + lens[fd], sizeof(bufs[fd]) - lens[fd]);
			if (r <= 0) {
				close(fd);
				continue;
			}
			lens[fd] += (size_t)r;
			char *p = bufs[fd], *nl, out[8192];
			size_t olen = 0;
			while ((nl = memchr(p, '\n', lens[fd] - (size_t)(p - bufs[fd])))) {
				/* The id is the digits after the last ':'; answer like the agent does. */
				char *colon = nl;
				while (colon > p && *colon != ':')
					colon--;
				int idlen = (int)(nl - colon - 2);
				olen += (size_t)snprintf(out + olen, sizeof(out) - olen,
					"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":%.*s}\n",
					idlen > 0 ? idlen : 0, colon + 1);
				p = nl + 1;
			}
			lens[fd] -= (size_t)(p - bufs[fd]);
			memmove(bufs[fd], p, lens[fd]);
			if (olen && write(fd, out, olen) < 0)
				close(fd);
		}
	}
}

static pid_t spawn_raw(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	pid_t pid;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
		perror("raw server");
		exit(1);
	}
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		raw_server(lfd);
		_exit(0);
	}
	close(lfd);
	return pid;
}

static pid_t spawn_agent(const char *agent, const char *path, const char *conf)
{
	char listen_arg[300];
	pid_t pid;
	struct stat st;

	snprintf(listen_arg, sizeof(listen_arg), "unix:%s", path);
	pid = fork();
	if (pid == 0) {
		const char *prefix = getenv("BENCH_AGENT_PREFIX");
		char *argv[MAX_PREFIX_ARGS + 6], *words = prefix ? strdup(prefix) : NULL, *save;
		int argc = 0;

		/* Never outlive this program, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (char *w = words ? strtok_r(words, " ", &save) : NULL;
			w && argc < MAX_PREFIX_ARGS; w = strtok_r(NULL, " ", &save))
			argv[argc++] = w;
		argv[argc++] = (char *)agent;
		argv[argc++] = "--listen";
		argv[argc++] = listen_arg;
		argv[argc++] = "--config";
		argv[argc++] = (char *)conf;
		argv[argc] = NULL;
		execvp(argv[0], argv);
		_exit(127);
	}
	/* Under a prefix such as valgrind the agent takes long to listen. */
	for (int i = 0; i < 6000 && stat(path, &st) < 0; i++)
		usleep(10000);
	return pid;
}

static void stop(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* --- the client side: n closed-loop connections on one epoll --- */

static int send_call(struct bconn *c)
{
	char req[192];
	int n = snprintf(req, sizeof(req),
		"{\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\",%s\"id\":%u}\n", params_member,
		++c->id);

	c->sent_ns = now_ns();
	return write(c->fd, req, (size_t)n) == n ? 0 : -1;
}

static int run(const char *path, pid_t server, int n, double seconds, struct result *res)
{
	static struct bconn conns[MAX_CLIENTS];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev, evs[256];
	size_t cap = 1 << 20, nlat = 0;
	uint32_t *lat = malloc(cap * sizeof(uint32_t));
	uint64_t t_start, t_measure, t_end;
	double cpu0 = 0;
	bool measuring = false;
	int ep = epoll_create1(EPOLL_CLOEXEC), outstanding = 0;

	memset(res, 0, sizeof(*res));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (int i = 0; i < n; i++) {
		struct bconn *c = &conns[i];
		memset(c, 0, sizeof(*c));
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("connect");
			return -1;
		}
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	t_start = now_ns();
	t_measure = t_start + (fixed_calls ? 0 : WARMUP_NS);
	/* A fixed count is measured whole, however long it takes (a minute at most). */
	t_end = t_measure + (uint64_t)((fixed_calls ? 60.0 : seconds) * 1e9);
	for (int i = 0; i < n; i++)
		if (send_call(&conns[i]) == 0)
			outstanding++;

	while (outstanding > 0) {
		uint64_t t = now_ns();
		int k;
		if (!measuring && t >= t_measure) {
			measuring = true;
			cpu0 = cpu_usec(server);
		}
		if (t > t_end + 5000000000ull) {
			fprintf(stderr, "%d calls never answered\n", outstanding);
			res->errors += outstanding;
			break;
		}
		k = epoll_wait(ep, evs, 256, 1000);
		for (int e = 0; e < k; e++) {
			struct bconn *c = evs[e].data.ptr;
			ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
			char *p = c->in, *nl, want[64];
			if (r <= 0) {
				fprintf(stderr, "connection lost\n");
				res->errors++;
				outstanding--;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				continue;
			}
			c->in_len += (size_t)r;
			while ((nl = memchr(p, '\n', c->in_len - (size_t)(p - c->in)))) {
				uint64_t done = now_ns();
				int wl = snprintf(want, sizeof(want),
					"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":%u}", c->id);
				if (nl - p != wl || memcmp(p, want, (size_t)wl) != 0)
					res->errors++;
				if (done >= t_measure && done < t_end) {
					res->calls++;
					if (nlat == cap) {
						cap *= 2;
						lat = realloc(lat, cap * sizeof(uint32_t));
					}
					lat[nlat++] =
						(uint32_t)((done - c->sent_ns) / 100); /* 0.1 us */
				}
				outstanding--;
				p = nl + 1;
				if ((fixed_calls ? c->id < fixed_calls : done < t_end) &&
					send_call(c) == 0)
					outstanding++;
			}
			c->in_len -= (size_t)(p - c->in);
			memmove(c->in, p, c->in_len);
		}
	}
	if (fixed_calls)
		seconds = (double)(now_ns() - t_start) / 1e9;
	res->rate = (double)res->calls / seconds;
	/* CPU over the measured window plus the drain; counted calls slightly
	 * underestimate, so this errs high. */
	if (res->calls)
		res->cpu_us = (cpu_usec(server) - cpu0) / (double)res->calls;
	if (nlat) {
		qsort(lat, nlat, sizeof(uint32_t), cmp_u32);
		res->p50_us = lat[nlat / 2] / 10.0;
		res->p99_us = lat[nlat * 99 / 100] / 10.0;
	}
	for (int i = 0; i < n; i++)
		close(conns[i].fd);
	close(ep);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	static const int levels[] = { 1, 10, 100, 1000 };
	const char *top = getenv("top_builddir");
	char agent[4096], dir[] = "/tmp/guestlink-bench.XXXXXX", apath[128], rpath[128], conf[128];
	double seconds = argc > 1 ? atof(argv[1]) : 3.0;
	const char *only_env = getenv("BENCH_AGENT_CLIENTS"),
		   *calls_env = getenv("BENCH_AGENT_CALLS"),
		   *params_env = getenv("BENCH_AGENT_PARAMS");
	int only = only_env ? atoi(only_env) : 0;
	struct rlimit rl;
	pid_t apid, rpid;
	FILE *f;
	int rc = 0;

	fixed_calls = calls_env ? (unsigned)strtoul(calls_env, NULL, 10) : 0;
	if (params_env && strlen(params_env) > 64) {
		fprintf(stderr, "BENCH_AGENT_PARAMS is longer than 64 bytes\n");
		return 2;
	}
	if (params_env)
		snprintf(params_member, sizeof(params_member), "\"params\":%s,", params_env);
	signal(SIGPIPE, SIG_IGN);
	snprintf(agent, sizeof(agent), "%s/agent/guestlink-agent", top ? top : ".");
	if (access(agent, X_OK) < 0 || !mkdtemp(dir)) {
		fprintf(stderr, "cannot run %s (set top_builddir)\n", agent);
		return 2;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(apath, sizeof(apath), "%s/agent.sock", dir);
	snprintf(rpath, sizeof(rpath), "%s/raw.sock", dir);
	snprintf(conf, sizeof(conf), "%s/agent.conf", dir);
	f = fopen(conf, "w");
	fprintf(f, "{\"max_connections\": 4096}\n");
	fclose(f);

	apid = spawn_agent(agent, apath, conf);
	rpid = spawn_raw(rpath);
	printf("agent.ping over a Unix socket, closed loop, %.1fs per point; cpu us = server CPU "
	       "time per call\n",
		seconds);
	if (params_member[0])
		printf("requests carry %.*s\n", (int)strlen(params_member) - 1, params_member);
	printf("%7s | %9s %8s %8s %7s | %9s %8s %8s %7s | %5s\n", "clients", "agent/s", "p50 us",
		"p99 us", "cpu us", "raw/s", "p50 us", "p99 us", "cpu us", "ratio");
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct result a, r;

		if (only > 0 && levels[i] != only)
			continue;
		if (run(apath, apid, levels[i], seconds, &a) < 0 ||
			run(rpath, rpid, levels[i], seconds, &r) < 0) {
			rc = 1;
			break;
		}
		printf("%7d | %9.0f %8.1f %8.1f %7.2f | %9.0f %8.1f %8.1f %7.2f | %5.2f\n",
			levels[i], a.rate, a.p50_us, a.p99_us, a.cpu_us, r.rate, r.p50_us, r.p99_us,
			r.cpu_us, r.rate > 0 ? a.rate / r.rate : 0);
		if (a.errors || r.errors) {
			printf("  errors: agent %ld, raw %ld\n", a.errors, r.errors);
			rc = 1;
		}
		fflush(stdout);
	}
	stop(apid);
	stop(rpid);
	unlink(apath);
	unlink(rpath);
	unlink(conf);
	rmdir(dir);
	return rc;
}
