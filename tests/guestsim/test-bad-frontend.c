/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A broken or hostile vhost-user front-end against the real back-end: each bad
 * message gets an error reply or a disconnect (never a success, never a crash), a log
 * line, and the next front-end is served as if nothing happened. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"
#include "macro.h"

#define PORT 5000
#define MEM_SIZE (1u << 20)

static struct gt_backend b;
static uint64_t pf;

enum outcome { REJECTED, ACCEPTED, SURVIVE_ONLY };

struct region {
	uint64_t gpa, size, uaddr, offset;
};

static int prelude(int fd)
{
	uint64_t f = 0;
	int r;

	r = gs_vu_call(fd, VU_GET_FEATURES, 0, NULL, 0, NULL, 0, &f, sizeof(f), 3000);
	if (r < 0)
		return r;
	r = gs_vu_call(fd, VU_GET_PROTOCOL_FEATURES, 0, NULL, 0, NULL, 0, &pf, sizeof(pf), 3000);
	if (r < 0)
		return r;
	pf &= (1u << VU_PF_REPLY_ACK) | (1u << VU_PF_CONFIG) | (1u << VU_PF_MQ) |
	      (1u << VU_PF_CONFIGURE_MEM_SLOTS);
	r = gs_vu_call(fd, VU_SET_PROTOCOL_FEATURES, 0, &pf, sizeof(pf), NULL, 0, NULL, 0, 3000);
	if (r < 0)
		return r;
	return gs_vu_call(fd, VU_SET_OWNER, VU_FLAG_NEED_REPLY, NULL, 0, NULL, 0, NULL, 0, 3000);
}

/* Send with NEED_REPLY and classify: an error status or a disconnect is a rejection. */
static enum outcome bad(int fd, uint32_t req, const void *p, size_t size, const int *fds,
	unsigned nfds)
{
	int r = gs_vu_call(fd, req, VU_FLAG_NEED_REPLY, p, size, fds, nfds, NULL, 0, 3000);

	if (r == 0)
		return ACCEPTED;
	if (r == -ETIMEDOUT)
		diag("no answer and no disconnect within 3 s");
	return r == -EREMOTEIO || r == -ECONNRESET || r == -EPIPE ? REJECTED : ACCEPTED;
}

static int memfd_new(void)
{
	int m = memfd_create("bad-frontend", MFD_CLOEXEC);

	if (m >= 0 && ftruncate(m, MEM_SIZE) < 0) {
		close(m);
		return -1;
	}
	return m;
}

static uint8_t *map;

static int set_mem(int fd, int m)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} t = { 1, 0, { 0, MEM_SIZE, (uint64_t)(uintptr_t)map, 0 } };

	return gs_vu_call(fd, VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, &t, sizeof(t), &m, 1, NULL, 0,
		3000);
}

static enum outcome c_short_header(int fd)
{
	gs_vu_send_bytes(fd, "\x08\x00\x00\x00\x01\x00", 6);
	return SURVIVE_ONLY;
}

static enum outcome c_truncated_payload(int fd)
{
	struct vu_hdr h = { VU_SET_VRING_NUM, VU_FLAG_VERSION, 8 };

	gs_vu_send_bytes(fd, &h, sizeof(h));
	gs_vu_send_bytes(fd, "\0\0\0\0", 4);
	return SURVIVE_ONLY;
}

static enum outcome c_huge_size(int fd)
{
	struct vu_hdr h = { VU_SET_MEM_TABLE, VU_FLAG_VERSION | VU_FLAG_NEED_REPLY, 0x10000000 };
	char c;
	int r;

	gs_vu_send_bytes(fd, &h, sizeof(h));
	r = gs_vu_recv(fd, NULL, &c, 1, 3000);
	return r == -ECONNRESET || r > 0 ? REJECTED : ACCEPTED;
}

