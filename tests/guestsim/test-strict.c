/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestsim's own strictness, without the real back-end: a scripted fake device
 * negotiates, then writes good and bad packets and used entries into the rings. Each
 * bad one must be counted as a violation, each good one must not, so the end-to-end
 * tests' "no violation" results mean something. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"
#include "guestsim.h"
#include "macro.h"

#define NUM 128

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static struct {
	int lfd, fd;
	uint64_t gpa, uaddr, size;
	uint64_t desc[2], used[2], avail[2];
	int call[2];
	uint16_t last_avail[2], used_idx[2];
} dev = { .call = { -1, -1 } };

static char sock_path[108];

static int dev_reply(int fd, const struct vu_hdr *h, const void *p, size_t n)
{
	struct vu_hdr r = { h->request, VU_FLAG_VERSION | VU_FLAG_REPLY, (uint32_t)n };

	if (write(fd, &r, sizeof(r)) != sizeof(r) || write(fd, p, n) != (ssize_t)n)
		return -EIO;
	return 0;
}

static void *dev_thread(void *arg)
{
	unsigned enables = 0;

	dev.fd = accept4(dev.lfd, NULL, NULL, SOCK_CLOEXEC);
	while (dev.fd >= 0 && enables < 2) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} control;
		uint8_t p[512];
		struct vu_hdr h;
		struct iovec iov = { &h, sizeof(h) };
		struct msghdr mh = { .msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = control.buf,
			.msg_controllen = sizeof(control.buf) };
		int fds[8], nfds = 0;
		uint64_t v = 0;

		if (recvmsg(dev.fd, &mh, MSG_WAITALL) != sizeof(h))
			break;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_type == SCM_RIGHTS) {
				nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nfds);
			}
		if (h.size > sizeof(p) || (h.size && recv(dev.fd, p, h.size, MSG_WAITALL) != h.size))
			break;
		switch (h.request) {
		case VU_GET_FEATURES:
			v = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) |
			    (1ull << VU_F_PROTOCOL_FEATURES);
			dev_reply(dev.fd, &h, &v, 8);
			continue;
		case VU_GET_PROTOCOL_FEATURES:
			v = (1u << VU_PF_MQ) | (1u << VU_PF_REPLY_ACK) | (1u << VU_PF_CONFIG);
			dev_reply(dev.fd, &h, &v, 8);
			continue;
		case VU_GET_QUEUE_NUM:
			v = 2;
			dev_reply(dev.fd, &h, &v, 8);
			continue;
		case VU_GET_CONFIG:
			v = 3;
			memcpy(p + 12, &v, 8);
			dev_reply(dev.fd, &h, p, 20);
			continue;
		case VU_SET_MEM_TABLE:
			memcpy(&dev.gpa, p + 8, 8);
			memcpy(&dev.size, p + 16, 8);
			memcpy(&dev.uaddr, p + 24, 8);
			break;
		case VU_SET_VRING_ADDR: {
			uint32_t i;

			memcpy(&i, p, 4);
			if (i < 2) {
				memcpy(&dev.desc[i], p + 8, 8);
				memcpy(&dev.used[i], p + 16, 8);
				memcpy(&dev.avail[i], p + 24, 8);
			}
			break;
		}
		case VU_SET_VRING_CALL:
			memcpy(&v, p, 8);
			if (nfds == 1 && (v & 0xff) < 2) {
				if (dev.call[v & 0xff] >= 0)
					close(dev.call[v & 0xff]);
				dev.call[v & 0xff] = fds[0];
				nfds = 0;
			}
			break;
		case VU_SET_VRING_ENABLE:
			enables++;
			break;
		}
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (h.flags & VU_FLAG_NEED_REPLY) {
			v = 0;
			dev_reply(dev.fd, &h, &v, 8);
		}
	}
	return NULL;
}

static uint8_t *gpa_ptr(uint64_t gpa)
{
	return (uint8_t *)(uintptr_t)(dev.uaddr + (gpa - dev.gpa));
}

static void signal_call(unsigned q)
{
	uint64_t one = 1;

	if (write(dev.call[q], &one, sizeof(one)) != sizeof(one))
		perror("call");
}

static void put_used(unsigned q, uint32_t id, uint32_t len)
{
	uint8_t *used = (uint8_t *)(uintptr_t)dev.used[q];
	uint16_t idx = dev.used_idx[q];

	memcpy(used + 4 + 8 * (idx % NUM), &id, 4);
	memcpy(used + 8 + 8 * (idx % NUM), &len, 4);
	dev.used_idx[q] = (uint16_t)(idx + 1);
	__atomic_store_n((uint16_t *)(used + 2), dev.used_idx[q], __ATOMIC_RELEASE);
	signal_call(q);
}

