/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-VM memory budget against the real back-end: 4,096 connections whose host
 * clients never read while the guest floods every one of them keep the back-end's RSS
 * within the budget plus a fixed overhead, and new connections of the same VM still
 * flow; a guest that keeps a connection after the host closed it loses it after the
 * close timeout, even while reads of the host socket are paused for credit, or over
 * after the host shut its sending side first; a guest holding every slot it may take
 * leaves room for host clients. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"
#include "macro.h"

#define PORT 5000
#define N_FLOOD 4096
#define BUDGET (32ull << 20) /* the default --memory-budget */
/* What may grow besides the budget: malloc's arenas and page rounding of the
 * refused-bytes rings (the per-connection state exists before the flood). Under
 * ASan, freed rings wait in its quarantine and every block has redzones: RSS is
 * then a looser measure, allowed the budget once more. */
#if defined(__SANITIZE_ADDRESS__)
#define OVERHEAD ((8ull << 20) + BUDGET)
#else
#define OVERHEAD (8ull << 20)
#endif

static struct gs_conn *accept_one(struct gs *gs, uint32_t port, int timeout_ms)
{
	struct gs_conn *c = NULL;

	for (uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
		!(c = gs_accept(gs, port)) && gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return c;
}

/* Step until the guest's connection is closed, for at most 15 s: whether it got an RST;
 * *ret_s: how long it took. */
static bool wait_reset(struct gs *gs, struct gs_conn *c, double *ret_s)
{
	uint64_t t0 = gs_now_ms();

	while (gs_conn_state(c) == GS_CONNECTED && gs_now_ms() - t0 < 15000)
		gs_step(gs, NULL, 0, 20);
	*ret_s = (gs_now_ms() - t0) / 1000.0;
	return gs_conn_state(c) == GS_CLOSED && gs_conn_error(c) == -ECONNRESET;
}

static bool raise_nofile(rlim_t want)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur >= want;
}

