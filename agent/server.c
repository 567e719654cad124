/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listeners: accept, peer check, the connection cap, and shutdown. The
 * connections themselves live in conn.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/vm_sockets.h>

#include <event2/event.h>
#include <event2/util.h>

#include <guestlink/jsonrpc.h>

#include "config.h"
#include "conn.h"
#include "log.h"
#include "method.h"
#include "server.h"

#define SERVER_ACCEPT_BURST 64

struct listener {
	struct server *server;
	struct event *ev;
	struct event *resume; /* re-arms ev after an accept failure */
	const struct conn_proto *proto;
	int fd;
};

struct server {
	struct event_base *base;
	struct listener **listeners;
	size_t n_listeners;
	struct server_link *conns;
	unsigned n_conns;
	bool shutting_down;
	struct event *shutdown_timer;
	unsigned long long start_usec;
};

static struct log_ratelimit server_rl = LOG_RATELIMIT_INIT(5000, 10);

static unsigned long long now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

static void server_maybe_exit(struct server *s)
{
	if (s->shutting_down && s->n_conns == 0)
		event_base_loopexit(s->base, NULL);
}

bool server_shutting_down(const struct server *s)
{
	return s->shutting_down;
}

void server_conn_added(struct server *s, struct server_link *l)
{
	l->prev = NULL;
	l->next = s->conns;
	if (s->conns)
		s->conns->prev = l;
	s->conns = l;
	s->n_conns++;
}

void server_conn_removed(struct server *s, struct server_link *l)
{
	struct conn *c = l->conn;

	if (l->prev)
		l->prev->next = l->next;
	else
		s->conns = l->next;
	if (l->next)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
	s->n_conns--;
	conn_unref(c); /* the server's reference */
	server_maybe_exit(s);
}

/* --- listeners --- */

static bool server_peer_allowed(const struct sockaddr_storage *ss)
{
	const struct config *cfg = config_get();
	const struct sockaddr_vm *vm;

	if (ss->ss_family != AF_VSOCK)
		return true; /* Unix listeners are protected by their 0600 mode. */
	vm = (const struct sockaddr_vm *)ss;
	for (size_t i = 0; i < cfg->n_peer_cids; i++)
		if (cfg->peer_cids[i] == vm->svm_cid)
			return true;
	log_ratelimited(&server_rl, LOG_WARNING, 0, "Refused a connection from CID %u port %u",
		vm->svm_cid, vm->svm_port);
	return false;
}

static void server_reject_busy(int fd)
{
	char line[160];
	int n = snprintf(line, sizeof(line),
		"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":"
		"\"Too many connections (max %u)\"},\"id\":null}\n",
		GL_RPC_LIMIT, config_get()->max_connections);

	/* A fresh socket has an empty send buffer: this never blocks or truncates. */
	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug_errno(-errno, "Failed to tell a rejected client why: %m");
	close(fd);
}

static void listener_resume(evutil_socket_t fd, short what, void *userdata)
{
	struct listener *l = userdata;

	if (l->ev)
		event_add(l->ev, NULL);
}

static void listener_accept_cb(evutil_socket_t lfd, short what, void *userdata)
{
	static const struct timeval pause = { 0, 100000 };
	struct listener *l = userdata;
	struct server *s = l->server;

	for (int i = 0; i < SERVER_ACCEPT_BURST && !s->shutting_down; i++) {
		struct sockaddr_storage ss = { 0 };
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			log_ratelimited(&server_rl, LOG_WARNING, -errno,
				"Failed to accept a connection, pausing for 100ms: %m");
			/* Out of fds or memory: retrying at once would spin. */
			event_del(l->ev);
			evtimer_add(l->resume, &pause);
			return;
		}
		if (!server_peer_allowed(&ss)) {
			close(fd);
			continue;
		}
		if (s->n_conns >= config_get()->max_connections) {
			log_ratelimited(&server_rl, LOG_WARNING, 0,
				"Refused a connection: max_connections (%u) reached",
				config_get()->max_connections);
			server_reject_busy(fd);
			continue;
		}
		if (conn_new(s, s->base, fd, l->proto, NULL) < 0)
			log_ratelimited(&server_rl, LOG_ERR, -ENOMEM,
				"Failed to set up a connection: %m");
	}
}