/* Device side: pop the next rx buffer, write a packet, complete it with used len. */
static void rx_inject(const struct gs_vsock_hdr *h, const void *payload, size_t len, int64_t used_len)
{
	uint16_t *avail = (uint16_t *)(uintptr_t)dev.avail[0];
	struct vring_desc *desc = (struct vring_desc *)(uintptr_t)dev.desc[0];
	uint16_t head = avail[2 + dev.last_avail[0]++ % NUM];
	uint8_t *buf = gpa_ptr(desc[head].addr);

	memcpy(buf, h, sizeof(*h));
	if (len)
		memcpy(buf + sizeof(*h), payload, len);
	put_used(0, head, used_len >= 0 ? (uint32_t)used_len : (uint32_t)(sizeof(*h) + len));
}

/* Device side: consume every tx chain (completing them); returns the last header. */
static struct gs_vsock_hdr tx_drain(unsigned *ret_count)
{
	uint16_t *avail = (uint16_t *)(uintptr_t)dev.avail[1];
	struct vring_desc *desc = (struct vring_desc *)(uintptr_t)dev.desc[1];
	struct gs_vsock_hdr h = { 0 };
	unsigned n = 0;

	while (dev.last_avail[1] != __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE)) {
		uint16_t head = avail[2 + dev.last_avail[1]++ % NUM];

		memcpy(&h, gpa_ptr(desc[head].addr), sizeof(h));
		put_used(1, head, 0);
		n++;
	}
	*ret_count = n;
	return h;
}

static void run(struct gs *gs)
{
	for (int i = 0; i < 5; i++)
		gs_step(gs, NULL, 0, 20);
}

static struct gs_vsock_hdr host_hdr(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct gs_vsock_hdr){ .src_cid = 2,
		.dst_cid = 3,
		.src_port = src_port,
		.dst_port = dst_port,
		.type = GS_TYPE_STREAM,
		.op = op,
		.buf_alloc = 65536 };
}

#define EXPECT(gs, before, want, what)                                   \
	do {                                                             \
		run(gs);                                                 \
		is_int(gs_violations(gs) - (before), want, "%s", what);  \
		if (want)                                                \
			diag("  flagged as: %s", gs_last_violation(gs)); \
	} while (0)

