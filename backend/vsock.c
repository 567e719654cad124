/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock device side: the connection table, lifetime, credit, control
 * packets and stream rx/tx (SEQPACKET in vsock_seqpacket.c, host sockets in
 * vsock_host.c). One copy per byte: guest->host data goes from the guest's
 * buffers straight to sendmsg(), host->guest data is readv()'d straight into
 * the guest's rx buffers; only what a host socket refuses is copied, into a
 * ring bounded by the buf_alloc we advertise (vsock_pend.c). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/param.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hybrid.h"
#include "log.h"
#include "macro.h"
#include "vsock.h"
#include "vsock_internal.h"

struct vsock_op {
	const char *name;
	/* conn is NULL only for REQUEST. */
	void (*handler)(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
		const struct iovec *payload, size_t n_payload);
};

struct log_ratelimit vsock_guest_rl = LOG_RATELIMIT_INIT(5000, 10);
struct log_ratelimit vsock_host_rl = LOG_RATELIMIT_INIT(5000, 10);

static void vsock_rx_run(struct vsock *v);
static void vsock_conn_host_rcv_closed(struct vsock_conn *c);

/* ---- connection table ---- */

static unsigned vsock_hash_key(uint32_t local, uint32_t peer)
{
	return ((local * 2654435761u) ^ (peer * 40503u + (peer >> 16))) & (VSOCK_HASH_SIZE - 1);
}

