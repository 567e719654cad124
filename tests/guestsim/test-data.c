/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The data path through the real back-end: integrity both ways over 100 concurrent
 * connections (SHA-256), CONNECT with pipelined data, half-close both ways,
 * guest-initiated connections to present and missing listeners, credit with
 * back-pressure both ways with the back-end's RSS measured, CREDIT_UPDATEs per MiB of a
 * guest->host stream (also from a guest keeping at most its own buf_alloc in flight), and
 * a guest-initiated bulk stream with 4 MiB buffers on both sides. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"

/* The timers that would end these exchanges if the packet that should end
 * them at once never came: the back-end's connect timer for a refused connect
 * (VSOCK_CONNECT_TIMEOUT_S in backend/vsock.h), and for a close the guest's
 * own linger (GS_CLOSE_TIMEOUT_MS in guestsim.c, Linux's VSOCK_CLOSE_TIMEOUT;
 * the back-end's close timer is as long). Coming before them is what
 * "promptly" proves here, however loaded the machine. */
#define DATA_CONNECT_TIMEOUT_MS 5000
#define DATA_CLOSE_TIMEOUT_MS 8000

#define GUEST_PORT 5000
#define HOST_PORT 6000
#define NCONN 100

struct xfer {
	int fd;
	struct gs_conn *c;
	bool host_initiated, handshaken, identified;
	uint32_t host_port;
	char line[64];
	size_t line_len;
	uint8_t *h_out, *g_out, *h_in, *g_in;
	size_t h_out_len, g_out_len, h_sent, g_sent, h_in_len, g_in_len;
	bool h_eof, g_eof, h_shut, g_shut;
};

static struct gt_backend b;
static uint64_t seed = 42;

static size_t rand_size(size_t max)
{
	uint8_t r[4];

	gt_random(r, sizeof(r), &seed);
	return ((size_t)r[0] | (size_t)r[1] << 8 | (size_t)r[2] << 16) % (max + 1);
}

static void xfer_init(struct xfer *x, bool host_initiated, size_t max)
{
	*x = (struct xfer){ .fd = -1, .host_initiated = host_initiated };
	x->h_out_len = rand_size(max);
	x->g_out_len = rand_size(max) + 4; /* guest streams start with the xfer index */
	x->h_out = malloc(x->h_out_len + 1);
	x->g_out = malloc(x->g_out_len);
	x->h_in = malloc(x->g_out_len + 65536);
	x->g_in = malloc(x->h_out_len + 65536);
	gt_random(x->h_out, x->h_out_len, &seed);
	gt_random(x->g_out, x->g_out_len, &seed);
}

static void xfer_free(struct xfer *x)
{
	if (x->fd >= 0)
		close(x->fd);
	if (x->c)
		gs_conn_close(x->c);
	free(x->h_out);
	free(x->g_out);
	free(x->h_in);
	free(x->g_in);
}

/* Host side of one transfer; false on a hard error. */
static bool xfer_host(struct xfer *x)
{
	ssize_t n;

	if (x->fd < 0)
		return true;
	if (x->h_sent < x->h_out_len) {
		n = write(x->fd, x->h_out + x->h_sent, x->h_out_len - x->h_sent);
		if (n > 0)
			x->h_sent += (size_t)n;
	}
	if (x->h_sent == x->h_out_len && !x->h_shut && (x->handshaken || !x->host_initiated)) {
		shutdown(x->fd, SHUT_WR);
		x->h_shut = true;
	}
	while (x->host_initiated && !x->handshaken) {
		n = read(x->fd, x->line + x->line_len, 1);
		if (n <= 0)
			return n < 0 && errno == EAGAIN;
		if (x->line[x->line_len] == '\n') {
			x->line[x->line_len] = 0;
			if (strncmp(x->line, "OK ", 3))
				return false;
			x->host_port = (uint32_t)strtoul(x->line + 3, NULL, 10);
			x->handshaken = true;
		} else if (++x->line_len >= sizeof(x->line) - 1) {
			return false;
		}
	}
	while (!x->h_eof) {
		size_t cap = x->g_out_len + 65536 - x->h_in_len;

		n = read(x->fd, x->h_in + x->h_in_len, cap);
		if (n < 0)
			return errno == EAGAIN;
		if (n == 0)
			x->h_eof = true;
		x->h_in_len += (size_t)n;
		if (x->h_in_len > x->g_out_len)
			return false;
	}
	return true;
}

