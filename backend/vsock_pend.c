/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest->host bytes a host socket refused: held where they are (the tx chains,
 * vsock_hold_*), or copied into a ring of at most buf_alloc bytes
 * per connection, allocated only while it holds data, and the FIFO of SEQPACKET
 * message lengths kept in it. Credit bounds what it holds: pending <=
 * rx_cnt - fwd_cnt <= buf_alloc. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "macro.h"
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

/* Bytes the guest sent that the host socket has not taken yet: held in the
 * guest's tx buffers or copied into pend. */
uint32_t vsock_conn_unsent(const struct vsock_conn *c)
{
	return c->pend_len + (c->v->hold.c == c ? c->v->hold.len : 0);
}

/* Hold the len payload bytes of tx chain `head` (iov[0..n) from byte skip)
 * for connection c, to be written by vsock_hold_flush(). False when they
 * cannot be held (another connection holds, c has pend bytes, the hold is full):
 * the caller copies them into pend instead, after vsock_hold_release(). */
bool vsock_hold_add(struct vsock_conn *c, const struct iovec *iov, size_t n, size_t skip,
	uint32_t len, uint16_t head)
{
	struct vsock *v = c->v;
	struct vsock_hold *h = &v->hold;
	/* An eighth of the ring: a Linux driver uses one descriptor per packet
	 * (indirect) or two and more, its tx ring must keep room for others. */
	unsigned max = v->tx ? MIN(VSOCK_HOLD_MAX, v->tx->num / 8u) : 0;

	if ((h->c && h->c != c) || c->seqpacket || c->pend_len > 0 || len == 0)
		return false;
	if (h->head_end - h->head_first >= max)
		return false;
	if (h->head_end == ELEMENTSOF(h->heads) || h->iov_end + n > ELEMENTSOF(h->iov)) {
		/* Move what is left to the front. */
		memmove(h->heads, h->heads + h->head_first,
			(h->head_end - h->head_first) * sizeof(h->heads[0]));
		memmove(h->lens, h->lens + h->head_first,
			(h->head_end - h->head_first) * sizeof(h->lens[0]));
		memmove(h->iov, h->iov + h->iov_first,
			(h->iov_end - h->iov_first) * sizeof(h->iov[0]));
		h->head_end -= h->head_first;
		h->iov_end -= h->iov_first;
		h->head_first = 0;
		h->iov_first = 0;
		if (h->iov_end + n > ELEMENTSOF(h->iov))
			return false;
	}
	h->c = c;
	h->iov_end += vsock_iov_slice(iov, n, skip, len, h->iov + h->iov_end);
	h->heads[h->head_end] = head;
	h->lens[h->head_end++] = len;
	h->len += len;
	return true;
}

/* Give back (used) the held chains whose bytes are all written. */
static void vsock_hold_push_done(struct vsock *v)
{
	struct vsock_hold *h = &v->hold;

	while (h->head_first < h->head_end && h->lens[h->head_first] == 0) {
		virtqueue_push_head(v->tx, h->heads[h->head_first++], 0);
		v->tx_dirty = true;
	}
	if (h->head_first == h->head_end) {
		h->c = NULL;
		h->len = 0;
		h->head_first = h->head_end = 0;
		h->iov_first = h->iov_end = 0;
	}
}

/* Write what c holds to its host socket. Returns the bytes written (their
 * chains given back as they complete), or < 0 when the write failed (nothing
 * changed). */
ssize_t vsock_hold_flush(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	struct vsock_hold *h = &v->hold;
	ssize_t n;
	size_t left;

	if (h->c != c)
		return 0;
	n = vsock_send_iov(c->fd, h->iov + h->iov_first, h->iov_end - h->iov_first);
	if (n <= 0)
		return n;
	h->len -= (uint32_t)n;
	for (left = (size_t)n; left > 0;) {
		struct iovec *io = &h->iov[h->iov_first];
		size_t k = MIN(left, io->iov_len);

		io->iov_base = (uint8_t *)io->iov_base + k;
		io->iov_len -= k;
		left -= k;
		if (io->iov_len == 0)
			h->iov_first++;
	}
	left = (size_t)n;
	for (unsigned i = h->head_first; i < h->head_end && left > 0; i++) {
		uint32_t k = (uint32_t)MIN(left, (size_t)h->lens[i]);

		h->lens[i] -= k;
		left -= k;
	}
	vsock_hold_push_done(v);
	return n;
}

/* Give every held chain back: its unwritten bytes copied into its
 * connection's pend ring (copy), or dropped (the connection is gone, or the
 * host takes nothing more). Runs before the tx ring or guest memory goes away
 * and when the hold is full. A connection whose bytes cannot be kept is reset. */
void vsock_hold_release(struct vsock *v, bool copy)
{
	struct vsock_hold *h = &v->hold;
	struct vsock_conn *c = h->c;
	int r = 0;

	if (!c)
		return;
	if (copy && h->len > 0)
		r = vsock_pend_append(c, h->iov + h->iov_first, h->iov_end - h->iov_first, 0, h->len);
	for (unsigned i = h->head_first; i < h->head_end; i++)
		h->lens[i] = 0;
	vsock_hold_push_done(v);
	if (r < 0) {
		log_error_errno(r, "Failed to buffer data for port %u: %m", c->local_port);
		vsock_conn_reset(c);
	}
}
