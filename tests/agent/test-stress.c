/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* 500 concurrent connections x 100 calls each against a real agent on a Unix
 * socket; every answer is parsed and checked against what was asked. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "tap.h"

#define N_CONNS 500
#define N_CALLS 100
#define WINDOW 8
#define DEADLINE_S 120

struct client {
	int fd;
	int sent, answered;
	bool pending[N_CALLS];
	char out[4096];
	size_t out_len, out_off;
	char in[65536];
	size_t in_len;
};

static struct client clients[N_CONNS];
static long bad_answers;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Call i of client k: mostly echo with a unique payload, some pings, some delayed pings. */
static int request(int k, int i, char *buf, size_t size)
{
	if (i % 50 == 49)
		return snprintf(buf, size,
			"{\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\",\"params\":{\"delay_ms\":1}"
			","
			"\"id\":%d}\n",
			i);
	if (i % 10 == 9)
		return snprintf(buf, size,
			"{\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\",\"id\":%d}\n", i);
	return snprintf(buf, size,
		"{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":[%d,%d,\"c%d-i%d\"],"
		"\"id\":%d}\n",
		k, i, k, i, i);
}

static bool answer_ok(int k, struct json_object *a)
{
	struct json_object *id, *res, *ver;
	char expect[128];
	int i;

	if (!json_object_object_get_ex(a, "jsonrpc", &ver) ||
		strcmp(json_object_get_string(ver), "2.0") != 0)
		return false;
	if (!json_object_object_get_ex(a, "id", &id) || !json_object_is_type(id, json_type_int))
		return false;
	i = json_object_get_int(id);
	if (i < 0 || i >= N_CALLS || !clients[k].pending[i])
		return false;
	clients[k].pending[i] = false;
	if (!json_object_object_get_ex(a, "result", &res))
		return false;
	if (i % 10 == 9)
		return json_object_is_type(res, json_type_string) &&
		       strcmp(json_object_get_string(res), "pong") == 0;
	snprintf(expect, sizeof(expect), "[%d,%d,\"c%d-i%d\"]", k, i, k, i);
	{
		struct json_object *e = json_tokener_parse(expect);
		bool eq = json_object_equal(e, res);
		json_object_put(e);
		return eq;
	}
}

static void client_fill(int k)
{
	struct client *c = &clients[k];

	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	while (c->sent < N_CALLS && c->sent - c->answered < WINDOW &&
		c->out_len + 256 < sizeof(c->out)) {
		c->pending[c->sent] = true;
		c->out_len += (size_t)request(k, c->sent, c->out + c->out_len,
			sizeof(c->out) - c->out_len);
		c->sent++;
	}
}

static int client_read(int k)
{
	struct client *c = &clients[k];
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	char *p, *nl;

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	c->in_len += (size_t)n;
	p = c->in;
	while ((nl = memchr(p, '\n', c->in_len - (size_t)(p - c->in)))) {
		struct json_object *a;
		*nl = 0;
		a = json_tokener_parse(p);
		if (!a || !answer_ok(k, a)) {
			if (bad_answers++ < 5)
				diag("bad answer on connection %d: %s", k, p);
		}
		json_object_put(a);
		c->answered++;
		p = nl + 1;
	}
	c->in_len -= (size_t)(p - c->in);
	memmove(c->in, p, c->in_len);
	return 0;
}

static pid_t spawn_agent(const char *agent, const char *sock)
{
	char listen_arg[300];
	pid_t pid;

	snprintf(listen_arg, sizeof(listen_arg), "unix:%s", sock);
	pid = fork();
	if (pid == 0) {
		/* Never outlive this program, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(agent, agent, "--listen", listen_arg, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int stop_agent(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

int main(void)
{
	const char *top = getenv("top_builddir");
	char agent[4096], dir[] = "/tmp/guestlink-stress.XXXXXX", sock[100];
	static struct pollfd pfd[N_CONNS];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	long answered = 0;
	int connected = 0;
	double t0, t;
	pid_t pid;
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	snprintf(agent, sizeof(agent), "%s/agent/guestlink-agent", top ? top : ".");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < N_CONNS + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	pid = spawn_agent(agent, sock);
	for (int i = 0; i < 1000 && stat(sock, &st) < 0; i++)
		usleep(10000);
	if (!ok(stat(sock, &st) == 0, "agent listens on %s", sock)) {
		stop_agent(pid);
		rmdir(dir);
		return tap_done();
	}
	ok((st.st_mode & 0777) == 0600, "the Unix listener is mode 0600 (%03o)", st.st_mode & 0777);

	memcpy(sa.sun_path, sock,
		strlen(sock) < sizeof(sa.sun_path) ? strlen(sock) : sizeof(sa.sun_path) - 1);
	for (int k = 0; k < N_CONNS; k++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		clients[k].fd = -1;
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			diag("connect %d: %s", k, strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		fcntl(fd, F_SETFL, O_NONBLOCK);
		clients[k].fd = fd;
		connected++;
	}
	is_int(connected, N_CONNS, "%d concurrent connections", N_CONNS);

	t0 = now_s();
	while ((t = now_s()) - t0 < DEADLINE_S) {
		int active = 0;
		for (int k = 0; k < N_CONNS; k++) {
			struct client *c = &clients[k];
			pfd[k].fd = -1;
			pfd[k].events = 0;
			if (c->fd < 0 || c->answered >= N_CALLS)
				continue;
			active++;
			client_fill(k);
			pfd[k].fd = c->fd;
			pfd[k].events = POLLIN | (c->out_off < c->out_len ? POLLOUT : 0);
		}
		if (!active)
			break;
		if (poll(pfd, N_CONNS, 1000) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < N_CONNS; k++) {
			struct client *c = &clients[k];
			if (pfd[k].fd < 0)
				continue;
			if (pfd[k].revents & POLLOUT) {
				ssize_t n =
					write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
				if (n > 0)
					c->out_off += (size_t)n;
			}
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				int r = client_read(k);
				if (r < 0) {
					diag("connection %d: %s", k, strerror(-r));
					close(c->fd);
					c->fd = -1;
				}
			}
		}
	}
	t = now_s() - t0;
	for (int k = 0; k < N_CONNS; k++)
		answered += clients[k].answered;
	is_int(answered, (long)N_CONNS * N_CALLS, "every call answered (%ld of %d)", answered,
		N_CONNS * N_CALLS);
	is_int(bad_answers, 0, "every answer matches its request");
	ok(t < DEADLINE_S, "done in %.2fs (%.0f calls/s)", t, (double)answered / t);
	ok(kill(pid, 0) == 0, "the agent is still running");
	for (int k = 0; k < N_CONNS; k++)
		if (clients[k].fd >= 0)
			close(clients[k].fd);
	is_int(stop_agent(pid), 0, "agent exits 0 on SIGTERM");
	unlink(sock);
	rmdir(dir);
	return tap_done();
}
