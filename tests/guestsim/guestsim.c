/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestsim: QEMU's part (negotiation, memory, eventfds) and the guest kernel's part
 * (split rings, virtio-vsock with credit) in one poll loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "guestsim-internal.h"
#include "macro.h"

#define GS_CLOSE_TIMEOUT_MS 8000 /* Linux's VSOCK_CLOSE_TIMEOUT */
#define GS_FIRST_PORT 1024

struct gs_conn {
	struct gs *gs;
	struct gs_conn *hnext;
	uint32_t local_port, peer_port;
	enum gs_conn_state state;
	int error;
	bool accepted, listened; /* listened: created by an incoming REQUEST */
	bool closing;            /* gs_conn_close() called: owned by gs */
	uint64_t close_deadline;
	bool peer_shut_send, peer_shut_rcv, shut_send, shut_rcv;
	/* receive side */
	uint8_t *rxbuf;
	size_t rx_head, rx_len;
	uint32_t buf_alloc, fwd_cnt, rx_cnt, adv_fwd_cnt;
	/* send side */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	void *userdata;
	/* SEQPACKET: lengths of the whole messages in rxbuf (bit 31: EOR), a FIFO, and the
	 * bytes of the unfinished one after them. */
	uint16_t type;
	uint32_t *msgs;
	unsigned msg_head, msg_count, msg_cap;
	uint32_t partial;
};

#define GS_MSG_EOR_BIT (1u << 31)

struct gs_listen {
	struct gs_listen *next;
	uint32_t port;
	uint16_t type;
};

static const uint32_t gs_wanted_pf = (1u << VU_PF_MQ) | (1u << VU_PF_REPLY_ACK) |
				     (1u << VU_PF_CONFIG) | (1u << VU_PF_RESET_DEVICE) |
				     (1u << VU_PF_CONFIGURE_MEM_SLOTS);

uint64_t gs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void gs_options_init(struct gs_options *o)
{
	*o = (struct gs_options){
		.queue_size = 128,
		.regions = 1,
		.buf_alloc = 256 * 1024,
		.timeout_ms = 5000,
	};
}

int gs_violation(struct gs *gs, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(gs->last_violation, sizeof(gs->last_violation), fmt, ap);
	va_end(ap);
	gs->violations++;
	if (!gs->o.quiet)
		fprintf(stderr, "guestsim: VIOLATION: %s\n", gs->last_violation);
	return -EPROTO;
}

unsigned gs_violations(const struct gs *gs)
{
	return gs->violations;
}

const char *gs_last_violation(const struct gs *gs)
{
	return gs->violations ? gs->last_violation : "";
}

uint32_t gs_guest_cid(const struct gs *gs)
{
	return gs->cid;
}

uint64_t gs_features(const struct gs *gs)
{
	return gs->features;
}

uint64_t gs_protocol_features(const struct gs *gs)
{
	return gs->protocol_features;
}

int gs_vu_fd(const struct gs *gs)
{
	return gs->vu_fd;
}

unsigned gs_sent_requests(const struct gs *gs, const uint32_t **ret)
{
	*ret = gs->sent;
	return gs->nsent;
}

uint64_t gs_rx_op_count(const struct gs *gs, unsigned op)
{
	return op < ELEMENTSOF(gs->rx_ops) ? gs->rx_ops[op] : 0;
}

unsigned gs_tx_slots_free(const struct gs *gs)
{
	return gs->ntx_free;
}

unsigned gs_conn_count(const struct gs *gs)
{
	return gs->nconns;
}

uint64_t gs_gpa(const struct gs *gs, uint64_t off)
{
	return gs->o.gpa_base + off;
}

/* ---- memory and rings ---- */

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static size_t vq_bytes(unsigned num, uint64_t *avail, uint64_t *used)
{
	*avail = 16ull * num;
	*used = align_up(*avail + 6 + 2ull * num, 4096);
	return align_up(*used + 6 + 8ull * num, 4096);
}

static void gs_vq_free(struct gs_vq *vq)
{
	free(vq->busy);
	free(vq->wlen);
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	*vq = (struct gs_vq){ .kick_fd = -1, .call_fd = -1 };
}

static void gs_memory_free(struct gs *gs)
{
	for (unsigned i = 0; i < 2; i++)
		gs_vq_free(&gs->vq[i]);
	if (gs->mem)
		munmap(gs->mem, gs->mem_size);
	gs->mem = NULL;
	if (gs->mem_fd >= 0)
		close(gs->mem_fd);
	gs->mem_fd = -1;
	free(gs->tx_free);
	gs->tx_free = NULL;
	gs->ntx_free = 0;
}

static int gs_memory_new(struct gs *gs)
{
	unsigned n = gs->o.queue_size;
	uint64_t off = 0, a, u;
	size_t ring;

	ring = vq_bytes(n, &a, &u);
	for (unsigned i = 0; i < 2; i++) {
		struct gs_vq *vq = &gs->vq[i];

		*vq = (struct gs_vq){ .num = n,
			.desc_off = off,
			.avail_off = off + a,
			.used_off = off + u,
			.kick_fd = -1,
			.call_fd = -1 };
		off += ring;
	}
	gs->off_indirect = off;
	off += align_up((size_t)n * 4 * 16, 4096);
	gs->off_scratch = off;
	gs->scratch_size = align_up((size_t)(n + 16) * 16 * 2 + 65536, 4096);
	off += gs->scratch_size;
	gs->rx_stride = 64 + GS_RX_BUF_SIZE;
	gs->rx_bufs = gs->o.rx_split_hdr ? n / 2 : n;
	gs->off_rx = off;
	off += align_up((size_t)gs->rx_bufs * gs->rx_stride, 4096);
	gs->tx_stride = 64 + GS_MAX_PKT;
	gs->tx_slots = gs->o.tx_indirect ? n : n / 2;
	gs->off_tx = off;
	off += align_up((size_t)gs->tx_slots * gs->tx_stride, 4096);
	gs->mem_size = align_up(off, 2 << 20);
	/* With two regions the split falls inside the tx buffers, so packets span both. */
	gs->region_split = gs->o.regions > 1 ? align_up(gs->off_tx + gs->tx_stride / 2, 4096) : 0;

	gs->mem_fd = memfd_create("guestsim-ram", MFD_CLOEXEC);
	if (gs->mem_fd < 0)
		return -errno;
	if (ftruncate(gs->mem_fd, (off_t)gs->mem_size) < 0)
		return -errno;
	gs->mem = mmap(NULL, gs->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, gs->mem_fd, 0);
	if (gs->mem == MAP_FAILED) {
		gs->mem = NULL;
		return -errno;
	}
	for (unsigned i = 0; i < 2; i++) {
		struct gs_vq *vq = &gs->vq[i];

		vq->desc = (struct vring_desc *)(gs->mem + vq->desc_off);
		vq->avail = (uint16_t *)(gs->mem + vq->avail_off);
		vq->used = gs->mem + vq->used_off;
		vq->busy = calloc(n, sizeof(bool));
		vq->wlen = calloc(n, sizeof(uint32_t));
		if (!vq->busy || !vq->wlen)
			return -ENOMEM;
		vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vq->kick_fd < 0 || vq->call_fd < 0)
			return -errno;
	}
	gs->tx_free = calloc(gs->tx_slots, sizeof(uint16_t));
	if (!gs->tx_free)
		return -ENOMEM;
	for (unsigned i = 0; i < gs->tx_slots; i++)
		gs->tx_free[gs->ntx_free++] = (uint16_t)(gs->tx_slots - 1 - i);
	return 0;
}

static uint16_t vq_used_idx(const struct gs_vq *vq)
{
	return __atomic_load_n((uint16_t *)(vq->used + 2), __ATOMIC_ACQUIRE);
}

