/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A hostile guest against the real back-end: each malformed chain or packet must
 * leave the process alive (ASan watching in the sanitizer build), the vhost-user
 * socket answering, other connections working where the ring is still sound, and a
 * front-end reconnect restoring service where the ring is broken. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"

#define PORT 5000

static struct gt_backend b;

static struct gs_conn *open_pair(struct gs *gs, int *ret_fd)
{
	uint64_t deadline = gs_now_ms() + 5000;
	struct gs_conn *c = NULL;

	if (gt_host_connect(&b, gs, PORT, 5000, ret_fd) < 0)
		return NULL;
	while (!(c = gs_accept(gs, PORT)) && gs_now_ms() < deadline)
		gs_step(gs, NULL, 0, 20);
	if (!c)
		close(*ret_fd);
	return c;
}

/* The bystander still carries bytes both ways. */
static bool pair_works(struct gs *gs, struct gs_conn *c, int fd)
{
	char in[6];

	if (write(fd, "hello!", 6) != 6)
		return false;
	if (gs_recv_all(gs, c, in, 6, 3000) != 6 || memcmp(in, "hello!", 6))
		return false;
	if (gs_send_all(gs, c, "world!", 6, 3000) < 0)
		return false;
	for (uint64_t deadline = gs_now_ms() + 3000; gs_now_ms() < deadline;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		gs_step(gs, &p, 1, 20);
		if (p.revents & POLLIN)
			return recv(fd, in, 6, MSG_WAITALL) == 6 && !memcmp(in, "world!", 6);
	}
	return false;
}

static void settle(struct gs *gs, int ms)
{
	for (uint64_t deadline = gs_now_ms() + (uint64_t)ms; gs_now_ms() < deadline;)
		if (gs_step(gs, NULL, 0, 20) < 0)
			break;
}

static void one_kind(enum gs_hostile k)
{
	const char *name = gs_hostile_name(k);
	struct gs_conn *victim, *bystander;
	int vfd = -1, bfd = -1, r, lfd = -1;
	struct gs_options o;
	struct gs *gs = NULL;
	long rss0;
	unsigned broken0;
	char path[400];

	gt_options(&o, &b);
	o.quiet = true;
	r = gs_new(&o, &gs);
	if (!ok(r == 0, "%s: front-end up", name))
		return;
	gs_listen(gs, PORT);
	victim = open_pair(gs, &vfd);
	bystander = open_pair(gs, &bfd);
	if (!ok(victim && bystander, "%s: two connections open", name))
		goto out;
	if (k == GS_BAD_RW_BEFORE_RESPONSE) {
		/* A host listener that accepts, so the back-end is mid-connect at the RW. */
		snprintf(path, sizeof(path), "%s_%u", b.uds_path, gs_conn_peer_port(victim));
		gt_unix_listen(path, &lfd);
	}
	rss0 = gt_backend_rss_kb(&b);
	broken0 = gt_backend_log_count(&b, "broken");
	r = gs_hostile(gs, k, victim);
	is_int(r, 0, "%s: injected", name);
	if (k == GS_BAD_READABLE_ON_RX) {
		/* Make the back-end want an rx buffer: a host connect means a REQUEST. */
		int fd;

		if (gt_host_open(&b, &fd) == 0) {
			ok(write(fd, "CONNECT 5000\n", 13) == 13, "%s: host CONNECT to use rx", name);
			settle(gs, 300);
			close(fd);
		}
		ok(write(bfd, "x", 1) == 1, "%s: host data for the guest", name);
	}
	settle(gs, 300);
	ok(gt_backend_alive(&b), "%s: back-end alive", name);
	is_int(gs_vu_probe(gs), 0, "%s: vhost-user socket still answers", name);
	if (k == GS_BAD_CREDIT_VIOLATION)
		ok(gt_backend_rss_kb(&b) - rss0 < 8192, "%s: back-end RSS bounded (+%ld kB)", name,
			gt_backend_rss_kb(&b) - rss0);
	is_int(gs_violations(gs), 0, "%s: the back-end wrote nothing invalid (%s)", name,
		gs_last_violation(gs));
	if (!gs_hostile_breaks_ring(k)) {
		ok(pair_works(gs, bystander, bfd), "%s: the other connection keeps working", name);
		is_int(gt_check_service(&b, gs, PORT, 100000), 0, "%s: new connections work", name);
	} else {
		ok(gt_backend_log_count(&b, "broken") > broken0,
			"%s: the back-end logged the queue as broken", name);
		close(vfd);
		close(bfd);
		vfd = bfd = -1;
		victim = bystander = NULL;
		r = gs_reconnect(gs, 1ull << 32);
		is_int(r, 0, "%s: front-end reconnect accepted", name);
		is_int(r == 0 ? gt_check_service(&b, gs, PORT, 100000) : r, 0,
			"%s: service restored after reconnect", name);
	}
out:
	if (vfd >= 0)
		close(vfd);
	if (bfd >= 0)
		close(bfd);
	if (lfd >= 0) {
		close(lfd);
		unlink(path);
	}
	gs_free(gs);
}

int main(void)
{
	long ms;
	int r;

	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "back-end started");
	if (r < 0)
		return tap_done();
	for (unsigned k = 0; k < GS_BAD_MAX; k++) {
		if (!gt_backend_alive(&b)) {
			ok(0, "back-end died before %s; restarting it", gs_hostile_name(k));
			gt_backend_stop(&b, NULL);
			if (gt_backend_start(&b, NULL) < 0)
				break;
		}
		one_kind(k);
	}
	ok(gt_backend_alive(&b), "back-end alive at the end");
	r = gt_backend_stop(&b, &ms);
	is_int(r, 0, "clean exit after all of it");
	return tap_done();
}
