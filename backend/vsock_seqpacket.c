/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SEQPACKET connections (virtio spec 5.10.6.8, VIRTIO_VSOCK_F_SEQPACKET): the
 * host socket is a SOCK_SEQPACKET Unix socket and one record is one message.
 * Host->guest a record is split across rx buffers with EOM on the last;
 * guest->host packets are collected up to EOM, then sent as one record. */
#include <errno.h>
#include <sys/socket.h>

#include "vsock_internal.h"

void vsock_conn_set_seqpacket(struct vsock_conn *c)
{
	int sndbuf = (int)c->v->cfg.buf_alloc;

	c->seqpacket = true;
	/* A guest refuses a message larger than our buf_alloc (EMSGSIZE): offer
	 * the whole buffer from the start, as far as the budget allows. */
	c->buf_target = c->v->cfg.buf_alloc;
	/* A Unix record must fit the send buffer; the kernel doubles this value. */
	if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0)
		log_debug_errno(-errno, "Failed to set SO_SNDBUF, ignoring: %m");
}

/* recv() returns 0 both for an empty record and at end of stream. Take one
 * record with SO_PASSCRED on: a record comes with SCM_CREDENTIALS (the kernel
 * adds them to every message it hands out), end of stream with none. 1: an
 * empty record was taken (virtio-vsock cannot carry one: it is dropped); 0:
 * end of stream; -EAGAIN; or another -errno. */