static bool xfer_guest(struct gs *gs, struct xfer *x)
{
	ssize_t n;

	if (!x->c || gs_conn_state(x->c) == GS_CONNECTING)
		return true;
	if (gs_conn_state(x->c) == GS_CLOSED && !gs_conn_peer_shut_send(x->c) &&
		gs_conn_rx_pending(x->c) == 0)
		return false;
	while (x->g_sent < x->g_out_len) {
		n = gs_conn_send(x->c, x->g_out + x->g_sent, x->g_out_len - x->g_sent);
		if (n == -EAGAIN)
			break;
		if (n < 0)
			return false;
		x->g_sent += (size_t)n;
	}
	if (x->g_sent == x->g_out_len && !x->g_shut) {
		gs_conn_shutdown(x->c, SHUT_WR);
		x->g_shut = true;
	}
	while (!x->g_eof) {
		n = gs_conn_recv(x->c, x->g_in + x->g_in_len, x->h_out_len + 65536 - x->g_in_len);
		if (n == -EAGAIN)
			break;
		if (n < 0)
			return false;
		if (n == 0)
			x->g_eof = true;
		x->g_in_len += (size_t)n;
		if (x->g_in_len > x->h_out_len)
			return false;
	}
	return true;
}

static bool xfer_done(const struct xfer *x)
{
	return x->h_eof && x->g_eof && x->h_sent == x->h_out_len && x->g_sent == x->g_out_len;
}

/* n transfers, half of them host-initiated (CONNECT with data pipelined right after the
 * line), half guest-initiated to <uds>_6000. */
static void run_transfers(struct gs *gs, unsigned n, size_t max, const char *what)
{
	struct xfer *x = calloc(n, sizeof(*x));
	struct pollfd *p = calloc(n + 1, sizeof(*p));
	int lfd = -1, r, failed = -1;
	unsigned identified = 0, done = 0, intact = 0, nparked = 0;
	struct gs_conn **parked = calloc(n, sizeof(*parked));
	int *unknown = calloc(n, sizeof(int));
	unsigned nunknown = 0;
	char path[400];
	uint64_t deadline = gs_now_ms() + 60000;

	snprintf(path, sizeof(path), "%s_%u", b.uds_path, HOST_PORT);
	r = gt_unix_listen(path, &lfd);
	is_int(r, 0, "%s: host listener at <uds-path>_%u", what, HOST_PORT);
	for (unsigned i = 0; i < n; i++) {
		xfer_init(&x[i], i % 2 == 0, max);
		memcpy(x[i].g_out, &i, 4);
		if (x[i].host_initiated) {
			char line[32];
			int len = snprintf(line, sizeof(line), "CONNECT %u\n", GUEST_PORT);

			r = gt_host_open(&b, &x[i].fd);
			if (r == 0 && write(x[i].fd, line, (size_t)len) != len)
				r = -EIO;
		} else {
			r = gs_connect(gs, HOST_PORT, &x[i].c);
		}
		if (r < 0 && failed < 0)
			failed = (int)i;
	}
	is_int(failed, -1, "%s: %u connections opened", what, n);

	while (done < n && gs_now_ms() < deadline) {
		unsigned np = 0;
		struct gs_conn *c;

		for (unsigned i = 0; i < n; i++)
			if (x[i].fd >= 0)
				p[np++] =
					(struct pollfd){ .fd = x[i].fd, .events = POLLIN | POLLOUT };
		p[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		r = gs_step(gs, p, np, 10);
		if (r < 0)
			break;
		/* Guest side accepts; matched by the host port the host read in "OK <port>". */
		while ((c = gs_accept(gs, GUEST_PORT)) && nparked < n)
			parked[nparked++] = c;
		for (unsigned k = 0; k < nparked;) {
			bool matched = false;

			for (unsigned i = 0; i < n && !matched; i++)
				if (x[i].host_initiated && !x[i].c && x[i].handshaken &&
					x[i].host_port == gs_conn_peer_port(parked[k])) {
					x[i].c = parked[k];
					matched = true;
				}
			if (matched)
				parked[k] = parked[--nparked];
			else
				k++;
		}
		/* Host side accepts guest-initiated connections; identified by the 4-byte
		 * index the guest sends first. */
		for (;;) {
			int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd < 0)
				break;
			if (nunknown < n)
				unknown[nunknown++] = fd;
			else
				close(fd);
		}
		for (unsigned k = 0; k < nunknown;) {
			uint32_t idx;
			ssize_t got = recv(unknown[k], &idx, 4, MSG_PEEK);

			if (got < 4 && !(got < 0 && errno != EAGAIN) && got != 0) {
				k++;
				continue;
			}
			if (got != 4 || idx >= n || x[idx].host_initiated || x[idx].fd >= 0) {
				close(unknown[k]);
				if (failed < 0)
					failed = 1000;
			} else {
				x[idx].fd = unknown[k];
				identified++;
			}
			unknown[k] = unknown[--nunknown];
		}
		done = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!xfer_host(&x[i]) || !xfer_guest(gs, &x[i])) {
				if (failed < 0)
					failed = (int)i + 2000;
			}
			done += xfer_done(&x[i]);
		}
	}
	is_int(failed, -1, "%s: no connection failed", what);
	is_int(done, n, "%s: all %u transfers finished both ways", what, n);
	for (unsigned i = 0; i < n; i++) {
		char a[65], bb[65], c2[65], d[65];

		gt_sha256_hex(x[i].h_out, x[i].h_out_len, a);
		gt_sha256_hex(x[i].g_in, x[i].g_in_len, bb);
		gt_sha256_hex(x[i].g_out, x[i].g_out_len, c2);
		gt_sha256_hex(x[i].h_in, x[i].h_in_len, d);
		intact += !strcmp(a, bb) && !strcmp(c2, d);
	}
	is_int(intact, n, "%s: SHA-256 of every stream matches both ways", what);
	for (unsigned i = 0; i < n; i++)
		xfer_free(&x[i]);
	close(lfd);
	unlink(path);
	for (unsigned k = 0; k < nparked; k++)
		gs_conn_reset(parked[k]);
	free(parked);
	for (unsigned k = 0; k < nunknown; k++)
		close(unknown[k]);
	free(unknown);
	diag("%s: %u guest-initiated connections identified on the host", what, identified);
	free(x);
	free(p);
}