static enum outcome c_bad_version(int fd)
{
	struct vu_hdr h = { VU_GET_FEATURES, 0, 0 };
	uint64_t f;
	struct vu_hdr rh;
	int r;

	gs_vu_send_bytes(fd, &h, sizeof(h));
	r = gs_vu_recv(fd, &rh, &f, sizeof(f), 3000);
	return r == -ECONNRESET ? REJECTED : ACCEPTED;
}

static enum outcome c_features_short(int fd)
{
	return bad(fd, VU_SET_FEATURES, "\0\0\0\1", 4, NULL, 0);
}

static enum outcome c_vring_num_long(int fd)
{
	uint32_t st[3] = { 0, 128, 0 };

	return bad(fd, VU_SET_VRING_NUM, st, sizeof(st), NULL, 0);
}

static enum outcome c_config_short(int fd)
{
	return bad(fd, VU_SET_CONFIG, "\0\0\0\0", 4, NULL, 0);
}

static enum outcome c_config_oversized(int fd)
{
	struct {
		uint32_t offset, size, flags;
		uint8_t data[200];
	} cfg = { 0, 200, 0, { 0 } };

	return bad(fd, VU_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0);
}

static enum outcome c_mem_count_mismatch(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} t = { 2, 0, { 0, MEM_SIZE, (uint64_t)(uintptr_t)map, 0 } };
	int m = memfd_new();
	enum outcome o = bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), &m, 1);

	close(m);
	return o;
}

static enum outcome c_mem_too_many(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[9];
	} t = { 9, 0, { { 0 } } };

	for (unsigned i = 0; i < 9; i++)
		t.r[i] = (struct region){ (uint64_t)i << 20, MEM_SIZE, (uint64_t)(uintptr_t)map, 0 };
	return bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), NULL, 0);
}

static enum outcome c_mem_missing_fd(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} t = { 1, 0, { 0, MEM_SIZE, (uint64_t)(uintptr_t)map, 0 } };

	return bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), NULL, 0);
}

static enum outcome c_mem_overlap(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[2];
	} t = { 2, 0,
		{ { 0, MEM_SIZE, (uint64_t)(uintptr_t)map, 0 },
			{ MEM_SIZE / 2, MEM_SIZE / 2, (uint64_t)(uintptr_t)map + MEM_SIZE, 0 } } };
	int m[2] = { memfd_new(), memfd_new() };
	enum outcome o = bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), m, 2);

	close(m[0]);
	close(m[1]);
	return o;
}

static enum outcome c_mem_beyond_file(int fd)
{
	/* A region larger than the memfd behind it (mmap would SIGBUS on access). */
	struct {
		uint32_t n, pad;
		struct region r;
	} t = { 1, 0, { 0, 64ull << 20, (uint64_t)(uintptr_t)map, 0 } };
	int m = memfd_new();
	enum outcome o = bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), &m, 1);

	close(m);
	return o;
}

/* If such a region is accepted, a ring placed past the file's end must not SIGBUS. */
static enum outcome c_ring_beyond_file(int fd)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} t = { 1, 0, { 0, 64ull << 20, (uint64_t)(uintptr_t)map, 0 } };
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} a = { 1, 0, (uint64_t)(uintptr_t)map + (32ull << 20),
		(uint64_t)(uintptr_t)map + (32ull << 20) + 8192,
		(uint64_t)(uintptr_t)map + (32ull << 20) + 4096, 0 };
	uint32_t st[2] = { 1, 128 };
	uint64_t idx = 1, one = 1;
	int m = memfd_new(), e = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	uint64_t feat = (1ull << VIRTIO_F_VERSION_1) | (1ull << VU_F_PROTOCOL_FEATURES);
	enum outcome o = REJECTED;

	if (bad(fd, VU_SET_FEATURES, &feat, sizeof(feat), NULL, 0) == REJECTED ||
		bad(fd, VU_SET_MEM_TABLE, &t, sizeof(t), &m, 1) == REJECTED ||
		bad(fd, VU_SET_VRING_NUM, st, sizeof(st), NULL, 0) == REJECTED ||
		bad(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) == REJECTED ||
		bad(fd, VU_SET_VRING_CALL, &idx, sizeof(idx), &call, 1) == REJECTED ||
		bad(fd, VU_SET_VRING_KICK, &idx, sizeof(idx), &e, 1) == REJECTED ||
		bad(fd, VU_SET_VRING_ENABLE, (uint32_t[2]){ 1, 1 }, 8, NULL, 0) == REJECTED)
		goto out;
	if (write(e, &one, sizeof(one)) != sizeof(one))
		goto out;
	usleep(100000);
	o = SURVIVE_ONLY;
