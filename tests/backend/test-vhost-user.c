/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vhost-user message validation over a real socket: each bad message gets a
 * failure reply or a disconnect, and the back-end keeps serving. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../tap.h"
#include "hybrid.h"
#include "vhost_user.h"

enum {
	GET_FEATURES = 1,
	SET_FEATURES = 2,
	SET_OWNER = 3,
	SET_MEM_TABLE = 5,
	SET_LOG_BASE = 6,
	SET_VRING_NUM = 8,
	SET_VRING_ADDR = 9,
	SET_VRING_BASE = 10,
	GET_VRING_BASE = 11,
	SET_VRING_KICK = 12,
	SET_VRING_CALL = 13,
	SET_VRING_ERR = 14,
	GET_PROTOCOL_FEATURES = 15,
	SET_PROTOCOL_FEATURES = 16,
	GET_QUEUE_NUM = 17,
	SET_VRING_ENABLE = 18,
	GET_CONFIG = 24,
	SET_CONFIG = 25,
	GET_MAX_MEM_SLOTS = 36,
	ADD_MEM_REG = 37,
	REM_MEM_REG = 38,
};
#define NEED_REPLY (1u << 3)
#define MEM_SIZE (1 << 20)
#define GPA 0x0
#define UVA 0x7f0000000000ull

struct hdr {
	uint32_t request, flags, size;
};

static struct event_base *base;
static struct vhost_user *vu;
static char sock_path[128];
static int cli = -1, memfd = -1, kicks, resets;
static uint8_t config[8] = { 42 };

static void on_kick(void *u, struct virtqueue *vq)
{
	kicks++;
}

static void on_reset(void *u)
{
	resets++;
}

static const struct vhost_user_device_ops ops = {
	.queue_kick = on_kick,
	.reset = on_reset,
	.config = config,
	.config_size = sizeof(config),
};