static void test_flood(void)
{
	static const char *args[] = { "--max-connections=4200", NULL };
	static uint8_t chunk[64 * 1024];
	struct gs_conn **conns = calloc(N_FLOOD, sizeof(*conns));
	int *fds = calloc(N_FLOOD, sizeof(int));
	struct gt_backend b = { 0 };
	unsigned n_open = 0, n_acc = 0;
	uint64_t sent = 0, idle_since, t0;
	long rss0, rss1;
	struct gs_options o;
	struct gs *gs = NULL;
	int r;

	if (!conns || !fds || !raise_nofile(2 * N_FLOOD + 200)) {
		ok(1, "# SKIP RLIMIT_NOFILE too low for %u connections", N_FLOOD);
		goto done;
	}
	r = gt_backend_start(&b, args);
	is_int(r, 0, "flood: back-end started (default 32 MiB budget)");
	if (r < 0)
		goto done;
	gt_options(&o, &b);
	o.quiet = true;
	r = gs_new(&o, &gs);
	is_int(r, 0, "flood: guestsim negotiated");
	if (r < 0)
		goto out;
	gs_listen(gs, PORT);
	/* 4,096 host clients: CONNECT, then never read (not even the OK). */
	t0 = gs_now_ms();
	while (n_acc < N_FLOOD && gs_now_ms() - t0 < 120000) {
		while (n_open < N_FLOOD && n_open < n_acc + 256) {
			char line[32];
			int n = snprintf(line, sizeof(line), "CONNECT %u\n", PORT);

			if (gt_host_open(&b, &fds[n_open]) < 0)
				break;
			if (write(fds[n_open], line, (size_t)n) != n)
				break;
			n_open++;
		}
		gs_step(gs, NULL, 0, 10);
		while (n_acc < N_FLOOD && (conns[n_acc] = gs_accept(gs, PORT)))
			n_acc++;
	}
	is_int(n_acc, N_FLOOD, "flood: %u connections accepted by the guest", N_FLOOD);
	for (t0 = gs_now_ms(); gs_now_ms() - t0 < 300;)
		gs_step(gs, NULL, 0, 10);
	rss0 = gt_backend_rss_kb(&b);
	/* The guest sends on every connection as long as credit lasts. */
	memset(chunk, 'f', sizeof(chunk));
	t0 = idle_since = gs_now_ms();
	while (gs_now_ms() - t0 < 120000 && gs_now_ms() - idle_since < 1500) {
		uint64_t before = sent;

		for (unsigned i = 0; i < n_acc; i++) {
			ssize_t n = gs_conn_send(conns[i], chunk, sizeof(chunk));

			if (n > 0)
				sent += (uint64_t)n;
		}
		gs_step(gs, NULL, 0, sent == before ? 20 : 0);
		if (sent != before)
			idle_since = gs_now_ms();
	}
	rss1 = gt_backend_rss_kb(&b);
	diag("flood: the guest sent %llu MiB over %u connections in %.1f s; back-end RSS %ld -> "
	     "%ld kB (+%ld kB; budget %llu kB + overhead %llu kB)",
		(unsigned long long)(sent >> 20), n_acc, (gs_now_ms() - t0) / 1000.0, rss0, rss1,
		rss1 - rss0, BUDGET >> 10, OVERHEAD >> 10);
	ok(sent > 0 && gs_now_ms() - idle_since >= 1500,
		"flood: every window filled up and the guest stopped for want of credit");
	ok(rss0 > 0 && (rss1 <= rss0 || (uint64_t)(rss1 - rss0) * 1024 <= BUDGET + OVERHEAD),
		"flood: back-end RSS grew by %ld kB, within the budget + %llu MiB", rss1 - rss0,
		OVERHEAD >> 20);
	/* Other connections of the same VM keep flowing, both ways, checked by SHA-256. */
	is_int(gt_check_service(&b, gs, PORT, 1 << 20), 0,
		"flood: a new connection carries 1 MiB both ways meanwhile");
	is_int(gs_violations(gs), 0, "flood: no protocol violation (%s)", gs_last_violation(gs));
out:
	for (unsigned i = 0; i < n_open; i++)
		close(fds[i]);
	gs_free(gs);
	ok(gt_backend_alive(&b), "flood: back-end alive");
	is_int(gt_backend_stop(&b, NULL), 0, "flood: back-end exits cleanly");
done:
	free(conns);
	free(fds);
}

/* The host closes; the guest never reads nor closes: its connection is reset after
 * the close timeout (8 s), not kept forever. */
static void test_close_timeout(void)
{
	struct gt_backend b = { 0 };
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	uint64_t t0;
	int fd = -1, r;
	double secs = 0;

	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "close timeout: back-end started");
	if (r < 0)
		return;
	c = gt_guest_conn(&b, 0, PORT, &gs, &fd);
	ok(c != NULL, "close timeout: connected");
	if (!c)
		goto out;
	close(fd);
	for (t0 = gs_now_ms(); gs_now_ms() - t0 < 2000;)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_peer_shut_send(c) && gs_conn_state(c) == GS_CONNECTED,
		"close timeout: after the host's close the guest has SHUTDOWN(SEND), still "
		"connected");
	r = wait_reset(gs, c, &secs);
	ok(r, "close timeout: a guest keeping it gets RST after the close timeout (%.1f s more)",
		secs);
	is_int(gs_violations(gs), 0, "close timeout: no protocol violation (%s)",
		gs_last_violation(gs));
	gs_conn_close(c);
out:
	gs_free(gs);
	is_int(gt_backend_stop(&b, NULL), 0, "close timeout: back-end exits cleanly");
}

/* Write to a host socket until the back-end stops taking bytes (the guest's window
 * and the socket's buffer are full) for 500 ms; returns how many it took. */
static size_t host_fill(int fd, struct gs *gs, uint8_t *data, size_t cap, int timeout_ms)
{
	size_t done = 0;
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms, idle = gs_now_ms();

	while (done < cap && gs_now_ms() < deadline && gs_now_ms() - idle < 500) {
		ssize_t n = write(fd, data + done, cap - done);

		if (n > 0) {
			done += (size_t)n;
			idle = gs_now_ms();
		}
		gs_step(gs, NULL, 0, n > 0 ? 0 : 10);
	}
	return done;
}

