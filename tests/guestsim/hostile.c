/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A hostile guest: every kind of malformed chain and packet, on demand. */
#include <errno.h>
#include <string.h>

#include "guestsim-internal.h"
#include "macro.h"

static const struct {
	const char *name;
	bool breaks_ring;
	bool chain; /* made by hostile_chain() */
} hostile_kinds[GS_BAD_MAX] = {
	[GS_BAD_DESC_LOOP] = { "descriptor loop", true, true },
	[GS_BAD_ADDR_OUTSIDE] = { "address outside guest memory", true, true },
	[GS_BAD_ADDR_OVERFLOW] = { "address+length overflow", true, true },
	[GS_BAD_WRITABLE_ON_TX] = { "writable descriptor on tx", true, true },
	[GS_BAD_READABLE_ON_RX] = { "readable descriptor on rx", true, true },
	[GS_BAD_NESTED_INDIRECT] = { "nested indirect table", true, true },
	[GS_BAD_OVERSIZED_INDIRECT] = { "oversized indirect table", true, true },
	[GS_BAD_INDIRECT_LEN] = { "indirect table length not a multiple of 16", true, true },
	[GS_BAD_AVAIL_JUMP] = { "avail idx jumping past the ring size", true, true },
	[GS_BAD_NEXT_OUT_OF_RANGE] = { "next index out of range", true, true },
	[GS_BAD_HDR_SHORT] = { "tx chain shorter than a header", false, true },
	[GS_BAD_HDR_LEN] = { "header len larger than the buffer", false, false },
	[GS_BAD_SRC_CID] = { "wrong src_cid", false, false },
	[GS_BAD_UNKNOWN_OP] = { "unknown op", false, false },
	[GS_BAD_UNKNOWN_TYPE] = { "unknown type", false, false },
	[GS_BAD_RW_BEFORE_RESPONSE] = { "RW before RESPONSE", false, false },
	[GS_BAD_DUPLICATE_REQUEST] = { "duplicate REQUEST", false, false },
	[GS_BAD_CREDIT_VIOLATION] = { "credit violation", false, false },
};

const char *gs_hostile_name(enum gs_hostile k)
{
	return k < GS_BAD_MAX ? hostile_kinds[k].name : "?";
}

bool gs_hostile_breaks_ring(enum gs_hostile k)
{
	return k < GS_BAD_MAX && hostile_kinds[k].breaks_ring;
}

/* n free descriptor indices of the tx ring, taken from free slots (never given back:
 * after a ring-level fault the front-end reconnects with new memory anyway). */
static int take_descs(struct gs *gs, uint16_t *d, unsigned n)
{
	unsigned got = 0, slot;

	while (got < n) {
		int r = gs_tx_get_slot(gs, &slot);

		if (r < 0)
			return r;
		if (gs->o.tx_indirect) {
			d[got++] = (uint16_t)slot;
		} else {
			d[got++] = (uint16_t)(2 * slot);
			if (got < n)
				d[got++] = (uint16_t)(2 * slot + 1);
		}
	}
	return 0;
}

static void put_hdr(struct gs *gs, uint64_t off, uint16_t op, uint32_t len)
{
	struct gs_vsock_hdr h = { .src_cid = gs_guest_cid(gs),
		.dst_cid = GS_HOST_CID,
		.src_port = 4000,
		.dst_port = 4001,
		.len = len,
		.type = GS_TYPE_STREAM,
		.op = op,
		.buf_alloc = 65536 };

	memcpy(gs->mem + off, &h, sizeof(h));
}

static int hostile_chain(struct gs *gs, enum gs_hostile k)
{
	struct gs_vq *vq = &gs->vq[1];
	uint64_t scratch = gs->off_scratch, tbl = scratch + 4096;
	struct vring_desc *t = (struct vring_desc *)(gs->mem + tbl);
	uint16_t d[2];
	int r;

	r = take_descs(gs, d, 2);
	if (r < 0)
		return r;
	put_hdr(gs, scratch, GS_OP_REQUEST, 0);
	switch (k) {
	case GS_BAD_DESC_LOOP:
		vq->desc[d[0]] =
			(struct vring_desc){ gs_gpa(gs, scratch), 44, VRING_DESC_F_NEXT, d[1] };
		vq->desc[d[1]] =
			(struct vring_desc){ gs_gpa(gs, scratch + 64), 64, VRING_DESC_F_NEXT, d[0] };
		break;
	case GS_BAD_ADDR_OUTSIDE:
		vq->desc[d[0]] =
			(struct vring_desc){ gs_gpa(gs, gs->mem_size + (64u << 20)), 44, 0, 0 };
		break;
	case GS_BAD_ADDR_OVERFLOW:
		vq->desc[d[0]] = (struct vring_desc){ UINT64_MAX - 20, 44, 0, 0 };
		break;
	case GS_BAD_WRITABLE_ON_TX:
		vq->desc[d[0]] =
			(struct vring_desc){ gs_gpa(gs, scratch), 44, VRING_DESC_F_WRITE, 0 };
		break;
	case GS_BAD_NESTED_INDIRECT:
		t[0] = (struct vring_desc){ gs_gpa(gs, tbl + 1024), 16, VRING_DESC_F_INDIRECT, 0 };
		t[64] = (struct vring_desc){ gs_gpa(gs, scratch), 44, 0, 0 };
		vq->desc[d[0]] = (struct vring_desc){ gs_gpa(gs, tbl), 16, VRING_DESC_F_INDIRECT, 0 };
		break;
	case GS_BAD_OVERSIZED_INDIRECT:
		for (unsigned i = 0; i <= vq->num; i++)
			t[i] = (struct vring_desc){ gs_gpa(gs, scratch), i ? 1 : 44,
				i < vq->num ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1) };
		vq->desc[d[0]] = (struct vring_desc){ gs_gpa(gs, tbl), (vq->num + 1) * 16,
			VRING_DESC_F_INDIRECT, 0 };
		break;
	case GS_BAD_INDIRECT_LEN:
		t[0] = (struct vring_desc){ gs_gpa(gs, scratch), 44, 0, 0 };
		vq->desc[d[0]] = (struct vring_desc){ gs_gpa(gs, tbl), 20, VRING_DESC_F_INDIRECT, 0 };
		break;
	case GS_BAD_NEXT_OUT_OF_RANGE:
		vq->desc[d[0]] = (struct vring_desc){ gs_gpa(gs, scratch), 44, VRING_DESC_F_NEXT,
			(uint16_t)(vq->num + 3) };
		break;
	case GS_BAD_HDR_SHORT:
		vq->desc[d[0]] = (struct vring_desc){ gs_gpa(gs, scratch), 20, 0, 0 };
		break;
	default:
		return -EINVAL;
	}
	vq->busy[d[0]] = true;
	gs_vq_add(vq, d[0]);
	gs_vq_publish(gs, vq, true);
	return 0;
}

