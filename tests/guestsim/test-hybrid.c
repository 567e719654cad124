/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host clients of the hybrid socket against the real back-end: CONNECT split across
 * many writes, case, bad lines (overlong, no newline, non-numeric, out of range),
 * unknown guest ports, the 5 s line timeout, host port allocation, the connection
 * cap, 10,000 clients connecting at once, and clients that close (or stop receiving)
 * while their bytes are still on the way. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"

#define PORT 5000

static struct gt_backend b;

/* Closed by the back-end (EOF or reset) within timeout_ms, without an OK. */
/* The back-end's connect timer (VSOCK_CONNECT_TIMEOUT_S in backend/vsock.h):
 * the only other way a client waiting for the guest gets closed. */
#define HYBRID_CONNECT_TIMEOUT_MS 5000
/* The back-end's timer for the CONNECT line (VSOCK_LINE_TIMEOUT_S). */
#define HYBRID_LINE_TIMEOUT_MS 5000
/* many_clients() gives up only when no client advanced for this long: a
 * loaded machine is slower, not stuck. */
#define HYBRID_STALL_MS 15000

static bool closed_without_ok(struct gs *gs, int fd, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	char c;

	while (gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		gs_step(gs, &p, 1, 20);
		if (!p.revents)
			continue;
		n = read(fd, &c, 1);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n > 0)
			return false;
	}
	return false;
}