/* The host writes more than the guest's window, then closes, while the guest reads
 * nothing: reads of the host socket are paused for credit, so its EOF is not read.
 * The hang-up is noticed anyway: the guest gets RST after the close timeout and the
 * slot is freed (with --max-connections=1, a new host client gets in). A guest that
 * does read within the timeout gets every byte, then SHUTDOWN(SEND). */
static void test_close_timeout_paused(void)
{
	static const char *args[] = { "--max-connections=1", NULL };
	static uint8_t data[1 << 20], got[1 << 20];
	struct gt_backend b = { 0 };
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	uint64_t seed = 11, t0;
	size_t sent = 0;
	ssize_t n;
	int fd = -1, r;
	double secs = 0;

	r = gt_backend_start(&b, args);
	is_int(r, 0, "paused close: back-end with --max-connections=1 started");
	if (r < 0)
		return;
	c = gt_guest_conn(&b, 64 * 1024, PORT, &gs, &fd);
	ok(c != NULL, "paused close: connected");
	if (!c)
		goto out;
	gt_random(data, sizeof(data), &seed);
	sent = host_fill(fd, gs, data, sizeof(data), 10000);
	ok(sent > 64 * 1024,
		"paused close: the host wrote %zu bytes, more than the guest's 65536 byte window",
		sent);
	close(fd);
	fd = -1;
	r = wait_reset(gs, c, &secs);
	ok(r,
		"paused close: a guest that never reads gets RST within the close timeout + 7 s "
		"(after %.1f s)",
		secs);
	gs_conn_close(c);
	c = NULL;
	r = gt_host_connect(&b, gs, PORT, 5000, &fd);
	is_int(r, 0, "paused close: the slot is free again: a new host client connects");
	ok(r == 0 && (c = accept_one(gs, PORT, 5000)) != NULL,
		"paused close: and the guest accepts it");
	if (!c)
		goto out;
	/* Same again, but the guest reads after the host's close, within the timeout. */
	sent = host_fill(fd, gs, data, sizeof(data), 10000);
	close(fd);
	fd = -1;
	for (t0 = gs_now_ms(); gs_now_ms() - t0 < 1000;)
		gs_step(gs, NULL, 0, 10);
	n = gs_recv_all(gs, c, got, sizeof(got), 5000);
	ok(n == (ssize_t)sent && memcmp(got, data, sent) == 0 && gs_conn_peer_shut_send(c),
		"paused close: a guest reading within the timeout gets all %zu bytes and "
		"SHUTDOWN(SEND) (got %zd)",
		sent, n);
	is_int(gs_violations(gs), 0, "paused close: no protocol violation (%s)",
		gs_last_violation(gs));
	gs_conn_close(c);
out:
	if (fd >= 0)
		close(fd);
	gs_free(gs);
	is_int(gt_backend_stop(&b, NULL), 0, "paused close: back-end exits cleanly");
}

/* The host sends a few bytes and shuts its sending side (the guest gets
 * SHUTDOWN(SEND)), then closes later, while the guest neither reads nor writes: the hang-up is
 * still noticed, and the guest gets RST after the close timeout counted from it; the slot is free
 * again (with --max-connections=1, a new host client gets in). */