static uint16_t vq_avail_event(const struct gs_vq *vq)
{
	return __atomic_load_n((uint16_t *)(vq->used + 4 + 8 * vq->num), __ATOMIC_ACQUIRE);
}

static void vq_set_used_event(struct gs_vq *vq, uint16_t v)
{
	__atomic_store_n(&vq->avail[2 + vq->num], v, __ATOMIC_RELEASE);
}

void gs_vq_add(struct gs_vq *vq, uint16_t head)
{
	vq->avail[2 + (vq->avail_idx % vq->num)] = head;
	vq->avail_idx++;
}

static bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void gs_vq_publish(struct gs *gs, struct gs_vq *vq, bool force_kick)
{
	uint16_t old = vq->published, event;
	uint64_t one = 1;

	__atomic_store_n(&vq->avail[1], vq->avail_idx, __ATOMIC_RELEASE);
	vq->published = vq->avail_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	event = vq_avail_event(vq);
	if (force_kick || vring_need_event(event, vq->avail_idx, old)) {
		if (write(vq->kick_fd, &one, sizeof(one)) == sizeof(one))
			vq->kicks++;
	}
}

int gs_tx_get_slot(struct gs *gs, unsigned *ret_slot)
{
	if (gs->ntx_free == 0)
		return -EAGAIN;
	*ret_slot = gs->tx_free[--gs->ntx_free];
	return 0;
}

void gs_tx_put_slot(struct gs *gs, unsigned slot)
{
	gs->tx_free[gs->ntx_free++] = (uint16_t)slot;
}

static void rx_post(struct gs *gs, unsigned b)
{
	struct gs_vq *vq = &gs->vq[0];
	uint64_t off = gs->off_rx + (uint64_t)b * gs->rx_stride;

	if (gs->o.rx_split_hdr) {
		uint16_t h = (uint16_t)(2 * b);

		vq->desc[h] = (struct vring_desc){ gs_gpa(gs, off), sizeof(struct gs_vsock_hdr),
			VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)(h + 1) };
		vq->desc[h + 1] = (struct vring_desc){ gs_gpa(gs, off + 64), GS_RX_BUF_SIZE,
			VRING_DESC_F_WRITE, 0 };
		vq->busy[h] = true;
		vq->wlen[h] = sizeof(struct gs_vsock_hdr) + GS_RX_BUF_SIZE;
		gs_vq_add(vq, h);
	} else {
		vq->desc[b] = (struct vring_desc){ gs_gpa(gs, off),
			sizeof(struct gs_vsock_hdr) + GS_RX_BUF_SIZE, VRING_DESC_F_WRITE, 0 };
		vq->busy[b] = true;
		vq->wlen[b] = sizeof(struct gs_vsock_hdr) + GS_RX_BUF_SIZE;
		gs_vq_add(vq, (uint16_t)b);
	}
}

/* ---- vhost-user negotiation ---- */

static int gs_vu(struct gs *gs, uint32_t req, const void *payload, size_t size, const int *fds,
	unsigned nfds, void *reply, size_t reply_max)
{
	uint32_t flags = 0;
	int r;

	if (gs->nsent < ELEMENTSOF(gs->sent))
		gs->sent[gs->nsent++] = req;
	if ((gs->protocol_features & (1ull << VU_PF_REPLY_ACK)) &&
		(gs->o.ack_all || req == VU_SET_MEM_TABLE || req == VU_SET_CONFIG))
		flags |= VU_FLAG_NEED_REPLY;
	r = gs_vu_call(gs->vu_fd, req, flags, payload, size, fds, nfds, reply, reply_max,
		gs->o.timeout_ms);
	if (r < 0)
		fprintf(stderr, "guestsim: vhost-user request %u failed: %s\n", req, strerror(-r));
	return r;
}

static int gs_vu_u64(struct gs *gs, uint32_t req, uint64_t v)
{
	return gs_vu(gs, req, &v, sizeof(v), NULL, 0, NULL, 0);
}

static int gs_vu_get_u64(struct gs *gs, uint32_t req, uint64_t *ret)
{
	uint64_t v = 0;
	int r;

	r = gs_vu(gs, req, NULL, 0, NULL, 0, &v, sizeof(v));
	if (r < 0)
		return r;
	if (r != sizeof(v))
		return gs_violation(gs, "reply to request %u has %d bytes, want 8", req, r);
	*ret = v;
	return 0;
}

static int gs_vu_state(struct gs *gs, uint32_t req, uint32_t index, uint32_t num)
{
	uint32_t st[2] = { index, num };

	return gs_vu(gs, req, st, sizeof(st), NULL, 0, NULL, 0);
}

static int gs_set_mem_table(struct gs *gs)
{
	struct {
		uint32_t nregions, padding;
		uint64_t r[2][4];
	} m = { 0 };
	int fds[2] = { gs->mem_fd, gs->mem_fd };
	uint64_t start[3] = { 0, gs->region_split, gs->mem_size };
	unsigned n = gs->o.regions > 1 ? 2 : 1;

	if (n == 1)
		start[1] = gs->mem_size;
	m.nregions = n;
	for (unsigned i = 0; i < n; i++) {
		m.r[i][0] = gs_gpa(gs, start[i]);
		m.r[i][1] = start[i + 1] - start[i];
		m.r[i][2] = (uint64_t)(uintptr_t)(gs->mem + start[i]);
		m.r[i][3] = start[i];
	}
	return gs_vu(gs, VU_SET_MEM_TABLE, &m, 8 + 32 * n, fds, n, NULL, 0);
}

static int gs_start_vq(struct gs *gs, unsigned i)
{
	struct gs_vq *vq = &gs->vq[i];
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} addr = { i, 0, (uint64_t)(uintptr_t)vq->desc, (uint64_t)(uintptr_t)vq->used,
		(uint64_t)(uintptr_t)vq->avail, 0 };
	uint64_t idx = i;
	int r;

	r = gs_vu_state(gs, VU_SET_VRING_NUM, i, vq->num);
	if (r >= 0)
		r = gs_vu_state(gs, VU_SET_VRING_BASE, i, 0);
	if (r >= 0)
		r = gs_vu(gs, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0, NULL, 0);
	if (r >= 0)
		r = gs_vu(gs, VU_SET_VRING_KICK, &idx, sizeof(idx), &vq->kick_fd, 1, NULL, 0);
	if (r >= 0)
		r = gs_vu(gs, VU_SET_VRING_CALL, &idx, sizeof(idx), &vq->call_fd, 1, NULL, 0);
	return r;
}

/* The order QEMU 7.2 uses: vhost_user_backend_init, vhost_dev_init (SET_OWNER,
 * GET_FEATURES, a SET_VRING_CALL per queue), GET_CONFIG at realize; then at
 * DRIVER_OK: SET_FEATURES, SET_MEM_TABLE, per ring NUM/BASE/ADDR/KICK/CALL, ENABLE. */
