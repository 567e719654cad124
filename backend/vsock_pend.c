/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest->host bytes a host socket refused: a ring of at most buf_alloc bytes
 * per connection, allocated only while it holds data, and the FIFO of SEQPACKET
 * message lengths kept in it. Credit bounds what it holds: pending <=
 * rx_cnt - fwd_cnt <= buf_alloc. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vsock_internal.h"

static uint32_t vsock_pend_space_iov(struct vsock_conn *c, struct iovec iov[2])
{
	uint32_t cap = c->pend_cap, tail = (c->pend_head + c->pend_len) % cap;
	uint32_t free_ = cap - c->pend_len, first = cap - tail < free_ ? cap - tail : free_;

	iov[0] = (struct iovec){ .iov_base = c->pend + tail, .iov_len = first };
	iov[1] = (struct iovec){ .iov_base = c->pend, .iov_len = free_ - first };
	return free_;
}

/* Make the ring hold at least `need` bytes: double (from 4 KiB, at most the
 * window advertised), and move what is pending to the front of the new ring. */
static int vsock_pend_grow(struct vsock_conn *c, uint32_t need)
{
	/* Never more than the window: every ring together stays within the budget. */
	uint32_t max = need > c->reserved ? need : c->reserved;
	uint32_t cap = c->pend_cap ? c->pend_cap : 4096, first;
	uint8_t *p;

	while (cap < need && cap < max)
		cap = cap > max / 2 ? max : cap * 2;
	if (cap > max)
		cap = max;
	if (cap < need)
		return -ENOBUFS;
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	first = c->pend_cap - c->pend_head < c->pend_len ? c->pend_cap - c->pend_head : c->pend_len;
	if (c->pend_len > 0) {
		memcpy(p, c->pend + c->pend_head, first);
		memcpy(p + first, c->pend, c->pend_len - first);
	}
	free(c->pend);
	c->v->pend_bytes += cap;
	c->v->pend_bytes -= c->pend_cap;
	c->pend = p;
	c->pend_cap = cap;
	c->pend_head = 0;
	return 0;
}

/* Nothing pending: give the ring back (idle connections keep no buffer). */
void vsock_pend_release(struct vsock_conn *c)
{
	free(c->pend);
	c->v->pend_bytes -= c->pend_cap;
	c->pend = NULL;
	c->pend_cap = c->pend_head = c->pend_len = 0;
}

int vsock_pend_append(struct vsock_conn *c, const struct iovec *iov, size_t n, size_t skip, size_t len)
{
	struct iovec space[2];
	size_t k;
	int r;

	/* Credit bounds what is pending: pending <= rx_cnt - fwd_cnt <= the window
	 * we advertised <= buf_alloc, so the ring grows at most to that. */
	if (len > c->v->cfg.buf_alloc - c->pend_len)
		return -ENOBUFS;
	if (c->pend_cap - c->pend_len < len) {
		r = vsock_pend_grow(c, c->pend_len + (uint32_t)len);
		if (r < 0)
			return r;
	}
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
	if (c->pend_len == 0)
		vsock_pend_release(c);
}
