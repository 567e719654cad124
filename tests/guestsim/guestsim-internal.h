/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestsim internals shared by guestsim.c (driver) and hostile.c (malformed input). */
#pragma once

#include <stdarg.h>

#include "guestsim.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "guestsim writes virtio structures in host order: little-endian hosts only"
#endif

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct gs_vq {
	unsigned num;
	uint64_t desc_off, avail_off, used_off; /* offsets into guest memory */
	struct vring_desc *desc;
	uint16_t *avail;    /* flags, idx, ring[num], used_event */
	uint8_t *used;      /* flags, idx, {id, len}[num], avail_event */
	uint16_t avail_idx; /* next avail idx (shadow) */
	uint16_t published; /* avail idx the device has been told about */
	uint16_t last_used;
	bool *busy;     /* per head: handed to the device */
	uint32_t *wlen; /* per head: device-writable bytes */
	int kick_fd, call_fd;
	uint64_t kicks, calls;
};

struct gs_ctrl {
	struct gs_vsock_hdr h;
};

struct gs {
	struct gs_options o;
	int vu_fd;
	uint64_t features, protocol_features;
	uint32_t cid;
	uint32_t sent[64];
	unsigned nsent;

	int mem_fd;
	uint8_t *mem;
	size_t mem_size, region_split;
	uint64_t off_indirect, off_scratch, off_rx, off_tx;
	size_t scratch_size;

	struct gs_vq vq[2]; /* rx 0, tx 1 */
	unsigned rx_bufs, tx_slots;
	uint32_t rx_stride, tx_stride;
	uint16_t *tx_free;
	unsigned ntx_free;

	struct gs_ctrl *ctrl;
	unsigned nctrl, ctrl_cap;

	struct gs_conn **table; /* hash of (local, peer) ports */
	unsigned nconns;
	unsigned nclosing; /* connections in gs_conn_close()'s linger */
	struct gs_listen *listens;
	uint32_t next_port;
	uint8_t *used_ports; /* bitmap: every local port ever handed out */

	unsigned violations;
	char last_violation[512];
	uint64_t rx_ops[8];
	bool dead; /* the back-end hung up */
};

#define GS_HASH 4096

int gs_violation(struct gs *gs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t gs_gpa(const struct gs *gs, uint64_t off);
int gs_tx_get_slot(struct gs *gs, unsigned *ret_slot);
void gs_tx_put_slot(struct gs *gs, unsigned slot);
/* Publish head(s) on a queue, kick when EVENT_IDX says so (or always when force). */
void gs_vq_publish(struct gs *gs, struct gs_vq *vq, bool force_kick);
void gs_vq_add(struct gs_vq *vq, uint16_t head);

/* For raw packets: remember a port as the guest's, count bytes as sent on c. */
void gs_port_mark(struct gs *gs, uint32_t port);
void gs_conn_tx_account(struct gs_conn *c, uint32_t len);