static int gs_negotiate(struct gs *gs)
{
	uint64_t f, pf, qn, slots, idx;
	struct {
		uint32_t offset, size, flags;
		uint64_t cid;
	} __attribute__((packed)) cfg = { 0, 8, 0, 0 }, cfg_reply;
	int r;

	gs->nsent = 0;
	gs->protocol_features = 0;
	r = gs_vu_get_u64(gs, VU_GET_FEATURES, &f);
	if (r < 0)
		return r;
	if (!(f & (1ull << VIRTIO_F_VERSION_1)) || !(f & (1ull << VU_F_PROTOCOL_FEATURES)))
		return gs_violation(gs, "back-end features %#llx lack VERSION_1 or PROTOCOL_FEATURES",
			(unsigned long long)f);
	if (!(f & (1ull << VIRTIO_F_EVENT_IDX)))
		return gs_violation(gs, "back-end features %#llx lack EVENT_IDX",
			(unsigned long long)f);
	if (gs->o.tx_indirect && !(f & (1ull << VIRTIO_F_INDIRECT_DESC)))
		return gs_violation(gs, "back-end does not offer INDIRECT_DESC");
	r = gs_vu_get_u64(gs, VU_GET_PROTOCOL_FEATURES, &pf);
	if (r < 0)
		return r;
	if (!(pf & (1ull << VU_PF_CONFIG)))
		return gs_violation(gs, "back-end lacks protocol feature CONFIG (QEMU needs it)");
	pf &= gs_wanted_pf;
	r = gs_vu_u64(gs, VU_SET_PROTOCOL_FEATURES, pf);
	if (r < 0)
		return r;
	gs->protocol_features = pf;
	if (pf & (1ull << VU_PF_MQ)) {
		r = gs_vu_get_u64(gs, VU_GET_QUEUE_NUM, &qn);
		if (r < 0)
			return r;
		if (qn < 2)
			return gs_violation(gs, "GET_QUEUE_NUM says %llu, a vsock device needs 2",
				(unsigned long long)qn);
	}
	if (pf & (1ull << VU_PF_CONFIGURE_MEM_SLOTS)) {
		r = gs_vu_get_u64(gs, VU_GET_MAX_MEM_SLOTS, &slots);
		if (r < 0)
			return r;
		if (slots < gs->o.regions)
			return gs_violation(gs, "GET_MAX_MEM_SLOTS says %llu",
				(unsigned long long)slots);
	}
	r = gs_vu(gs, VU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	r = gs_vu_get_u64(gs, VU_GET_FEATURES, &f);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < 2; i++) {
		idx = i;
		r = gs_vu(gs, VU_SET_VRING_CALL, &idx, sizeof(idx), &gs->vq[i].call_fd, 1, NULL, 0);
		if (r < 0)
			return r;
	}
	r = gs_vu(gs, VU_GET_CONFIG, &cfg, sizeof(cfg), NULL, 0, &cfg_reply, sizeof(cfg_reply));
	if (r < 0)
		return r;
	if (r != sizeof(cfg_reply) || cfg_reply.size != 8)
		return gs_violation(gs, "GET_CONFIG reply has %d bytes", r);
	if (cfg_reply.cid < 3 || cfg_reply.cid > UINT32_MAX - 1)
		return gs_violation(gs, "GET_CONFIG guest_cid %llu is not a guest CID",
			(unsigned long long)cfg_reply.cid);
	if (gs->o.guest_cid && cfg_reply.cid != gs->o.guest_cid)
		return gs_violation(gs, "GET_CONFIG guest_cid %llu, want %u",
			(unsigned long long)cfg_reply.cid, gs->o.guest_cid);
	gs->cid = (uint32_t)cfg_reply.cid;

	/* DRIVER_OK */
	if (gs->o.seqpacket && !(f & (1ull << VIRTIO_VSOCK_F_SEQPACKET)))
		return gs_violation(gs, "back-end does not offer SEQPACKET");
	gs->features =
		f & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_EVENT_IDX) |
			    (1ull << VIRTIO_F_INDIRECT_DESC) | (1ull << VU_F_PROTOCOL_FEATURES));
	if (gs->o.seqpacket)
		gs->features |= 1ull << VIRTIO_VSOCK_F_SEQPACKET;
	r = gs_vu_u64(gs, VU_SET_FEATURES, gs->features);
	if (r < 0)
		return r;
	r = gs_set_mem_table(gs);
	if (r < 0)
		return r;
	/* The guest filled rx before DRIVER_OK and kicked; the kick waits in the eventfd. */
	for (unsigned b = 0; b < gs->rx_bufs; b++)
		rx_post(gs, b);
	vq_set_used_event(&gs->vq[0], 0);
	vq_set_used_event(&gs->vq[1], 0);
	gs_vq_publish(gs, &gs->vq[0], true);
	for (unsigned i = 0; i < 2; i++) {
		r = gs_start_vq(gs, i);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < 2; i++) {
		r = gs_vu_state(gs, VU_SET_VRING_ENABLE, i, 1);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- connections ---- */

static unsigned conn_hash(uint32_t local, uint32_t peer)
{
	return (local * 2654435761u ^ peer * 40503u) % GS_HASH;
}

static struct gs_conn *conn_find(struct gs *gs, uint32_t local, uint32_t peer)
{
	for (struct gs_conn *c = gs->table[conn_hash(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static struct gs_conn *conn_new(struct gs *gs, uint32_t local, uint32_t peer)
{
	struct gs_conn *c = calloc(1, sizeof(*c));
	unsigned h = conn_hash(local, peer);

	if (!c)
		return NULL;
	c->gs = gs;
	c->local_port = local;
	c->peer_port = peer;
	c->buf_alloc = gs->o.buf_alloc;
	c->type = GS_TYPE_STREAM;
	c->hnext = gs->table[h];
	gs->table[h] = c;
	gs->nconns++;
	return c;
}

static void conn_unlink(struct gs *gs, struct gs_conn *c)
{
	for (struct gs_conn **p = &gs->table[conn_hash(c->local_port, c->peer_port)]; *p;
		p = &(*p)->hnext)
		if (*p == c) {
			*p = c->hnext;
			gs->nconns--;
			break;
		}
}

static void conn_free(struct gs_conn *c)
{
	if (c->closing)
		c->gs->nclosing--;
	conn_unlink(c->gs, c);
	free(c->rxbuf);
	free(c->msgs);
	free(c);
}

void gs_port_mark(struct gs *gs, uint32_t port)
{
	if (port < 65536 * 16)
		gs->used_ports[port / 8] |= (uint8_t)(1u << (port % 8));
}

static bool port_known(const struct gs *gs, uint32_t port)
{
	if (port >= 65536 * 16)
		return false;
	if (gs->used_ports[port / 8] & (1u << (port % 8)))
		return true;
	for (struct gs_listen *l = gs->listens; l; l = l->next)
		if (l->port == port)
			return true;
	return false;
}

/* ---- tx ---- */

static void hdr_fill(struct gs *gs, struct gs_vsock_hdr *h, uint16_t op, uint32_t local,
	uint32_t peer, uint32_t flags)
{
	*h = (struct gs_vsock_hdr){ .src_cid = gs->cid,
		.dst_cid = GS_HOST_CID,
		.src_port = local,
		.dst_port = peer,
		.type = GS_TYPE_STREAM,
		.op = op,
		.flags = flags };
}

/* Put one packet on the tx ring (header copied as given). */
static int tx_put(struct gs *gs, const struct gs_vsock_hdr *h, const void *payload, size_t len)
{
	struct gs_vq *vq = &gs->vq[1];
	uint64_t off;
	unsigned slot;
	uint16_t head;
	int r;

	if (len > GS_MAX_PKT)
		return -EMSGSIZE;
	r = gs_tx_get_slot(gs, &slot);
	if (r < 0)
		return r;
	off = gs->off_tx + (uint64_t)slot * gs->tx_stride;
	memcpy(gs->mem + off, h, sizeof(*h));
	if (len)
		memcpy(gs->mem + off + 64, payload, len);
	if (gs->o.tx_indirect) {
		struct vring_desc *t = (struct vring_desc *)(gs->mem + gs->off_indirect) + 4 * slot;

		head = (uint16_t)slot;
		t[0] = (struct vring_desc){ gs_gpa(gs, off), sizeof(*h),
			len ? VRING_DESC_F_NEXT : 0, 1 };
		t[1] = (struct vring_desc){ gs_gpa(gs, off + 64), (uint32_t)len, 0, 0 };
		vq->desc[head] =
			(struct vring_desc){ gs_gpa(gs, gs->off_indirect + (uint64_t)slot * 64),
				(uint32_t)(len ? 32 : 16), VRING_DESC_F_INDIRECT, 0 };
	} else {
		head = (uint16_t)(2 * slot);
		vq->desc[head] = (struct vring_desc){ gs_gpa(gs, off), sizeof(*h),
			len ? VRING_DESC_F_NEXT : 0, (uint16_t)(head + 1) };
		vq->desc[head + 1] = (struct vring_desc){ gs_gpa(gs, off + 64), (uint32_t)len, 0, 0 };
	}
	vq->busy[head] = true;
	vq->wlen[head] = 0;
	gs_vq_add(vq, head);
	gs_vq_publish(gs, vq, false);
	return 0;
}

int gs_send_raw_packet(struct gs *gs, const struct gs_vsock_hdr *h, const void *payload, size_t len)
{
	return tx_put(gs, h, payload, len);
}

/* Credit fields as Linux fills them: at the moment the packet is queued. */
static int conn_tx(struct gs_conn *c, struct gs_vsock_hdr *h, const void *payload, size_t len)
{
	int r;

	h->buf_alloc = c->buf_alloc;
	h->fwd_cnt = c->fwd_cnt;
	r = tx_put(c->gs, h, payload, len);
	if (r >= 0) {
		c->adv_fwd_cnt = c->fwd_cnt;
		c->tx_cnt += (uint32_t)len;
	}
	return r;
}

static int ctrl_flush(struct gs *gs)
{
	unsigned i = 0;

	for (; i < gs->nctrl; i++) {
		struct gs_vsock_hdr h = gs->ctrl[i].h;
		struct gs_conn *c = conn_find(gs, h.src_port, h.dst_port);
		int r = c ? conn_tx(c, &h, NULL, 0) : tx_put(gs, &h, NULL, 0);

		if (r < 0)
			break;
	}
	if (i > 0) {
		memmove(gs->ctrl, gs->ctrl + i, (gs->nctrl - i) * sizeof(*gs->ctrl));
		gs->nctrl -= i;
	}
	return 0;
}

/* A control packet (no payload); queued when the ring is full, never dropped. type 0:
 * the connection's (STREAM for none). */
static int send_ctrl_type(struct gs *gs, uint16_t op, uint32_t local, uint32_t peer, uint32_t flags,
	uint16_t type)
{
	struct gs_conn *conn = conn_find(gs, local, peer);
	struct gs_vsock_hdr h;

	hdr_fill(gs, &h, op, local, peer, flags);
	h.type = type ? type : conn ? conn->type : GS_TYPE_STREAM;
	ctrl_flush(gs);
	if (gs->nctrl == 0) {
		struct gs_conn *c = conn_find(gs, local, peer);
		int r = c ? conn_tx(c, &h, NULL, 0) : tx_put(gs, &h, NULL, 0);

		if (r != -EAGAIN)
			return r;
	}
	if (gs->nctrl == gs->ctrl_cap) {
		unsigned cap = gs->ctrl_cap ? gs->ctrl_cap * 2 : 64;
		struct gs_ctrl *n = realloc(gs->ctrl, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		gs->ctrl = n;
		gs->ctrl_cap = cap;
	}
	gs->ctrl[gs->nctrl++].h = h;
	return 0;
}

static int send_ctrl(struct gs *gs, uint16_t op, uint32_t local, uint32_t peer, uint32_t flags)
{
	return send_ctrl_type(gs, op, local, peer, flags, 0);
}

/* ---- rx packet handling ---- */

static void conn_set_closed(struct gs_conn *c, int error)
{
	if (c->state != GS_CLOSED && !c->error)
		c->error = error;
	c->state = GS_CLOSED;
}

static void conn_maybe_credit_update(struct gs_conn *c)
{
	/* Linux: when less than one maximal packet fits in what the peer believes is free. */
	if (c->state == GS_CONNECTED &&
		(uint64_t)c->buf_alloc - (uint32_t)(c->fwd_cnt - c->adv_fwd_cnt) < GS_MAX_PKT &&
		c->fwd_cnt != c->adv_fwd_cnt)
		send_ctrl(c->gs, GS_OP_CREDIT_UPDATE, c->local_port, c->peer_port, 0);
}

static int rx_request(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h,
	const uint8_t *p)
{
	if (c) {
		if (c->closing)
			return 0;
		return gs_violation(gs, "REQUEST for an existing connection %u:%u", h->dst_port,
			h->src_port);
	}
	for (struct gs_listen *l = gs->listens; l; l = l->next) {
		if (l->port != h->dst_port || l->type != h->type)
			continue;
		c = conn_new(gs, h->dst_port, h->src_port);
		if (!c)
			return -ENOMEM;
		c->type = h->type;
		c->state = GS_CONNECTED;
		c->listened = true;
		c->peer_buf_alloc = h->buf_alloc;
		c->peer_fwd_cnt = h->fwd_cnt;
		return send_ctrl(gs, GS_OP_RESPONSE, c->local_port, c->peer_port, 0);
	}
	return send_ctrl_type(gs, GS_OP_RST, h->dst_port, h->src_port, 0, h->type);
}

static int rx_response(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h,
	const uint8_t *p)
{
	if (c->state != GS_CONNECTING)
		return gs_violation(gs, "RESPONSE on %u:%u which is not connecting", h->dst_port,
			h->src_port);
	c->state = GS_CONNECTED;
	return 0;
}

static int rx_rst(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h, const uint8_t *p)
{
	if (c->closing) {
		conn_free(c);
		return 0;
	}
	conn_set_closed(c, c->state == GS_CONNECTING ? -ECONNREFUSED : -ECONNRESET);
	return 0;
}

static int rx_shutdown(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h,
	const uint8_t *p)
{
	if (h->flags & ~3u)
		return gs_violation(gs, "SHUTDOWN with unknown flags %#x", h->flags);
	if (c->state == GS_CONNECTING)
		return gs_violation(gs, "SHUTDOWN before RESPONSE on %u:%u", h->dst_port,
			h->src_port);
	if (h->flags & GS_SHUTDOWN_SEND)
		c->peer_shut_send = true;
	if (h->flags & GS_SHUTDOWN_RCV)
		c->peer_shut_rcv = true;
	/* Linux resets once the peer shut down both ways and nothing is left to read. */
	if (c->peer_shut_send && c->peer_shut_rcv && (c->rx_len == 0 || c->closing)) {
		send_ctrl(gs, GS_OP_RST, c->local_port, c->peer_port, 0);
		if (c->closing)
			conn_free(c);
		else
			c->state = GS_CLOSED;
	}
	return 0;
}

static int rx_rw(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h, const uint8_t *p)
{
	size_t tail, first;

	if (c->state == GS_CONNECTING)
		return gs_violation(gs, "RW before RESPONSE on %u:%u", h->dst_port, h->src_port);
	if (c->peer_shut_send)
		return gs_violation(gs, "RW after SHUTDOWN(SEND) on %u:%u", h->dst_port, h->src_port);
	if (c->state == GS_CLOSED)
		return gs_violation(gs, "RW after RST on %u:%u", h->dst_port, h->src_port);
	if (c->type == GS_TYPE_STREAM && h->flags)
		return gs_violation(gs, "STREAM RW with flags %#x on %u:%u", h->flags, h->dst_port,
			h->src_port);
	if (c->type == GS_TYPE_SEQPACKET && (h->flags & ~(GS_SEQ_EOM | GS_SEQ_EOR)))
		return gs_violation(gs, "SEQPACKET RW with unknown flags %#x", h->flags);
	if (c->type == GS_TYPE_SEQPACKET && (h->flags & GS_SEQ_EOR) && !(h->flags & GS_SEQ_EOM))
		return gs_violation(gs, "SEQPACKET RW with EOR but not EOM");
	if (c->type == GS_TYPE_SEQPACKET && h->len == 0 && c->partial == 0)
		return gs_violation(gs, "empty SEQPACKET RW on %u:%u", h->dst_port, h->src_port);
	if ((uint64_t)(uint32_t)(c->rx_cnt - c->adv_fwd_cnt) + h->len > c->buf_alloc)
		return gs_violation(gs,
			"credit: RW of %u bytes on %u:%u with %u unread of buf_alloc %u", h->len,
			h->dst_port, h->src_port, (uint32_t)(c->rx_cnt - c->adv_fwd_cnt),
			c->buf_alloc);
	c->rx_cnt += h->len;
	if (c->shut_rcv || c->closing) {
		/* Discarded like Linux does after SHUT_RD; still counts as forwarded. */
		c->fwd_cnt += h->len;
		return 0;
	}
	if (!c->rxbuf) {
		c->rxbuf = malloc(c->buf_alloc);
		if (!c->rxbuf)
			return -ENOMEM;
	}
	tail = (c->rx_head + c->rx_len) % c->buf_alloc;
	first = c->buf_alloc - tail < h->len ? c->buf_alloc - tail : h->len;
	memcpy(c->rxbuf + tail, p, first);
	memcpy(c->rxbuf, p + first, h->len - first);
	c->rx_len += h->len;
	if (c->type == GS_TYPE_SEQPACKET) {
		c->partial += h->len;
		if (h->flags & GS_SEQ_EOM) {
			if (c->msg_count == c->msg_cap) {
				unsigned cap = c->msg_cap ? c->msg_cap * 2 : 16;
				uint32_t *m = malloc(cap * sizeof(*m));

				if (!m)
					return -ENOMEM;
				for (unsigned i = 0; i < c->msg_count; i++)
					m[i] = c->msgs[(c->msg_head + i) % c->msg_cap];
				free(c->msgs);
				c->msgs = m;
				c->msg_cap = cap;
				c->msg_head = 0;
			}
			c->msgs[(c->msg_head + c->msg_count++) % c->msg_cap] =
				c->partial | (h->flags & GS_SEQ_EOR ? GS_MSG_EOR_BIT : 0);
			c->partial = 0;
		}
	}
	return 0;
}

static int rx_credit_update(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h,
	const uint8_t *p)
{
	return 0;
}

static int rx_credit_request(struct gs *gs, struct gs_conn *c, const struct gs_vsock_hdr *h,
	const uint8_t *p)
{
	if (c->state != GS_CONNECTED)
		return 0;
	return send_ctrl(gs, GS_OP_CREDIT_UPDATE, c->local_port, c->peer_port, 0);
}

typedef int (
	*rx_handler)(struct gs *, struct gs_conn *, const struct gs_vsock_hdr *, const uint8_t *);
static const struct {
	const char *name;
	rx_handler handler;
	bool payload; /* may carry bytes */
} rx_ops[] = {
	[GS_OP_REQUEST] = { "REQUEST", rx_request, false },
	[GS_OP_RESPONSE] = { "RESPONSE", rx_response, false },
	[GS_OP_RST] = { "RST", rx_rst, false },
	[GS_OP_SHUTDOWN] = { "SHUTDOWN", rx_shutdown, false },
	[GS_OP_RW] = { "RW", rx_rw, true },
	[GS_OP_CREDIT_UPDATE] = { "CREDIT_UPDATE", rx_credit_update, false },
	[GS_OP_CREDIT_REQUEST] = { "CREDIT_REQUEST", rx_credit_request, false },
};

static int rx_packet(struct gs *gs, const struct gs_vsock_hdr *h, const uint8_t *payload)
{
	struct gs_conn *c;

	if (h->src_cid != GS_HOST_CID)
		return gs_violation(gs, "rx packet src_cid %llu, want 2",
			(unsigned long long)h->src_cid);
	if (h->dst_cid != gs->cid)
		return gs_violation(gs, "rx packet dst_cid %llu, want %u",
			(unsigned long long)h->dst_cid, gs->cid);
	if (h->type != GS_TYPE_STREAM && h->type != GS_TYPE_SEQPACKET)
		return gs_violation(gs, "rx packet type %u", h->type);
	/* An RST may answer a SEQPACKET REQUEST the guest sent without the feature. */
	if (h->type == GS_TYPE_SEQPACKET && h->op != GS_OP_RST &&
		!(gs->features & (1ull << VIRTIO_VSOCK_F_SEQPACKET)))
		return gs_violation(gs, "rx SEQPACKET packet, but SEQPACKET was not negotiated");
	if (h->op == 0 || h->op >= ELEMENTSOF(rx_ops))
		return gs_violation(gs, "rx packet with unknown op %u", h->op);
	gs->rx_ops[h->op]++;
	if (h->len && !rx_ops[h->op].payload)
		return gs_violation(gs, "%s packet with len %u", rx_ops[h->op].name, h->len);
	c = conn_find(gs, h->dst_port, h->src_port);
	if (c && c->type != h->type)
		return gs_violation(gs, "%s of type %u on %u:%u, a connection of type %u",
			rx_ops[h->op].name, h->type, h->dst_port, h->src_port, c->type);
	if (h->op == GS_OP_REQUEST)
		return rx_request(gs, c, h, payload);
	if (!c) {
		if (!port_known(gs, h->dst_port))
			return gs_violation(gs, "%s for port %u that the guest never used",
				rx_ops[h->op].name, h->dst_port);
		/* A connection already gone: Linux answers with RST, never to an RST. */
		if (h->op != GS_OP_RST)
			send_ctrl_type(gs, GS_OP_RST, h->dst_port, h->src_port, 0, h->type);
		return 0;
	}
	/* An RST carries no credit (Linux sends it with zeroes when the socket is gone). */
	if (h->op == GS_OP_RST)
		return rx_rst(gs, c, h, payload);
	if ((int32_t)(c->tx_cnt - h->fwd_cnt) < 0)
		return gs_violation(gs, "fwd_cnt %u beyond the %u bytes sent on %u:%u", h->fwd_cnt,
			c->tx_cnt, c->local_port, c->peer_port);
	if (c->state != GS_CONNECTING && (int32_t)(h->fwd_cnt - c->peer_fwd_cnt) < 0)
		return gs_violation(gs, "fwd_cnt went backwards (%u -> %u) on %u:%u",
			c->peer_fwd_cnt, h->fwd_cnt, c->local_port, c->peer_port);
	/* Linux before 6.2-ish computes credit as buf_alloc - (tx_cnt - fwd_cnt) in
	 * unsigned arithmetic: a buf_alloc below what is in flight makes it overrun. */
	if ((uint32_t)(c->tx_cnt - h->fwd_cnt) > h->buf_alloc)
		return gs_violation(gs, "buf_alloc %u below the %u bytes in flight on %u:%u",
			h->buf_alloc, c->tx_cnt - h->fwd_cnt, c->local_port, c->peer_port);
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	return rx_ops[h->op].handler(gs, c, h, payload);
}

/* ---- used rings ---- */

static int vq_pop_used(struct gs *gs, struct gs_vq *vq, const char *name, uint16_t *ret_id,
	uint32_t *ret_len)
{
	uint16_t idx = vq_used_idx(vq);
	uint32_t id, len;
	const uint8_t *e;

	if (idx == vq->last_used)
		return 0;
	if ((uint16_t)(idx - vq->last_used) > vq->num)
		return gs_violation(gs, "%s used idx jumped from %u to %u (ring of %u)", name,
			vq->last_used, idx, vq->num);
	e = vq->used + 4 + 8 * (vq->last_used % vq->num);
	memcpy(&id, e, 4);
	memcpy(&len, e + 4, 4);
	vq->last_used++;
	if (id >= vq->num)
		return gs_violation(gs, "%s used id %u out of range", name, id);
	if (!vq->busy[id])
		return gs_violation(gs, "%s used id %u was not outstanding", name, id);
	if (len > vq->wlen[id])
		return gs_violation(gs, "%s used len %u exceeds the %u writable bytes of chain %u",
			name, len, vq->wlen[id], id);
	vq->busy[id] = false;
	*ret_id = (uint16_t)id;
	*ret_len = len;
	return 1;
}

static int tx_process(struct gs *gs)
{
	struct gs_vq *vq = &gs->vq[1];
	uint16_t id;
	uint32_t len;
	int r;

	for (;;) {
		uint16_t delay;

		while ((r = vq_pop_used(gs, vq, "tx", &id, &len)) > 0)
			gs_tx_put_slot(gs, gs->o.tx_indirect ? id : id / 2u);
		if (r < 0)
			return r;
		/* As virtio-net's virtqueue_enable_cb_delayed(): a call once three quarters
		 * of what is outstanding are used. Free slots are only needed when the ring
		 * fills, and every step reclaims without a call. */
		delay = (uint16_t)((uint16_t)(vq->published - vq->last_used) * 3 / 4);
		vq_set_used_event(vq, (uint16_t)(vq->last_used + delay));
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if ((uint16_t)(vq_used_idx(vq) - vq->last_used) <= delay)
			return 0;
	}
}

static int rx_process(struct gs *gs)
{
	struct gs_vq *vq = &gs->vq[0];
	bool reposted = false;
	uint16_t id;
	uint32_t len;
	int r = 0;

	for (;;) {
		while ((r = vq_pop_used(gs, vq, "rx", &id, &len)) > 0) {
			unsigned b = gs->o.rx_split_hdr ? id / 2u : id;
			uint64_t off = gs->off_rx + (uint64_t)b * gs->rx_stride;
			const uint8_t *payload = gs->mem + off + (gs->o.rx_split_hdr ? 64 : 44);
			struct gs_vsock_hdr h;

			if ((gs->o.rx_split_hdr && id % 2) || b >= gs->rx_bufs) {
				r = gs_violation(gs, "rx used id %u is not a buffer head", id);
				break;
			}
			if (len < sizeof(h)) {
				gs_violation(gs, "rx used len %u shorter than a header", len);
			} else {
				memcpy(&h, gs->mem + off, sizeof(h));
				if (h.len > GS_RX_BUF_SIZE)
					gs_violation(gs, "rx header len %u larger than the buffer",
						h.len);
				else if (len != sizeof(h) + h.len)
					gs_violation(gs, "rx used len %u but header len %u", len,
						h.len);
				else
					rx_packet(gs, &h, payload);
			}
			rx_post(gs, b);
			reposted = true;
		}
		if (r < 0)
			break;
		vq_set_used_event(vq, vq->last_used);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (vq_used_idx(vq) == vq->last_used)
			break;
	}
	if (reposted)
		gs_vq_publish(gs, vq, false);
	return r;
}

static void conns_timers(struct gs *gs)
{
	uint64_t now;

	/* Every step comes here: walk the table only when a close is lingering. */
	if (gs->nclosing == 0)
		return;
	now = gs_now_ms();
	for (unsigned i = 0; i < GS_HASH; i++)
		for (struct gs_conn *c = gs->table[i], *n; c; c = n) {
			n = c->hnext;
			if (c->closing && now >= c->close_deadline) {
				send_ctrl(gs, GS_OP_RST, c->local_port, c->peer_port, 0);
				conn_free(c);
			}
		}
}

int gs_step(struct gs *gs, struct pollfd *extra, unsigned nextra, int timeout_ms)
{
	struct pollfd stack[3 + 64], *p = stack;
	_cleanup_free_ struct pollfd *heap = NULL;
	uint64_t v;
	int r;

	if (gs->dead)
		return -ECONNRESET;
	if (nextra > 64) {
		p = heap = calloc(3 + (size_t)nextra, sizeof(*p));
		if (!heap)
			return -ENOMEM;
	}
	p[0] = (struct pollfd){ .fd = gs->vu_fd, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = gs->vq[0].call_fd, .events = POLLIN };
	p[2] = (struct pollfd){ .fd = gs->vq[1].call_fd, .events = POLLIN };
	for (unsigned i = 0; i < nextra; i++)
		p[3 + i] = extra[i];
	if (gs->nctrl)
		timeout_ms = timeout_ms < 0 || timeout_ms > 10 ? 10 : timeout_ms;
	r = poll(p, 3 + nextra, timeout_ms);
	if (r < 0 && errno != EINTR)
		return -errno;
	for (unsigned i = 0; i < nextra; i++)
		extra[i].revents = r > 0 ? p[3 + i].revents : 0;
	if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
		char b[256];
		ssize_t n = recv(gs->vu_fd, b, sizeof(b), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			gs->dead = true;
			return -ECONNRESET;
		}
		if (n > 0)
			gs_violation(gs, "unsolicited %zd bytes on the vhost-user socket", n);
	}
	if (r > 0 && (p[2].revents & POLLIN)) {
		if (read(gs->vq[1].call_fd, &v, sizeof(v)) == sizeof(v))
			gs->vq[1].calls++;
	}
	if (gs->vq[1].used && vq_used_idx(&gs->vq[1]) != gs->vq[1].last_used)
		tx_process(gs);
	if (r > 0 && (p[1].revents & POLLIN)) {
		if (read(gs->vq[0].call_fd, &v, sizeof(v)) == sizeof(v))
			gs->vq[0].calls++;
		rx_process(gs);
	}
	ctrl_flush(gs);
	conns_timers(gs);
	return 0;
}

int gs_run_until(struct gs *gs, bool (*pred)(struct gs *gs, void *userdata), void *userdata,
	int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;

	while (!pred(gs, userdata)) {
		uint64_t now = gs_now_ms();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = gs_step(gs, NULL, 0, (int)(deadline - now));
		if (r < 0)
			return r;
	}
	return 0;
}

int gs_vu_probe(struct gs *gs)
{
	uint64_t f;
	int r;

	r = gs_vu_call(gs->vu_fd, VU_GET_FEATURES, 0, NULL, 0, NULL, 0, &f, sizeof(f),
		gs->o.timeout_ms);
	return r < 0 ? r : 0;
}

/* ---- lifecycle ---- */

static void gs_drop_all(struct gs *gs)
{
	for (unsigned i = 0; i < GS_HASH; i++)
		for (struct gs_conn *c = gs->table[i], *n; c; c = n) {
			n = c->hnext;
			if (c->closing)
				conn_free(c);
			else
				conn_set_closed(c, -ECONNRESET);
		}
	gs->nctrl = 0;
}

void gs_disconnect(struct gs *gs)
{
	if (gs->vu_fd >= 0)
		close(gs->vu_fd);
	gs->vu_fd = -1;
	gs->dead = true;
	gs_drop_all(gs);
	gs_memory_free(gs);
}

static int gs_start(struct gs *gs)
{
	int r;

	r = gs_vu_open(gs->o.socket_path, &gs->vu_fd);
	if (r < 0)
		return r;
	r = gs_memory_new(gs);
	if (r < 0)
		return r;
	r = gs_negotiate(gs);
	if (r < 0)
		return r;
	gs->dead = false;
	return 0;
}

int gs_new(const struct gs_options *o, struct gs **ret)
{
	struct gs *gs;
	int r;

	if (!o->socket_path || o->queue_size < 4 || (o->queue_size & (o->queue_size - 1)) ||
		o->queue_size > 32768 || o->buf_alloc == 0)
		return -EINVAL;
	gs = calloc(1, sizeof(*gs));
	if (!gs)
		return -ENOMEM;
	gs->o = *o;
	gs->vu_fd = -1;
	gs->mem_fd = -1;
	gs->vq[0].kick_fd = gs->vq[0].call_fd = gs->vq[1].kick_fd = gs->vq[1].call_fd = -1;
	gs->next_port = GS_FIRST_PORT;
	gs->table = calloc(GS_HASH, sizeof(*gs->table));
	gs->used_ports = calloc(65536 * 2, 1);
	if (!gs->table || !gs->used_ports) {
		gs_free(gs);
		return -ENOMEM;
	}
	r = gs_start(gs);
	if (r < 0) {
		gs_free(gs);
		return r;
	}
	*ret = gs;
	return 0;
}

int gs_send_mem_table(struct gs *gs)
{
	return gs_set_mem_table(gs);
}

int gs_reconnect(struct gs *gs, uint64_t new_gpa_base)
{
	gs_disconnect(gs);
	gs->o.gpa_base = new_gpa_base;
	return gs_start(gs);
}

struct gs *gs_free(struct gs *gs)
{
	if (!gs)
		return NULL;
	if (gs->vu_fd >= 0)
		close(gs->vu_fd);
	gs_memory_free(gs);
	if (gs->table)
		for (unsigned i = 0; i < GS_HASH; i++)
			while (gs->table[i])
				conn_free(gs->table[i]);
	while (gs->listens) {
		struct gs_listen *l = gs->listens;

		gs->listens = l->next;
		free(l);
	}
	free(gs->table);
	free(gs->used_ports);
	free(gs->ctrl);
	free(gs);
	return NULL;
}

/* ---- socket API ---- */

int gs_connect(struct gs *gs, uint32_t port, struct gs_conn **ret)
{
	return gs_connect_type(gs, port, GS_TYPE_STREAM, ret);
}

int gs_connect_type(struct gs *gs, uint32_t port, uint16_t type, struct gs_conn **ret)
{
	struct gs_conn *c;
	uint32_t local;
	int r;

	if (gs->dead)
		return -ENOTCONN;
	for (unsigned tries = 0;; tries++) {
		if (tries > 65536 * 8)
			return -EADDRINUSE;
		local = gs->next_port++;
		if (gs->next_port >= 65536 * 16)
			gs->next_port = GS_FIRST_PORT;
		if (!conn_find(gs, local, port))
			break;
	}
	c = conn_new(gs, local, port);
	if (!c)
		return -ENOMEM;
	gs_port_mark(gs, local);
	c->type = type;
	c->state = GS_CONNECTING;
	r = send_ctrl(gs, GS_OP_REQUEST, local, port, 0);
	if (r < 0) {
		conn_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int gs_listen(struct gs *gs, uint32_t port)
{
	return gs_listen_type(gs, port, GS_TYPE_STREAM);
}

int gs_listen_type(struct gs *gs, uint32_t port, uint16_t type)
{
	struct gs_listen *l;

	for (l = gs->listens; l; l = l->next)
		if (l->port == port)
			return -EADDRINUSE;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->port = port;
	l->type = type;
	l->next = gs->listens;
	gs->listens = l;
	return 0;
}

struct gs_conn *gs_accept(struct gs *gs, uint32_t port)
{
	for (unsigned i = 0; i < GS_HASH; i++)
		for (struct gs_conn *c = gs->table[i]; c; c = c->hnext)
			if (c->listened && !c->accepted && !c->closing && c->local_port == port) {
				c->accepted = true;
				return c;
			}
	return NULL;
}

uint16_t gs_conn_type(const struct gs_conn *c)
{
	return c->type;
}

unsigned gs_conn_msgs_pending(const struct gs_conn *c)
{
	return c->msg_count;
}

enum gs_conn_state gs_conn_state(const struct gs_conn *c)
{
	return c->state;
}

int gs_conn_error(const struct gs_conn *c)
{
	return c->error;
}

uint32_t gs_conn_local_port(const struct gs_conn *c)
{
	return c->local_port;
}

uint32_t gs_conn_peer_port(const struct gs_conn *c)
{
	return c->peer_port;
}

size_t gs_conn_rx_pending(const struct gs_conn *c)
{
	return c->rx_len;
}

bool gs_conn_peer_shut_send(const struct gs_conn *c)
{
	return c->peer_shut_send;
}

uint32_t gs_conn_peer_buf_alloc(const struct gs_conn *c)
{
	return c->peer_buf_alloc;
}

uint32_t gs_conn_peer_free(const struct gs_conn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

void gs_conn_set_userdata(struct gs_conn *c, void *p)
{
	c->userdata = p;
}

void *gs_conn_get_userdata(const struct gs_conn *c)
{
	return c->userdata;
}

ssize_t gs_conn_send(struct gs_conn *c, const void *data, size_t len)
{
	struct gs *gs = c->gs;
	size_t done = 0;

	if (c->state == GS_CONNECTING)
		return -ENOTCONN;
	if (c->state == GS_CLOSED)
		return c->error ? c->error : -EPIPE;
	if (c->shut_send || c->peer_shut_rcv)
		return -EPIPE;
	if (c->type != GS_TYPE_STREAM)
		return -EOPNOTSUPP;
	/* Queued control packets (RESPONSE first of all) go before any data. */
	ctrl_flush(gs);
	if (gs->nctrl)
		return -EAGAIN;
	while (done < len) {
		size_t n = len - done, credit = gs_conn_peer_free(c);
		struct gs_vsock_hdr h;
		int r;

		if (n > GS_MAX_PKT)
			n = GS_MAX_PKT;
		if (n > credit)
			n = credit;
		if (n == 0)
			break;
		hdr_fill(gs, &h, GS_OP_RW, c->local_port, c->peer_port, 0);
		h.len = (uint32_t)n;
		r = conn_tx(c, &h, (const uint8_t *)data + done, n);
		if (r == -EAGAIN)
			break;
		if (r < 0)
			return done ? (ssize_t)done : r;
		done += n;
	}
	return done ? (ssize_t)done : -EAGAIN;
}

ssize_t gs_conn_send_msg(struct gs_conn *c, const void *data, size_t len, bool eor, size_t pkt)
{
	struct gs *gs = c->gs;
	size_t done = 0, npkt;

	if (c->state == GS_CONNECTING)
		return -ENOTCONN;
	if (c->state == GS_CLOSED)
		return c->error ? c->error : -EPIPE;
	if (c->shut_send || c->peer_shut_rcv)
		return -EPIPE;
	if (c->type != GS_TYPE_SEQPACKET)
		return -EOPNOTSUPP;
	if (len > c->peer_buf_alloc)
		return -EMSGSIZE;
	if (pkt == 0 || pkt > GS_MAX_PKT)
		pkt = GS_MAX_PKT;
	ctrl_flush(gs);
	if (gs->nctrl)
		return -EAGAIN;
	/* All of it or nothing: credit and ring slots for every packet. */
	npkt = len ? (len + pkt - 1) / pkt : 1;
	if (len > gs_conn_peer_free(c) || npkt > gs->ntx_free)
		return -EAGAIN;
	do {
		size_t n = len - done < pkt ? len - done : pkt;
		struct gs_vsock_hdr h;
		int r;

		hdr_fill(gs, &h, GS_OP_RW, c->local_port, c->peer_port, 0);
		h.type = GS_TYPE_SEQPACKET;
		if (done + n == len)
			h.flags = GS_SEQ_EOM | (eor ? GS_SEQ_EOR : 0);
		h.len = (uint32_t)n;
		r = conn_tx(c, &h, (const uint8_t *)data + done, n);
		if (r < 0)
			return r;
		done += n;
	} while (done < len);
	return (ssize_t)len;
}

ssize_t gs_conn_recv_msg(struct gs_conn *c, void *buf, size_t len, int *ret_flags)
{
	uint32_t m, mlen;
	size_t n, first;

	if (c->type != GS_TYPE_SEQPACKET)
		return -EOPNOTSUPP;
	if (c->msg_count == 0) {
		if (c->peer_shut_send || c->shut_rcv)
			return 0;
		if (c->state == GS_CLOSED)
			return c->error ? c->error : 0;
		return c->state == GS_CONNECTING ? -ENOTCONN : -EAGAIN;
	}
	m = c->msgs[c->msg_head];
	mlen = m & ~GS_MSG_EOR_BIT;
	c->msg_head = (c->msg_head + 1) % c->msg_cap;
	c->msg_count--;
	n = len < mlen ? len : mlen;
	first = c->buf_alloc - c->rx_head < n ? c->buf_alloc - c->rx_head : n;
	memcpy(buf, c->rxbuf + c->rx_head, first);
	memcpy((uint8_t *)buf + first, c->rxbuf, n - first);
	c->rx_head = (c->rx_head + mlen) % c->buf_alloc;
	c->rx_len -= mlen;
	c->fwd_cnt += mlen;
	if (ret_flags)
		*ret_flags = (mlen > len ? GS_MSG_TRUNC : 0) | (m & GS_MSG_EOR_BIT ? GS_MSG_EOR : 0);
	conn_maybe_credit_update(c);
	if (c->msg_count == 0 && c->peer_shut_send && c->peer_shut_rcv && c->state != GS_CLOSED) {
		send_ctrl(c->gs, GS_OP_RST, c->local_port, c->peer_port, 0);
		c->state = GS_CLOSED;
	}
	return (ssize_t)mlen;
}

ssize_t gs_conn_recv(struct gs_conn *c, void *buf, size_t len)
{
	size_t n = len < c->rx_len ? len : c->rx_len, first;

	if (c->type != GS_TYPE_STREAM)
		return -EOPNOTSUPP;

	if (n == 0) {
		if (c->peer_shut_send || c->shut_rcv)
			return 0;
		if (c->state == GS_CLOSED)
			return c->error ? c->error : 0;
		return c->state == GS_CONNECTING ? -ENOTCONN : -EAGAIN;
	}
	first = c->buf_alloc - c->rx_head < n ? c->buf_alloc - c->rx_head : n;
	memcpy(buf, c->rxbuf + c->rx_head, first);
	memcpy((uint8_t *)buf + first, c->rxbuf, n - first);
	c->rx_head = (c->rx_head + n) % c->buf_alloc;
	c->rx_len -= n;
	c->fwd_cnt += (uint32_t)n;
	conn_maybe_credit_update(c);
	if (c->rx_len == 0 && c->peer_shut_send && c->peer_shut_rcv && c->state != GS_CLOSED) {
		send_ctrl(c->gs, GS_OP_RST, c->local_port, c->peer_port, 0);
		c->state = GS_CLOSED;
	}
	return (ssize_t)n;
}

int gs_conn_shutdown(struct gs_conn *c, int how)
{
	uint32_t flags = 0;

	if (c->state != GS_CONNECTED)
		return -ENOTCONN;
	if (how == SHUT_RD || how == SHUT_RDWR) {
		if (!c->shut_rcv)
			flags |= GS_SHUTDOWN_RCV;
		c->shut_rcv = true;
	}
	if (how == SHUT_WR || how == SHUT_RDWR) {
		if (!c->shut_send)
			flags |= GS_SHUTDOWN_SEND;
		c->shut_send = true;
	}
	if (!flags)
		return 0;
	return send_ctrl(c->gs, GS_OP_SHUTDOWN, c->local_port, c->peer_port, flags);
}

void gs_conn_close(struct gs_conn *c)
{
	if (!c)
		return;
	if (c->state != GS_CONNECTED) {
		if (c->state == GS_CONNECTING)
			send_ctrl(c->gs, GS_OP_RST, c->local_port, c->peer_port, 0);
		conn_free(c);
		return;
	}
	gs_conn_shutdown(c, SHUT_RDWR);
	free(c->rxbuf);
	c->rxbuf = NULL;
	c->fwd_cnt += (uint32_t)c->rx_len;
	c->rx_len = 0;
	c->msg_count = 0;
	c->partial = 0;
	if (!c->closing)
		c->gs->nclosing++;
	c->closing = true;
	c->close_deadline = gs_now_ms() + GS_CLOSE_TIMEOUT_MS;
	if (c->peer_shut_send && c->peer_shut_rcv) {
		send_ctrl(c->gs, GS_OP_RST, c->local_port, c->peer_port, 0);
		conn_free(c);
	}
}

void gs_conn_reset(struct gs_conn *c)
{
	if (!c)
		return;
	if (c->state != GS_CLOSED)
		send_ctrl(c->gs, GS_OP_RST, c->local_port, c->peer_port, 0);
	conn_free(c);
}

/* ---- blocking helpers ---- */

static bool pred_connected(struct gs *gs, void *userdata)
{
	return gs_conn_state(userdata) != GS_CONNECTING;
}

int gs_wait_connected(struct gs *gs, struct gs_conn *c, int timeout_ms)
{
	int r = gs_run_until(gs, pred_connected, c, timeout_ms);

	if (r < 0)
		return r;
	return c->state == GS_CONNECTED ? 0 : (c->error ? c->error : -ECONNREFUSED);
}

int gs_send_all(struct gs *gs, struct gs_conn *c, const void *data, size_t len, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	size_t done = 0;

	while (done < len) {
		ssize_t n = gs_conn_send(c, (const uint8_t *)data + done, len - done);
		uint64_t now = gs_now_ms();
		int r;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n != -EAGAIN)
			return (int)n;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = gs_step(gs, NULL, 0, (int)(deadline - now));
		if (r < 0)
			return r;
	}
	return 0;
}

ssize_t gs_recv_all(struct gs *gs, struct gs_conn *c, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	size_t done = 0;

	while (done < len) {
		ssize_t n = gs_conn_recv(c, (uint8_t *)buf + done, len - done);
		uint64_t now = gs_now_ms();
		int r;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0)
			break;
		if (n != -EAGAIN)
			return done ? (ssize_t)done : n;
		if (now >= deadline)
			return done ? (ssize_t)done : -ETIMEDOUT;
		r = gs_step(gs, NULL, 0, (int)(deadline - now));
		if (r < 0)
			return r;
	}
	return (ssize_t)done;
}

int gs_send_msg_all(struct gs *gs, struct gs_conn *c, const void *data, size_t len, bool eor,
	size_t pkt, int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;
	bool asked = false;

	for (;;) {
		ssize_t n = gs_conn_send_msg(c, data, len, eor, pkt);
		uint64_t now = gs_now_ms();
		int r;

		if (n >= 0)
			return 0;
		if (n != -EAGAIN)
			return (int)n;
		if (!asked && len > gs_conn_peer_free(c)) {
			/* The peer may owe a CREDIT_UPDATE it sees no reason to send yet. */
			send_ctrl(gs, GS_OP_CREDIT_REQUEST, c->local_port, c->peer_port, 0);
			asked = true;
		}
		if (now >= deadline)
			return -ETIMEDOUT;
		r = gs_step(gs, NULL, 0, (int)(deadline - now));
		if (r < 0)
			return r;
	}
}

ssize_t gs_recv_msg_all(struct gs *gs, struct gs_conn *c, void *buf, size_t len, int *ret_flags,
	int timeout_ms)
{
	uint64_t deadline = gs_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		ssize_t n = gs_conn_recv_msg(c, buf, len, ret_flags);
		uint64_t now = gs_now_ms();
		int r;

		if (n != -EAGAIN)
			return n;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = gs_step(gs, NULL, 0, (int)(deadline - now));
		if (r < 0)
			return r;
	}
}

uint16_t gs_avail_idx(const struct gs *gs, unsigned q)
{
	return q < 2 ? gs->vq[q].published : 0;
}

void gs_conn_tx_account(struct gs_conn *c, uint32_t len)
{
	c->tx_cnt += len;
}
