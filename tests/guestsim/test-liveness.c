/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The back-end neither stalls nor spins: control packets owed while rx is dry
 * go out once the guest refills it (EVENT_IDX re-armed), credit carried by any
 * guest packet restarts host->guest data, and a broken rx ring with host data
 * pending costs no CPU. A host port held by a guest-initiated connection is
 * never handed to a CONNECT client (the two would share one key). A front-end
 * truncating its memory file under the back-end's mapping costs only itself. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "gstest.h"
#include "guestsim-internal.h"
#include "../tap.h"

#define PORT 5000

static void step_for(struct gs *gs, unsigned ms)
{
	for (uint64_t end = gs_now_ms() + ms; gs_now_ms() < end;)
		gs_step(gs, NULL, 0, 10);
}

/* A back-end and a guest on it; queue_size 0 keeps guestsim's default. */
static bool start(struct gt_backend *b, struct gs_options *o, unsigned queue_size, bool quiet,
	struct gs **ret)
{
	if (!ok(gt_backend_start(b, NULL) >= 0, "back-end started"))
		return false;
	gt_options(o, b);
	if (queue_size) {
		o->queue_size = queue_size;
		o->rx_split_hdr = true;
		o->tx_indirect = true;
	}
	o->quiet = quiet;
	if (!ok(gs_new(o, ret) >= 0, "guest negotiated")) {
		gt_backend_stop(b, NULL);
		return false;
	}
	return true;
}

static struct gs_conn *host_to_guest(struct gt_backend *b, struct gs *gs, int *ret_fd)
{
	struct gs_conn *c = NULL;

	gs_listen(gs, PORT);
	if (gt_host_connect(b, gs, PORT, 5000, ret_fd) < 0)
		return NULL;
	for (uint64_t end = gs_now_ms() + 2000; !(c = gs_accept(gs, PORT)) && gs_now_ms() < end;)
		gs_step(gs, NULL, 0, 10);
	return c;
}

/* More RSTs owed than rx buffers: the rest must follow when the guest refills
 * its ring, without any further guest tx to wake the back-end. (Indirect tx
 * keeps all 50 raw packets within the 64-entry tx ring.) */
static void test_rst_backlog(void)
{
	enum { N = 50 };
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;

	if (!start(&b, &o, 64, true, &gs)) /* quiet: RSTs to raw packets are the point */
		return;
	step_for(gs, 200);
	for (int i = 0; i < N; i++) {
		struct gs_vsock_hdr h = { .src_cid = gs_guest_cid(gs),
			.dst_cid = 2,
			.src_port = 7000 + i,
			.dst_port = 9999,
			.type = 1,
			.op = GS_OP_RW,
			.buf_alloc = 65536 };
		gs_send_raw_packet(gs, &h, NULL, 0);
		usleep(20000); /* the back-end takes each packet while the guest leaves rx alone */
	}
	usleep(200000);
	step_for(gs, 3000);
	is_int(gs_rx_op_count(gs, GS_OP_RST), N,
		"every RST owed for unknown connections arrives after rx refills (32 rx buffers)");
	gs_free(gs);
	ok(gt_backend_stop(&b, NULL) == 0, "back-end exits cleanly");
}

/* The guest's fwd_cnt in an ordinary RW packet is credit too (virtio spec:
 * every header carries buf_alloc and fwd_cnt). */
static void test_credit_in_rw(void)
{
	enum { TOTAL = 1024 * 1024 };
	static char data[TOTAL], buf[65536];
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c;
	size_t off = 0, got = 0;
	int fd = -1;

	if (!start(&b, &o, 0, false, &gs))
		return;
	c = host_to_guest(&b, gs, &fd);
	if (!ok(c != NULL, "host client connected to the guest")) {
		gs_free(gs);
		gt_backend_stop(&b, NULL);
		return;
	}
	gt_set_nonblock(fd);
	/* Fill the guest's buffer: the back-end must stop at zero credit. */
	for (uint64_t end = gs_now_ms() + 1500; gs_now_ms() < end;) {
		ssize_t n = write(fd, data + off, TOTAL - off);
		if (n > 0)
			off += (size_t)n;
		gs_step(gs, NULL, 0, 10);
	}
	/* Read some, then say so only inside an RW packet, never a CREDIT_UPDATE. */
	while (got < 128 * 1024) {
		ssize_t n = gs_conn_recv(c, buf,
			128 * 1024 - got < sizeof(buf) ? 128 * 1024 - got : sizeof(buf));
		if (n <= 0)
			gs_step(gs, NULL, 0, 10);
		else
			got += (size_t)n;
	}
	ok(gs_conn_send(c, "x", 1) == 1, "guest sends one byte carrying its new fwd_cnt");
	for (uint64_t end = gs_now_ms() + 8000; gs_now_ms() < end && got < TOTAL;) {
		ssize_t n;
		if (off < TOTAL && (n = write(fd, data + off, TOTAL - off)) > 0)
			off += (size_t)n;
		gs_step(gs, NULL, 0, 10);
		while ((n = gs_conn_recv(c, buf, sizeof(buf))) > 0)
			got += (size_t)n;
	}
	is_int(got, TOTAL, "host->guest data resumes on credit carried by RW");
	is_int(gs_violations(gs), 0, "no protocol violation (credit respected)");
	close(fd);
	gs_free(gs);
	ok(gt_backend_stop(&b, NULL) == 0, "back-end exits cleanly");
}