static struct gs_conn *accept_one(struct gs *gs, uint32_t port)
{
	uint64_t deadline = gs_now_ms() + 5000;
	struct gs_conn *c;

	while (!(c = gs_accept(gs, port)) && gs_now_ms() < deadline)
		if (gs_step(gs, NULL, 0, 20) < 0)
			break;
	return c;
}

/* Drive the loop until fd has `want` bytes readable-in-total into buf (or EOF). */
static ssize_t host_read(struct gs *gs, int fd, void *buf, size_t want, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	size_t got = 0;

	while (got < want && gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (gs_step(gs, &p, 1, 20) < 0)
			break;
		n = read(fd, (char *)buf + got, want - got);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
	}
	return (ssize_t)got;
}

static bool host_eof_within(struct gs *gs, int fd, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	char c;

	while (gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (gs_step(gs, &p, 1, 20) < 0)
			return false;
		n = read(fd, &c, 1);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n > 0)
			return false;
	}
	return false;
}

static void test_pipelined(struct gs *gs)
{
	static const char msg[] = "CONNECT 5000\nfirst-bytes-after-the-newline|";
	char big[20000], in[sizeof(big) + 64];
	struct gs_conn *c;
	ssize_t n;
	int fd, r;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	r = gt_host_open(&b, &fd);
	is_int(r, 0, "pipelined: host client connected");
	if (r < 0)
		return;
	/* The line and data in one write, and more data before OK is read. */
	ok(write(fd, msg, sizeof(msg) - 1) == sizeof(msg) - 1,
		"pipelined: CONNECT+data in one write");
	ok(write(fd, big, sizeof(big)) == sizeof(big), "pipelined: 20000 more bytes before OK");
	r = gt_host_wait_ok(fd, gs, 5000);
	is_int(r, 0, "pipelined: OK received");
	c = accept_one(gs, GUEST_PORT);
	ok(c != NULL, "pipelined: guest accepted");
	if (c) {
		size_t want = sizeof(msg) - 1 - 13 + sizeof(big);

		n = gs_recv_all(gs, c, in, want, 5000);
		is_int(n, (long long)want, "pipelined: every byte after the newline delivered");
		ok(n == (ssize_t)want && !memcmp(in, msg + 13, sizeof(msg) - 1 - 13) &&
				!memcmp(in + sizeof(msg) - 1 - 13, big, sizeof(big)),
			"pipelined: delivered in order");
		gs_conn_close(c);
	}
	close(fd);
}