static int vsock_seq_take_empty(struct vsock_conn *c)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct msghdr mh = { .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
	int one = 1;
	ssize_t n;

	if (setsockopt(c->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		return -errno;
	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	if (CMSG_FIRSTHDR(&mh)) {
		log_debug("Dropping an empty message from host port %u", c->local_port);
		return 1;
	}
	return 0;
}

/* SEQPACKET host->guest: one host record is one message, split across as many rx
 * buffers as it needs, EOM on the last. It is taken from the socket only once
 * the guest has credit and buffers for all of it, so a record is never cut. */
void vsock_conn_read_seq(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	struct virtqueue_elem *e = &v->rx_elem;

	for (int budget = VSOCK_READ_BUDGET; budget > 0; budget--) {
		uint8_t raw[VSOCK_HDR_SIZE];
		struct msghdr mh = { .msg_iov = v->rx_iov };
		struct vsock_hdr h;
		uint32_t len, room = 0;
		size_t n_iov = 0;
		unsigned k = 0;
		bool full = false; /* our iovec table is the limit, not the guest */
		ssize_t n;

		if (!vsock_conn_may_read(c)) {
			vsock_conn_update_read(c);
			return;
		}
		/* The size of the next record, which stays queued. */
		n = recv(c->fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			vsock_conn_set_read(c, true);
			return;
		}
		if (n < 0 && !vsock_conn_host_read_eof(errno)) {
			log_debug_errno(-errno, "Host socket of port %u failed: %m", c->local_port);
			vsock_conn_reset(c);
			return;
		}
		if (n == 0) {
			int r = vsock_seq_take_empty(c);

			if (r > 0)
				continue; /* an empty record: dropped, the stream goes on */
			if (r == -EAGAIN) {
				vsock_conn_set_read(c, true);
				return;
			}
			if (r < 0 && !vsock_conn_host_read_eof(-r)) {
				log_debug_errno(r, "Host socket of port %u failed: %m",
					c->local_port);
				vsock_conn_reset(c);
				return;
			}
		}
		if (n <= 0) {
			/* End of stream: the guest learns with SHUTDOWN(SEND). */
			if (vsock_rx_pop(v, e) <= 0) {
				if (!v->rx || !v->rx->broken)
					vsock_conn_wait_rx(c);
				return;
			}
			vsock_conn_host_eof(c, e);
			return;
		}
		if ((uint64_t)n > c->peer_buf_alloc) {
			/* The guest could never take it whole (Linux answers EMSGSIZE here). */
			host_warning("Host message of %zd bytes on port %u exceeds the guest's "
				     "buffer of %u bytes, resetting",
				n, c->local_port, c->peer_buf_alloc);
			vsock_conn_reset(c);
			return;
		}
		len = (uint32_t)n;
		if (len > vsock_peer_free(c)) {
			/* Wait for credit for all of it; ask once, a guest may be lazy. */
			c->seq_need = len;
			if (!c->seq_credit_asked) {
				c->seq_credit_asked = true;
				c->owed |= VSOCK_OWE_CREDIT_REQUEST;
				vsock_send_list_add(c);
			}
			vsock_conn_set_read(c, false);
			return;
		}
		c->seq_need = 0;
		while (room < len) {
			uint32_t cap;

			if (k == VSOCK_RX_IOV) {
				full = true;
				break;
			}
			if (vsock_rx_pop(v, e) <= 0)
				break;
			if (n_iov + e->n_in > VSOCK_RX_IOV) {
				virtqueue_unpop(v->rx);
				full = true;
				break;
			}
			/* Clamp in size_t: a chain's length need not fit 32 bits. */
			cap = e->in_len - VSOCK_HDR_SIZE < len - room
				      ? (uint32_t)(e->in_len - VSOCK_HDR_SIZE)
				      : len - room;
			/* Every length is known before the read: write the header now. */
			vsock_fill_hdr(v, &h, c->local_port, c->peer_port, VSOCK_OP_RW,
				room + cap == len ? VSOCK_SEQ_EOM : 0, cap, c);
			vsock_hdr_encode(&h, raw);
			vsock_iov_copy_in(e->iov + e->n_out, e->n_in, raw, sizeof(raw));
			n_iov += vsock_iov_slice(e->iov + e->n_out, e->n_in, VSOCK_HDR_SIZE, cap,
				v->rx_iov + n_iov);
			v->seq_heads[k] = e->head;
			v->seq_caps[k++] = cap;
			room += cap;
		}
		if (room < len) {
			bool whole_ring = full || (v->rx && k >= v->rx->num);

			for (unsigned i = 0; i < k; i++)
				virtqueue_unpop(v->rx);
			if (v->rx && v->rx->broken)
				return;
			if (whole_ring && k > 0) {
				host_warning("Host message of %u bytes on port %u needs more rx "
					     "buffers than the guest posts, resetting",
					len, c->local_port);
				vsock_conn_reset(c);
				return;
			}
			vsock_conn_wait_rx(c);
			return;
		}
		mh.msg_iovlen = n_iov;
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
		if (n != (ssize_t)len || (mh.msg_flags & MSG_TRUNC)) {
			for (unsigned i = 0; i < k; i++)
				virtqueue_unpop(v->rx);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				vsock_conn_set_read(c, true);
				return;
			}
			log_debug("Host socket of port %u gave %zd bytes of a %u byte message",
				c->local_port, n, len);
			vsock_conn_reset(c);
			return;
		}
		for (unsigned i = 0; i < k; i++) {
			e->head = v->seq_heads[i];
			virtqueue_push(v->rx, e, VSOCK_HDR_SIZE + v->seq_caps[i]);
		}
		v->rx_dirty = true;
		c->tx_cnt += len;
		c->fwd_cnt_sent = c->fwd_cnt;
	}
	vsock_conn_set_read(c, true);
}

/* SEQPACKET guest->host: send finished messages, one record each, in order. */
void vsock_conn_flush_seq(struct vsock_conn *c)
{
	while (c->seq_count > 0) {
		uint32_t cap = c->pend_cap;
		uint32_t len = c->seq_msgs[c->seq_head];
		uint32_t first = cap - c->pend_head < len ? cap - c->pend_head : len;
		struct iovec iov[2] = {
			{ .iov_base = c->pend + c->pend_head, .iov_len = first },
			{ .iov_base = c->pend, .iov_len = len - first },
		};
		ssize_t n = vsock_send_iov(c->fd, iov, 2);

		if (n < 0) {
			vsock_conn_host_write_failed(c, (int)n);
			return;
		}
		if (n == 0) {
			vsock_conn_set_write(c, true);
			return;
		}
		/* A SOCK_SEQPACKET send is all or nothing. */
		c->pend_head = (c->pend_head + len) % cap;
		c->pend_len -= len;
		c->fwd_cnt += len;
		c->seq_head = (c->seq_head + 1) % c->seq_cap;
		c->seq_count--;
	}
	vsock_conn_set_write(c, false);
	if (c->pend_len == 0)
		vsock_pend_release(c);
	vsock_conn_maybe_credit_update(c);
	vsock_conn_check_done(c);
}

/* Collect the packets of one message up to EOM, then one record. Credit bounds
 * the collected bytes by buf_alloc, so a bigger message is a credit violation. */
void vsock_op_rw_seq(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	bool eom = h->flags & VSOCK_SEQ_EOM;
	uint32_t len;
	int r;

	if (vsock_conn_rx_account(c, h, " (message too large?)") <= 0)
		return;
	if (eom && c->pend_len == 0 && h->len > 0) {
		/* A whole message with nothing queued: straight from guest memory. */
		ssize_t n = vsock_send_iov(c->fd, payload, n_payload);

		if (n < 0) {
			vsock_conn_host_write_failed(c, (int)n);
			return;
		}
		if (n > 0) {
			c->fwd_cnt += h->len;
			vsock_conn_maybe_credit_update(c);
			return;
		}
	}
	if (h->len > 0) {
		r = vsock_pend_append(c, payload, n_payload, 0, h->len);
		if (r < 0) {
			log_error_errno(r, "Failed to buffer data for port %u: %m", c->local_port);
			vsock_conn_reset(c);
			return;
		}
		c->seq_partial += h->len;
	}
	if (!eom)
		return;
	len = c->seq_partial;
	c->seq_partial = 0;
	if (len == 0) {
		/* An empty record would read as EOF on the host socket. */
		log_debug("Dropping an empty message from guest port %u", h->src_port);
		return;
	}
	r = vsock_seq_queue_msg(c, len);
	if (r < 0) {
		log_error_errno(r, "Failed to queue a message for port %u: %m", c->local_port);
		vsock_conn_reset(c);
		return;
	}
	vsock_conn_flush_seq(c);
}

/* SEQPACKET host client: the first record is the CONNECT line (newline
 * included); later records stay queued in the socket until the guest answers. */
void vsock_conn_line_seq(struct vsock_conn *c)
{
	char buf[HYBRID_LINE_MAX], esc[4 * HYBRID_LINE_MAX + 8];
	uint32_t port = 0;
	ssize_t n;
	int r;

	n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		vsock_conn_close(c);
		return;
	}
	r = (size_t)n > sizeof(buf) ? -EBADMSG : hybrid_line_parse(buf, (size_t)n, &port);
	if (r < 0) {
		host_warning("Bad CONNECT record from host client: \"%s\"%s, closing",
			log_escape(esc, sizeof(esc), buf,
				(size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf)),
			(size_t)n > sizeof(buf) ? " (truncated)" : "");
		vsock_conn_close(c);
		return;
	}
	if (!c->v->seqpacket) {
		host_warning("SEQPACKET client for guest port %u, but the guest driver did not "
			     "negotiate SEQPACKET, closing",
			port);
		vsock_conn_close(c);
		return;
	}
	vsock_conn_line_done(c, port);
}
