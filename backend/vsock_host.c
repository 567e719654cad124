/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host side of each connection: the hybrid listeners (accept), the
 * CONNECT line of host-initiated connections (parsed by hybrid.c), and the
 * host socket's read, write and timer callbacks. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vsock_internal.h"

static void vsock_conn_line(struct vsock_conn *c)
{
	char buf[HYBRID_LINE_MAX], esc[4 * HYBRID_LINE_MAX + 8];
	size_t consumed = 0;
	uint32_t port = 0;
	ssize_t n;
	int r;

	/* Peek, then take only the line: bytes after it stay queued in the
	 * socket, in order, until the guest answers. */
	n = recv(c->fd, buf, HYBRID_LINE_MAX - c->line.len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		vsock_conn_close(c);
		return;
	}
	r = hybrid_line_feed(&c->line, buf, (size_t)n, &consumed, &port);
	if (consumed > 0 && recv(c->fd, buf, consumed, MSG_DONTWAIT) != (ssize_t)consumed)
		r = -EIO;
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		host_warning("Bad CONNECT line from host client: \"%s\", closing",
			log_escape(esc, sizeof(esc), c->line.buf, c->line.len));
		vsock_conn_close(c);
		return;
	}
	vsock_conn_line_done(c, port);
}

/* A complete CONNECT line: ask the guest. */
void vsock_conn_line_done(struct vsock_conn *c, uint32_t port)
{
	struct vsock *v = c->v;
	int r;

	r = vsock_alloc_host_port(v, &c->local_port);
	if (r < 0) {
		vsock_conn_close(c);
		return;
	}
	c->peer_port = port;
	if (vsock_conn_set_state(c, VSOCK_STATE_REQUESTED) < 0)
		return;
	vsock_hash_add(v, c);
	vsock_conn_set_read(c, false);
	vsock_conn_set_timer(c, VSOCK_CONNECT_TIMEOUT_S);
	c->owed |= VSOCK_OWE_REQUEST;
	vsock_send_list_add(c);
}

static void vsock_conn_read_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock_conn *c = userdata;
	struct vsock *v = c->v;

	if (c->state == VSOCK_STATE_LINE && c->seqpacket)
		vsock_conn_line_seq(c);
	else if (c->state == VSOCK_STATE_LINE)
		vsock_conn_line(c);
	else
		vsock_conn_read(c);
	vsock_rx_flush_notify(v);
}

static void vsock_conn_write_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock_conn *c = userdata;
	struct vsock *v = c->v;
	int err = 0;
	socklen_t sl = sizeof(err);

	if (c->state == VSOCK_STATE_CONNECTING) {
		vsock_conn_set_write(c, false);
		vsock_conn_set_timer(c, 0);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 || err) {
			vsock_conn_reset(c);
		} else if (vsock_conn_set_state(c, VSOCK_STATE_ESTABLISHED) == 0) {
			c->owed |= VSOCK_OWE_RESPONSE;
			vsock_send_list_add(c);
		}
	} else if (c->pend_len > 0 && c->seqpacket)
		vsock_conn_flush_seq(c);
	else if (vsock_conn_unsent(c) > 0)
		vsock_conn_flush_pend(c);
	else
		vsock_conn_set_write(c, false);
	vsock_rx_flush_notify(v);
}

/* The host socket is not being read, and its hang-up not yet seen: reads are
 * paused (the guest gave no credit or no rx buffer) before its EOF, or over
 * after it (a host that shut its sending side, then closes while the guest
 * neither reads nor writes). Only then can a host's close go unseen. */
static bool vsock_conn_wants_hup_watch(const struct vsock_conn *c)
{
	return c->fd >= 0 && !event_pending(c->ev_read, EV_READ, NULL) &&
	       c->state == VSOCK_STATE_ESTABLISHED && !(c->host_shutdown & VSOCK_SHUTDOWN_RCV);
}

/* While reads are paused the watch polls the socket once a second: a timer,
 * not an fd event, so pausing and resuming reads (every window, in a stream)
 * costs no system call; a stalled connection costs one poll() a second. */
void vsock_conn_update_hup_watch(struct vsock_conn *c)
{
	struct timeval tv = { .tv_sec = VSOCK_HUP_POLL_MS / 1000,
		.tv_usec = VSOCK_HUP_POLL_MS % 1000 * 1000 };

	/* Not removed when reads resume: the callback checks again. */
	if (vsock_conn_wants_hup_watch(c) && !evtimer_pending(c->ev_hup, NULL))
		evtimer_add(c->ev_hup, &tv);
}