static void test_half_close(struct gs *gs)
{
	char buf[100000], in[100000];
	struct gs_conn *c;
	ssize_t n;
	int fd, r;

	memset(buf, 'h', sizeof(buf));
	/* Host shuts down its sending side first; the guest still sends afterwards. */
	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	is_int(r, 0, "half-close host: connected");
	if (r < 0)
		return;
	c = accept_one(gs, GUEST_PORT);
	ok(c != NULL, "half-close host: accepted");
	if (!c) {
		close(fd);
		return;
	}
	ok(write(fd, "bye", 3) == 3, "half-close host: 3 bytes");
	shutdown(fd, SHUT_WR);
	n = gs_recv_all(gs, c, in, sizeof(in), 5000);
	is_int(n, 3, "half-close host: guest reads the 3 bytes then EOF");
	ok(gs_conn_peer_shut_send(c) && gs_conn_state(c) == GS_CONNECTED,
		"half-close host: SHUTDOWN(SEND) only, connection still open");
	r = gs_send_all(gs, c, buf, sizeof(buf), 5000);
	is_int(r, 0, "half-close host: guest sends 100000 bytes after the host's EOF");
	n = host_read(gs, fd, in, sizeof(in), 5000);
	ok(n == (ssize_t)sizeof(in) && !memcmp(in, buf, sizeof(buf)),
		"half-close host: host receives them all");
	gs_conn_shutdown(c, SHUT_WR);
	ok(host_eof_within(gs, fd, 3000), "half-close host: then EOF on the host");
	gs_conn_close(c);
	close(fd);

	/* Guest shuts down its sending side first; the host still sends afterwards. */
	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	is_int(r, 0, "half-close guest: connected");
	if (r < 0)
		return;
	c = accept_one(gs, GUEST_PORT);
	if (!c) {
		close(fd);
		return;
	}
	gs_send_all(gs, c, "end", 3, 5000);
	gs_conn_shutdown(c, SHUT_WR);
	n = host_read(gs, fd, in, sizeof(in), 5000);
	is_int(n, 3, "half-close guest: host reads 3 bytes then EOF");
	{
		size_t sent = 0;
		uint64_t deadline = gs_now_ms() + 10000;
		size_t got = 0;

		while ((sent < sizeof(buf) || got < sizeof(buf)) && gs_now_ms() < deadline) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			gs_step(gs, &p, 1, 10);
			if (sent < sizeof(buf)) {
				n = write(fd, buf + sent, sizeof(buf) - sent);
				if (n > 0)
					sent += (size_t)n;
			}
			n = gs_conn_recv(c, in + got, sizeof(in) - got);
			if (n > 0)
				got += (size_t)n;
		}
		ok(got == sizeof(buf) && !memcmp(in, buf, sizeof(buf)),
			"half-close guest: host sends 100000 bytes after the guest's EOF, all "
			"arrive");
	}
	close(fd);
	n = gs_recv_all(gs, c, in, sizeof(in), 5000);
	is_int(n, 0, "half-close guest: host close reaches the guest as EOF");
	gs_conn_close(c);
}

/* Closing: a guest close is answered with RST at once (before the close timer
 * could) and the host sees EOF; a host close is SHUTDOWN(SEND) only, then the
 * guest's close completes promptly. */
static void test_close(struct gs *gs)
{
	struct gs_conn *c;
	uint64_t rst0, t0;
	unsigned n0;
	int fd, r;

	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	c = r < 0 ? NULL : accept_one(gs, GUEST_PORT);
	if (!ok(c != NULL, "close: connected"))
		return;
	/* let earlier closes finish first */
	for (t0 = gs_now_ms(); gs_now_ms() - t0 < 300;)
		gs_step(gs, NULL, 0, 10);
	rst0 = gs_rx_op_count(gs, GS_OP_RST);
	n0 = gs_conn_count(gs);
	t0 = gs_now_ms();
	gs_conn_close(c);
	while (gs_conn_count(gs) >= n0 && gs_now_ms() - t0 < 3 * DATA_CLOSE_TIMEOUT_MS)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_count(gs) < n0 && gs_now_ms() - t0 < DATA_CLOSE_TIMEOUT_MS,
		"guest close: the back-end answers SHUTDOWN(both) with RST, before the %d ms "
		"linger (%llu ms)",
		DATA_CLOSE_TIMEOUT_MS, (unsigned long long)(gs_now_ms() - t0));
	is_int(gs_rx_op_count(gs, GS_OP_RST) - rst0, 1, "guest close: exactly one RST");
	ok(host_eof_within(gs, fd, 3 * DATA_CLOSE_TIMEOUT_MS),
		"guest close: the host client sees EOF");
	close(fd);

	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	c = r < 0 ? NULL : accept_one(gs, GUEST_PORT);
	if (!ok(c != NULL, "host close: connected"))
		return;
	close(fd);
	for (t0 = gs_now_ms(); !gs_conn_peer_shut_send(c) && gs_now_ms() - t0 < 3000;)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_peer_shut_send(c) && gs_conn_state(c) == GS_CONNECTED,
		"host close: the guest gets SHUTDOWN(SEND), not RST");
	n0 = gs_conn_count(gs);
	gs_conn_close(c);
	for (t0 = gs_now_ms();
		gs_conn_count(gs) >= n0 && gs_now_ms() - t0 < 3 * DATA_CLOSE_TIMEOUT_MS;)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_count(gs) < n0 && gs_now_ms() - t0 < DATA_CLOSE_TIMEOUT_MS,
		"host close: the guest's close then completes, before the %d ms linger (%llu ms)",
		DATA_CLOSE_TIMEOUT_MS, (unsigned long long)(gs_now_ms() - t0));
}

