/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest->host bytes a host socket refused: a ring of at most buf_alloc bytes
 * per connection, allocated only while it holds data, and the FIFO of SEQPACKET
 * message lengths kept in it. Credit bounds what it holds: pending <=
 * rx_cnt - fwd_cnt <= buf_alloc. */
#include <errno.h>
#include <stdlib.h>

#include "vsock_internal.h"

static uint32_t vsock_pend_space_iov(struct vsock_conn *c, struct iovec iov[2])
{
	uint32_t cap = c->v->cfg.buf_alloc, tail = (c->pend_head + c->pend_len) % cap;
	uint32_t free_ = cap - c->pend_len, first = cap - tail < free_ ? cap - tail : free_;

	iov[0] = (struct iovec){ .iov_base = c->pend + tail, .iov_len = first };
	iov[1] = (struct iovec){ .iov_base = c->pend, .iov_len = free_ - first };
	return free_;
}

int vsock_pend_append(struct vsock_conn *c, const struct iovec *iov, size_t n, size_t skip,
		      size_t len)
{
	struct iovec space[2];
	size_t k;

	if (!c->pend) {
		c->pend = malloc(c->v->cfg.buf_alloc);
		if (!c->pend)
			return -ENOMEM;
		c->pend_head = 0;
	}
	/* Credit guarantees the room: pending <= rx_cnt - fwd_cnt <= buf_alloc. */
	if (vsock_pend_space_iov(c, space) < len)
		return -ENOBUFS;
	k = vsock_iov_copy_out(iov, n, skip, space[0].iov_base,
			       len < space[0].iov_len ? len : space[0].iov_len);
	if (k < len)
		k += vsock_iov_copy_out(iov, n, skip + k, space[1].iov_base, len - k);
	c->pend_len += (uint32_t)k;
	return 0;
}

int vsock_seq_queue_msg(struct vsock_conn *c, uint32_t len)
{
	if (c->seq_count == c->seq_cap) {
		/* Each message has at least one byte, so this stays below buf_alloc. */
		uint32_t cap = c->seq_cap ? c->seq_cap * 2 : 16;
		uint32_t *m = malloc(cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		for (uint32_t i = 0; i < c->seq_count; i++)
			m[i] = c->seq_msgs[(c->seq_head + i) % c->seq_cap];
		free(c->seq_msgs);
		c->seq_msgs = m;
		c->seq_cap = cap;
		c->seq_head = 0;
	}
	c->seq_msgs[(c->seq_head + c->seq_count++) % c->seq_cap] = len;
	return 0;
}

/* The guest gave up an unfinished message (SHUTDOWN): it is never sent. */
void vsock_seq_drop_partial(struct vsock_conn *c)
{
	c->pend_len -= c->seq_partial;
	c->fwd_cnt += c->seq_partial;
	c->seq_partial = 0;
	if (c->pend_len == 0) {
		free(c->pend);
		c->pend = NULL;
		c->pend_head = 0;
	}
}