/* Only POLLHUP, both directions shut, means the host is gone; a half-close
 * (POLLRDHUP alone) leaves a host that may still read. */
static void vsock_conn_hup_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock_conn *c = userdata;
	struct vsock *v = c->v;
	struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

	if (!vsock_conn_wants_hup_watch(c))
		return;
	if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
		vsock_conn_host_hangup(c);
		vsock_rx_flush_notify(v);
		return;
	}
	vsock_conn_update_hup_watch(c);
}

static void vsock_conn_timer_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock_conn *c = userdata;
	struct vsock *v = c->v;

	host_warning("Connection host port %u guest port %u timed out in state %s, closing",
		c->local_port, c->peer_port, vsock_state_name(c->state));
	vsock_conn_reset(c);
	vsock_rx_flush_notify(v);
}

int vsock_conn_new(struct vsock *v, int fd, struct vsock_conn **ret)
{
	struct vsock_conn *c;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->v = v;
	c->fd = fd;
	c->ev_read = event_new(v->base, fd, EV_READ | EV_PERSIST, vsock_conn_read_cb, c);
	c->ev_write = event_new(v->base, fd, EV_WRITE | EV_PERSIST, vsock_conn_write_cb, c);
	c->timer = evtimer_new(v->base, vsock_conn_timer_cb, c);
	c->ev_hup = evtimer_new(v->base, vsock_conn_hup_cb, c);
	if (!c->ev_read || !c->ev_write || !c->timer || !c->ev_hup) {
		if (c->ev_read)
			event_free(c->ev_read);
		if (c->ev_write)
			event_free(c->ev_write);
		if (c->timer)
			event_free(c->timer);
		if (c->ev_hup)
			event_free(c->ev_hup);
		free(c);
		return -ENOMEM;
	}
	c->buf_target = v->buf_floor;
	v->n_conns++;
	TAILQ_INSERT_TAIL(&v->all, c, all_entry);
	*ret = c;
	return 0;
}

void vsock_accept_cb(evutil_socket_t lfd, short what, void *userdata)
{
	struct vsock *v = userdata;

	/* Take a bounded batch so the guest's queues keep running. */
	for (int i = 0; i < 64; i++) {
		struct vsock_conn *c;
		int fd;

		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* The listener stays readable: pause it rather than spin. */
				struct timeval tv = { .tv_usec = 100 * 1000 };
				host_warning("Out of file descriptors, pausing the host listener");
				if (v->listen_ev)
					event_del(v->listen_ev);
				if (v->seq_listen_ev)
					event_del(v->seq_listen_ev);
				evtimer_add(v->listen_pause, &tv);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				host_warning("Failed to accept host client, ignoring: %s",
					strerror(errno));
			return;
		}
		if (v->n_conns >= v->cfg.max_connections) {
			host_warning("Connection limit (%u) reached, closing host client",
				v->cfg.max_connections);
			close(fd);
			continue;
		}
		if (vsock_conn_new(v, fd, &c) < 0) {
			close(fd);
			continue;
		}
		c->origin = VSOCK_ORIGIN_HOST;
		vsock_conn_set_state(c, VSOCK_STATE_LINE);
		if (lfd == v->seq_listen_fd)
			vsock_conn_set_seqpacket(c);
		vsock_conn_set_read(c, true);
		vsock_conn_set_timer(c, VSOCK_LINE_TIMEOUT_S);
	}
}

void vsock_listen_resume_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vsock *v = userdata;

	if (v->listen_ev)
		event_add(v->listen_ev, NULL);
	if (v->seq_listen_ev)
		event_add(v->seq_listen_ev, NULL);
}

int vsock_set_seqpacket_listener(struct vsock *v, int fd)
{
	int fl;

	if (v->seq_listen_ev || fd < 0) {
		if (fd >= 0)
			close(fd); /* taken, on failure too */
		return -EINVAL;
	}
	/* systemd passes blocking sockets; the accept loop runs until EAGAIN. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	v->seq_listen_ev = event_new(v->base, fd, EV_READ | EV_PERSIST, vsock_accept_cb, v);
	if (!v->seq_listen_ev) {
		close(fd);
		return -ENOMEM;
	}
	v->seq_listen_fd = fd;
	event_add(v->seq_listen_ev, NULL);
	return 0;
}