static void test_guest_connect(struct gs *gs)
{
	struct gs_conn *c = NULL;
	uint64_t t0;
	char path[400];
	int lfd = -1, fd, r;
	char in[8];

	/* No listener at <uds-path>_7777: RST, at once. The back-end's connect
	 * timer (VSOCK_CONNECT_TIMEOUT_S, 5 s) is the only other way the guest
	 * would get its RST: coming before that timer could fire shows the
	 * failed connect(2) caused it (a bound from the mechanism, not from how
	 * fast this machine is now). */
	r = gs_connect(gs, 7777, &c);
	t0 = gs_now_ms();
	r = r < 0 ? r : gs_wait_connected(gs, c, 3 * DATA_CONNECT_TIMEOUT_MS);
	ok(r == -ECONNREFUSED || r == -ECONNRESET,
		"guest connect to a missing listener is refused (%d)", r);
	ok(gs_now_ms() - t0 < DATA_CONNECT_TIMEOUT_MS, "refused by the failed connect, before the back-end's %d ms connect timer (%llu ms)",
		DATA_CONNECT_TIMEOUT_MS, (unsigned long long)(gs_now_ms() - t0));
	if (c)
		gs_conn_close(c);

	snprintf(path, sizeof(path), "%s_%u", b.uds_path, 7778);
	r = gt_unix_listen(path, &lfd);
	r = r < 0 ? r : gs_connect(gs, 7778, &c);
	r = r < 0 ? r : gs_wait_connected(gs, c, 5000);
	is_int(r, 0, "guest connect to a present listener gets RESPONSE");
	if (r < 0)
		goto out;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ok(fd >= 0, "the host listener got the connection");
	gs_send_all(gs, c, "ping", 4, 5000);
	ok(fd >= 0 && host_read(gs, fd, in, 4, 5000) == 4 && !memcmp(in, "ping", 4),
		"guest-initiated data reaches the host");
	if (fd >= 0) {
		ok(write(fd, "pong", 4) == 4, "host answers");
		ok(gs_recv_all(gs, c, in, 4, 5000) == 4 && !memcmp(in, "pong", 4),
			"host data reaches the guest");
		close(fd);
	}
	gs_conn_close(c);
out:
	if (lfd >= 0)
		close(lfd);
	unlink(path);
}

/* While a transfer is stalled by flow control the back-end must sleep, not spin (the
 * peers' bug: EPOLLOUT always armed, 100% CPU). */
static void cpu_idle_check(struct gs *gs, struct gs_conn *c, const char *what)
{
	static const uint8_t junk[4096];
	long cpu0 = gt_backend_cpu_ms(&b), cpu1;

	for (uint64_t deadline = gs_now_ms() + 1000; gs_now_ms() < deadline;) {
		if (c)
			gs_conn_send(c, junk, sizeof(junk)); /* no credit: -EAGAIN */
		gs_step(gs, NULL, 0, 10);
	}
	cpu1 = gt_backend_cpu_ms(&b);
	ok(cpu0 >= 0 && cpu1 - cpu0 < 100, "%s: back-end idle while stalled (%ld ms CPU in 1 s)",
		what, cpu1 - cpu0);
}

/* A host client that never reads: the guest is throttled by credit, memory bounded,
 * and once the client reads everything arrives. */
/* Send buf[*sent..len) from the guest while the host reads fd into in[*got..len),
 * until everything arrived or timeout_ms passed. */
static void pump_g2h(struct gs *gs, struct gs_conn *c, int fd, const uint8_t *buf, uint8_t *in,
	size_t len, size_t *sent, size_t *got, unsigned timeout_ms)
{
	uint64_t deadline = gs_now_ms() + timeout_ms;

	while (*got < len && gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (*sent < len) {
			n = gs_conn_send(c, buf + *sent, len - *sent);
			if (n > 0)
				*sent += (size_t)n;
		}
		gs_step(gs, &p, 1, 10);
		n = read(fd, in + *got, len - *got);
		if (n > 0)
			*got += (size_t)n;
	}
}