out:
	close(m);
	close(e);
	close(call);
	return o;
}

static enum outcome c_add_reg_overlap(int fd)
{
	struct {
		uint64_t pad;
		struct region r;
	} a = { 0, { MEM_SIZE / 2, MEM_SIZE, (uint64_t)(uintptr_t)map + MEM_SIZE * 4, 0 } };
	int m = memfd_new(), m2 = memfd_new();
	enum outcome o;

	if (!(pf & (1u << VU_PF_CONFIGURE_MEM_SLOTS))) {
		close(m);
		close(m2);
		return SURVIVE_ONLY;
	}
	set_mem(fd, m);
	o = bad(fd, VU_ADD_MEM_REG, &a, sizeof(a), &m2, 1);
	close(m);
	close(m2);
	return o;
}

static enum outcome c_rem_reg_unknown(int fd)
{
	struct {
		uint64_t pad;
		struct region r;
	} a = { 0, { 1ull << 40, MEM_SIZE, 12345 << 12, 0 } };

	if (!(pf & (1u << VU_PF_CONFIGURE_MEM_SLOTS)))
		return SURVIVE_ONLY;
	return bad(fd, VU_REM_MEM_REG, &a, sizeof(a), NULL, 0);
}

static enum outcome c_kick_two_fds(int fd)
{
	uint64_t idx = 0;
	int e[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	enum outcome o = bad(fd, VU_SET_VRING_KICK, &idx, sizeof(idx), e, 2);

	close(e[0]);
	close(e[1]);
	return o;
}

static enum outcome c_features_with_fd(int fd)
{
	uint64_t f = 1ull << VIRTIO_F_VERSION_1;
	int e = eventfd(0, EFD_CLOEXEC);
	enum outcome o = bad(fd, VU_SET_FEATURES, &f, sizeof(f), &e, 1);

	close(e);
	return o;
}

static enum outcome c_kick_missing_fd(int fd)
{
	uint64_t idx = 0; /* no NOFD flag, no fd */

	return bad(fd, VU_SET_VRING_KICK, &idx, sizeof(idx), NULL, 0);
}

static enum outcome c_num_bad_queue(int fd)
{
	uint32_t st[2] = { 5, 128 };

	return bad(fd, VU_SET_VRING_NUM, st, sizeof(st), NULL, 0);
}

static enum outcome c_kick_bad_queue(int fd)
{
	uint64_t idx = 200;
	int e = eventfd(0, EFD_CLOEXEC);
	enum outcome o = bad(fd, VU_SET_VRING_KICK, &idx, sizeof(idx), &e, 1);

	close(e);
	return o;
}

static enum outcome c_enable_bad_queue(int fd)
{
	uint32_t st[2] = { 2, 1 }; /* the event queue stays in QEMU */

	return bad(fd, VU_SET_VRING_ENABLE, st, sizeof(st), NULL, 0);
}

static enum outcome c_addr_bad_queue(int fd)
{
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} a = { 9, 0, 0, 0, 0, 0 };