/* A guest that breaks its rx ring while a host client has data waiting must
 * not make the back-end spin on the readable host socket. */
static void test_broken_rx_no_spin(void)
{
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *c;
	long t0, t1;
	int fd = -1;

	if (!start(&b, &o, 0, true, &gs))
		return;
	c = host_to_guest(&b, gs, &fd);
	ok(c != NULL, "host client connected to the guest");
	ok(gs_hostile(gs, GS_BAD_READABLE_ON_RX, NULL) >= 0,
		"guest posts a readable rx descriptor");
	step_for(gs, 300);
	ok(write(fd, "hello", 5) == 5, "host client writes while rx is broken");
	t0 = gt_backend_cpu_ms(&b);
	sleep(2);
	t1 = gt_backend_cpu_ms(&b);
	ok(t1 - t0 < 200, "back-end idle while rx is broken (%ld ms CPU in 2 s)", t1 - t0);
	ok(gt_backend_alive(&b), "back-end alive");
	close(fd);
	gs_free(gs);
	ok(gt_backend_stop(&b, NULL) == 0, "back-end exits cleanly");
}

/* Read the CONNECT answer line byte by byte, driving the guest. */
static int read_ok_port(struct gs *gs, int fd, uint32_t *ret_port)
{
	char buf[64];
	size_t len = 0;

	for (uint64_t end = gs_now_ms() + 5000; gs_now_ms() < end && len < sizeof(buf) - 1;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		gs_step(gs, &p, 1, 20);
		n = read(fd, buf + len, 1);
		if (n == 0)
			return -ECONNREFUSED;
		if (n == 1 && buf[len++] == '\n') {
			buf[len] = 0;
			if (strncmp(buf, "OK ", 3))
				return -EPROTO;
			*ret_port = (uint32_t)strtoul(buf + 3, NULL, 10);
			return 0;
		}
	}
	return -ETIMEDOUT;
}

static void test_host_port_not_shared(void)
{
	const uint32_t first = 1u << 30; /* the first port CONNECT would be given */
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;
	struct gs_conn *g = NULL, *h = NULL;
	char path[400];
	uint32_t port = 0;
	int lfd = -1, afd = -1, fd = -1;

	if (!start(&b, &o, 0, false, &gs))
		return;
	snprintf(path, sizeof(path), "%s_%u", b.uds_path, first);
	ok(gt_unix_listen(path, &lfd) == 0, "host listener for port 2^30");
	ok(gs_connect(gs, first, &g) == 0, "guest connects to host port 2^30");
	for (uint64_t end = gs_now_ms() + 3000;
		gs_now_ms() < end && gs_conn_state(g) == GS_CONNECTING;)
		gs_step(gs, NULL, 0, 10);
	ok(gs_conn_state(g) == GS_CONNECTED, "guest connection established");
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	/* The guest now listens on the port its connection came from. */
	gs_listen(gs, gs_conn_local_port(g));
	if (gt_host_open(&b, &fd) == 0) {
		char line[32];
		int n = snprintf(line, sizeof(line), "CONNECT %u\n", gs_conn_local_port(g));
		ok(write(fd, line, (size_t)n) == n && read_ok_port(gs, fd, &port) == 0,
			"CONNECT to the guest port of that connection answered");
	}
	ok(port != first, "CONNECT got a port other than the one in use (%u)", port);
	for (uint64_t end = gs_now_ms() + 2000;
		!(h = gs_accept(gs, gs_conn_local_port(g))) && gs_now_ms() < end;)
		gs_step(gs, NULL, 0, 10);
	ok(h && gs_conn_peer_port(h) == port, "the guest accepted it with that peer port");
	ok(gs_conn_state(g) == GS_CONNECTED, "the first connection is untouched");
	is_int(gs_violations(gs), 0, "no protocol violation");
	if (fd >= 0)
		close(fd);
	if (afd >= 0)
		close(afd);
	if (lfd >= 0)
		close(lfd);
	gs_free(gs);
	ok(gt_backend_stop(&b, NULL) == 0, "back-end exits cleanly");
}

static void test_truncated_memory(void)
{
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;
	uint64_t one = 1;

	if (!start(&b, &o, 0, true, &gs))
		return;
	step_for(gs, 200);
	ok(ftruncate(gs->mem_fd, 0) == 0, "front-end truncates its memory file");
	/* Any kick makes the back-end read the avail ring, now past the file's end. */
	ok(write(gs->vq[1].kick_fd, &one, sizeof(one)) == sizeof(one), "and kicks tx");
	usleep(500000);
	ok(gt_backend_alive(&b), "back-end survives the SIGBUS");
	ok(gt_backend_log_contains(&b, "truncated guest memory"),
		"and says why it drops the front-end");
	gs_free(gs);
	gs = NULL;
	gt_options(&o, &b);
	if (!ok(gs_new(&o, &gs) >= 0, "the next front-end negotiates"))
		gs = NULL;
	if (gs) {
		gs_listen(gs, PORT);
		is_int(gt_check_service(&b, gs, PORT, 100000), 0, "and carries data");
		gs_free(gs);
	}
	ok(gt_backend_stop(&b, NULL) == 0, "back-end exits cleanly");
}

int main(void)
{
	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	test_rst_backlog();
	test_credit_in_rw();
	test_broken_rx_no_spin();
	test_host_port_not_shared();
	test_truncated_memory();
	return tap_done();
}