static void test_slow_host_reader(struct gs *gs)
{
	size_t total = 16u << 20, sent = 0, got = 0;
	uint8_t *buf = malloc(total), *in = malloc(total);
	long rss0 = gt_backend_rss_kb(&b), rss1;
	uint64_t deadline, seed2 = 7;
	struct gs_conn *c;
	ssize_t n;
	int fd, r;

	gt_random(buf, total, &seed2);
	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	c = r < 0 ? NULL : accept_one(gs, GUEST_PORT);
	ok(c != NULL, "slow host reader: connected");
	if (!c)
		goto out;
	deadline = gs_now_ms() + 2000;
	while (gs_now_ms() < deadline && sent < total) {
		n = gs_conn_send(c, buf + sent, total - sent);
		if (n > 0)
			sent += (size_t)n;
		gs_step(gs, NULL, 0, 10);
	}
	rss1 = gt_backend_rss_kb(&b);
	diag("guest could send %zu bytes to a host that does not read; back-end RSS %ld -> %ld kB",
		sent, rss0, rss1);
	ok(sent < total, "slow host reader: the guest is throttled (%zu of %zu sent)", sent, total);
	ok(gs_conn_peer_free(c) == 0, "slow host reader: no credit left");
	ok(rss1 - rss0 < 8 * 1024, "slow host reader: back-end RSS grew by < 8 MiB (%ld kB)",
		rss1 - rss0);
	cpu_idle_check(gs, c, "slow host reader");
	/* Now the reader drains: credit updates must let the guest finish (no stall). */
	pump_g2h(gs, c, fd, buf, in, total, &sent, &got, 20000);
	ok(got == total && !memcmp(in, buf, total),
		"slow host reader: all 16 MiB arrive in order once it reads (%zu)", got);
	gs_conn_close(c);
	close(fd);
out:
	free(buf);
	free(in);
}

/* A guest that does not drain rx: host writes block, back-end memory bounded, no
 * credit violation (checked by guestsim on every RW), then everything arrives. */
static void test_slow_guest_reader(struct gs *gs)
{
	size_t total = 16u << 20, sent = 0, got = 0;
	uint8_t *buf = malloc(total), *in = malloc(total);
	long rss0 = gt_backend_rss_kb(&b), rss1;
	uint64_t deadline, seed2 = 9;
	struct gs_conn *c;
	unsigned v0 = gs_violations(gs);
	ssize_t n;
	int fd, r;

	gt_random(buf, total, &seed2);
	r = gt_host_connect(&b, gs, GUEST_PORT, 5000, &fd);
	c = r < 0 ? NULL : accept_one(gs, GUEST_PORT);
	ok(c != NULL, "slow guest reader: connected");
	if (!c)
		goto out;
	deadline = gs_now_ms() + 2000;
	while (gs_now_ms() < deadline && sent < total) {
		n = write(fd, buf + sent, total - sent > 65536 ? 65536 : total - sent);
		if (n > 0)
			sent += (size_t)n;
		gs_step(gs, NULL, 0, 5);
	}
	rss1 = gt_backend_rss_kb(&b);
	diag("host could write %zu bytes to a guest that does not read; guest holds %zu; RSS %ld "
	     "-> %ld kB",
		sent, gs_conn_rx_pending(c), rss0, rss1);
	ok(sent < total, "slow guest reader: host writes block (%zu of %zu written)", sent, total);
	ok(gs_conn_rx_pending(c) <= 256 * 1024,
		"slow guest reader: guest got at most its buf_alloc");
	is_int(gs_violations(gs) - v0, 0, "slow guest reader: credit respected on every RW");
	ok(rss1 - rss0 < 8 * 1024, "slow guest reader: back-end RSS grew by < 8 MiB (%ld kB)",
		rss1 - rss0);
	cpu_idle_check(gs, NULL, "slow guest reader");
	deadline = gs_now_ms() + 20000;
	while (got < total && gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		gs_step(gs, &p, 1, 5);
		if (sent < total) {
			n = write(fd, buf + sent, total - sent > 65536 ? 65536 : total - sent);
			if (n > 0)
				sent += (size_t)n;
		}
		n = gs_conn_recv(c, in + got, total - got);
		if (n > 0)
			got += (size_t)n;
	}
	ok(got == total && !memcmp(in, buf, total),
		"slow guest reader: all 16 MiB arrive in order once it reads (%zu)", got);
	gs_conn_close(c);
	close(fd);
out:
	free(buf);
	free(in);
}

/* A guest that keeps less in flight than the back-end advertises (Linux 6.1 stops at
 * 256 KiB whatever the peer's buf_alloc) must still hear that its bytes were taken. */
