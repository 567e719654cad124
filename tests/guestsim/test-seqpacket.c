/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SEQPACKET (VIRTIO_VSOCK_F_SEQPACKET) against the real back-end: message boundaries
 * kept both ways for sizes from 1 byte to many rx buffers, guest-initiated connections
 * to a present, a missing and a wrong-type listener, host-initiated ones through
 * "<uds-path>.seqpacket", credit both ways, oversized messages, STREAM and SEQPACKET
 * side by side, a guest mixing the types on one connection, empty host records (not end
 * of stream), and a driver that did not negotiate the feature. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"
#include "guestsim-internal.h"
#include "macro.h"

#define MAX_MSG (256u * 1024)

static struct gt_backend b;
static uint64_t seed = 42;

/* The back-end's SEQPACKET listener, "<uds-path>.seqpacket". */
static int seq_addr(const struct gt_backend *bk, struct sockaddr_un *sa)
{
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	if (strlen(bk->uds_path) + sizeof(".seqpacket") > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, bk->uds_path);
	strcat(sa->sun_path, ".seqpacket");
	return 0;
}

static void port_path(const struct gt_backend *bk, uint32_t port, char *buf, size_t size)
{
	snprintf(buf, size, "%s_%u", bk->uds_path, port);
}

/* Wait for fd to become readable (or hung up), driving gs. */
static bool wait_readable(struct gs *gs, int fd, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;

	while (gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (gs_step(gs, &p, 1, 20) < 0)
			return false;
		if (p.revents)
			return true;
	}
	return false;
}

static int accept_host(struct gs *gs, int lfd, int timeout_ms)
{
	if (!wait_readable(gs, lfd, timeout_ms))
		return -ETIMEDOUT;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

/* One record from a host socket: its length (MSG_TRUNC: the real one), 0 at EOF. */
static ssize_t host_recv_msg(struct gs *gs, int fd, void *buf, size_t cap, int timeout_ms)
{
	if (!wait_readable(gs, fd, timeout_ms))
		return -ETIMEDOUT;
	for (;;) {
		ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC);

		if (n >= 0 || errno != EAGAIN)
			return n < 0 ? -errno : n;
		if (!wait_readable(gs, fd, timeout_ms))
			return -ETIMEDOUT;
	}
}

static int host_send_msg(struct gs *gs, int fd, const void *data, size_t len, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		ssize_t n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n == (ssize_t)len)
			return 0;
		if (n >= 0)
			return -EIO; /* a SOCK_SEQPACKET send is whole or nothing */
		if (errno != EAGAIN)
			return -errno;
		if (gs_now_ms() >= deadline)
			return -ETIMEDOUT;
		gs_step(gs, NULL, 0, 10);
	}
}

/* A host client on "<uds-path>.seqpacket": CONNECT record, then (optionally) one record
 * pipelined before the answer. 0 with *ret_fd after "OK ", -ECONNREFUSED on EOF. */
static int seq_host_connect(const struct gt_backend *bk, struct gs *gs, uint32_t port,
	const char *early, int *ret_fd)
{
	struct sockaddr_un sa;
	char line[64];
	ssize_t n;
	int fd;

	if (seq_addr(bk, &sa) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	gt_set_nonblock(fd);
	n = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n ||
		(early && send(fd, early, strlen(early), MSG_NOSIGNAL) != (ssize_t)strlen(early))) {
		close(fd);
		return -EIO;
	}
	n = host_recv_msg(gs, fd, line, sizeof(line) - 1, 8000);
	if (n <= 0 || n >= (ssize_t)sizeof(line) || strncmp(line, "OK ", 3) != 0 ||
		line[n - 1] != '\n') {
		close(fd);
		return n == -ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
	}
	*ret_fd = fd;
	return 0;
}

static struct gs_conn *accept_guest(struct gs *gs, uint32_t port)
{
	struct gs_conn *c = NULL;

