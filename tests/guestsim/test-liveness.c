/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The back-end neither stalls nor spins: control packets owed while rx is dry
 * go out once the guest refills it (EVENT_IDX re-armed), credit carried by any
 * guest packet restarts host->guest data, and a broken rx ring with host data
 * pending costs no CPU. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gstest.h"
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
		struct gs_vsock_hdr h = { .src_cid = gs_guest_cid(gs), .dst_cid = 2,
			.src_port = 7000 + i, .dst_port = 9999, .type = 1, .op = GS_OP_RW,
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
		ssize_t n = gs_conn_recv(c, buf, 128 * 1024 - got < sizeof(buf) ? 128 * 1024 - got : sizeof(buf));
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
	ok(gs_hostile(gs, GS_BAD_READABLE_ON_RX, NULL) >= 0, "guest posts a readable rx descriptor");
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

int main(void)
{
	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	test_rst_backlog();
	test_credit_in_rw();
	test_broken_rx_no_spin();
	return tap_done();
}