static void test_partial_window(void)
{
	static const char *args[] = { "--buffer-size=1048576", NULL };
	static uint8_t buf[256 * 1024], in[256 * 1024];
	struct gt_backend big = { 0 };
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	size_t sent = 0, got = 0;
	uint64_t deadline;
	int fd = -1, r;

	r = gt_backend_start(&big, args);
	is_int(r, 0, "partial window: back-end with a 1 MiB buffer started");
	if (r < 0)
		return;
	c = gt_guest_conn(&big, 0, GUEST_PORT, &gs, &fd);
	ok(c != NULL, "partial window: connected");
	if (!c)
		goto out;
	gt_random(buf, sizeof(buf), &seed);
	pump_g2h(gs, c, fd, buf, in, sizeof(buf), &sent, &got, 10000);
	ok(got == sizeof(buf) && !memcmp(in, buf, got), "partial window: 256 KiB arrived (%zu)", got);
	/* The guest now stops sending, as Linux does at 256 KiB, and waits for credit. */
	deadline = gs_now_ms() + 3000;
	while (gs_conn_peer_free(c) + 65536 < gs_conn_peer_buf_alloc(c) && gs_now_ms() < deadline)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_peer_free(c) + 128 * 1024 >= gs_conn_peer_buf_alloc(c),
		"partial window: CREDIT_UPDATEs leave at most half the guest's 256 KiB "
		"unacknowledged (%u credit of %u)",
		gs_conn_peer_free(c), gs_conn_peer_buf_alloc(c));
	is_int(gs_violations(gs), 0, "partial window: no protocol violation (%s)",
		gs_last_violation(gs));
out:
	if (fd >= 0)
		close(fd);
	gs_conn_close(c);
	gs_free(gs);
	is_int(gt_backend_stop(&big, NULL), 0, "partial window: back-end exits cleanly");
}

/* A guest->host stream of `total` bytes from a guest that keeps at most `cap` bytes in
 * flight (unacknowledged by the back-end), as Linux caps its credit at its own buf_alloc;
 * the host reads at once. Returns the CREDIT_UPDATE packets the guest received. */
static uint64_t stream_capped(const char *what, uint32_t guest_buf, uint32_t cap, size_t total)
{
	static const char *args[] = { "--buffer-size=1048576", NULL };
	struct gt_backend big = { 0 };
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	uint8_t *buf = malloc(total), *in = malloc(total);
	size_t sent = 0, got = 0;
	uint64_t updates = 0, deadline;
	int fd = -1, r;

	r = gt_backend_start(&big, args);
	is_int(r, 0, "%s: back-end with a 1 MiB buffer started", what);
	if (r < 0 || !buf || !in)
		goto out;
	c = gt_guest_conn(&big, guest_buf, GUEST_PORT, &gs, &fd);
	ok(c != NULL, "%s: connected", what);
	if (!c)
		goto out;
	gt_random(buf, total, &seed);
	updates = gs_rx_op_count(gs, GS_OP_CREDIT_UPDATE);
	deadline = gs_now_ms() + 30000;
	while (got < total && gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint32_t in_flight = gs_conn_peer_buf_alloc(c) - gs_conn_peer_free(c);
		ssize_t n;

		if (sent < total && in_flight < cap) {
			size_t len = total - sent < cap - in_flight ? total - sent : cap - in_flight;

			n = gs_conn_send(c, buf + sent, len);
			if (n > 0)
				sent += (size_t)n;
		}
		gs_step(gs, &p, 1, 10);
		n = read(fd, in + got, total - got);
		if (n > 0)
			got += (size_t)n;
	}
	updates = gs_rx_op_count(gs, GS_OP_CREDIT_UPDATE) - updates;
	ok(got == total && !memcmp(in, buf, total), "%s: %zu MiB arrived intact (%zu bytes)", what,
		total >> 20, got);
	is_int(gs_violations(gs), 0, "%s: no protocol violation (%s)", what, gs_last_violation(gs));
out:
	if (fd >= 0)
		close(fd);
	gs_conn_close(c);
	gs_free(gs);
	free(buf);
	free(in);
	is_int(gt_backend_stop(&big, NULL), 0, "%s: back-end exits cleanly", what);
	return updates;
}

/* Each CREDIT_UPDATE costs a guest an rx interrupt: one per half of the window the guest
 * can use, not one per 64 KiB (16 per MiB). The guest that never runs out of credit by
 * itself and the one that stops at its own buf_alloc (Linux) both keep streaming. */