static void spin(int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static int connect_cli(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (cli >= 0)
		close(cli);
	cli = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, sock_path);
	if (connect(cli, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	spin(5);
	return 0;
}

static int send_msg(uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	const int *fds, unsigned nfds)
{
	struct hdr h = { req, 0x1 | flags, size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} ctl;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	if (nfds) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	return sendmsg(cli, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Run the loop until a reply arrives: its payload size, or -EPIPE on EOF,
 * -ETIMEDOUT when nothing came. */
static int recv_reply(void *buf, size_t cap)
{
	for (int i = 0; i < 1000; i++) {
		struct pollfd p = { .fd = cli, .events = POLLIN };
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 1) == 1) {
			struct hdr h;
			ssize_t n = recv(cli, &h, sizeof(h), MSG_WAITALL);
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return -EPIPE;
			if (n != sizeof(h) || !(h.flags & 0x4) || h.size > cap)
				return -EBADMSG;
			if (h.size && recv(cli, buf, h.size, MSG_WAITALL) != (ssize_t)h.size)
				return -EBADMSG;
			return (int)h.size;
		}
	}
	return -ETIMEDOUT;
}

/* Send with NEED_REPLY and return the acked u64 (0 ok, else failure), or < 0. */
static long long ack(uint32_t req, const void *payload, uint32_t size, const int *fds, unsigned n)
{
	uint64_t v = 99;
	int r;

	r = send_msg(req, NEED_REPLY, payload, size, fds, n);
	if (r < 0)
		return r;
	r = recv_reply(&v, sizeof(v));
	if (r < 0)
		return r;
	return r == 8 ? (long long)v : -EBADMSG;
}

static uint64_t get_u64(uint32_t req)
{
	uint64_t v = 0;

	send_msg(req, 0, NULL, 0, NULL, 0);
	return recv_reply(&v, sizeof(v)) == 8 ? v : UINT64_MAX;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static bool alive(void)
{
	/* The back-end answers a fresh front-end. */
	if (connect_cli() < 0)
		return false;
	return get_u64(GET_QUEUE_NUM) == 2;
}

static void negotiate(void)
{
	uint64_t f;

	f = get_u64(GET_FEATURES);
	send_msg(SET_FEATURES, 0, &f, 8, NULL, 0);
	f = get_u64(GET_PROTOCOL_FEATURES);
	send_msg(SET_PROTOCOL_FEATURES, 0, &f, 8, NULL, 0);
	spin(2);
}

struct region {
	uint64_t gpa, size, uva, off;
};

static void test_basic(void)
{
	uint8_t cfg[12 + 8] = {};
	uint64_t f;

	ok(connect_cli() == 0, "front-end connects");
	f = get_u64(GET_FEATURES);
	ok(!!(f & (1ull << 32)), "VERSION_1 offered");
	ok(!!(f & (1ull << 29)), "EVENT_IDX offered");
	ok(!!(f & (1ull << 28)), "INDIRECT_DESC offered");
	ok(!!(f & (1ull << 30)), "PROTOCOL_FEATURES offered");
	ok(!(f & (1ull << 1)), "SEQPACKET not offered (not implemented)");
	f = get_u64(GET_PROTOCOL_FEATURES);
	ok((f & 0x209) == 0x209, "MQ, REPLY_ACK and CONFIG offered");
	is_int(get_u64(GET_QUEUE_NUM), 2, "two queues");
	is_int(get_u64(GET_MAX_MEM_SLOTS), 32, "32 memory slots");
	negotiate();
	((uint32_t *)cfg)[1] = 8;
	send_msg(GET_CONFIG, 0, cfg, sizeof(cfg), NULL, 0);
	is_int(recv_reply(cfg, sizeof(cfg)), 20, "GET_CONFIG answered with 8 bytes of config");
	is_int(cfg[12], 42, "config space carries the CID");
	is_int(ack(SET_OWNER, NULL, 0, NULL, 0), 0, "SET_OWNER acked");
}

static void test_bad_messages(void)
{
	struct {
		uint32_t index, num;
	} st;
	uint64_t u;
	int efd = eventfd(0, EFD_CLOEXEC), fds[3];
	int before;

	negotiate();
	u = 1;
	is_int(ack(SET_FEATURES, &u, 4, NULL, 0), 1, "SET_FEATURES with 4 bytes: failure reply");
	uint64_t u2[2] = { 1, 0 };
	is_int(ack(SET_FEATURES, u2, 12, NULL, 0), 1, "SET_FEATURES with 12 bytes: failure reply");
	u = 1ull << 63;
	is_int(ack(SET_FEATURES, &u, 8, NULL, 0), 1, "unoffered feature bit: failure reply");
	st.index = 2;
	st.num = 64;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 1,
		"queue index 2 (event queue stays in QEMU): failure");
	st.index = 0xffffffff;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 1, "queue index 2^32-1: failure");
	st.index = 0;
	st.num = 100;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 1, "ring size 100 (not a power of two): failure");
	st.num = 65536;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 1, "ring size 65536: failure");
	st.num = 0;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 1, "ring size 0: failure");
	st.num = 32768;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 0, "ring size 32768 accepted");
	st.num = 70000;
	is_int(ack(SET_VRING_BASE, &st, 8, NULL, 0), 1, "ring base beyond 16 bits: failure");

	before = count_fds();
	u = 0; /* queue 0, with fd */
	is_int(ack(SET_VRING_CALL, &u, 8, NULL, 0), 1, "SET_VRING_CALL missing its fd: failure");
	fds[0] = fds[1] = fds[2] = efd;
	is_int(ack(SET_VRING_CALL, &u, 8, fds, 2), 1, "SET_VRING_CALL with 2 fds: failure");
	u = 0x100; /* "no fd" bit */
	is_int(ack(SET_VRING_KICK, &u, 8, fds, 1), 1, "SET_VRING_KICK nofd with an fd: failure");
	u = 5;
	is_int(ack(SET_VRING_KICK, &u, 8, fds, 1), 1, "SET_VRING_KICK for queue 5: failure");
	u = 0x10000;
	is_int(ack(SET_VRING_ERR, &u, 8, fds, 1), 1, "unknown bits in vring fd message: failure");
	u = 0;
	is_int(ack(SET_VRING_KICK, &u, 8, &memfd, 1), 1, "kick fd that is a plain file: failure");
	{
		/* A socket is pollable but no eventfd: with data queued it would stay
		 * readable and make the back-end spin. */
		int sp[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0) {
			is_int(ack(SET_VRING_KICK, &u, 8, &sp[0], 1), 1,
				"kick fd that is a socket: failure");
			close(sp[0]);
			close(sp[1]);
		}
	}
	is_int(ack(SET_OWNER, NULL, 0, fds, 3), 1, "SET_OWNER with 3 fds: failure");
	is_int(ack(SET_LOG_BASE, &u, 8, fds, 1), 1, "SET_LOG_BASE (never offered): refused");
	is_int(ack(77, NULL, 0, fds, 1), 1, "unknown request 77: failure reply");
	spin(5);
	is_int(count_fds(), before, "every fd sent with a refused message was closed");

	/* Memory tables. */
	struct {
		uint32_t n, pad;
		struct region r[8];
	} mt = { .n = 2 };
	mt.r[0] = (struct region){ GPA, MEM_SIZE / 2, UVA, 0 };
	mt.r[1] = (struct region){ GPA + 4096, MEM_SIZE / 2, UVA + MEM_SIZE, MEM_SIZE / 2 };
	fds[0] = fds[1] = memfd;
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 2 * 32, fds, 2), 1, "overlapping regions: failure");
	mt.r[1].gpa = GPA + MEM_SIZE / 2;
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 2 * 32, fds, 1), 1, "2 regions with 1 fd: failure");
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 32, fds, 2), 1,
		"table size not matching the count: failure");
	mt.n = 9;
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 2 * 32, fds, 2), 1, "9 regions: failure");
	mt.n = 0;
	is_int(ack(SET_MEM_TABLE, &mt, 8, NULL, 0), 1, "0 regions: failure");
	mt.n = 1;
	mt.r[0] = (struct region){ GPA, MEM_SIZE, UVA, UINT64_MAX - 100 };
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 32, fds, 1), 1, "mmap offset overflow: failure");
	mt.r[0] = (struct region){ GPA, 4 * MEM_SIZE, UVA, 0 };
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 32, fds, 1), 1, "region larger than its file: failure");
	mt.n = 2;
	mt.r[0] = (struct region){ GPA, MEM_SIZE / 2, UVA, 0 };
	is_int(ack(SET_MEM_TABLE, &mt, 8 + 2 * 32, fds, 2), 0, "two good regions accepted");
	struct {
		uint64_t pad;
		struct region r;
	} mr = { 0, { GPA + 4096, 4096, UVA + 8 * MEM_SIZE, 0 } };
	is_int(ack(ADD_MEM_REG, &mr, sizeof(mr), fds, 1), 1, "ADD_MEM_REG overlapping: failure");
	is_int(ack(ADD_MEM_REG, &mr, sizeof(mr), NULL, 0), 1, "ADD_MEM_REG without fd: failure");
	mr.r.gpa = GPA + 16 * MEM_SIZE;
	is_int(ack(ADD_MEM_REG, &mr, sizeof(mr), fds, 1), 0, "ADD_MEM_REG good");
	is_int(ack(REM_MEM_REG, &mr, sizeof(mr), NULL, 0), 0, "REM_MEM_REG of it");
	is_int(ack(REM_MEM_REG, &mr, sizeof(mr), NULL, 0), 1, "REM_MEM_REG again: failure");

	/* Rings. */
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} a = { 0, 0, UVA, UVA + 0x2000, UVA + 0x1000, 0 };
	st.index = 0;
	st.num = 64;
	is_int(ack(SET_VRING_NUM, &st, 8, NULL, 0), 0, "ring size 64");
	a.desc = UVA + MEM_SIZE - 64;
	is_int(ack(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1,
		"descriptor table past memory: failure");
	a.desc = UVA + 3 * MEM_SIZE;
	is_int(ack(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1,
		"descriptor table outside memory: failure");
	a.desc = UVA + 8;
	is_int(ack(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1,
		"misaligned descriptor table: failure");
	a.desc = UVA;
	a.index = 3;
	is_int(ack(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 1, "SET_VRING_ADDR queue 3: failure");
	a.index = 0;
	is_int(ack(SET_VRING_ADDR, &a, 39, NULL, 0), 1, "SET_VRING_ADDR 39 bytes: failure");
	is_int(ack(SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0, "good ring addresses");
	kicks = 0;
	u = 0;
	fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	is_int(ack(SET_VRING_KICK, &u, 8, fds, 1), 0, "kick fd");
	is_int(kicks, 0, "protocol features negotiated: not started before enable");
	st.index = 0;
	st.num = 1;
	is_int(ack(SET_VRING_ENABLE, &st, 8, NULL, 0), 0, "enable");
	is_int(kicks, 1, "ring started once enabled");
	uint64_t one = 1;
	if (write(fds[0], &one, 8) != 8)
		diag("write failed");
	spin(10);
	is_int(kicks, 2, "a kick reaches the device");
	st.num = 7;
	is_int(ack(SET_VRING_ENABLE, &st, 8, NULL, 0), 1, "enable value 7: failure");
	st.index = 0;
	send_msg(GET_VRING_BASE, 0, &st, 8, NULL, 0);
	is_int(recv_reply(&st, sizeof(st)), 8, "GET_VRING_BASE answered");
	if (write(fds[0], &one, 8) != 8)
		diag("write failed");
	spin(10);
	is_int(kicks, 2, "a stopped ring hears no kicks");
	close(fds[0]);
	uint8_t cfg[12 + 8] = {};
	((uint32_t *)cfg)[0] = 4;
	((uint32_t *)cfg)[1] = 8;
	is_int(ack(SET_CONFIG, cfg, sizeof(cfg), NULL, 0), 1,
		"SET_CONFIG past the config space: failure");
	((uint32_t *)cfg)[0] = 0;
	is_int(ack(SET_CONFIG, cfg, sizeof(cfg), NULL, 0), 1, "SET_CONFIG (read-only): failure");
	ok(alive(), "back-end still serving after all of that");
	close(efd);
}

static void test_disconnects(void)
{
	struct hdr h = { GET_FEATURES, 1, 0 };
	uint8_t big[64] = {};
	uint64_t u;
	int r;

	resets = 0;
	ok(connect_cli() == 0, "connect");
	if (write(cli, &h, 6) != 6)
		diag("write failed");
	close(cli);
	cli = -1;
	spin(10);
	ok(resets >= 1, "short message then close: front-end dropped, device reset");
	ok(alive(), "back-end serves the next front-end");

	h = (struct hdr){ GET_FEATURES, 1, 100000 };
	if (write(cli, &h, sizeof(h)) != sizeof(h))
		diag("write failed");
	is_int(recv_reply(big, sizeof(big)), -EPIPE, "oversized payload: disconnected");
	ok(alive(), "back-end serves the next front-end");

	h = (struct hdr){ GET_FEATURES, 2, 0 };
	if (write(cli, &h, sizeof(h)) != sizeof(h))
		diag("write failed");
	is_int(recv_reply(big, sizeof(big)), -EPIPE, "wrong version: disconnected");
	ok(alive(), "back-end serves the next front-end");

	u = 0;
	send_msg(GET_FEATURES, 0, &u, 8, NULL, 0);
	r = recv_reply(big, sizeof(big));
	is_int(r, -EPIPE, "GET_FEATURES with a payload (reply impossible): disconnected");
	ok(alive(), "back-end serves the next front-end");

	send_msg(GET_CONFIG, 0, big, 12 + 40, NULL, 0);
	is_int(recv_reply(big, sizeof(big)), -EPIPE,
		"GET_CONFIG beyond the config space: disconnected");
	ok(alive(), "back-end serves the next front-end");

	/* Too many fds for one message: more than the 8 we accept. */
	int many[12];
	for (int i = 0; i < 12; i++)
		many[i] = memfd;
	int before = count_fds();
	send_msg(SET_OWNER, 0, NULL, 0, many, 12);
	is_int(recv_reply(big, sizeof(big)), -EPIPE, "12 fds with one message: disconnected");
	spin(5);
	ok(count_fds() <= before, "no fd leaked");
	ok(alive(), "back-end serves the next front-end");
}

int main(void)
{
	char dir[] = "/tmp/test-vhost-user.XXXXXX";
	int lfd;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/vu.sock", dir);
	memfd = memfd_create("guest", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
		return 1;
	base = event_base_new();
	lfd = hybrid_listen(sock_path, 0600, (gid_t)-1, 4);
	ok(lfd >= 0, "listening");
	is_int(vhost_user_new(base, lfd, &ops, NULL, &vu), 0, "vhost_user_new");
	test_basic();
	test_bad_messages();
	test_disconnects();
	if (cli >= 0)
		close(cli);
	vu = vhost_user_free(vu);
	event_base_free(base);
	close(memfd);
	unlink(sock_path);
	rmdir(dir);
	return tap_done();
}