	return bad(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static enum outcome c_get_base_bad_queue(int fd)
{
	uint32_t st[2] = { 7, 0 }, reply[2];
	struct vu_hdr h;
	int r;

	gs_vu_send(fd, VU_GET_VRING_BASE, 0, st, sizeof(st), NULL, 0);
	r = gs_vu_recv(fd, &h, reply, sizeof(reply), 3000);
	/* A disconnect, or anything but a vring state claiming queue 7. */
	return r == -ECONNRESET || r != 8 || reply[0] != 7 ? REJECTED : ACCEPTED;
}

static enum outcome ring_size(int fd, uint32_t num)
{
	uint32_t st[2] = { 0, num };

	return bad(fd, VU_SET_VRING_NUM, st, sizeof(st), NULL, 0);
}

static enum outcome c_num_not_pow2(int fd)
{
	return ring_size(fd, 100);
}

static enum outcome c_num_zero(int fd)
{
	return ring_size(fd, 0);
}

static enum outcome c_num_too_big(int fd)
{
	return ring_size(fd, 65536);
}

/* Rings outside memory: rejected at SET_VRING_ADDR, or at the latest when the ring
 * would start (KICK / ENABLE). */
static enum outcome ring_outside(int fd, uint64_t desc_off, uint64_t used_off)
{
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} a = { 1, 0, (uint64_t)(uintptr_t)map + desc_off, (uint64_t)(uintptr_t)map + used_off,
		(uint64_t)(uintptr_t)map + 8192, 0 };
	uint32_t st[2] = { 1, 128 };
	uint64_t idx = 1;
	int m = memfd_new(), e = eventfd(0, EFD_CLOEXEC);
	enum outcome o = ACCEPTED;

	if (set_mem(fd, m) < 0)
		goto out;
	gs_vu_call(fd, VU_SET_VRING_NUM, VU_FLAG_NEED_REPLY, st, sizeof(st), NULL, 0, NULL, 0, 3000);
	if (bad(fd, VU_SET_VRING_ADDR, &a, sizeof(a), NULL, 0) == REJECTED ||
		bad(fd, VU_SET_VRING_KICK, &idx, sizeof(idx), &e, 1) == REJECTED ||
		bad(fd, VU_SET_VRING_ENABLE, (uint32_t[2]){ 1, 1 }, 8, NULL, 0) == REJECTED)
		o = REJECTED;
out:
	close(m);
	close(e);
	return o;
}

static enum outcome c_ring_outside(int fd)
{
	return ring_outside(fd, 64ull << 20, 16384);
}

static enum outcome c_ring_straddles_end(int fd)
{
	return ring_outside(fd, 0, MEM_SIZE - 8); /* the used ring runs past the end */
}

static enum outcome c_unknown_request(int fd)
{
	return bad(fd, 999, NULL, 0, NULL, 0);
}

static enum outcome c_log_base(int fd)
{
	struct {
		uint64_t size, offset;
	} l = { 4096, 0 };
	int m = memfd_new();
	enum outcome o = bad(fd, VU_SET_LOG_BASE, &l, sizeof(l), &m, 1);