	for (uint64_t deadline = gs_now_ms() + 5000;
		!(c = gs_accept(gs, port)) && gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return c;
}

static void settle(struct gs *gs, int ms)
{
	for (uint64_t deadline = gs_now_ms() + (uint64_t)ms; gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
}

static const size_t sizes[] = { 1, 2, 43, 44, 4052, 4095, 4096, 4097, 8192, 8193, 16384, 65535,
	65536, 65537, 100000, 200000 };

/* Boundaries both ways on an established pair (guest c, host fd). */
static void check_boundaries(struct gs *gs, struct gs_conn *c, int fd, const char *what)
{
	uint8_t *out = malloc(MAX_MSG), *in = malloc(MAX_MSG + 1);
	unsigned bad_g2h = 0, bad_h2g = 0;
	int flags = 0;

	if (!out || !in) {
		ok(0, "%s: memory", what);
		goto out;
	}
	/* Guest->host, whole packets and small packets (many per message). After a
	 * failure the rest would only wait for timeouts: stop there. */
	for (size_t i = 0; i < ELEMENTSOF(sizes) && !bad_g2h; i++)
		for (size_t pkt = 0; pkt <= 1 && !bad_g2h; pkt++) {
			size_t len = sizes[i];
			ssize_t n;

			gt_random(out, len, &seed);
			/* Small packets, but no more than the 64 tx slots guestsim has. */
			size_t psize = !pkt ? 0 : len <= 50000 ? 1000 : 8192;

			if (gs_send_msg_all(gs, c, out, len, false, psize, 5000) < 0) {
				bad_g2h++;
				continue;
			}
			n = host_recv_msg(gs, fd, in, MAX_MSG + 1, 5000);
			if (n != (ssize_t)len || memcmp(in, out, len) != 0) {
				diag("%s: guest->host %zu bytes (pkt %zu): host got %zd", what, len,
					psize, n);
				bad_g2h++;
			}
		}
	is_int(bad_g2h, 0, "%s: guest->host, %zu sizes (1 B .. 200 KB), each one host record", what,
		ELEMENTSOF(sizes));
	/* Host->guest. */
	for (size_t i = 0; i < ELEMENTSOF(sizes) && !bad_h2g; i++) {
		size_t len = sizes[i];
		uint64_t rw0 = gs_rx_op_count(gs, 5 /* RW */);
		ssize_t n;

		gt_random(out, len, &seed);
		if (host_send_msg(gs, fd, out, len, 5000) < 0) {
			bad_h2g++;
			continue;
		}
		n = gs_recv_msg_all(gs, c, in, MAX_MSG, &flags, 5000);
		if (n != (ssize_t)len || memcmp(in, out, len) != 0 || flags != 0 ||
			gs_rx_op_count(gs, 5) - rw0 != (len + GS_RX_BUF_SIZE - 1) / GS_RX_BUF_SIZE) {
			diag("%s: host->guest %zu bytes: guest got %zd flags %d in %llu packets",
				what, len, n, flags,
				(unsigned long long)(gs_rx_op_count(gs, 5) - rw0));
			bad_h2g++;
		}
	}
	is_int(bad_h2g, 0,
		"%s: host->guest, %zu sizes, each one guest message filling ceil(len / 4 KiB) rx "
		"buffers",
		what, ELEMENTSOF(sizes));
out:
	free(out);
	free(in);
}

/* Many messages queued before the other side reads: order and boundaries kept. */
static void check_burst(struct gs *gs, struct gs_conn *c, int fd, const char *what)
{
	enum { N = 200 };
	size_t lens[N];
	uint8_t buf[4096], in[4096];
	unsigned bad = 0;
	int flags;

	for (unsigned i = 0; i < N; i++) {
		lens[i] = 1 + (size_t)(i * 7919u) % 3000;
		memset(buf, (int)i, lens[i]);
		/* An empty message in between: dropped (it would read as EOF on the host). */
		if (i == N / 2 && gs_send_msg_all(gs, c, buf, 0, false, 0, 5000) < 0)
			bad++;
		if (gs_send_msg_all(gs, c, buf, lens[i], i % 2, 0, 5000) < 0)
			bad++;
	}
	settle(gs, 50);
	for (unsigned i = 0; i < N && !bad; i++) {
		ssize_t n = host_recv_msg(gs, fd, in, sizeof(in), 5000);

		memset(buf, (int)i, lens[i]);
		if (n != (ssize_t)lens[i] || memcmp(in, buf, lens[i]) != 0) {
			if (!bad)
				diag("%s: guest burst message %u: %zd bytes, want %zu", what, i, n,
					lens[i]);
			bad++;
		}
	}
	is_int(bad, 0,
		"%s: 200 guest messages queued before the host reads arrive in order, "
		"an empty one dropped",
		what);
	bad = 0;
	for (unsigned i = 0; i < 100; i++) {
		memset(buf, (int)i, lens[i]);
		if (host_send_msg(gs, fd, buf, lens[i], 5000) < 0)
			bad++;
	}
	settle(gs, 50);
	for (unsigned i = 0; i < 100 && !bad; i++) {
		ssize_t n = gs_recv_msg_all(gs, c, in, sizeof(in), &flags, 5000);

		memset(buf, (int)i, lens[i]);
		if (n != (ssize_t)lens[i] || memcmp(in, buf, lens[i]) != 0)
			bad++;
	}
	is_int(bad, 0, "%s: 100 host messages queued before the guest reads arrive in order", what);
}

static void test_guest_initiated(struct gs *gs)
{
	char path[400];
	struct gs_conn *c = NULL;
	int lfd = -1, sfd = -1, fd = -1, type = 0, r;
	socklen_t sl = sizeof(type);
	ssize_t n;
	char buf[16];

	r = gs_connect_type(gs, 6001, GS_TYPE_SEQPACKET, &c);
	is_int(r == 0 ? gs_wait_connected(gs, c, 5000) : r, -ECONNREFUSED,
		"guest SEQPACKET connect to a missing <uds-path>_6001: refused (RST)");
	gs_conn_close(c);

	port_path(&b, 6002, path, sizeof(path));
	ok(gt_unix_listen(path, &sfd) == 0, "SOCK_STREAM listener at <uds-path>_6002");
	r = gs_connect_type(gs, 6002, GS_TYPE_SEQPACKET, &c);
	is_int(r == 0 ? gs_wait_connected(gs, c, 5000) : r, -ECONNREFUSED,
		"guest SEQPACKET connect to a SOCK_STREAM listener: refused");
	gs_conn_close(c);
	ok(accept(sfd, NULL, NULL) < 0, "the stream listener got no connection");
	close(sfd);
	unlink(path);

	port_path(&b, 6003, path, sizeof(path));
	ok(gt_unix_listen_type(path, SOCK_SEQPACKET, &lfd) == 0,
		"SOCK_SEQPACKET listener at <uds-path>_6003");
	r = gs_connect_type(gs, 6003, GS_TYPE_SEQPACKET, &c);
	is_int(r == 0 ? gs_wait_connected(gs, c, 5000) : r, 0,
		"guest SEQPACKET connect to a present listener");
	if (r == 0 && gs_conn_state(c) == GS_CONNECTED) {
		fd = accept_host(gs, lfd, 5000);
		ok(fd >= 0, "host accepted the guest's connection");
		getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl);
		is_int(type, SOCK_SEQPACKET, "the host socket is SOCK_SEQPACKET");
		if (fd >= 0) {
			check_boundaries(gs, c, fd, "guest-initiated");
			check_burst(gs, c, fd, "guest-initiated");
			gs_conn_shutdown(c, SHUT_WR);
			n = host_recv_msg(gs, fd, buf, sizeof(buf), 5000);
			is_int(n, 0, "guest SHUTDOWN(SEND) -> host reads EOF");
			close(fd);
			is_int(gs_recv_msg_all(gs, c, buf, sizeof(buf), NULL, 5000), 0,
				"host close -> guest reads EOF");
		}
	}
	gs_conn_close(c);
	close(lfd);
	unlink(path);
}

static void test_host_initiated(struct gs *gs)
{
	struct gs_conn *c;
	char buf[64];
	int fd = -1, r, flags;
	ssize_t n;

	gs_listen_type(gs, 7000, GS_TYPE_SEQPACKET);
	r = seq_host_connect(&b, gs, 7000, "early record", &fd);
	is_int(r, 0,
		"host client on <uds-path>.seqpacket: CONNECT record answered with an OK record");
	if (r < 0)
		return;
	c = accept_guest(gs, 7000);
	ok(c && gs_conn_type(c) == GS_TYPE_SEQPACKET, "guest accepted a SEQPACKET connection");
	if (!c) {
		close(fd);
		return;
	}
	n = gs_recv_msg_all(gs, c, buf, sizeof(buf), &flags, 5000);
	ok(n == 12 && memcmp(buf, "early record", 12) == 0,
		"a record pipelined right after CONNECT arrives first, whole");
	check_boundaries(gs, c, fd, "host-initiated");
	n = gs_recv_msg_all(gs, c, buf, 4, &flags, 300);
	is_int(n, -ETIMEDOUT, "nothing else queued");
	ok(host_send_msg(gs, fd, "0123456789", 10, 5000) == 0 &&
			gs_recv_msg_all(gs, c, buf, 4, &flags, 5000) == 10 &&
			flags == GS_MSG_TRUNC && memcmp(buf, "0123", 4) == 0,
		"a guest reading with a short buffer gets MSG_TRUNC (the guest's business)");
	gs_conn_close(c);
	ok(wait_readable(gs, fd, 5000) && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0,
		"guest close -> host reads EOF");
	close(fd);

	/* The guest listens on 7001 for STREAM only: it answers a SEQPACKET REQUEST with RST. */
	gs_listen(gs, 7001);
	is_int(seq_host_connect(&b, gs, 7001, NULL, &fd), -ECONNREFUSED,
		"SEQPACKET client to a guest port that listens for STREAM: closed without OK");
	is_int(seq_host_connect(&b, gs, 7999, NULL, &fd), -ECONNREFUSED,
		"SEQPACKET client to a guest port nobody listens on: closed without OK");
	{
		struct sockaddr_un sa;
		char big[100];

		seq_addr(&b, &sa);
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		memset(big, '7', sizeof(big));
		memcpy(big, "CONNECT ", 8);
		big[sizeof(big) - 1] = '\n';
		ok(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
				send(fd, big, sizeof(big), 0) == sizeof(big) &&
				wait_readable(gs, fd, 5000) &&
				recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == 0,
			"a 100-byte CONNECT record is refused (closed)");
		ok(gt_backend_log_contains(&b, "Bad CONNECT record"), "and logged");
		if (fd >= 0)
			close(fd);
	}
}

/* An empty host record is not end of stream: it is dropped (virtio-vsock cannot carry
 * it) and the records after it arrive; only a real close ends the stream, even when
 * records are still queued behind an empty one at the close. */
static void check_empty_records(struct gs *gs, struct gs_conn *c, int fd, const char *what)
{
	char buf[16];
	int flags;
	ssize_t n;

	ok(host_send_msg(gs, fd, "a", 1, 5000) == 0 && host_send_msg(gs, fd, "", 0, 5000) == 0 &&
			host_send_msg(gs, fd, "b", 1, 5000) == 0,
		"%s: host sends 'a', an empty record, 'b'", what);
	n = gs_recv_msg_all(gs, c, buf, sizeof(buf), &flags, 5000);
	ok(n == 1 && buf[0] == 'a', "%s: guest gets 'a' (%zd)", what, n);
	n = gs_recv_msg_all(gs, c, buf, sizeof(buf), &flags, 5000);
	ok(n == 1 && buf[0] == 'b', "%s: then 'b', not end of stream (%zd)", what, n);
	ok(!gs_conn_peer_shut_send(c), "%s: no SHUTDOWN for the empty record", what);
	ok(host_send_msg(gs, fd, "", 0, 5000) == 0 && host_send_msg(gs, fd, "c", 1, 5000) == 0,
		"%s: host sends an empty record and 'c', then closes", what);
	close(fd);
	n = gs_recv_msg_all(gs, c, buf, sizeof(buf), &flags, 5000);
	ok(n == 1 && buf[0] == 'c', "%s: guest gets 'c', queued behind the empty record (%zd)",
		what, n);
	n = gs_recv_msg_all(gs, c, buf, sizeof(buf), &flags, 5000);
	is_int(n, 0, "%s: then end of stream (the close)", what);
}

static void test_empty_records(struct gs *gs)
{
	struct gs_conn *c = NULL;
	char path[400];
	int lfd = -1, fd = -1, r;

	gs_listen_type(gs, 7002, GS_TYPE_SEQPACKET);
	r = seq_host_connect(&b, gs, 7002, NULL, &fd);
	is_int(r, 0, "empty records, host-initiated: connected");
	if (r == 0) {
		c = accept_guest(gs, 7002);
		ok(c != NULL, "empty records, host-initiated: guest accepted");
		if (c)
			check_empty_records(gs, c, fd, "host-initiated");
		else
			close(fd);
		gs_conn_close(c);
	}

	port_path(&b, 6004, path, sizeof(path));
	ok(gt_unix_listen_type(path, SOCK_SEQPACKET, &lfd) == 0,
		"SOCK_SEQPACKET listener at <uds-path>_6004");
	r = gs_connect_type(gs, 6004, GS_TYPE_SEQPACKET, &c);
	is_int(r == 0 ? gs_wait_connected(gs, c, 5000) : r, 0,
		"empty records, guest-initiated: connected");
	if (r == 0 && gs_conn_state(c) == GS_CONNECTED) {
		fd = accept_host(gs, lfd, 5000);
		ok(fd >= 0, "empty records, guest-initiated: host accepted");
		if (fd >= 0)
			check_empty_records(gs, c, fd, "guest-initiated");
	}
	gs_conn_close(c);
	close(lfd);
	unlink(path);
}

/* STREAM and SEQPACKET connections at once, interleaved. */
static void test_mixed(struct gs *gs)
{
	enum { N = 4, SLEN = 100000, MSGS = 20 };
	char spath[400], qpath[400];
	struct gs_conn *sc[N] = { 0 }, *qc[N] = { 0 };
	int sfd[N], qfd[N], sl = -1, ql = -1;
	uint8_t *sdata = malloc(SLEN), *in = malloc(SLEN);
	unsigned bad = 0, connected = 0;

	for (int i = 0; i < N; i++)
		sfd[i] = qfd[i] = -1;
	port_path(&b, 8000, spath, sizeof(spath));
	port_path(&b, 8001, qpath, sizeof(qpath));
	if (!sdata || !in || gt_unix_listen(spath, &sl) < 0 ||
		gt_unix_listen_type(qpath, SOCK_SEQPACKET, &ql) < 0) {
		ok(0, "mixed: set-up");
		goto out;
	}
	gt_random(sdata, SLEN, &seed);
	for (int i = 0; i < N; i++) {
		if (gs_connect(gs, 8000, &sc[i]) == 0 && gs_wait_connected(gs, sc[i], 5000) == 0)
			sfd[i] = accept_host(gs, sl, 5000);
		if (gs_connect_type(gs, 8001, GS_TYPE_SEQPACKET, &qc[i]) == 0 &&
			gs_wait_connected(gs, qc[i], 5000) == 0)
			qfd[i] = accept_host(gs, ql, 5000);
		connected += (sfd[i] >= 0) + (qfd[i] >= 0);
	}
	is_int(connected, 2 * N, "mixed: %d STREAM and %d SEQPACKET connections", N, N);
	if (connected != 2 * N)
		goto out;
	/* Interleave: a slice of each stream, then a message on each seqpacket connection. */
	for (int m = 0; m < MSGS; m++)
		for (int i = 0; i < N; i++) {
			size_t off = (size_t)m * (SLEN / MSGS);
			uint8_t msg[600];

			if (gs_send_all(gs, sc[i], sdata + off, SLEN / MSGS, 5000) < 0)
				bad++;
			memset(msg, m * N + i, sizeof(msg));
			if (gs_send_msg_all(gs, qc[i], msg, 100 + (size_t)m * 20, false, 0, 5000) < 0)
				bad++;
			if (host_send_msg(gs, qfd[i], msg, 1 + (size_t)m, 5000) < 0)
				bad++;
		}
	for (int i = 0; i < N && !bad; i++) {
		size_t got = 0;

		while (got < SLEN) {
			ssize_t n;

			if (!wait_readable(gs, sfd[i], 5000))
				break;
			n = read(sfd[i], in + got, SLEN - got);
			if (n <= 0 && errno != EAGAIN)
				break;
			if (n > 0)
				got += (size_t)n;
		}
		if (got != SLEN || memcmp(in, sdata, SLEN) != 0)
			bad++;
		for (int m = 0; m < MSGS && !bad; m++) {
			uint8_t want[600];
			ssize_t n = host_recv_msg(gs, qfd[i], in, SLEN, 5000);

			memset(want, m * N + i, sizeof(want));
			if (n != 100 + m * 20 || memcmp(in, want, (size_t)n) != 0)
				bad++;
			n = gs_recv_msg_all(gs, qc[i], in, SLEN, NULL, 5000);
			if (n != 1 + m || memcmp(in, want, (size_t)n) != 0)
				bad++;
		}
	}
	is_int(bad, 0, "mixed: stream bytes intact and every message whole, both ways");
out:
	for (int i = 0; i < N; i++) {
		gs_conn_close(sc[i]);
		gs_conn_close(qc[i]);
		if (sfd[i] >= 0)
			close(sfd[i]);
		if (qfd[i] >= 0)
			close(qfd[i]);
	}
	if (sl >= 0)
		close(sl);
	if (ql >= 0)
		close(ql);
	unlink(spath);
	unlink(qpath);
	free(sdata);
	free(in);
}

/* A connected pair on guest port->host listener path (type chosen). */
static int pair(struct gs *gs, int lfd, uint32_t port, uint16_t type, struct gs_conn **ret_c,
	int *ret_fd)
{
	struct gs_conn *c;
	int fd;

	if (gs_connect_type(gs, port, type, &c) < 0)
		return -EIO;
	if (gs_wait_connected(gs, c, 5000) < 0) {
		gs_conn_close(c);
		return -ECONNREFUSED;
	}
	fd = accept_host(gs, lfd, 5000);
	if (fd < 0) {
		gs_conn_close(c);
		return -EIO;
	}
	*ret_c = c;
	*ret_fd = fd;
	return 0;
}

static bool reset_seen(struct gs *gs, struct gs_conn *c, int fd)
{
	char x[8];

	for (uint64_t deadline = gs_now_ms() + 5000;
		gs_conn_state(c) != GS_CLOSED && gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return gs_conn_state(c) == GS_CLOSED && gs_conn_error(c) == -ECONNRESET &&
	       wait_readable(gs, fd, 5000) && recv(fd, x, sizeof(x), MSG_DONTWAIT) <= 0;
}

/* A hostile guest: packets of the other type on an established connection. */
static void test_wrong_type(struct gs *gs)
{
	char spath[400], qpath[400];
	struct gs_conn *sc = NULL, *qc = NULL, *good = NULL;
	int sl = -1, ql = -1, sfd = -1, qfd = -1, gfd = -1;
	struct gs_vsock_hdr h;
	char buf[16];

	port_path(&b, 8100, spath, sizeof(spath));
	port_path(&b, 8101, qpath, sizeof(qpath));
	if (gt_unix_listen(spath, &sl) < 0 || gt_unix_listen_type(qpath, SOCK_SEQPACKET, &ql) < 0 ||
		pair(gs, sl, 8100, GS_TYPE_STREAM, &sc, &sfd) < 0 ||
		pair(gs, ql, 8101, GS_TYPE_SEQPACKET, &qc, &qfd) < 0 ||
		pair(gs, ql, 8101, GS_TYPE_SEQPACKET, &good, &gfd) < 0) {
		ok(0, "wrong type: set-up");
		goto out;
	}
	h = (struct gs_vsock_hdr){ .src_cid = gs_guest_cid(gs),
		.dst_cid = GS_HOST_CID,
		.src_port = gs_conn_local_port(sc),
		.dst_port = 8100,
		.len = 4,
		.type = GS_TYPE_SEQPACKET,
		.op = GS_OP_RW,
		.flags = GS_SEQ_EOM,
		.buf_alloc = 256 * 1024 };
	gs_send_raw_packet(gs, &h, "evil", 4);
	gs_conn_tx_account(sc, 4);
	ok(reset_seen(gs, sc, sfd), "SEQPACKET RW on a STREAM connection: reset both sides");
	h.src_port = gs_conn_local_port(qc);
	h.dst_port = 8101;
	h.type = GS_TYPE_STREAM;
	h.flags = 0;
	gs_send_raw_packet(gs, &h, "evil", 4);
	gs_conn_tx_account(qc, 4);
	ok(reset_seen(gs, qc, qfd), "STREAM RW on a SEQPACKET connection: reset both sides");
	ok(gs_send_msg_all(gs, good, "fine", 4, false, 0, 5000) == 0 &&
			host_recv_msg(gs, gfd, buf, sizeof(buf), 5000) == 4 &&
			!memcmp(buf, "fine", 4),
		"another SEQPACKET connection is unaffected");
out:
	gs_conn_close(sc);
	gs_conn_close(qc);
	gs_conn_close(good);
	{
		int fds[] = { sl, ql, sfd, qfd, gfd };

		for (size_t i = 0; i < ELEMENTSOF(fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	unlink(spath);
	unlink(qpath);
}

/* Credit both ways and messages too large, with small buffers on both sides. */
static void test_credit(void)
{
	const char *args[] = { "--buffer-size=16384", NULL };
	struct gt_backend cb;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	char path[400];
	uint8_t msg[20000], in[20000];
	int lfd = -1, fd = -1, flags;
	unsigned sent = 0, bad = 0;
	struct gs_vsock_hdr h;

	if (gt_backend_start(&cb, args) < 0) {
		ok(0, "credit: back-end started");
		return;
	}
	gt_options(&o, &cb);
	o.seqpacket = true;
	o.buf_alloc = 16384;
	if (gs_new(&o, &gs) < 0) {
		ok(0, "credit: guestsim negotiated");
		goto out;
	}
	port_path(&cb, 9000, path, sizeof(path));
	if (gt_unix_listen_type(path, SOCK_SEQPACKET, &lfd) < 0 ||
		pair(gs, lfd, 9000, GS_TYPE_SEQPACKET, &c, &fd) < 0) {
		ok(0, "credit: set-up");
		goto out;
	}
	/* Host->guest: the guest does not read; the back-end must stop at its buf_alloc. */
	for (unsigned i = 0; i < 10; i++) {
		memset(msg, (int)i, 5000);
		if (host_send_msg(gs, fd, msg, 5000, 5000) < 0)
			bad++;
	}
	settle(gs, 300);
	is_int(gs_conn_msgs_pending(c), 3,
		"host->guest: 3 messages of 5000 bytes fit the guest's 16 KiB, the 4th waits");
	is_int(gs_violations(gs), 0, "host->guest: credit never exceeded (%s)",
		gs_last_violation(gs));
	for (unsigned i = 0; i < 10 && !bad; i++) {
		ssize_t n = gs_recv_msg_all(gs, c, in, sizeof(in), &flags, 5000);

		memset(msg, (int)i, 5000);
		if (n != 5000 || memcmp(in, msg, 5000) != 0)
			bad++;
	}
	is_int(bad, 0, "host->guest: all 10 arrive whole and in order as the guest reads");

	/* Guest->host: the host does not read; the guest is held by credit. */
	memset(msg, 'g', sizeof(msg));
	while (sent < 1000 && gs_send_msg_all(gs, c, msg, 5000, false, 0, 300) == 0)
		sent++;
	ok(sent > 3 && sent < 1000,
		"guest->host: the guest is stopped by credit after %u messages "
		"of 5000 bytes",
		sent);
	bad = 0;
	for (unsigned i = 0; i < sent && !bad; i++)
		if (host_recv_msg(gs, fd, in, sizeof(in), 5000) != 5000)
			bad++;
	is_int(bad, 0, "guest->host: the host then reads all %u whole", sent);
	ok(gs_send_msg_all(gs, c, msg, 5000, false, 0, 5000) == 0 &&
			host_recv_msg(gs, fd, in, sizeof(in), 5000) == 5000,
		"guest->host: and the guest may send again");

	is_int(gs_conn_send_msg(c, msg, 20000, false, 0), -EMSGSIZE,
		"guest->host: a message larger than the back-end's buf_alloc is EMSGSIZE in the "
		"guest");

	/* Host->guest: a record larger than the guest's buf_alloc can never be taken whole. */
	ok(host_send_msg(gs, fd, msg, 20000, 5000) == 0 && reset_seen(gs, c, fd),
		"host->guest: a 20000-byte record for a guest with 16 KiB: connection reset");
	ok(gt_backend_log_contains(&cb, "exceeds the guest's buffer"), "and logged");
	gs_conn_close(c);
	close(fd);
	fd = -1;

	/* A guest ignoring credit: 16384 bytes without EOM, then one more byte. */
	if (pair(gs, lfd, 9000, GS_TYPE_SEQPACKET, &c, &fd) == 0) {
		h = (struct gs_vsock_hdr){ .src_cid = gs_guest_cid(gs),
			.dst_cid = GS_HOST_CID,
			.src_port = gs_conn_local_port(c),
			.dst_port = 9000,
			.type = GS_TYPE_SEQPACKET,
			.op = GS_OP_RW,
			.buf_alloc = 16384 };
		for (unsigned i = 0; i < 4; i++) {
			h.len = 4096;
			gs_send_raw_packet(gs, &h, msg, 4096);
			gs_conn_tx_account(c, 4096);
		}
		settle(gs, 100);
		ok(gs_conn_state(c) == GS_CONNECTED,
			"a message of exactly buf_alloc bytes so far is fine");
		h.len = 1;
		h.flags = GS_SEQ_EOM;
		gs_send_raw_packet(gs, &h, msg, 1);
		gs_conn_tx_account(c, 1);
		ok(reset_seen(gs, c, fd),
			"one byte more (an oversized message): RST, host sees EOF");
		ok(gt_backend_log_contains(&cb, "exceeded its credit"), "and logged");
		gs_conn_close(c);
		close(fd);
		fd = -1;
	} else
		ok(0, "oversized: set-up");
	is_int(gs_violations(gs), 0, "credit: no violation (%s)", gs_last_violation(gs));
out:
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	gs_free(gs);
	ok(gt_backend_alive(&cb), "credit: back-end alive");
	is_int(gt_backend_stop(&cb, NULL), 0, "credit: back-end exits cleanly");
}

/* Other ring layouts: rx buffers as a header descriptor plus a 4 KiB one (Linux before
 * 6.2), tx packets through indirect tables, memory in two regions, a small ring. */
static void test_layouts(void)
{
	struct gt_backend lb;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	char path[400];
	int lfd = -1, fd = -1;

	if (gt_backend_start(&lb, NULL) < 0) {
		ok(0, "layouts: back-end started");
		return;
	}
	gt_options(&o, &lb);
	o.seqpacket = true;
	o.rx_split_hdr = true;
	o.tx_indirect = true;
	o.regions = 2;
	if (gs_new(&o, &gs) < 0) {
		ok(0, "layouts: guestsim negotiated");
		goto out;
	}
	port_path(&lb, 9200, path, sizeof(path));
	if (gt_unix_listen_type(path, SOCK_SEQPACKET, &lfd) < 0 ||
		pair(gs, lfd, 9200, GS_TYPE_SEQPACKET, &c, &fd) < 0) {
		ok(0, "layouts: set-up");
		goto out;
	}
	check_boundaries(gs, c, fd, "split rx headers, indirect tx, two regions");
	is_int(gs_violations(gs), 0, "layouts: no violation (%s)", gs_last_violation(gs));
	gs_conn_close(c);
	unlink(path);
out:
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd);
	gs_free(gs);
	is_int(gt_backend_stop(&lb, NULL), 0, "layouts: back-end exits cleanly");
}

/* A driver that did not ack SEQPACKET gets none of it. */
static void test_not_negotiated(void)
{
	struct gt_backend nb;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c = NULL;
	char path[400];
	int lfd = -1, fd = -1, r;

	if (gt_backend_start(&nb, NULL) < 0) {
		ok(0, "not negotiated: back-end started");
		return;
	}
	gt_options(&o, &nb);
	if (gs_new(&o, &gs) < 0) {
		ok(0, "not negotiated: guestsim negotiated");
		goto out;
	}
	ok(!(gs_features(gs) & (1ull << VIRTIO_VSOCK_F_SEQPACKET)), "SEQPACKET not acked");
	port_path(&nb, 9100, path, sizeof(path));
	ok(gt_unix_listen_type(path, SOCK_SEQPACKET, &lfd) == 0, "SOCK_SEQPACKET listener present");
	r = gs_connect_type(gs, 9100, GS_TYPE_SEQPACKET, &c);
	is_int(r == 0 ? gs_wait_connected(gs, c, 5000) : r, -ECONNREFUSED,
		"SEQPACKET REQUEST without the feature: RST");
	gs_conn_close(c);
	ok(accept(lfd, NULL, NULL) < 0, "and the host listener saw no connection");
	gs_listen_type(gs, 9101, GS_TYPE_SEQPACKET);
	is_int(seq_host_connect(&nb, gs, 9101, NULL, &fd), -ECONNREFUSED,
		"host SEQPACKET client without the feature: closed without OK");
	gs_listen(gs, 9102);
	is_int(gt_check_service(&nb, gs, 9102, 10000), 0, "STREAM still works");
	is_int(gs_violations(gs), 0, "not negotiated: no violation (%s)", gs_last_violation(gs));
	unlink(path);
out:
	if (lfd >= 0)
		close(lfd);
	gs_free(gs);
	is_int(gt_backend_stop(&nb, NULL), 0, "not negotiated: back-end exits cleanly");
}

int main(void)
{
	struct gs_options o;
	struct gs *gs = NULL;
	int r;

	signal(SIGPIPE, SIG_IGN);
	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "back-end started");
	if (r < 0)
		return tap_done();
	gt_options(&o, &b);
	o.seqpacket = true;
	r = gs_new(&o, &gs);
	is_int(r, 0, "guestsim negotiated with SEQPACKET");
	if (r == 0) {
		ok(gs_features(gs) & (1ull << VIRTIO_VSOCK_F_SEQPACKET),
			"VIRTIO_VSOCK_F_SEQPACKET offered and acked");
		test_guest_initiated(gs);
		test_host_initiated(gs);
		test_empty_records(gs);
		test_mixed(gs);
		test_wrong_type(gs);
		gs_listen(gs, 5000);
		is_int(gt_check_service(&b, gs, 5000, 50000), 0, "STREAM service afterwards");
		is_int(gs_violations(gs), 0, "no violation (%s)", gs_last_violation(gs));
		gs_free(gs);
	}
	ok(gt_backend_alive(&b), "back-end alive");
	is_int(gt_backend_stop(&b, NULL), 0,
		"back-end exits cleanly (status 0, no sanitizer report)");
	test_credit();
	test_layouts();
	test_not_negotiated();
	return tap_done();
}