static int hostile_packet(struct gs *gs, enum gs_hostile k, struct gs_conn *c)
{
	struct gs_vsock_hdr h = { .src_cid = gs_guest_cid(gs),
		.dst_cid = GS_HOST_CID,
		.type = GS_TYPE_STREAM,
		.op = GS_OP_RW,
		.buf_alloc = 65536 };
	static uint8_t junk[GS_MAX_PKT];
	int r;

	if (k == GS_BAD_RW_BEFORE_RESPONSE) {
		/* A fresh guest port asks for host port `c`'s peer port and sends data at once. */
		h.src_port = 60000;
		gs_port_mark(gs, h.src_port);
		h.dst_port = c ? gs_conn_peer_port(c) : 1234;
		h.op = GS_OP_REQUEST;
		r = gs_send_raw_packet(gs, &h, NULL, 0);
		if (r < 0)
			return r;
		h.op = GS_OP_RW;
		h.len = 100;
		memset(junk, 'x', 100);
		return gs_send_raw_packet(gs, &h, junk, 100);
	}
	if (!c)
		return -EINVAL;
	h.src_port = gs_conn_local_port(c);
	h.dst_port = gs_conn_peer_port(c);
	switch (k) {
	case GS_BAD_HDR_LEN:
		h.len = 10000;
		return gs_send_raw_packet(gs, &h, junk, 100);
	case GS_BAD_SRC_CID:
		h.src_cid = gs_guest_cid(gs) + 1;
		h.len = 5;
		return gs_send_raw_packet(gs, &h, "bogus", 5);
	case GS_BAD_UNKNOWN_OP:
		h.op = 99;
		return gs_send_raw_packet(gs, &h, NULL, 0);
	case GS_BAD_UNKNOWN_TYPE:
		h.type = 77;
		h.len = 5;
		return gs_send_raw_packet(gs, &h, "bogus", 5);
	case GS_BAD_DUPLICATE_REQUEST:
		h.op = GS_OP_REQUEST;
		return gs_send_raw_packet(gs, &h, NULL, 0);
	case GS_BAD_CREDIT_VIOLATION: {
		/* Far more than the host's buf_alloc, as fast as the ring allows. */
		uint32_t total = gs_conn_peer_free(c) + 4 * GS_MAX_PKT;

		memset(junk, 'C', sizeof(junk));
		for (uint32_t sent = 0; sent < total;) {
			uint32_t n = total - sent > GS_MAX_PKT ? GS_MAX_PKT : total - sent;

			h.len = n;
			r = gs_send_raw_packet(gs, &h, junk, n);
			if (r == -EAGAIN) {
				r = gs_step(gs, NULL, 0, 100);
				if (r < 0)
					return r;
				continue;
			}
			if (r < 0)
				return r;
			gs_conn_tx_account(c, n);
			sent += n;
		}
		return 0;
	}
	default:
		return -EINVAL;
	}
}

static int hostile_rx_readable(struct gs *gs)
{
	struct gs_vq *vq = &gs->vq[0];

	/* The guest flips every posted rx descriptor to device-readable. */
	/* wlen 0: anything the device reports writing into these is a violation. */
	for (unsigned i = 0; i < vq->num; i++) {
		vq->desc[i].flags &= (uint16_t)~VRING_DESC_F_WRITE;
		vq->wlen[i] = 0;
	}
	gs_vq_publish(gs, vq, true);
	return 0;
}

int gs_hostile(struct gs *gs, enum gs_hostile k, struct gs_conn *c)
{
	struct gs_vq *vq = &gs->vq[1];

	if (k >= GS_BAD_MAX)
		return -EINVAL;
	if (k == GS_BAD_READABLE_ON_RX)
		return hostile_rx_readable(gs);
	if (k == GS_BAD_AVAIL_JUMP) {
		vq->avail_idx = (uint16_t)(vq->avail_idx + vq->num + 5);
		gs_vq_publish(gs, vq, true);
		return 0;
	}
	if (hostile_kinds[k].chain)
		return hostile_chain(gs, k);
	return hostile_packet(gs, k, c);
}