int server_add_listener(struct server *s, int fd)
{
	return server_add_listener_proto(s, fd, &conn_proto_jsonrpc);
}

int server_add_listener_proto(struct server *s, int fd, const struct conn_proto *proto)
{
	struct listener **v, *l;

	/* Sockets from systemd come without O_CLOEXEC: commands the agent runs
	 * must not inherit a listener. */
	if (evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0) {
		close(fd);
		return -errno;
	}
	l = calloc(1, sizeof(*l));
	v = realloc(s->listeners, (s->n_listeners + 1) * sizeof(*v));
	if (!l || !v) {
		free(l);
		if (v)
			s->listeners = v;
		close(fd);
		return -ENOMEM;
	}
	s->listeners = v;
	l->server = s;
	l->fd = fd;
	l->proto = proto;
	l->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, listener_accept_cb, l);
	l->resume = evtimer_new(s->base, listener_resume, l);
	if (!l->ev || !l->resume || event_add(l->ev, NULL) < 0) {
		if (l->ev)
			event_free(l->ev);
		if (l->resume)
			event_free(l->resume);
		free(l);
		close(fd);
		return -ENOMEM;
	}
	s->listeners[s->n_listeners++] = l;
	return 0;
}

struct event_base *server_event_base(const struct server *s)
{
	return s->base;
}

unsigned server_n_listeners(const struct server *s)
{
	return (unsigned)s->n_listeners;
}

unsigned server_n_connections(const struct server *s)
{
	return s->n_conns;
}

unsigned long long server_start_usec(const struct server *s)
{
	return s->start_usec;
}

static void server_close_listeners(struct server *s)
{
	for (size_t i = 0; i < s->n_listeners; i++) {
		struct listener *l = s->listeners[i];
		if (!l->ev)
			continue;
		event_free(l->ev);
		event_free(l->resume);
		l->ev = l->resume = NULL;
		close(l->fd);
	}
}

int server_new(struct event_base *base, struct server **ret)
{
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->start_usec = now_usec();
	*ret = s;
	return 0;
}

static void server_shutdown_timeout(evutil_socket_t fd, short what, void *userdata)
{
	struct server *s = userdata;

	log_warning("%u connection(s) still busy after %ds, exiting anyway", s->n_conns,
		SERVER_SHUTDOWN_TIMEOUT_S);
	event_base_loopexit(s->base, NULL);
}

void server_shutdown(struct server *s)
{
	static const struct timeval timeout = { SERVER_SHUTDOWN_TIMEOUT_S, 0 };
	struct server_link *l;
	struct conn **snap;
	size_t n = 0;

	if (s->shutting_down)
		return;
	s->shutting_down = true;
	server_close_listeners(s);
	s->shutdown_timer = evtimer_new(s->base, server_shutdown_timeout, s);
	if (s->shutdown_timer)
		evtimer_add(s->shutdown_timer, &timeout);
	/* Closing one connection may run watches that close others: work on a snapshot. */
	snap = calloc(s->n_conns + 1, sizeof(*snap));
	if (snap) {
		for (l = s->conns; l; l = l->next)
			snap[n++] = conn_ref(l->conn);
		for (size_t i = 0; i < n; i++) {
			conn_update_reading(snap[i]);
			conn_maybe_finish(snap[i]);
			conn_unref(snap[i]);
		}
		free(snap);
	}
	server_maybe_exit(s);
}

struct server *server_free(struct server *s)
{
	if (!s)
		return NULL;
	server_close_listeners(s);
	while (s->conns)
		conn_close(s->conns->conn);
	for (size_t i = 0; i < s->n_listeners; i++)
		free(s->listeners[i]);
	free(s->listeners);
	if (s->shutdown_timer)
		event_free(s->shutdown_timer);
	free(s);
	return NULL;
}