	close(m);
	return o;
}

static const struct {
	const char *name;
	enum outcome (*run)(int fd);
} cases[] = {
	{ "short message (6 header bytes, then close)", c_short_header },
	{ "payload shorter than the header says, then close", c_truncated_payload },
	{ "payload size 256 MiB", c_huge_size },
	{ "header without version 1", c_bad_version },
	{ "SET_FEATURES with a 4-byte payload", c_features_short },
	{ "SET_VRING_NUM with a 12-byte payload", c_vring_num_long },
	{ "SET_CONFIG shorter than its header", c_config_short },
	{ "SET_CONFIG of 200 bytes (space is 8)", c_config_oversized },
	{ "SET_MEM_TABLE nregions 2, one region sent", c_mem_count_mismatch },
	{ "SET_MEM_TABLE with 9 regions", c_mem_too_many },
	{ "SET_MEM_TABLE without its fd", c_mem_missing_fd },
	{ "SET_MEM_TABLE with overlapping regions", c_mem_overlap },
	{ "SET_MEM_TABLE region larger than its file", c_mem_beyond_file },
	{ "a ring in a region past its file's end", c_ring_beyond_file },
	{ "ADD_MEM_REG overlapping a region", c_add_reg_overlap },
	{ "REM_MEM_REG of an unknown region", c_rem_reg_unknown },
	{ "SET_VRING_KICK with two fds", c_kick_two_fds },
	{ "SET_FEATURES with an fd", c_features_with_fd },
	{ "SET_VRING_KICK without fd or NOFD flag", c_kick_missing_fd },
	{ "SET_VRING_NUM for queue 5", c_num_bad_queue },
	{ "SET_VRING_KICK for queue 200", c_kick_bad_queue },
	{ "SET_VRING_ENABLE for queue 2", c_enable_bad_queue },
	{ "SET_VRING_ADDR for queue 9", c_addr_bad_queue },
	{ "GET_VRING_BASE for queue 7", c_get_base_bad_queue },
	{ "ring size 100 (not a power of two)", c_num_not_pow2 },
	{ "ring size 0", c_num_zero },
	{ "ring size 65536", c_num_too_big },
	{ "ring outside guest memory", c_ring_outside },
	{ "ring running past the end of memory", c_ring_straddles_end },
	{ "unknown request 999", c_unknown_request },
	{ "SET_LOG_BASE (no logging support)", c_log_base },
};

static unsigned interesting_log_lines(void)
{
	return gt_backend_log_count(&b, "\n") - gt_backend_log_count(&b, "front-end connected") -
	       gt_backend_log_count(&b, "front-end disconnected") -
	       gt_backend_log_count(&b, "Waiting for the next");
}

/* The back-end logs after it answered: wait up to 5 s for its line. */
static bool logged_since(unsigned log0)
{
	for (int i = 0; i < 500; i++) {
		if (interesting_log_lines() > log0)
			return true;
		usleep(10000);
	}
	return false;
}

int main(void)
{
	struct gs_options o;
	int r;

	if (!gt_backend_binary()) {
		printf("1..0 # SKIP backend/vhost-user-vsock not built\n");
		return 0;
	}
	r = gt_backend_start(&b, NULL);
	is_int(r, 0, "back-end started");
	if (r < 0)
		return tap_done();
	/* An address range the front-end "owns" (any value works; this one is real). */
	map = mmap(NULL, MEM_SIZE * 8, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gt_options(&o, &b);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const char *name = cases[i].name;
		unsigned log0 = interesting_log_lines();
		struct gs *gs = NULL;
		enum outcome out;
		int fd;

		r = gs_vu_open(b.socket_path, &fd);
		r = r < 0 ? r : prelude(fd);
		if (!ok(r == 0, "%s: front-end connected", name))
			continue;
		out = cases[i].run(fd);
		if (out != SURVIVE_ONLY) {
			ok(out == REJECTED, "%s: error reply or disconnect", name);
			ok(logged_since(log0), "%s: the back-end logged why", name);
		}
		close(fd);
		ok(gt_backend_alive(&b), "%s: back-end alive", name);
		r = gs_new(&o, &gs);
		is_int(r, 0, "%s: the next front-end negotiates", name);
		if (r == 0) {
			gs_listen(gs, PORT);
			is_int(gt_check_service(&b, gs, PORT, 10000), 0, "%s: and is served", name);
			is_int(gs_violations(gs), 0, "%s: no violations (%s)", name,
				gs_last_violation(gs));
		}
		gs_free(gs);
		if (!gt_backend_alive(&b)) {
			gt_backend_stop(&b, NULL);
			if (gt_backend_start(&b, NULL) < 0)
				break;
		}
	}
	ok(gt_backend_alive(&b), "back-end alive at the end");
	is_int(gt_backend_stop(&b, NULL), 0, "clean exit");
	return tap_done();
}
