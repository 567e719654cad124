/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The back-end against QEMU 7.2's vhost-user message sequence for vhost-user-vsock-pci:
 * negotiation, GET_CONFIG, ring start, GET_VRING_BASE on stop, REPLY_ACK on every
 * request, front-end disconnect and reconnect with new memory, program conventions. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"

#define PORT 5000

static void check_sequence(struct gs *gs)
{
	/* QEMU 7.2 with a back-end offering MQ, REPLY_ACK, CONFIG (+ mem slots if offered). */
	const uint32_t *sent;
	unsigned n = gs_sent_requests(gs, &sent), i = 0;
	uint32_t want[40];
	char got_s[256] = "", want_s[256] = "";

	want[i++] = VU_GET_FEATURES;
	want[i++] = VU_GET_PROTOCOL_FEATURES;
	want[i++] = VU_SET_PROTOCOL_FEATURES;
	if (gs_protocol_features(gs) & (1u << VU_PF_MQ))
		want[i++] = VU_GET_QUEUE_NUM;
	if (gs_protocol_features(gs) & (1u << VU_PF_CONFIGURE_MEM_SLOTS))
		want[i++] = VU_GET_MAX_MEM_SLOTS;
	want[i++] = VU_SET_OWNER;
	want[i++] = VU_GET_FEATURES;
	want[i++] = VU_SET_VRING_CALL;
	want[i++] = VU_SET_VRING_CALL;
	want[i++] = VU_GET_CONFIG;
	want[i++] = VU_SET_FEATURES;
	want[i++] = VU_SET_MEM_TABLE;
	for (unsigned q = 0; q < 2; q++) {
		want[i++] = VU_SET_VRING_NUM;
		want[i++] = VU_SET_VRING_BASE;
		want[i++] = VU_SET_VRING_ADDR;
		want[i++] = VU_SET_VRING_KICK;
		want[i++] = VU_SET_VRING_CALL;
	}
	want[i++] = VU_SET_VRING_ENABLE;
	want[i++] = VU_SET_VRING_ENABLE;
	for (unsigned k = 0; k < n; k++)
		snprintf(got_s + strlen(got_s), sizeof(got_s) - strlen(got_s), "%u ", sent[k]);
	for (unsigned k = 0; k < i; k++)
		snprintf(want_s + strlen(want_s), sizeof(want_s) - strlen(want_s), "%u ", want[k]);
	is_str(got_s, want_s, "the whole QEMU 7.2 sequence was sent and answered");
}

static void check_vring_base(struct gt_backend *b, struct gs *gs)
{
	struct {
		uint32_t index, num;
	} st = { 0, 0 }, reply = { 99, 99 };
	int r;

	/* Stop like QEMU: GET_VRING_BASE per ring; the reply carries the ring index. */
	for (uint32_t q = 0; q < 2; q++) {
		st.index = q;
		r = gs_vu_call(gs_vu_fd(gs), VU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
			sizeof(reply), 5000);
		is_int(r, 8, "GET_VRING_BASE(%u) answered with a vring state", q);
		is_int(reply.index, q, "GET_VRING_BASE(%u) reply names the ring", q);
		if (q == 1)
			is_int(reply.num, gs_avail_idx(gs, 1),
				"tx ring base: every chain the guest made available was consumed");
	}
	ok(gt_backend_alive(b), "back-end alive after the rings were stopped");
}

int main(void)
{
	struct gt_backend b;
	struct gs_options o;
	struct gs *gs = NULL;
	char cmd[4200], out[512] = "";
	long ms;
	FILE *f;
	int r;

	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "%s --print-capabilities", gt_backend_binary());
	f = popen(cmd, "r");
	if (f) {
		size_t n = fread(out, 1, sizeof(out) - 1, f);

		out[n] = 0;
		ok(WEXITSTATUS(pclose(f)) == 0, "--print-capabilities exits 0");
	}
	ok(strstr(out, "\"type\"") && strstr(out, "\"vsock\""),
		"--print-capabilities prints \"type\": \"vsock\"");

	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "back-end started and listening");
	if (r < 0)
		return tap_done();

	gt_options(&o, &b);
	r = gs_new(&o, &gs);
	is_int(r, 0, "negotiation like QEMU 7.2 succeeds");
	if (r < 0)
		goto out;
	check_sequence(gs);
	is_int(gs_guest_cid(gs), 3, "GET_CONFIG reports --guest-cid=3");
	ok(!!(gs_features(gs) & (1ull << VIRTIO_F_VERSION_1)), "VERSION_1 offered");
	ok(!!(gs_features(gs) & (1ull << VIRTIO_F_EVENT_IDX)), "EVENT_IDX offered");
	ok(!!(gs_features(gs) & (1ull << VU_F_PROTOCOL_FEATURES)), "PROTOCOL_FEATURES offered");
	ok(!!(gs_protocol_features(gs) & (1u << VU_PF_REPLY_ACK)), "REPLY_ACK offered");
	ok(!!(gs_protocol_features(gs) & (1u << VU_PF_CONFIG)), "CONFIG offered");
	gs_listen(gs, PORT);
	is_int(gt_check_service(&b, gs, PORT, 1000), 0,
		"a host client reaches the guest after start");
	check_vring_base(&b, gs);
	gs = gs_free(gs);

	/* The next front-end (a QEMU restart), this time with NEED_REPLY on every request. */
	o.ack_all = true;
	r = gs_new(&o, &gs);
	is_int(r, 0, "second front-end accepted; every request acknowledged with 0");
	if (r < 0)
		goto out;
	gs_listen(gs, PORT);
	is_int(gt_check_service(&b, gs, PORT, 70000), 0, "service with the second front-end");

	/* A front-end disconnect drops every connection: the host client sees EOF. */
	{
		int fd = -1;
		char c;
		ssize_t n = -1;

		r = gt_host_connect(&b, gs, PORT, 5000, &fd);
		is_int(r, 0, "a host client is connected before the front-end goes away");
		if (r == 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			gs_disconnect(gs);
			if (poll(&p, 1, 2000) == 1)
				n = read(fd, &c, 1);
			ok(n == 0 || (n < 0 && errno == ECONNRESET),
				"front-end disconnect: the host client is closed");
			close(fd);
		}
	}
	/* Reconnect with new memory at a different guest-physical base. */
	r = gs_reconnect(gs, 1ull << 32);
	is_int(r, 0, "reconnect with new memory at 4 GiB");
	gs_listen(gs, PORT);
	is_int(gt_check_service(&b, gs, PORT, 300000), 0, "service resumes after reconnect");
	ok(gs_violations(gs) == 0, "no protocol violations seen by the guest (%s)",
		gs_last_violation(gs));
	gs = gs_free(gs);

	o.ack_all = false;
	o.regions = 2;
	o.tx_indirect = true;
	o.rx_split_hdr = true;
	o.gpa_base = 1ull << 30;
	r = gs_new(&o, &gs);
	is_int(r, 0, "front-end with 2 memory regions, indirect tx, split rx headers");
	if (r == 0) {
		gs_listen(gs, PORT);
		is_int(gt_check_service(&b, gs, PORT, 500000), 0,
			"data crosses the region boundary intact both ways");
		ok(gs_violations(gs) == 0, "no violations (%s)", gs_last_violation(gs));
		gs = gs_free(gs);
	}
out:
	gs_free(gs);
	ok(gt_backend_alive(&b), "back-end alive at the end");
	r = gt_backend_stop(&b, &ms);
	is_int(r, 0, "SIGTERM: clean exit status 0");
	ok(ms < 1000, "SIGTERM: exited within a second (%ld ms)", ms);
	return tap_done();
}