static struct vsock_conn *vsock_lookup(struct vsock *v, uint32_t local, uint32_t peer)
{
	for (struct vsock_conn *c = v->hash[vsock_hash_key(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static bool vsock_host_port_used(struct vsock *v, uint32_t port)
{
	for (struct vsock_conn *c = v->port_hash[port & (VSOCK_HASH_SIZE - 1)]; c; c = c->pnext)
		if (c->local_port == port)
			return true;
	return false;
}

void vsock_hash_add(struct vsock *v, struct vsock_conn *c)
{
	unsigned k = vsock_hash_key(c->local_port, c->peer_port);

	c->hnext = v->hash[k];
	v->hash[k] = c;
	/* Every connection, guest-initiated ones too: a guest connecting to a port
	 * in the host range must keep CONNECT from being given that same port. */
	k = c->local_port & (VSOCK_HASH_SIZE - 1);
	c->pnext = v->port_hash[k];
	v->port_hash[k] = c;
}

static void vsock_hash_remove(struct vsock *v, struct vsock_conn *c)
{
	struct vsock_conn **p;

	/* A connection not hashed yet (NEW, LINE) is simply not found. */
	for (p = &v->hash[vsock_hash_key(c->local_port, c->peer_port)]; *p; p = &(*p)->hnext)
		if (*p == c) {
			*p = c->hnext;
			break;
		}
	for (p = &v->port_hash[c->local_port & (VSOCK_HASH_SIZE - 1)]; *p; p = &(*p)->pnext)
		if (*p == c) {
			*p = c->pnext;
			break;
		}
}

int vsock_alloc_host_port(struct vsock *v, uint32_t *ret)
{
	/* Round robin; at most n_conns ports can be in use, so this ends. */
	for (unsigned tries = 0; tries <= v->n_conns; tries++) {
		uint32_t p = v->next_host_port++;
		if (v->next_host_port >= VSOCK_HOST_PORT_END)
			v->next_host_port = VSOCK_HOST_PORT_FIRST;
		if (!vsock_host_port_used(v, p)) {
			*ret = p;
			return 0;
		}
	}
	return -EADDRINUSE;
}

/* ---- connection lifetime ---- */

#define S(x) [VSOCK_STATE_##x]
static const char *const vsock_state_names[_VSOCK_STATE_MAX] = {
	S(NEW) = "NEW",
	S(LINE) = "LINE",
	S(REQUESTED) = "REQUESTED",
	S(CONNECTING) = "CONNECTING",
	S(ESTABLISHED) = "ESTABLISHED",
	S(CLOSING) = "CLOSING",
	S(CLOSED) = "CLOSED",
};

/* The only moves a connection makes, [from][to]. A host client: NEW -> LINE ->
 * REQUESTED -> ESTABLISHED; a guest's REQUEST: NEW -> CONNECTING -> ESTABLISHED,
 * or NEW -> ESTABLISHED when the host socket connected at once; the guest's full
 * close with bytes still owed to the host: ESTABLISHED -> CLOSING; and from any
 * live state, CLOSED. Nothing leaves CLOSED. */
static const bool vsock_state_moves[_VSOCK_STATE_MAX][_VSOCK_STATE_MAX] = {
	S(NEW) = { S(LINE) = true, S(CONNECTING) = true, S(ESTABLISHED) = true, S(CLOSED) = true },
	S(LINE) = { S(REQUESTED) = true, S(CLOSED) = true },
	S(REQUESTED) = { S(ESTABLISHED) = true, S(CLOSED) = true },
	S(CONNECTING) = { S(ESTABLISHED) = true, S(CLOSED) = true },
	S(ESTABLISHED) = { S(CLOSING) = true, S(CLOSED) = true },
	S(CLOSING) = { S(CLOSED) = true },
};
#undef S

const char *vsock_state_name(enum vsock_state s)
{
	return (unsigned)s < _VSOCK_STATE_MAX ? vsock_state_names[s] : "?";
}

bool vsock_state_move_allowed(enum vsock_state from, enum vsock_state to)
{
	return (unsigned)from < _VSOCK_STATE_MAX && (unsigned)to < _VSOCK_STATE_MAX &&
	       vsock_state_moves[from][to];
}

/* Move c to new_state: 0, or -EPROTO for a move vsock_state_moves[] does not
 * allow (a bug here, not the guest's doing: logged, and the connection reset
 * unless it is closed already). */
int vsock_conn_set_state(struct vsock_conn *c, enum vsock_state new_state)
{
	if (!vsock_state_move_allowed(c->state, new_state)) {
		log_error("Connection host port %u guest port %u: illegal state change %s -> %s, "
			  "resetting",
			c->local_port, c->peer_port, vsock_state_name(c->state),
			vsock_state_name(new_state));
		if (c->state != VSOCK_STATE_CLOSED)
			vsock_conn_reset(c);
		return -EPROTO;
	}
	c->state = new_state;
	return 0;
}

void vsock_conn_set_read(struct vsock_conn *c, bool on)
{
	if (c->fd < 0)
		return;
	if (on != (event_pending(c->ev_read, EV_READ, NULL) != 0)) {
		if (on)
			event_add(c->ev_read, NULL);
		else
			event_del(c->ev_read);
	}
	vsock_conn_update_hup_watch(c);
}

void vsock_conn_set_write(struct vsock_conn *c, bool on)
{
	if (c->fd < 0 || on == (event_pending(c->ev_write, EV_WRITE, NULL) != 0))
		return;
	if (on)
		event_add(c->ev_write, NULL);
	else
		event_del(c->ev_write);
}

void vsock_conn_set_timer(struct vsock_conn *c, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	if (seconds > 0)
		evtimer_add(c->timer, &tv);
	else
		evtimer_del(c->timer);
}

void vsock_send_list_add(struct vsock_conn *c)
{
	if (c->on_send_list)
		return;
	TAILQ_INSERT_TAIL(&c->v->send_list, c, send_entry);
	c->on_send_list = true;
}

static void vsock_send_list_remove(struct vsock_conn *c)
{
	if (!c->on_send_list)
		return;
	TAILQ_REMOVE(&c->v->send_list, c, send_entry);
	c->on_send_list = false;
}

static void vsock_reaper_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock *v = userdata;
	struct vsock_conn *c;

	while ((c = TAILQ_FIRST(&v->dead))) {
		TAILQ_REMOVE(&v->dead, c, all_entry);
		event_free(c->ev_read);
		event_free(c->ev_write);
		event_free(c->timer);
		event_free(c->ev_hup);
		free(c->seq_msgs);
		free(c);
	}
}

/* Close the host side and forget the connection; freed later (this may run
 * inside one of its own callbacks). */
void vsock_conn_close(struct vsock_conn *c)
{
	struct vsock *v = c->v;

	if (c->state == VSOCK_STATE_CLOSED)
		return;
	vsock_hash_remove(v, c);
	vsock_send_list_remove(c);
	event_del(c->ev_read);
	event_del(c->ev_write);
	event_del(c->ev_hup);
	evtimer_del(c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	v->n_conns--;
	if (c->origin == VSOCK_ORIGIN_GUEST)
		v->n_guest_initiated--;
	vsock_conn_set_state(c, VSOCK_STATE_CLOSED);
	v->reserved -= c->reserved;
	c->reserved = 0;
	if (v->hold.c == c)
		vsock_hold_release(v, false);
	vsock_pend_release(c);
	TAILQ_REMOVE(&v->all, c, all_entry);
	TAILQ_INSERT_TAIL(&v->dead, c, all_entry);
	event_active(v->reaper, 0, 0);
}

static void vsock_queue_rst(struct vsock *v, uint32_t local, uint32_t peer, uint32_t fwd_cnt,
	uint16_t type)
{
	if (v->rst_len == VSOCK_RST_QUEUE) {
		guest_warning("RST queue full, dropping RST for port %u", peer);
		return;
	}
	v->rst[(v->rst_head + v->rst_len++) % VSOCK_RST_QUEUE] =
		(struct vsock_rst){ .local_port = local,
			.peer_port = peer,
			.fwd_cnt = fwd_cnt,
			.type = type };
}

/* virtio_transport_reset_no_sock() (net/vmw_vsock/virtio_transport_common.c):
 * a packet for no connection is answered with an RST of the packet's type;
 * an RST is never answered. */
static void vsock_reset_no_sock(struct vsock *v, const struct vsock_hdr *h)
{
	if (h->op == VSOCK_OP_RST)
		return;
	vsock_queue_rst(v, h->dst_port, h->src_port, 0,
		h->type == VSOCK_TYPE_SEQPACKET ? VSOCK_TYPE_SEQPACKET : VSOCK_TYPE_STREAM);
}

/* Tell the guest the connection is gone, then close it. */
void vsock_conn_reset(struct vsock_conn *c)
{
	struct vsock *v = c->v;

	if (c->state == VSOCK_STATE_CLOSED)
		return;
	if (c->state != VSOCK_STATE_NEW && c->state != VSOCK_STATE_LINE)
		vsock_queue_rst(v, c->local_port, c->peer_port, c->fwd_cnt,
			c->seqpacket ? VSOCK_TYPE_SEQPACKET : VSOCK_TYPE_STREAM);
	vsock_conn_close(c);
}

int vsock_conn_new(struct vsock *v, int fd, struct vsock_conn **ret);

/* A bad packet costs its own connection (reset, or closed silently if it was
 * an RST), or is answered as one for no connection. */
static void vsock_reset_packet(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h)
{
	if (!c)
		vsock_reset_no_sock(v, h);
	else if (h->op == VSOCK_OP_RST)
		vsock_conn_close(c);
	else
		vsock_conn_reset(c);
}

/* ---- rx: packets to the guest ---- */

uint32_t vsock_peer_free(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	/* A guest may shrink buf_alloc below what is in flight. */
	return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

void vsock_fill_hdr(struct vsock *v, struct vsock_hdr *h, uint32_t local, uint32_t peer,
	uint16_t op, uint32_t flags, uint32_t len, struct vsock_conn *c)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = v->cfg.guest_cid,
		.src_port = local,
		.dst_port = peer,
		.len = len,
		.type = c && c->seqpacket ? VSOCK_TYPE_SEQPACKET : VSOCK_TYPE_STREAM,
		.op = op,
		.flags = flags,
		.buf_alloc = c ? vsock_conn_window(c) : v->cfg.buf_alloc,
		.fwd_cnt = c ? c->fwd_cnt : 0,
	};
}

/* Host EOF -> SHUTDOWN(SEND) (design: half-close both ways), in the rx buffer e
 * the caller popped; the guest may still send until it shuts down too. */
void vsock_conn_host_eof(struct vsock_conn *c, struct virtqueue_elem *e)
{
	struct pollfd p = { .fd = c->fd };
	struct vsock_hdr h;

	/* A host that closed, not only shut down its sending side (POLLHUP: both
	 * directions shut), takes nothing more either. */
	if (!(c->host_shutdown & VSOCK_SHUTDOWN_RCV) && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
		vsock_conn_host_rcv_closed(c);
	vsock_fill_hdr(c->v, &h, c->local_port, c->peer_port, VSOCK_OP_SHUTDOWN,
		VSOCK_SHUTDOWN_SEND, 0, c);
	vsock_rx_push(c->v, e, &h);
	c->fwd_cnt_sent = c->fwd_cnt;
	c->host_shutdown |= VSOCK_SHUTDOWN_SEND;
	vsock_conn_set_read(c, false);
	/* Host side gone (design: full close -> RST after the close timeout): a
	 * guest that keeps the connection does not keep its slot. Counted from the
	 * hang-up when it was seen while reads were paused. */
	if ((c->host_shutdown & VSOCK_SHUTDOWN_RCV) && !evtimer_pending(c->timer, NULL))
		vsock_conn_set_timer(c, VSOCK_CLOSE_TIMEOUT_S);
	vsock_conn_check_done(c);
}

/* The buf_alloc to advertise now (virtio spec 5.10.6.3), and the bookkeeping
 * for it. The window is what the connection would like (buf_target: small when
 * idle or when the host does not read, growing while a stream moves), within
 * what the VM's budget has left after every other connection's promise and an
 * idle share for every free slot. It never moves the edge fwd_cnt + buf_alloc
 * back: Linux before "vsock: fix credit with a shrunk buf_alloc" computes
 * credit as buf_alloc - (tx_cnt - fwd_cnt) in unsigned arithmetic, so a
 * window below what the guest has in flight would let it overrun. */
uint32_t vsock_conn_window(struct vsock_conn *c)
{
	struct vsock *v = c->v;
	uint32_t edge = c->rx_limit - c->fwd_cnt, want = c->buf_target;
	uint64_t others = v->reserved - c->reserved, free_slots, room;

	free_slots = v->cfg.max_connections > v->n_conns ? v->cfg.max_connections - v->n_conns : 0;
	others += free_slots * v->buf_floor;
	room = v->cfg.memory_budget > others ? v->cfg.memory_budget - others : 0;
	if (want < v->buf_floor)
		want = v->buf_floor;
	if (want > room)
		want = room > v->buf_floor ? (uint32_t)room : v->buf_floor;
	if (want < edge)
		want = edge;
	v->reserved = v->reserved - c->reserved + want;
	c->reserved = want;
	c->rx_limit = c->fwd_cnt + want;
	return want;
}

/* Pop an rx buffer able to take at least a header. 1, 0 (none), or < 0. */
int vsock_rx_pop(struct vsock *v, struct virtqueue_elem *e)
{
	int r;

	if (!v->rx)
		return 0;
	r = virtqueue_pop(v->rx, VIRTQUEUE_WRITABLE, e);
	if (r <= 0)
		return r == -ENODEV ? 0 : r;
	/* Linux posts 4 KiB buffers; one without room for data is not a driver. */
	if (e->in_len <= VSOCK_HDR_SIZE) {
		virtqueue_set_broken(v->rx, "rx buffer without room for a header and data");
		return -EIO;
	}
	return 1;
}

void vsock_rx_push(struct vsock *v, struct virtqueue_elem *e, const struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, raw);
	vsock_iov_copy_in(e->iov + e->n_out, e->n_in, raw, sizeof(raw));
	virtqueue_push(v->rx, e, VSOCK_HDR_SIZE + h->len);
	v->rx_dirty = true;
}

static int vsock_send_ctl(struct vsock *v, struct vsock_conn *c, uint32_t local, uint32_t peer,
	uint16_t op, uint32_t flags, uint32_t fwd_cnt, uint16_t type)
{
	struct virtqueue_elem *e = &v->rx_elem;
	struct vsock_hdr h;
	int r;

	r = vsock_rx_pop(v, e);
	if (r <= 0)
		return -EAGAIN;
	vsock_fill_hdr(v, &h, local, peer, op, flags, 0, c);
	if (!c) {
		/* An RST for a connection already closed, of the type the guest used. */
		h.fwd_cnt = fwd_cnt;
		h.type = type;
	}
	vsock_rx_push(v, e, &h);
	if (c)
		c->fwd_cnt_sent = c->fwd_cnt;
	return 0;
}

static int vsock_conn_flush_ctl(struct vsock_conn *c)
{
	static const struct {
		unsigned bit;
		uint16_t op;
		uint32_t flags;
	} ctl_ops[] = {
		{ VSOCK_OWE_REQUEST, VSOCK_OP_REQUEST, 0 },
		{ VSOCK_OWE_RESPONSE, VSOCK_OP_RESPONSE, 0 },
		{ VSOCK_OWE_SHUTDOWN_RCV, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV },
		{ VSOCK_OWE_CREDIT_UPDATE, VSOCK_OP_CREDIT_UPDATE, 0 },
		{ VSOCK_OWE_CREDIT_REQUEST, VSOCK_OP_CREDIT_REQUEST, 0 },
	};

	for (size_t i = 0; i < ELEMENTSOF(ctl_ops); i++) {
		if (!(c->owed & ctl_ops[i].bit))
			continue;
		if (vsock_send_ctl(c->v, c, c->local_port, c->peer_port, ctl_ops[i].op,
			    ctl_ops[i].flags, c->fwd_cnt, 0) < 0)
			return -EAGAIN;
		c->owed &= ~ctl_ops[i].bit;
	}
	return 0;
}

/* Whether the host socket should be read now. */
bool vsock_conn_may_read(const struct vsock_conn *c)
{
	return c->state == VSOCK_STATE_ESTABLISHED && !(c->host_shutdown & VSOCK_SHUTDOWN_SEND) &&
	       !(c->guest_shutdown & VSOCK_SHUTDOWN_RCV) && c->owed == 0 &&
	       vsock_peer_free(c) > 0 && vsock_peer_free(c) >= c->seq_need;
}

void vsock_conn_update_read(struct vsock_conn *c)
{
	if (c->state == VSOCK_STATE_NEW || c->state == VSOCK_STATE_LINE)
		return;
	vsock_conn_set_read(c, vsock_conn_may_read(c));
}

/* Credit from the guest (any packet carries it): a connection whose reads were
 * paused and may read now reads in this loop turn, once the tx run is over
 * (vsock_rx_run(), as if it had waited for an rx buffer), not after another
 * epoll round (an epoll_ctl() to resume, an epoll_wait() to hear the socket). */
static void vsock_conn_credit_changed(struct vsock_conn *c)
{
	if (c->fd >= 0 && !event_pending(c->ev_read, EV_READ, NULL) && vsock_conn_may_read(c)) {
		c->owed |= VSOCK_OWE_DATA;
		vsock_send_list_add(c);
		return;
	}
	vsock_conn_update_read(c);
}

void vsock_conn_wait_rx(struct vsock_conn *c)
{
	c->owed |= VSOCK_OWE_DATA;
	vsock_conn_set_read(c, false);
	vsock_send_list_add(c);
	if (c->v->rx && virtqueue_enable_kick(c->v->rx))
		event_active(c->v->tx_again, 0, 0); /* buffers arrived meanwhile */
}

/* Move host socket bytes into guest rx buffers, as credit allows. */
void vsock_conn_read(struct vsock_conn *c)
{
	struct vsock *v = c->v;

	if (c->seqpacket) {
		vsock_conn_read_seq(c);
		return;
	}
	for (int budget = VSOCK_READ_BUDGET; budget > 0; budget--) {
		struct iovec *iov = v->rx_iov;
		uint32_t caps[VSOCK_RX_BATCH], want, room = 0;
		size_t n_iov = 0;
		unsigned k = 0, i;
		struct vsock_hdr h;
		ssize_t n;

		if (!vsock_conn_may_read(c)) {
			vsock_conn_update_read(c);
			return;
		}
		/* Gather several rx buffers (Linux posts 4 KiB ones) under one readv,
		 * each still its own packet with its own header. */
		want = vsock_peer_free(c);
		if (want > VSOCK_MAX_PKT_PAYLOAD)
			want = VSOCK_MAX_PKT_PAYLOAD;
		while (k < VSOCK_RX_BATCH && room < want) {
			struct virtqueue_elem *e = &v->rx_batch[k];
			uint32_t cap;

			if (vsock_rx_pop(v, e) <= 0)
				break;
			if (n_iov + e->n_in > VSOCK_RX_IOV) {
				virtqueue_unpop(v->rx);
				break;
			}
			/* Clamp in size_t: a hostile chain's length may exceed 32 bits. */
			cap = e->in_len - VSOCK_HDR_SIZE < want - room
				      ? (uint32_t)(e->in_len - VSOCK_HDR_SIZE)
				      : want - room;
			n_iov += vsock_iov_slice(e->iov + e->n_out, e->n_in, VSOCK_HDR_SIZE, cap,
				iov + n_iov);
			caps[k++] = cap;
			room += cap;
		}
		if (room == 0) {
			/* No buffer, or only header-sized ones (a readv of nothing would
			 * look like EOF). Also when rx is broken: parked until the ring
			 * is restarted, never spinning. */
			for (i = 0; i < k; i++)
				virtqueue_unpop(v->rx);
			vsock_conn_wait_rx(c);
			return;
		}
		n = readv(c->fd, iov, (int)n_iov);
		if (n <= 0) {
			int err = n < 0 ? errno : 0;
			bool eof = n == 0 || vsock_conn_host_read_eof(err);

			/* Keep the first buffer for a SHUTDOWN on EOF; give back the rest. */
			for (i = eof ? 1 : 0; i < k; i++)
				virtqueue_unpop(v->rx);
			if (n < 0 && (err == EAGAIN || err == EINTR)) {
				vsock_conn_set_read(c, true);
				return;
			}
			if (!eof) {
				log_debug_errno(-err, "Host socket of port %u failed: %m",
					c->local_port);
				vsock_conn_reset(c);
				return;
			}
			vsock_conn_host_eof(c, &v->rx_batch[0]);
			return;
		}
		/* The bytes landed in order across the buffers: label and return them. */
		uint32_t left = (uint32_t)n;
		for (i = 0; i < k && left > 0; i++) {
			uint32_t len = caps[i] < left ? caps[i] : left;

			vsock_fill_hdr(v, &h, c->local_port, c->peer_port, VSOCK_OP_RW, 0, len, c);
			vsock_rx_push(v, &v->rx_batch[i], &h);
			left -= len;
		}
		for (unsigned j = i; j < k; j++)
			virtqueue_unpop(v->rx);
		c->tx_cnt += (uint32_t)n;
		c->fwd_cnt_sent = c->fwd_cnt;
		if ((uint32_t)n < room) {
			/* The socket is drained for now. */
			vsock_conn_update_read(c);
			return;
		}
	}
	/* Budget used: let other connections run, read again on the next loop turn. */
	vsock_conn_set_read(c, true);
}

void vsock_rx_flush_notify(struct vsock *v)
{
	vsock_rx_run(v);
	if (v->rx_dirty && v->rx) {
		v->rx_dirty = false;
		virtqueue_notify(v->rx);
	}
	if (v->tx_dirty && v->tx) {
		v->tx_dirty = false;
		virtqueue_notify(v->tx);
	}
}

/* Out of rx buffers with packets owed: ask for a kick (EVENT_IDX), or run
 * again at once if buffers arrived meanwhile. */
static void vsock_rx_starved(struct vsock *v)
{
	if (virtqueue_enable_kick(v->rx))
		event_active(v->tx_again, 0, 0);
}

/* rx buffers may be available: send what is owed, in order. */
static void vsock_rx_run(struct vsock *v)
{
	unsigned n;

	if (!v->rx || !v->rx->ready || v->rx->broken)
		return;
	while (v->rst_len > 0) {
		struct vsock_rst *r = &v->rst[v->rst_head];
		if (vsock_send_ctl(v, NULL, r->local_port, r->peer_port, VSOCK_OP_RST, 0,
			    r->fwd_cnt, r->type) < 0) {
			vsock_rx_starved(v);
			return;
		}
		v->rst_head = (v->rst_head + 1) % VSOCK_RST_QUEUE;
		v->rst_len--;
	}
	n = 0;
	for (struct vsock_conn *c = TAILQ_FIRST(&v->send_list); c; c = TAILQ_FIRST(&v->send_list)) {
		/* Bound the walk: a connection may re-queue itself. */
		if (++n > v->n_conns + 1)
			break;
		if (vsock_conn_flush_ctl(c) < 0) {
			vsock_rx_starved(v);
			return;
		}
		vsock_send_list_remove(c);
		if (c->owed & VSOCK_OWE_DATA) {
			c->owed &= ~VSOCK_OWE_DATA;
			vsock_conn_read(c);
			if (c->owed & VSOCK_OWE_DATA)
				return; /* out of buffers again */
		} else
			vsock_conn_update_read(c);
	}
}

/* ---- guest->host ---- */

/* Count the payload of an RW packet: a credit violation resets (< 0); when the
 * host takes nothing more it is consumed here (0); else 1, to be delivered. */
int vsock_conn_rx_account(struct vsock_conn *c, const struct vsock_hdr *h, const char *hint)
{
	if (!vsock_conn_credit_fits(c, h->len)) {
		guest_warning("Guest port %u exceeded its credit%s, resetting", h->src_port, hint);
		vsock_conn_reset(c);
		return -EPROTO;
	}
	c->rx_cnt += h->len;
	if (c->host_shutdown & VSOCK_SHUTDOWN_RCV) {
		/* Nobody takes it any more; consumed, so credit keeps flowing. */
		c->fwd_cnt += h->len;
		vsock_conn_maybe_credit_update(c);
		return 0;
	}
	return 1;
}

/* Whether len more bytes from the guest stay within the credit we gave it
 * (virtio spec 5.10.6.3: a driver sends no more than buf_alloc - (rx_cnt -
 * fwd_cnt) as we last told it). */
bool vsock_conn_credit_fits(const struct vsock_conn *c, uint32_t len)
{
	/* Against the farthest edge we advertised (rx_limit), so packets sent
	 * under a larger window before it shrank still fit. */
	return (uint64_t)(c->rx_cnt - c->fwd_cnt) + len <= (uint32_t)(c->rx_limit - c->fwd_cnt);
}

/* Tell the guest of consumed bytes only when that gives it much more credit
 * (Linux's own receiver waits until most of its buffer was consumed,
 * virtio_transport_do_dequeue()): once half of the window it can use was
 * consumed since the last update, when the window grows, or when it asked
 * (CREDIT_REQUEST, vsock_op_credit_request()). The window it can use is ours
 * or its own buf_alloc, whichever is smaller: Linux caps its credit at its own
 * buffer ("vsock/virtio: cap TX credit to local buffer size"; a 6.1 guest
 * stopped at 256 KiB in flight against our 1 MiB). Never a stall: a guest out
 * of credit has that whole window unacknowledged, so it hears from us as soon
 * as the host socket took half of it. Each update costs a TCG guest an rx
 * interrupt. */
void vsock_conn_maybe_credit_update(struct vsock_conn *c)
{
	uint32_t usable = c->reserved < c->peer_buf_alloc ? c->reserved : c->peer_buf_alloc;
	uint32_t limit = usable / 2;
	struct vsock *v = c->v;

	/* The window was the limit (a whole window went through since it last
	 * grew, and the host took it all): ask for twice as much. */
	if (vsock_conn_unsent(c) == 0 && !c->seqpacket && c->buf_target < v->cfg.buf_alloc &&
		c->fwd_cnt - c->grow_mark >= c->reserved && c->reserved >= c->buf_target) {
		c->buf_target =
			c->buf_target > v->cfg.buf_alloc / 2 ? v->cfg.buf_alloc : c->buf_target * 2;
		c->grow_mark = c->fwd_cnt;
		limit = 0; /* tell the guest now */
	}
	if (c->fwd_cnt != c->fwd_cnt_sent && c->fwd_cnt - c->fwd_cnt_sent >= limit) {
		c->owed |= VSOCK_OWE_CREDIT_UPDATE;
		vsock_send_list_add(c);
	}
}

ssize_t vsock_send_iov(int fd, const struct iovec *iov, size_t n)
{
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	ssize_t r;

	r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return r < 0 ? -errno : r;
}

/* Whether a failed read of a host socket is only its end of stream. A Unix
 * socket reports ECONNRESET once its peer closed with data of ours unread (a
 * client that never read "OK"); every byte the peer sent was read before. */
bool vsock_conn_host_read_eof(int err)
{
	return err == ECONNRESET;
}

/* The host takes nothing more: what the guest sent and the host has not taken
 * is dropped (counted as forwarded, so credit keeps flowing). */
static void vsock_conn_host_rcv_closed(struct vsock_conn *c)
{
	c->host_shutdown |= VSOCK_SHUTDOWN_RCV;
	c->sock_shutdown |= VSOCK_SHUTDOWN_SEND; /* moot now */
	c->fwd_cnt += vsock_conn_unsent(c);
	c->seq_partial = c->seq_count = c->seq_head = 0;
	if (c->v->hold.c == c)
		vsock_hold_release(c->v, false);
	vsock_pend_release(c);
	vsock_conn_set_write(c, false);
}

/* The host socket hung up (closed, both directions shut) while it was not
 * being read: its bytes waited for credit or an rx buffer (its EOF may never be
 * read), or its EOF was read already (SHUTDOWN(SEND) sent). The close timeout
 * starts now. The host takes nothing more (SHUTDOWN(RCV)); what it sent before
 * closing is still delivered as credit allows, then SHUTDOWN(SEND), within the
 * timeout. */
void vsock_conn_host_hangup(struct vsock_conn *c)
{
	log_debug("Host client of port %u hung up while reads were paused", c->local_port);
	if (!(c->host_shutdown & VSOCK_SHUTDOWN_RCV)) {
		vsock_conn_host_rcv_closed(c);
		c->owed |= VSOCK_OWE_SHUTDOWN_RCV;
		vsock_send_list_add(c);
	}
	if (!evtimer_pending(c->timer, NULL))
		vsock_conn_set_timer(c, VSOCK_CLOSE_TIMEOUT_S);
	vsock_conn_check_done(c);
}

/* A write to the host socket failed (err < 0). If the host closed or shut its
 * receive side (EPIPE, ECONNRESET), only guest->host is over: what the guest
 * sent is dropped, the guest learns with SHUTDOWN(RCV), and the bytes the host
 * sent before closing still reach the guest, then SHUTDOWN(SEND) at its EOF.
 * Any other error, or nothing left to read from the host, resets. */
void vsock_conn_host_write_failed(struct vsock_conn *c, int err)
{
	log_debug_errno(err, "Host socket of port %u refused data: %m", c->local_port);
	if ((err != -EPIPE && err != -ECONNRESET) || (c->host_shutdown & VSOCK_SHUTDOWN_SEND) ||
		c->state != VSOCK_STATE_ESTABLISHED) {
		vsock_conn_reset(c);
		return;
	}
	vsock_conn_host_rcv_closed(c);
	c->owed |= VSOCK_OWE_SHUTDOWN_RCV;
	vsock_send_list_add(c);
}

/* Both directions are finished (or the guest closed): flush, then RST. */
void vsock_conn_check_done(struct vsock_conn *c)
{
	bool guest_closed = c->guest_shutdown == VSOCK_SHUTDOWN_MASK;
	bool guest_shut_send = c->guest_shutdown & VSOCK_SHUTDOWN_SEND;

	if (vsock_conn_unsent(c) > 0)
		return;
	if (guest_shut_send && !(c->sock_shutdown & VSOCK_SHUTDOWN_SEND) && c->fd >= 0) {
		shutdown(c->fd, SHUT_WR);
		c->sock_shutdown |= VSOCK_SHUTDOWN_SEND;
	}
	if (guest_closed || (guest_shut_send && (c->host_shutdown & VSOCK_SHUTDOWN_SEND)))
		vsock_conn_reset(c);
}

/* Connection c has more bytes in flight than the back-end holds without copying
 * (vsock_hold_add()): its held chains go into pend, and its window stops
 * outgrowing the hold, where each byte would be copied twice while its host
 * lags (a 4 MiB window is 64 chains of 64 KiB, the hold takes at most 16 of a
 * 128-entry ring). */
static void vsock_conn_hold_overflow(struct vsock_conn *c)
{
	c->buf_target = MAX(c->buf_target / 2, c->v->buf_floor);
	c->grow_mark = c->fwd_cnt;
	vsock_hold_release(c->v, true);
}

/* The host socket took only `sent` of the `len` payload bytes in iov: keep the
 * rest (credit bounds it) and write it once the socket has room. 0, or < 0
 * when the connection was reset. */
static int vsock_conn_rw_refused(struct vsock_conn *c, const struct iovec *iov, size_t n,
	size_t sent, size_t len)
{
	int r;

	r = vsock_pend_append(c, iov, n, sent, len - sent);
	if (r < 0) {
		log_error_errno(r, "Failed to buffer data for port %u: %m", c->local_port);
		vsock_conn_reset(c);
		return r;
	}
	/* A whole window held unread: the host is the limit, not the window, and a
	 * smaller one holds less of the budget. */
	if (vsock_conn_unsent(c) >= c->reserved) {
		c->buf_target = MAX(c->buf_target / 2, c->v->buf_floor);
		c->grow_mark = c->fwd_cnt;
	}
	vsock_conn_set_write(c, true);
	return 0;
}

/* Write what the host socket refused before: the held chains, else pend. */
void vsock_conn_flush_pend(struct vsock_conn *c)
{
	uint32_t cap = c->pend_cap;
	struct iovec iov[2];
	uint32_t first = cap - c->pend_head < c->pend_len ? cap - c->pend_head : c->pend_len;
	ssize_t n;

	if (c->v->hold.c == c) {
		n = vsock_hold_flush(c);
		if (n < 0) {
			vsock_conn_host_write_failed(c, (int)n);
			return;
		}
		c->fwd_cnt += (uint32_t)n;
		vsock_conn_set_write(c, c->v->hold.c == c);
		vsock_conn_maybe_credit_update(c);
		vsock_conn_check_done(c);
		return;
	}

	iov[0] = (struct iovec){ .iov_base = c->pend + c->pend_head, .iov_len = first };
	iov[1] = (struct iovec){ .iov_base = c->pend, .iov_len = c->pend_len - first };
	n = vsock_send_iov(c->fd, iov, 2);
	if (n < 0) {
		vsock_conn_host_write_failed(c, (int)n);
		return;
	}
	c->pend_head = (c->pend_head + (uint32_t)n) % cap;
	c->pend_len -= (uint32_t)n;
	c->fwd_cnt += (uint32_t)n;
	if (c->pend_len == 0) {
		vsock_pend_release(c);
		vsock_conn_set_write(c, false);
	} else
		vsock_conn_set_write(c, true);
	vsock_conn_maybe_credit_update(c);
	vsock_conn_check_done(c);
}

static void vsock_op_rw(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	ssize_t n = 0;

	if (c->state != VSOCK_STATE_ESTABLISHED || (c->guest_shutdown & VSOCK_SHUTDOWN_SEND)) {
		guest_warning("Guest sent data on port %u in the wrong state, resetting",
			h->src_port);
		vsock_conn_reset(c);
		return;
	}
	if (c->seqpacket) {
		vsock_op_rw_seq(v, c, h, payload, n_payload);
		return;
	}
	if (h->len == 0)
		return;
	if (vsock_conn_rx_account(c, h, "") <= 0)
		return;
	if (v->hold.c == c) {
		/* It could not join the held chains: they go into pend, then this. */
		vsock_conn_hold_overflow(c);
		if (c->state == VSOCK_STATE_CLOSED)
			return;
	}
	if (c->pend_len == 0) {
		n = vsock_send_iov(c->fd, payload, n_payload);
		if (n < 0) {
			vsock_conn_host_write_failed(c, (int)n);
			return;
		}
		c->fwd_cnt += (uint32_t)n;
	}
	if ((size_t)n < h->len && vsock_conn_rw_refused(c, payload, n_payload, (size_t)n, h->len) < 0)
		return;
	vsock_conn_maybe_credit_update(c);
}

/* Whether an RW packet is stream data for the host socket, within the credit
 * we gave: it may be written with others or held (vsock_hold_add()). */
static bool vsock_tx_stream_data(const struct vsock_conn *c, const struct vsock_hdr *h)
{
	return c && h->op == VSOCK_OP_RW && h->type == VSOCK_TYPE_STREAM && h->len > 0 &&
	       !c->seqpacket && c->state == VSOCK_STATE_ESTABLISHED &&
	       !(c->guest_shutdown & VSOCK_SHUTDOWN_SEND) &&
	       !(c->host_shutdown & VSOCK_SHUTDOWN_RCV) && vsock_conn_credit_fits(c, h->len);
}

/* Whether an RW packet may join the tx batch of its connection: stream data
 * of a connection whose host socket has taken everything so far. */
static bool vsock_tx_batchable(const struct vsock_conn *c, const struct vsock_hdr *h)
{
	return vsock_tx_stream_data(c, h) && vsock_conn_unsent(c) == 0;
}

/* The host socket took only `sent` bytes of batch b (of connection c): give
 * back the chains it took whole, hold the others (vsock_hold_add()), and copy
 * what cannot be held into pend. 0, or < 0 when the connection was reset. */
static int vsock_tx_refused(struct vsock *v, struct vsock_conn *c, struct vsock_tx_batch *b,
	size_t sent)
{
	size_t off = 0, from;
	unsigned i;
	int r = 0;

	for (i = 0; i < b->n_heads; off += b->lens[i], i++) {
		if (off + b->lens[i] <= sent) {
			virtqueue_push_head(v->tx, b->heads[i], 0);
			continue;
		}
		from = MAX(off, sent);
		if (!vsock_hold_add(c, b->iov, b->n_iov, from, (uint32_t)(off + b->lens[i] - from),
			    b->heads[i]))
			break;
	}
	if (i < b->n_heads) {
		/* Copy the rest, after what this connection holds (in order). */
		from = MAX(off, sent);
		if (v->hold.c == c)
			vsock_conn_hold_overflow(c);
		if (c->state == VSOCK_STATE_CLOSED)
			r = -ECONNRESET;
		else
			r = vsock_conn_rw_refused(c, b->iov, b->n_iov, from, b->len);
		for (; i < b->n_heads; i++)
			virtqueue_push_head(v->tx, b->heads[i], 0);
		return r;
	}
	/* A whole window held unwritten: the host is the limit (vsock_conn_rw_refused()). */
	if (vsock_conn_unsent(c) >= c->reserved) {
		c->buf_target = MAX(c->buf_target / 2, v->buf_floor);
		c->grow_mark = c->fwd_cnt;
	}
	vsock_conn_set_write(c, true);
	return 0;
}

/* Write the batch with one sendmsg, keep what the socket refused, and give the
 * chains back. The connection may be reset here. */
static void vsock_tx_flush(struct vsock *v)
{
	struct vsock_tx_batch *b = &v->tx_batch;
	struct vsock_conn *c = b->c;
	ssize_t n;

	if (!c)
		return;
	b->c = NULL;
	n = vsock_send_iov(c->fd, b->iov, b->n_iov);
	if (n >= 0 && (size_t)n < b->len) {
		c->fwd_cnt += (uint32_t)n;
		if (vsock_tx_refused(v, c, b, (size_t)n) == 0)
			vsock_conn_maybe_credit_update(c);
	} else {
		if (n < 0) {
			c->fwd_cnt += b->len; /* dropped: credit keeps flowing if it stays */
			vsock_conn_host_write_failed(c, (int)n);
		} else {
			c->fwd_cnt += (uint32_t)n;
			vsock_conn_maybe_credit_update(c);
		}
		for (unsigned i = 0; i < b->n_heads; i++)
			virtqueue_push_head(v->tx, b->heads[i], 0);
	}
	if (b->n_heads > 0)
		v->tx_dirty = true;
	b->n_heads = 0;
	b->n_iov = 0;
	b->len = 0;
}

/* Add the RW packet in chain e (header h, checked) to its connection's batch, if
 * it can join it; otherwise write the batch out first. True: e is held. */
static bool vsock_tx_batch_add(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct virtqueue_elem *e)
{
	struct vsock_tx_batch *b = &v->tx_batch;

	if (!vsock_tx_batchable(c, h))
		return false;
	if (b->c != c || b->n_heads == ELEMENTSOF(b->heads) ||
		b->n_iov + e->n_out > ELEMENTSOF(b->iov))
		return false;
	b->n_iov += vsock_iov_slice(e->iov, e->n_out, VSOCK_HDR_SIZE, h->len, b->iov + b->n_iov);
	b->lens[b->n_heads] = h->len;
	b->heads[b->n_heads++] = e->head;
	b->len += h->len;
	c->rx_cnt += h->len;
	return true;
}

/* Guest-initiated connections may take at most three quarters of the slots:
 * a guest holding every slot must not lock the host's clients out. */
static unsigned vsock_guest_conn_cap(const struct vsock *v)
{
	return v->cfg.max_connections - v->cfg.max_connections / 4;
}

static void vsock_op_request(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	bool pending = false, seq = h->type == VSOCK_TYPE_SEQPACKET;
	int fd, r;

	if (c) {
		guest_warning("Duplicate REQUEST for port %u from guest port %u, resetting",
			h->dst_port, h->src_port);
		vsock_conn_reset(c);
		return;
	}
	if (!v->cfg.uds_path || v->n_conns >= v->cfg.max_connections ||
		v->n_guest_initiated >= vsock_guest_conn_cap(v)) {
		if (v->cfg.uds_path)
			host_warning("Connection limit (%u, %u for the guest's) reached, refusing "
				     "guest connection",
				v->cfg.max_connections, vsock_guest_conn_cap(v));
		vsock_reset_no_sock(v, h);
		return;
	}
	fd = hybrid_connect_guest_port_type(v->cfg.uds_path, h->dst_port,
		seq ? SOCK_SEQPACKET : SOCK_STREAM, &pending);
	if (fd < 0) {
		log_debug_errno(fd, "Guest connection to host port %u refused: %m", h->dst_port);
		vsock_reset_no_sock(v, h);
		return;
	}
	r = vsock_conn_new(v, fd, &c);
	if (r < 0) {
		close(fd);
		vsock_reset_no_sock(v, h);
		return;
	}
	if (seq)
		vsock_conn_set_seqpacket(c);
	c->origin = VSOCK_ORIGIN_GUEST;
	v->n_guest_initiated++;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	vsock_hash_add(v, c);
	if (pending) {
		if (vsock_conn_set_state(c, VSOCK_STATE_CONNECTING) < 0)
			return;
		vsock_conn_set_write(c, true);
		vsock_conn_set_timer(c, VSOCK_CONNECT_TIMEOUT_S);
		return;
	}
	if (vsock_conn_set_state(c, VSOCK_STATE_ESTABLISHED) < 0)
		return;
	c->owed |= VSOCK_OWE_RESPONSE;
	vsock_send_list_add(c);
}

static void vsock_op_response(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	char ok[32];
	ssize_t n;
	int len;

	if (c->state != VSOCK_STATE_REQUESTED) {
		guest_warning("Unexpected RESPONSE on port %u, resetting", h->dst_port);
		vsock_conn_reset(c);
		return;
	}
	vsock_conn_set_timer(c, 0);
	len = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	/* A fresh socket has room for a few bytes. A client that has closed (or shut
	 * its receive side) still gets the bytes it sent delivered. */
	n = send(c->fd, ok, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0 && n != len) {
		vsock_conn_reset(c);
		return;
	}
	if (vsock_conn_set_state(c, VSOCK_STATE_ESTABLISHED) < 0)
		return;
	log_debug("Host port %u connected to guest port %u", c->local_port, c->peer_port);
	if (n < 0) {
		vsock_conn_host_write_failed(c, -errno);
		if (c->fd < 0)
			return; /* reset */
	}
	vsock_conn_read(c);
}

static void vsock_op_rst(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	/* Never answer an RST. */
	vsock_conn_close(c);
}

static void vsock_op_shutdown(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	if (c->state != VSOCK_STATE_ESTABLISHED) {
		vsock_conn_reset(c);
		return;
	}
	/* Flags only accumulate (virtio_transport_recv_connected() ORs them). */
	c->guest_shutdown |= h->flags & VSOCK_SHUTDOWN_MASK;
	if ((c->guest_shutdown & VSOCK_SHUTDOWN_SEND) && c->seq_partial > 0)
		vsock_seq_drop_partial(c);
	if (c->guest_shutdown == VSOCK_SHUTDOWN_MASK && vsock_conn_unsent(c) > 0) {
		/* Give the host a while to take the rest, then RST. */
		if (vsock_conn_set_state(c, VSOCK_STATE_CLOSING) < 0)
			return;
		vsock_conn_set_read(c, false);
		vsock_conn_set_timer(c, VSOCK_CLOSE_TIMEOUT_S);
		return;
	}
	vsock_conn_update_read(c);
	vsock_conn_check_done(c);
}

static void vsock_op_credit_update(struct vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
	const struct iovec *payload, size_t n_payload)
{
	/* The credit fields were taken already; reading may resume. */
	c->seq_credit_asked = false;
	vsock_conn_update_read(c);
}

static void vsock_op_credit_request(struct vsock *v, struct vsock_conn *c,
	const struct vsock_hdr *h, const struct iovec *payload, size_t n_payload)
{
	if (c->state != VSOCK_STATE_ESTABLISHED && c->state != VSOCK_STATE_CLOSING)
		return;
	c->owed |= VSOCK_OWE_CREDIT_UPDATE;
	vsock_send_list_add(c);
}

static const struct vsock_op vsock_ops[_VSOCK_OP_MAX] = {
	[VSOCK_OP_REQUEST] = { "REQUEST", vsock_op_request },
	[VSOCK_OP_RESPONSE] = { "RESPONSE", vsock_op_response },
	[VSOCK_OP_RST] = { "RST", vsock_op_rst },
	[VSOCK_OP_SHUTDOWN] = { "SHUTDOWN", vsock_op_shutdown },
	[VSOCK_OP_RW] = { "RW", vsock_op_rw },
	[VSOCK_OP_CREDIT_UPDATE] = { "CREDIT_UPDATE", vsock_op_credit_update },
	[VSOCK_OP_CREDIT_REQUEST] = { "CREDIT_REQUEST", vsock_op_credit_request },
};

/* One tx chain: a header, then h.len bytes of payload. True: the chain is held
 * in the tx batch, given back by vsock_tx_flush(). */
static bool vsock_tx_packet(struct vsock *v, const struct virtqueue_elem *e)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct iovec payload[VIRTQUEUE_MAX_IOV];
	const struct vsock_op *op = NULL;
	struct vsock_conn *c;
	struct vsock_hdr h;
	size_t n_payload;
	bool bad_len;

	if (e->out_len < VSOCK_HDR_SIZE) {
		guest_warning("Guest sent a %zu byte packet, shorter than a header, dropping",
			e->out_len);
		return false;
	}
	/* Copied out once; the guest may rewrite its buffer under us. */
	vsock_iov_copy_out(e->iov, e->n_out, 0, raw, sizeof(raw));
	vsock_hdr_decode(raw, &h);
	if (h.src_cid != v->cfg.guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		guest_warning("Guest packet from CID %llu to CID %llu (expected %llu to %u), "
			      "dropping",
			(unsigned long long)h.src_cid, (unsigned long long)h.dst_cid,
			(unsigned long long)v->cfg.guest_cid, VSOCK_HOST_CID);
		return false;
	}
	c = vsock_lookup(v, h.dst_port, h.src_port);
	bad_len = h.len > e->out_len - VSOCK_HDR_SIZE || h.len > VSOCK_MAX_PKT_PAYLOAD;
	if (!bad_len && c && c == v->tx_batch.c) {
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		if (vsock_tx_batch_add(v, c, &h, e)) {
			vsock_conn_credit_changed(c);
			return true;
		}
	}
	if (v->tx_batch.c) {
		/* Anything else first writes out the batch, which may reset its connection. */
		vsock_tx_flush(v);
		c = vsock_lookup(v, h.dst_port, h.src_port);
	}
	if (!bad_len && c && c == v->hold.c && vsock_tx_stream_data(c, &h) &&
		vsock_hold_add(c, e->iov, e->n_out, VSOCK_HDR_SIZE, h.len, e->head)) {
		/* Its host socket is full: this waits behind the chains held already. */
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		c->rx_cnt += h.len;
		vsock_conn_credit_changed(c);
		return true;
	}
	if (bad_len) {
		guest_warning("Guest packet claims %u payload bytes in a %zu byte buffer, dropping",
			h.len, e->out_len - VSOCK_HDR_SIZE);
		vsock_reset_packet(v, c, &h);
		return false;
	}
	if (h.op < _VSOCK_OP_MAX)
		op = &vsock_ops[h.op];
	/* SEQPACKET only when negotiated, and a connection keeps the type it began with. */
	if (!(h.type == VSOCK_TYPE_STREAM || (h.type == VSOCK_TYPE_SEQPACKET && v->seqpacket)) ||
		(c && c->seqpacket != (h.type == VSOCK_TYPE_SEQPACKET)) || !op || !op->handler) {
		guest_warning("Guest packet with type %u op %u, resetting", h.type, h.op);
		if (h.op != VSOCK_OP_RST)
			vsock_reset_packet(v, c, &h);
		return false;
	}
	if (!c && h.op != VSOCK_OP_REQUEST) {
		vsock_reset_no_sock(v, &h);
		return false;
	}
	if (c) {
		c->peer_buf_alloc = h.buf_alloc;
		c->peer_fwd_cnt = h.fwd_cnt;
		/* Every packet carries credit, not only CREDIT_UPDATE. */
		vsock_conn_credit_changed(c);
		/* Start a batch: later RW packets of this connection join it. */
		v->tx_batch.c = c;
		if (vsock_tx_batch_add(v, c, &h, e))
			return true;
		v->tx_batch.c = NULL;
	}
	n_payload = vsock_iov_slice(e->iov, e->n_out, VSOCK_HDR_SIZE, h.len, payload);
	op->handler(v, c, &h, payload, n_payload);
	return false;
}

static void vsock_tx_run(struct vsock *v)
{
	struct virtqueue_elem *e = &v->tx_elem;
	int budget = VSOCK_TX_BUDGET;

	if (!v->tx)
		return;
	for (;;) {
		int r;
		if (budget-- == 0) {
			/* Let host sockets run; continue on the next loop turn. */
			event_active(v->tx_again, 0, 0);
			break;
		}
		r = virtqueue_pop(v->tx, VIRTQUEUE_READABLE, e);
		if (r <= 0) {
			if (r == 0 && virtqueue_enable_kick(v->tx))
				continue;
			break;
		}
		/* Everything needed is copied or written before the chain goes back. */
		if (vsock_tx_packet(v, e))
			continue;
		virtqueue_push(v->tx, e, 0);
		v->tx_dirty = true;
	}
	vsock_tx_flush(v);
	vsock_rx_run(v);
}

void vsock_queue_kick(struct vsock *v, struct virtqueue *vq)
{
	if (vq == v->tx)
		vsock_tx_run(v);
	else
		vsock_rx_run(v);
	vsock_rx_flush_notify(v);
}

static void vsock_tx_again_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock *v = userdata;

	vsock_tx_run(v);
	vsock_rx_flush_notify(v);
}

void vsock_conn_line_done(struct vsock_conn *c, uint32_t port);

/* ---- device ---- */

int vsock_new(struct event_base *base, const struct vsock_config *cfg, struct vsock **ret)
{
	struct vsock *v;

	v = calloc(1, sizeof(*v));
	if (!v) {
		if (cfg->listen_fd >= 0)
			close(cfg->listen_fd); /* taken, on failure too */
		return -ENOMEM;
	}
	v->base = base;
	v->cfg = *cfg;
	if (v->cfg.buf_alloc == 0)
		v->cfg.buf_alloc = VSOCK_DEFAULT_BUF_ALLOC;
	if (v->cfg.max_connections == 0)
		v->cfg.max_connections = VSOCK_DEFAULT_MAX_CONNECTIONS;
	if (v->cfg.memory_budget == 0)
		v->cfg.memory_budget = VSOCK_DEFAULT_MEMORY_BUDGET;
	/* Half the budget is every slot's idle share, the rest is for growth. */
	v->buf_floor = (uint32_t)MIN(v->cfg.memory_budget / 2 / v->cfg.max_connections,
		(uint64_t)VSOCK_BUF_FLOOR_MAX);
	v->buf_floor = MAX(v->buf_floor, VSOCK_MIN_BUF_FLOOR);
	v->buf_floor = MIN(v->buf_floor, v->cfg.buf_alloc);
	v->next_host_port = VSOCK_HOST_PORT_FIRST;
	v->seq_listen_fd = -1;
	TAILQ_INIT(&v->send_list);
	TAILQ_INIT(&v->all);
	TAILQ_INIT(&v->dead);
	v->reaper = event_new(base, -1, 0, vsock_reaper_cb, v);
	v->tx_again = event_new(base, -1, 0, vsock_tx_again_cb, v);
	if (cfg->listen_fd >= 0) {
		/* systemd passes blocking sockets; the accept loop runs until EAGAIN. */
		int fl = fcntl(cfg->listen_fd, F_GETFL);
		if (fl < 0 || fcntl(cfg->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			int r = -errno;
			vsock_free(v);
			return r;
		}
		v->listen_ev =
			event_new(base, cfg->listen_fd, EV_READ | EV_PERSIST, vsock_accept_cb, v);
	}
	v->listen_pause = evtimer_new(base, vsock_listen_resume_cb, v);
	if (!v->reaper || !v->tx_again || !v->listen_pause || (cfg->listen_fd >= 0 && !v->listen_ev)) {
		vsock_free(v);
		return -ENOMEM;
	}
	if (v->listen_ev)
		event_add(v->listen_ev, NULL);
	*ret = v;
	return 0;
}

/* The tx ring or guest memory is about to go away: nothing may point into it. */
void vsock_queue_release(struct vsock *v, struct virtqueue *vq)
{
	if (vq != v->tx)
		return;
	vsock_hold_release(v, true);
	if (v->tx_dirty) {
		v->tx_dirty = false;
		virtqueue_notify(v->tx);
	}
}

void vsock_reset(struct vsock *v)
{
	/* The chains of a batch went with the queues. */
	v->tx_batch.c = NULL;
	v->tx_batch.n_heads = 0;
	v->tx_batch.n_iov = 0;
	v->tx_batch.len = 0;
	while (!TAILQ_EMPTY(&v->all))
		vsock_conn_close(TAILQ_FIRST(&v->all));
	v->rst_len = 0;
	v->rx_dirty = v->tx_dirty = false;
}

struct vsock *vsock_free(struct vsock *v)
{
	if (!v)
		return NULL;
	vsock_reset(v);
	vsock_reaper_cb(-1, 0, v);
	if (v->listen_ev)
		event_free(v->listen_ev);
	if (v->seq_listen_ev)
		event_free(v->seq_listen_ev);
	if (v->seq_listen_fd >= 0)
		close(v->seq_listen_fd);
	if (v->listen_pause)
		event_free(v->listen_pause);
	if (v->cfg.listen_fd >= 0)
		close(v->cfg.listen_fd);
	if (v->reaper)
		event_free(v->reaper);
	if (v->tx_again)
		event_free(v->tx_again);
	free(v);
	return NULL;
}

void vsock_set_features(struct vsock *v, uint64_t features)
{
	v->seqpacket = features & (1ull << VIRTIO_VSOCK_F_SEQPACKET_BIT);
}

void vsock_set_queues(struct vsock *v, struct virtqueue *rx, struct virtqueue *tx)
{
	v->rx = rx;
	v->tx = tx;
}

unsigned vsock_connection_count(const struct vsock *v)
{
	return v->n_conns;
}