static void settle(struct gs *gs, int ms)
{
	for (uint64_t deadline = gs_now_ms() + (uint64_t)ms; gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
}

static struct gs_conn *accept_one(struct gs *gs)
{
	struct gs_conn *c = NULL;

	for (uint64_t deadline = gs_now_ms() + 5000;
		!(c = gs_accept(gs, PORT)) && gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return c;
}

static void test_split_connect(struct gs *gs)
{
	static const char line[] = "CONNECT 5000\n";
	struct gs_conn *c;
	char in[4];
	int fd, r;

	r = gt_host_open(&b, &fd);
	is_int(r, 0, "split: connected");
	if (r < 0)
		return;
	for (size_t i = 0; i < sizeof(line) - 1; i++) {
		ok(write(fd, line + i, 1) == 1, "split: byte %zu of the CONNECT line", i);
		settle(gs, 15);
	}
	r = gt_host_wait_ok(fd, gs, 5000);
	is_int(r, 0, "split: OK after a line written one byte at a time");
	c = accept_one(gs);
	ok(c != NULL, "split: guest accepted");
	if (c) {
		ok(write(fd, "data", 4) == 4 && gs_recv_all(gs, c, in, 4, 3000) == 4 &&
				!memcmp(in, "data", 4),
			"split: data flows afterwards");
		gs_conn_close(c);
	}
	close(fd);
}

/* Bytes a host client sent before closing are delivered, then end of stream
 * (SHUTDOWN(SEND)), never a reset that throws them away: a client that writes the
 * CONNECT line and its payload in one write and closes at once, one that closes
 * with the OK still unread, and one that stops receiving while it still sends. */
static void payload_then_eof(struct gs *gs, const char *what, bool wait_ok_unread)
{
	enum { LEN = 5000 };
	char msg[32 + LEN], in[LEN + 16];
	struct gs_conn *c;
	int fd, n, r;
	ssize_t got;

	n = snprintf(msg, sizeof(msg), "CONNECT %u\n", PORT);
	for (int i = 0; i < LEN; i++)
		msg[n + i] = (char)('a' + i % 26);
	r = gt_host_open(&b, &fd);
	is_int(r, 0, "%s: connected", what);
	if (r < 0)
		return;
	ok(write(fd, msg, (size_t)n + LEN) == n + LEN, "%s: CONNECT and %d bytes in one write",
		what, LEN);
	if (wait_ok_unread) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t deadline = gs_now_ms() + 5000;

		while (!p.revents && gs_now_ms() < deadline)
			gs_step(gs, &p, 1, 20);
		ok(p.revents & POLLIN, "%s: the OK is there (left unread)", what);
	}
	close(fd);
	c = accept_one(gs);
	ok(c != NULL, "%s: guest accepted", what);
	if (!c)
		return;
	got = gs_recv_all(gs, c, in, sizeof(in), 5000);
	ok(got == LEN && memcmp(in, msg + n, LEN) == 0, "%s: the guest got all %d bytes (got %zd)",
		what, LEN, got);
	ok(gs_conn_peer_shut_send(c), "%s: then end of stream (SHUTDOWN(SEND)), not a reset", what);
	gs_conn_close(c);
}

static void test_write_and_close(struct gs *gs)
{
	struct gs_conn *c;
	char in[16];
	int fd, r;

	payload_then_eof(gs, "write+close", false);
	payload_then_eof(gs, "write+close, OK unread", true);

	/* The host stops receiving (SHUT_RD) and still sends: the guest's bytes to it
	 * fail, yet the host's later bytes and its EOF reach the guest. */
	r = gt_host_connect(&b, gs, PORT, 5000, &fd);
	is_int(r, 0, "shut_rd: connected");
	if (r < 0)
		return;
	c = accept_one(gs);
	ok(c != NULL, "shut_rd: guest accepted");
	if (!c) {
		close(fd);
		return;
	}
	ok(shutdown(fd, SHUT_RD) == 0, "shut_rd: host shuts its receive side");
	ok(gs_send_all(gs, c, "lost", 4, 3000) == 0, "shut_rd: guest sends into it");
	settle(gs, 100);
	ok(send(fd, "later", 5, MSG_NOSIGNAL) == 5 && shutdown(fd, SHUT_WR) == 0,
		"shut_rd: host sends 5 bytes more, then EOF");
	r = (int)gs_recv_all(gs, c, in, sizeof(in), 5000);
	ok(r == 5 && memcmp(in, "later", 5) == 0, "shut_rd: the guest got the host's bytes (%d)", r);
	ok(gs_conn_peer_shut_send(c), "shut_rd: then end of stream, not a reset");
	gs_conn_close(c);
	close(fd);
}

static void test_case_and_ports(struct gs *gs)
{
	uint32_t ports[2] = { 0, 0 };
	struct gs_conn *c[2] = { NULL, NULL };
	int fds[2] = { -1, -1 };

	for (int i = 0; i < 2; i++) {
		const char *line = i == 0 ? "connect 5000\n" : "Connect 5000\n";
		char buf[64];
		size_t len = 0;
		int r = gt_host_open(&b, &fds[i]);

		if (r == 0 && write(fds[i], line, strlen(line)) != (ssize_t)strlen(line))
			r = -EIO;
		/* read the line by hand to see the host port */
		while (r == 0 && len < sizeof(buf) - 1) {
			struct pollfd p = { .fd = fds[i], .events = POLLIN };
			ssize_t n;

			gs_step(gs, &p, 1, 20);
			n = read(fds[i], buf + len, 1);
			if (n == 0)
				r = -ECONNREFUSED;
			if (n == 1 && buf[len++] == '\n')
				break;
		}
		buf[len] = 0;
		ok(r == 0 && !strncmp(buf, "OK ", 3), "'%.7s' accepted (keyword case-insensitive)",
			line);
		ports[i] = (uint32_t)strtoul(buf + 3, NULL, 10);
		ok(ports[i] >= (1u << 30) && ports[i] < (1u << 31), "host port %u in [2^30, 2^31)",
			ports[i]);
		c[i] = accept_one(gs);
		ok(c[i] && gs_conn_peer_port(c[i]) == ports[i],
			"the guest sees that port as the peer");
	}
	ok(ports[0] != ports[1], "two live connections have different host ports");
	for (int i = 0; i < 2; i++) {
		if (c[i])
			gs_conn_close(c[i]);
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

/* A bad line is closed at once: before the back-end's line timer
 * (VSOCK_LINE_TIMEOUT_S, 5 s), which would close it as well, could fire. */
static void bad_line(struct gs *gs, const char *what, const void *data, size_t len)
{
	uint64_t req0 = gs_rx_op_count(gs, GS_OP_REQUEST), t0;
	int fd, r;

	r = gt_host_open(&b, &fd);
	if (!ok(r == 0, "%s: connected", what))
		return;
	ok(write(fd, data, len) == (ssize_t)len, "%s: written", what);
	t0 = gs_now_ms();
	ok(closed_without_ok(gs, fd, 3 * HYBRID_LINE_TIMEOUT_MS) &&
			gs_now_ms() - t0 < HYBRID_LINE_TIMEOUT_MS,
		"%s: closed by the back-end without OK, before its %d ms line timer (%llu ms)",
		what, HYBRID_LINE_TIMEOUT_MS, (unsigned long long)(gs_now_ms() - t0));
	is_int(gs_rx_op_count(gs, GS_OP_REQUEST) - req0, 0, "%s: nothing reached the guest", what);
	close(fd);
}

static void test_bad_lines(struct gs *gs)
{
	char longline[200];
	uint64_t req0, t0;
	int fd;

	memset(longline, 'A', sizeof(longline));
	bad_line(gs, "overlong line without newline", longline, sizeof(longline));
	bad_line(gs, "line over 32 bytes", "CONNECT 0000000000000000000000000000005000\n", 43);
	bad_line(gs, "non-numeric port", "CONNECT abc\n", 12);
	bad_line(gs, "empty port", "CONNECT \n", 9);
	bad_line(gs, "negative port", "CONNECT -1\n", 11);
	bad_line(gs, "port with trailing junk", "CONNECT 5000x\n", 14);
	bad_line(gs, "port beyond 32 bits", "CONNECT 4294967296\n", 19);
	bad_line(gs, "unknown keyword", "LISTEN 5000\n", 12);
	bad_line(gs, "NUL in the line", "CONNECT 50\0000\n", 13);

	/* No newline, then close: nothing happens, nothing leaks. */
	req0 = gs_rx_op_count(gs, GS_OP_REQUEST);
	if (gt_host_open(&b, &fd) == 0) {
		ok(write(fd, "CONNECT 50", 10) == 10, "no newline: partial line written");
		settle(gs, 100);
		close(fd);
		settle(gs, 200);
		is_int(gs_rx_op_count(gs, GS_OP_REQUEST) - req0, 0,
			"no newline then close: no REQUEST");
		ok(gt_backend_alive(&b), "no newline then close: back-end alive");
	}

	/* A guest port nobody listens on: the guest answers RST, the client is
	 * closed. Without the RST only the back-end's connect timer would close
	 * it: closing before that timer could fire is what shows the RST did it
	 * (a bound from the mechanism, not from how fast this machine is now). */
	if (gt_host_open(&b, &fd) == 0) {
		ok(write(fd, "CONNECT 7777\n", 13) == 13, "unknown guest port: written");
		t0 = gs_now_ms();
		ok(closed_without_ok(gs, fd, 3 * HYBRID_CONNECT_TIMEOUT_MS),
			"unknown guest port: closed");
		ok(gs_now_ms() - t0 < HYBRID_CONNECT_TIMEOUT_MS,
			"unknown guest port: closed by the guest's RST, before the back-end's "
			"%d ms connect timer (%llu ms)",
			HYBRID_CONNECT_TIMEOUT_MS, (unsigned long long)(gs_now_ms() - t0));
		close(fd);
	}

	/* Silence: the line must come within 5 s. */
	if (gt_host_open(&b, &fd) == 0) {
		t0 = gs_now_ms();
		ok(closed_without_ok(gs, fd, 3 * HYBRID_LINE_TIMEOUT_MS),
			"no line at all: closed by the 5 s timeout");
		ok(gs_now_ms() - t0 >= 4000, "no line at all: not before about 5 s (%llu ms)",
			(unsigned long long)(gs_now_ms() - t0));
		close(fd);
	}
}

/* n clients connect at once and send CONNECT; returns how many got OK (and
 * in *ret_refused how many were closed). Gives up only after stall_ms
 * without any client opening, getting OK or being closed. */
static unsigned many_clients(struct gt_backend *bk, struct gs *gs, unsigned n, int stall_ms,
	unsigned *ret_refused)
{
	int *fd = calloc(n, sizeof(int));
	uint8_t *state = calloc(n, 1); /* 0 connecting, 1 line sent, 2 OK, 3 closed */
	struct pollfd *p = calloc(n, sizeof(*p));
	uint64_t t0 = gs_now_ms(), moved = t0;
	unsigned okc = 0, refused = 0, opened = 0, accepted = 0, progress = 0;
	struct gs_conn *c;

	for (unsigned i = 0; i < n; i++)
		fd[i] = -1;
	while (okc + refused < n && gs_now_ms() - moved < (uint64_t)stall_ms) {
		unsigned np = 0;

		if (opened + okc + refused != progress) {
			progress = opened + okc + refused;
			moved = gs_now_ms();
		}

		for (unsigned i = 0; i < n && opened < n; i++) {
			if (fd[i] >= 0 || state[i])
				continue;
			if (gt_host_open(bk, &fd[i]) < 0) {
				fd[i] = -1;
				break; /* backlog full: try again after a step */
			}
			opened++;
			if (write(fd[i], "CONNECT 5000\n", 13) == 13)
				state[i] = 1;
			else if (errno == EPIPE || errno == ECONNRESET) {
				/* Closed by the back-end (at its cap) before the line went. */
				state[i] = 3;
				refused++;
			}
		}
		for (unsigned i = 0; i < n; i++)
			if (fd[i] >= 0 && state[i] == 1)
				p[np++] = (struct pollfd){ .fd = fd[i], .events = POLLIN };
		gs_step(gs, p, np, 10);
		while ((c = gs_accept(gs, PORT)))
			accepted++;
		for (unsigned i = 0; i < n; i++) {
			char line[40];
			ssize_t r;

			if (fd[i] < 0 || state[i] != 1)
				continue;
			r = recv(fd[i], line, sizeof(line) - 1, MSG_DONTWAIT);
			if (r > 3 && !strncmp(line, "OK ", 3)) {
				state[i] = 2;
				okc++;
			} else if (r == 0 || (r < 0 && errno != EAGAIN)) {
				state[i] = 3;
				refused++;
			}
		}
	}
	diag("%u clients: %u OK, %u refused, %u accepted by the guest in %llu ms, back-end RSS "
	     "%ld kB",
		n, okc, refused, accepted, (unsigned long long)(gs_now_ms() - t0),
		gt_backend_rss_kb(bk));
	for (unsigned i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	free(fd);
	free(state);
	free(p);
	if (ret_refused)
		*ret_refused = refused;
	return okc;
}

static void test_many(void)
{
	const char *args[] = { "--max-connections=12000", NULL };
	struct rlimit rl;
	struct gt_backend big;
	struct gs_options o;
	struct gs *gs = NULL;
	unsigned okc;
	long rss0;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < 21000 && rl.rlim_max != RLIM_INFINITY) {
		rl.rlim_cur = rl.rlim_max;
	} else {
		rl.rlim_cur = 21000;
	}
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 10100) {
		ok(1, "# SKIP RLIMIT_NOFILE hard limit %llu is too low for 10,000 clients",
			(unsigned long long)rl.rlim_max);
		return;
	}
	if (gt_backend_start(&big, args) < 0) {
		ok(0, "10,000 clients: back-end started");
		return;
	}
	gt_options(&o, &big);
	o.socket_path = big.socket_path;
	if (gs_new(&o, &gs) == 0) {
		gs_listen(gs, PORT);
		rss0 = gt_backend_rss_kb(&big);
		okc = many_clients(&big, gs, 10000, HYBRID_STALL_MS, NULL);
		is_int(okc, 10000, "10,000 clients connecting at once all get OK");
		diag("back-end RSS %ld -> %ld kB with 10,000 connections (%.1f KiB each)", rss0,
			gt_backend_rss_kb(&big), (gt_backend_rss_kb(&big) - rss0) / 10000.0);
		ok(gt_backend_alive(&big), "10,000 clients: back-end alive");
		is_int(gt_check_service(&big, gs, PORT, 10000), 0,
			"10,000 clients: service afterwards");
		is_int(gs_violations(gs), 0, "10,000 clients: no violation (%s)",
			gs_last_violation(gs));
		gs_free(gs);
	}
	is_int(gt_backend_stop(&big, NULL), 0, "10,000 clients: back-end exits cleanly");
}

static void test_cap(void)
{
	const char *args[] = { "--max-connections=50", NULL };
	struct gt_backend capped;
	struct gs_options o;
	struct gs *gs = NULL;
	unsigned refused = 0, okc;

	if (gt_backend_start(&capped, args) < 0) {
		ok(0, "cap: back-end started");
		return;
	}
	gt_options(&o, &capped);
	if (gs_new(&o, &gs) == 0) {
		gs_listen(gs, PORT);
		okc = many_clients(&capped, gs, 80, HYBRID_STALL_MS, &refused);
		ok(okc <= 50, "--max-connections=50: at most 50 of 80 connected (%u)", okc);
		ok(okc + refused == 80,
			"--max-connections=50: the rest were closed, none hang (%u)", refused);
		ok(gt_backend_alive(&capped), "cap: back-end alive");
		gs_free(gs);
	}
	is_int(gt_backend_stop(&capped, NULL), 0, "cap: back-end exits cleanly");
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
		gs_listen(gs, PORT);
		test_split_connect(gs);
		test_write_and_close(gs);
		test_case_and_ports(gs);
		test_bad_lines(gs);
		is_int(gt_check_service(&b, gs, PORT, 50000), 0, "service after all the bad lines");
		is_int(gs_violations(gs), 0, "no violation (%s)", gs_last_violation(gs));
		gs_free(gs);
	}
	ok(gt_backend_alive(&b), "back-end alive");
	is_int(gt_backend_stop(&b, NULL), 0,
		"back-end exits cleanly (status 0, no sanitizer report)");
	test_cap();
	test_many();
	return tap_done();
}