static void test_close_timeout_half(void)
{
	static const char *args[] = { "--max-connections=1", NULL };
	struct gt_backend b = { 0 };
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	uint64_t t0;
	int fd = -1, r;
	double secs = 0;

	r = gt_backend_start(&b, args);
	is_int(r, 0, "half-close then close: back-end with --max-connections=1 started");
	if (r < 0)
		return;
	c = gt_guest_conn(&b, 0, PORT, &gs, &fd);
	ok(c != NULL, "half-close then close: connected");
	if (!c)
		goto out;
	/* Bytes the guest leaves unread: a guest (Linux too) with data still to read
	 * does not close by itself when the host's side is gone. */
	r = (int)write(fd, "unread", 6);
	shutdown(fd, SHUT_WR);
	for (t0 = gs_now_ms(); !gs_conn_peer_shut_send(c) && gs_now_ms() - t0 < 5000;)
		gs_step(gs, NULL, 0, 10);
	ok(r == 6 && gs_conn_peer_shut_send(c) && gs_conn_state(c) == GS_CONNECTED &&
			gs_conn_rx_pending(c) == 6,
		"half-close then close: after the host's shutdown(SHUT_WR) the guest has 6 bytes "
		"and SHUTDOWN(SEND), still connected");
	/* Later than the close timeout would have run from the EOF. */
	for (t0 = gs_now_ms(); gs_now_ms() - t0 < 2000;)
		gs_step(gs, NULL, 0, 20);
	close(fd);
	fd = -1;
	r = wait_reset(gs, c, &secs);
	ok(r,
		"half-close then close: a guest keeping it gets RST within the close timeout + 7 s "
		"of the close (after %.1f s)",
		secs);
	/* Before the guest's own close: the slot was freed by the back-end. */
	r = gt_host_connect(&b, gs, PORT, 5000, &fd);
	is_int(r, 0, "half-close then close: the slot is free again: a new host client connects");
	gs_conn_close(c);
	ok(r == 0 && (c = accept_one(gs, PORT, 5000)) != NULL,
		"half-close then close: and the guest accepts it");
	is_int(gs_violations(gs), 0, "half-close then close: no protocol violation (%s)",
		gs_last_violation(gs));
	gs_conn_close(c);
out:
	if (fd >= 0)
		close(fd);
	gs_free(gs);
	is_int(gt_backend_stop(&b, NULL), 0, "half-close then close: back-end exits cleanly");
}

/* A guest opening every connection it can to a host listener takes at most three
 * quarters of --max-connections; a host client still gets in. */
static void test_no_lockout(void)
{
	static const char *args[] = { "--max-connections=8", "--memory-budget=1048576", NULL };
	struct gs_conn *c[8] = { 0 };
	struct gt_backend b = { 0 };
	struct gs_options o;
	struct gs *gs = NULL;
	unsigned connected = 0, refused = 0;
	char path[400];
	int lfd = -1, fd = -1, r;

	r = gt_backend_start(&b, args);
	is_int(r, 0, "lockout: back-end with --max-connections=8 started");
	if (r < 0)
		return;
	snprintf(path, sizeof(path), "%s_%u", b.uds_path, 7100);
	gt_options(&o, &b);
	r = gt_unix_listen(path, &lfd);
	r = r < 0 ? r : gs_new(&o, &gs);
	is_int(r, 0, "lockout: host listener and guestsim");
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < ELEMENTSOF(c); i++) {
		r = gs_connect(gs, 7100, &c[i]);
		r = r < 0 ? r : gs_wait_connected(gs, c[i], 5000);
		if (r == 0)
			connected++;
		else if (r == -ECONNREFUSED)
			refused++;
	}
	ok(connected == 6 && refused == 2,
		"lockout: the guest got 6 of 8 slots, 2 refused (%u connected, %u refused)",
		connected, refused);
	gs_listen(gs, PORT);
	r = gt_host_connect(&b, gs, PORT, 5000, &fd);
	is_int(r, 0, "lockout: a host client still connects");
	ok(r == 0 && accept_one(gs, PORT, 5000) != NULL, "lockout: and the guest accepts it");
	is_int(gs_violations(gs), 0, "lockout: no protocol violation (%s)", gs_last_violation(gs));
out:
	if (fd >= 0)
		close(fd);
	for (unsigned i = 0; i < ELEMENTSOF(c); i++)
		gs_conn_close(c[i]);
	gs_free(gs);
	if (lfd >= 0)
		close(lfd);
	unlink(path);
	is_int(gt_backend_stop(&b, NULL), 0, "lockout: back-end exits cleanly");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	test_no_lockout();
	test_close_timeout();
	test_close_timeout_paused();
	test_close_timeout_half();
	test_flood();
	return tap_done();
}