int main(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct gs_options o;
	struct gs_conn *c;
	struct gs *gs = NULL;
	struct gs_vsock_hdr h, t;
	pthread_t th;
	unsigned v, n;
	char buf[16];
	static uint8_t big[4096];
	int r;

	snprintf(sock_path, sizeof(sock_path), "/tmp/guestsim-strict.%d", (int)getpid());
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	dev.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dev.lfd < 0 || bind(dev.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		listen(dev.lfd, 1) < 0) {
		printf("1..0 # SKIP cannot listen on a Unix socket\n");
		return 0;
	}
	pthread_create(&th, NULL, dev_thread, NULL);
	gs_options_init(&o);
	o.socket_path = sock_path;
	o.quiet = true;
	o.buf_alloc = 8192;
	r = gs_new(&o, &gs);
	pthread_join(th, NULL);
	unlink(sock_path);
	is_int(r, 0, "guestsim negotiates with the scripted device");
	if (r < 0)
		return tap_done();
	gs_listen(gs, 5000);

	/* Sound traffic: REQUEST -> RESPONSE, RW within credit. */
	v = gs_violations(gs);
	h = host_hdr(GS_OP_REQUEST, 1u << 30, 5000);
	rx_inject(&h, NULL, 0, -1);
	EXPECT(gs, v, 0, "a good REQUEST is not a violation");
	t = tx_drain(&n);
	ok(n == 1 && t.op == GS_OP_RESPONSE && t.src_cid == 3 && t.dst_cid == 2 &&
			t.src_port == 5000 && t.dst_port == 1u << 30 && t.buf_alloc == 8192,
		"the guest answers with a well-formed RESPONSE carrying its buf_alloc");
	c = gs_accept(gs, 5000);
	ok(c != NULL, "and the connection can be accepted");
	if (!c)
		return tap_done();
	h = host_hdr(GS_OP_RW, 1u << 30, 5000);
	h.len = 5;
	rx_inject(&h, "hello", 5, -1);
	EXPECT(gs, v, 0, "RW within credit is not a violation");
	ok(gs_conn_recv(c, buf, sizeof(buf)) == 5 && !memcmp(buf, "hello", 5),
		"its payload is delivered");
	run(gs);
	tx_drain(&n);

	/* Each breach, one at a time. */
	h = host_hdr(GS_OP_RW, 1u << 30, 5000);
	h.len = 1;
	h.src_cid = 7;
	v = gs_violations(gs);
	rx_inject(&h, "x", 1, -1);
	EXPECT(gs, v, 1, "wrong src_cid");
	h.src_cid = 2;
	h.dst_cid = 4;
	v = gs_violations(gs);
	rx_inject(&h, "x", 1, -1);
	EXPECT(gs, v, 1, "wrong dst_cid");
	h.dst_cid = 3;
	h.op = 42;
	h.len = 0;
	v = gs_violations(gs);
	rx_inject(&h, NULL, 0, -1);
	EXPECT(gs, v, 1, "unknown op");
	h.op = GS_OP_RW;
	h.type = 2;
	h.len = 1;
	v = gs_violations(gs);
	rx_inject(&h, "x", 1, -1);
	EXPECT(gs, v, 1, "SEQPACKET type when only STREAM was negotiated");
	h.type = GS_TYPE_STREAM;
	h.len = 5000;
	v = gs_violations(gs);
	rx_inject(&h, NULL, 0, 44 + 4096);
	EXPECT(gs, v, 1, "header len larger than the rx buffer");
	h.len = 10;
	v = gs_violations(gs);
	rx_inject(&h, "0123456789", 10, 44 + 4);
	EXPECT(gs, v, 1, "used len inconsistent with the header len");
	h.len = 0;
	h.op = GS_OP_CREDIT_UPDATE;
	v = gs_violations(gs);
	rx_inject(&h, NULL, 0, 20);
	EXPECT(gs, v, 1, "used len shorter than a header");
	h.op = GS_OP_SHUTDOWN;
	h.flags = 8;
	v = gs_violations(gs);
	rx_inject(&h, NULL, 0, -1);
	EXPECT(gs, v, 1, "SHUTDOWN with unknown flags");
	h.flags = 0;
	h.op = GS_OP_RESPONSE;
	v = gs_violations(gs);
	rx_inject(&h, NULL, 0, -1);
	EXPECT(gs, v, 1, "RESPONSE on an established connection");
	h.op = GS_OP_RST;
	h.len = 3;
	v = gs_violations(gs);
	rx_inject(&h, "abc", 3, -1);
	EXPECT(gs, v, 1, "payload on a non-RW packet");
	h = host_hdr(GS_OP_RW, 1u << 30, 31337);
	h.len = 1;
	v = gs_violations(gs);
	rx_inject(&h, "x", 1, -1);
	EXPECT(gs, v, 1, "RW to a port the guest never used");
	h = host_hdr(GS_OP_RW, 1u << 30, 5000);
	h.fwd_cnt = 1000;
	h.len = 1;
	v = gs_violations(gs);
	rx_inject(&h, "x", 1, -1);
	EXPECT(gs, v, 1, "fwd_cnt beyond what the guest sent");
	/* Credit: buf_alloc 8192, 5 bytes consumed and advertised? Fill past it. */
	h.fwd_cnt = 0;
	h.len = 4096;
	v = gs_violations(gs);
	rx_inject(&h, big, 4096, -1);
	rx_inject(&h, big, 4096, -1);
	rx_inject(&h, big, 4096, -1);
	EXPECT(gs, v, 1, "RW beyond the guest's buf_alloc (credit violation)");

	/* Used ring breaches. */
	v = gs_violations(gs);
	put_used(1, 500, 0);
	EXPECT(gs, v, 1, "used id out of range");
	v = gs_violations(gs);
	put_used(1, 6, 0);
	EXPECT(gs, v, 1, "used id that was not outstanding");
	r = gs_send_all(gs, c, "z", 1, 1000);
	is_int(r, 0, "the guest sends one byte");
	t = tx_drain(&n);
	v = gs_violations(gs);
	ok(t.op == GS_OP_RW && t.len == 1, "as an RW of 1 byte");
	run(gs);
	is_int(gs_violations(gs) - v, 0, "completing it with used len 0 is fine");
	if (gs_send_all(gs, c, "z", 1, 1000) == 0) {
		uint16_t *avail = (uint16_t *)(uintptr_t)dev.avail[1];
		uint16_t head = avail[2 + dev.last_avail[1]++ % NUM];

		v = gs_violations(gs);
		put_used(1, head, 7);
		EXPECT(gs, v, 1, "tx used len > 0 (nothing on tx is device-writable)");
	}
	v = gs_violations(gs);
	if (write(dev.fd, "junk", 4) == 4)
		EXPECT(gs, v, 1, "unsolicited bytes on the vhost-user socket");
	v = gs_violations(gs);
	dev.used_idx[0] = (uint16_t)(dev.used_idx[0] + NUM + 3);
	put_used(0, 0, 44);
	EXPECT(gs, v, 1, "used idx jumping past the ring size");

	gs_free(gs);
	close(dev.fd);
	close(dev.lfd);
	close(dev.call[0]);
	close(dev.call[1]);
	return tap_done();
}
