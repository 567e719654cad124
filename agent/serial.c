/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QGA virtio-serial port. virtio_console reports a host side that is not
 * connected as POLLHUP and read() == 0 (drivers/char/virtio_console.c:
 * port_fops_poll, port_fops_read), so the port is watched with a timer while
 * nobody is there — as qemu-ga does, which sleeps and retries — and served by
 * one connection while the host is. When the host closes, that connection
 * ends with whatever half-read input it had, and the port is opened afresh
 * for the next host client. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn.h"
#include "log.h"
#include "method.h"
#include "qga.h"
#include "serial.h"
#include "server.h"

/* How often a port without a host (or not there yet) is looked at again. */
#define SERIAL_RETRY_MS 200

struct serial {
	struct server *server;
	char *path;
	int fd; /* open, waiting for the host side; -1 when closed */
	struct event *timer;
	struct conn *conn; /* the client while one is served (reference held) */
	bool missing_logged;
};

static void serial_retry(struct serial *p)
{
	static const struct timeval tv = { 0, SERIAL_RETRY_MS * 1000 };

	evtimer_add(p->timer, &tv);
}

static void serial_conn_event(struct conn *c, void *userdata)
{
	struct serial *p = userdata;

	if (!conn_closed(c) || p->conn != c)
		return;
	conn_remove_drain_watch(c, serial_conn_event, p);
	p->conn = conn_unref(p->conn);
	log_debug("QGA port %s: the host side closed, reopening", p->path);
	if (!server_shutting_down(p->server))
		serial_retry(p);
}

static void serial_timer_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct serial *p = userdata;
	struct pollfd pfd;
	struct conn *c;

	if (p->conn || server_shutting_down(p->server))
		return;
	if (p->fd < 0) {
		p->fd = open(p->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (p->fd < 0) {
			/* The port appears with the device; the unit normally waits for it. */
			if (!p->missing_logged)
				log_info_errno(-errno, "QGA port %s not available yet: %m", p->path);
			p->missing_logged = true;
			serial_retry(p);
			return;
		}
		p->missing_logged = false;
	}
	pfd = (struct pollfd){ .fd = p->fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		/* No host on the other side yet. */
		serial_retry(p);
		return;
	}
	if (conn_new(p->server, server_event_base(p->server), p->fd, &conn_proto_qga_serial, &c) < 0) {
		p->fd = -1; /* conn_new closed it */
		log_error("QGA port %s: failed to set up the connection, retrying", p->path);
		serial_retry(p);
		return;
	}
	p->fd = -1;
	/* Without the watch nothing would reopen the port after this host left. */
	if (conn_add_drain_watch(c, serial_conn_event, p) < 0) {
		log_error("QGA port %s: out of memory watching the connection, retrying", p->path);
		conn_close(c);
		serial_retry(p);
		return;
	}
	p->conn = conn_ref(c);
	log_debug("QGA port %s: serving the host", p->path);
}

int serial_new(struct server *s, const char *path, struct serial **ret)
{
	struct serial *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->server = s;
	p->fd = -1;
	p->path = strdup(path);
	p->timer = evtimer_new(server_event_base(s), serial_timer_cb, p);
	if (!p->path || !p->timer) {
		serial_free(p);
		return -ENOMEM;
	}
	/* Try at once; the timer takes over while the host is not there. */
	serial_timer_cb(-1, EV_TIMEOUT, p);
	*ret = p;
	return 0;
}

struct serial *serial_free(struct serial *p)
{
	if (!p)
		return NULL;
	if (p->conn) {
		conn_remove_drain_watch(p->conn, serial_conn_event, p);
		p->conn = conn_unref(p->conn);
	}
	if (p->timer)
		event_free(p->timer);
	if (p->fd >= 0)
		close(p->fd);
	free(p->path);
	free(p);
	return NULL;
}