static void test_credit_updates_per_mib(void)
{
	const size_t total = 8u << 20;
	uint64_t n;

	n = stream_capped("credit updates, 1 MiB windows", 1u << 20, 1u << 20, total);
	ok(n <= 4 * (total >> 20),
		"credit updates, 1 MiB windows: %llu CREDIT_UPDATEs for %zu MiB "
		"(at most 4 per MiB)",
		(unsigned long long)n, total >> 20);
	n = stream_capped("credit updates, guest capped at 256 KiB", 256u << 10, 256u << 10, total);
	ok(n <= 10 * (total >> 20),
		"credit updates, guest capped at 256 KiB: %llu CREDIT_UPDATEs "
		"for %zu MiB (at most 10 per MiB)",
		(unsigned long long)n, total >> 20);
}

/* The bench's big-window case: a 4 MiB back-end buffer and a guest whose REQUEST
 * advertises 4 MiB must still connect to a host listener and carry a bulk guest->host
 * stream intact. */
static void test_big_buffers(void)
{
	static const char *args[] = { "--buffer-size=4194304", NULL };
	static uint8_t buf[16 << 20], in[16 << 20];
	struct gt_backend big = { 0 };
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	size_t sent = 0, got = 0;
	char path[400];
	int lfd = -1, fd = -1, r;

	r = gt_backend_start(&big, args);
	is_int(r, 0, "big buffers: back-end with a 4 MiB buffer started");
	if (r < 0)
		return;
	snprintf(path, sizeof(path), "%s_%u", big.uds_path, 7790);
	gt_options(&o, &big);
	o.buf_alloc = 4 << 20;
	r = gt_unix_listen(path, &lfd);
	r = r < 0 ? r : gs_new(&o, &gs);
	r = r < 0 ? r : gs_connect(gs, 7790, &c);
	r = r < 0 ? r : gs_wait_connected(gs, c, 5000);
	is_int(r, 0, "big buffers: guest connect with a 4 MiB buf_alloc gets RESPONSE");
	if (r < 0)
		goto out;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	ok(fd >= 0, "big buffers: the host listener got the connection");
	if (fd < 0)
		goto out;
	ok(gs_conn_peer_free(c) <= 64 * 1024,
		"big buffers: an idle connection starts with a small window (%u)",
		gs_conn_peer_free(c));
	gt_random(buf, sizeof(buf), &seed);
	pump_g2h(gs, c, fd, buf, in, sizeof(buf), &sent, &got, 20000);
	ok(got == sizeof(buf) && !memcmp(in, buf, got),
		"big buffers: 16 MiB guest->host intact (%zu)", got);
	/* How far it grows depends on how fast this host side reads (a window held
	 * half full by the host shrinks again); never past the buffer. */
	ok(gs_conn_peer_buf_alloc(c) >= 256 * 1024 && gs_conn_peer_buf_alloc(c) <= (4u << 20),
		"big buffers: the window grew while the stream moved (%u), within the 4 MiB buffer",
		gs_conn_peer_buf_alloc(c));
	is_int(gs_violations(gs), 0, "big buffers: no protocol violation (%s)",
		gs_last_violation(gs));
out:
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	unlink(path);
	gs_conn_close(c);
	gs_free(gs);
	is_int(gt_backend_stop(&big, NULL), 0, "big buffers: back-end exits cleanly");
}

int main(void)
{
	struct gs_options o;
	struct gs *gs = NULL;
	int r;

	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "back-end started");
	if (r < 0)
		return tap_done();
	gt_options(&o, &b);
	r = gs_new(&o, &gs);
	is_int(r, 0, "guestsim negotiated");
	if (r == 0) {
		gs_listen(gs, GUEST_PORT);
		run_transfers(gs, NCONN, 300000, "100 connections");
		test_pipelined(gs);
		test_half_close(gs);
		test_guest_connect(gs);
		test_close(gs);
		test_slow_host_reader(gs);
		test_slow_guest_reader(gs);
		is_int(gs_violations(gs), 0, "guestsim saw no protocol violation (%s)",
			gs_last_violation(gs));
		gs = gs_free(gs);
	}
	/* The same with 2 memory regions, indirect tx descriptors and split rx headers. */
	o.regions = 2;
	o.tx_indirect = true;
	o.rx_split_hdr = true;
	r = gs_new(&o, &gs);
	is_int(r, 0, "second front-end: 2 regions, indirect, split rx headers");
	if (r == 0) {
		gs_listen(gs, GUEST_PORT);
		run_transfers(gs, 20, 500000, "2 regions");
		is_int(gs_violations(gs), 0, "no protocol violation (%s)", gs_last_violation(gs));
		gs_free(gs);
	}
	test_partial_window();
	test_credit_updates_per_mib();
	test_big_buffers();
	ok(gt_backend_alive(&b), "back-end alive at the end");
	is_int(gt_backend_stop(&b, NULL), 0,
		"back-end exits cleanly (status 0, no sanitizer report)");
	return tap_done();
}
