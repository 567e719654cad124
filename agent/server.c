/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listeners and connections. Each connection has its own decoder and a
 * bounded output buffer; while the output is above the high-water mark the
 * connection's requests are not read. Connections are reference-counted and
 * closed by deferring the free out of their own callbacks. */
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/vm_sockets.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "method.h"
#include "server.h"

/* Bytes read per wakeup; the decoder consumes them and bounds a message itself. */
#define CONN_READ_SIZE (64u * 1024)
#define CONN_FLUSH_TIMEOUT_S 5
#define SERVER_ACCEPT_BURST 64
/* After EOF with calls in flight: how often to look whether the peer is gone. */
#define CONN_PROBE_INTERVAL_S 10

struct drain_watch {
	conn_drain_fn fn;
	void *userdata;
};

struct conn {
	unsigned refs;
	struct server *server; /* NULL for detached connections */
	struct event_base *base;
	int fd;                  /* -1 for detached connections */
	struct event *rev, *wev; /* NULL for detached connections */
	struct event *probe;     /* after EOF: is the peer still there? */
	struct evbuffer *in, *out;
	bool reading, writing;   /* rev / wev added */
	struct gl_decoder *dec;
	unsigned inflight;
	bool closed;    /* no more input or output */
	bool full;      /* output above the high-water mark: not reading */
	bool eof;       /* the peer stopped sending */
	bool finishing; /* flushing the last answers, then closing */
	bool processing;
	struct drain_watch *watches;
	size_t n_watches;
	unsigned watch_dispatch;
	conn_takeover_fn takeover_fn; /* conn_take_over(): called from conn_close() */
	void *takeover_data;
	struct conn *prev, *next;
};

struct listener {
	struct server *server;
	struct event *ev;
	struct event *resume; /* re-arms ev after an accept failure */
	int fd;
};

struct server {
	struct event_base *base;
	struct listener **listeners;
	size_t n_listeners;
	struct conn *conns;
	unsigned n_conns;
	bool shutting_down;
	struct event *shutdown_timer;
	unsigned long long start_usec;
};

static struct log_ratelimit server_rl = LOG_RATELIMIT_INIT(5000, 10);

static void conn_process(struct conn *c);
static void conn_close(struct conn *c);

static const struct timeval conn_flush_timeout = { CONN_FLUSH_TIMEOUT_S, 0 };

static unsigned long long now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

/* --- connections --- */

struct conn *conn_ref(struct conn *c)
{
	if (c)
		c->refs++;
	return c;
}

struct conn *conn_unref(struct conn *c)
{
	if (!c || --c->refs > 0)
		return NULL;
	if (c->probe)
		event_free(c->probe);
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->fd >= 0)
		close(c->fd);
	if (c->in)
		evbuffer_free(c->in);
	if (c->out)
		evbuffer_free(c->out);
	gl_decoder_free(c->dec);
	free(c->watches);
	free(c);
	return NULL;
}

bool conn_closed(struct conn *c)
{
	return c->closed;
}

struct server *conn_server(struct conn *c)
{
	return c->server;
}

struct event_base *conn_event_base(struct conn *c)
{
	return c->base;
}

struct evbuffer *conn_output(struct conn *c)
{
	return c->out;
}

bool conn_output_full(struct conn *c)
{
	return c->full;
}

unsigned conn_inflight(struct conn *c)
{
	return c->inflight;
}

void conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata)
{
	struct drain_watch *w = realloc(c->watches, (c->n_watches + 1) * sizeof(*w));

	if (!w) {
		log_error("Out of memory adding a drain watch, ignoring");
		return;
	}
	c->watches = w;
	c->watches[c->n_watches++] = (struct drain_watch){ fn, userdata };
}

void conn_remove_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata)
{
	for (size_t i = 0; i < c->n_watches; i++)
		if (c->watches[i].fn == fn && c->watches[i].userdata == userdata) {
			/* While watches run, only mark: the running loop compacts afterwards. */
			if (c->watch_dispatch)
				c->watches[i].fn = NULL;
			else {
				memmove(&c->watches[i], &c->watches[i + 1],
					(c->n_watches - i - 1) * sizeof(*c->watches));
				c->n_watches--;
			}
			return;
		}
}

static void conn_run_watches(struct conn *c)
{
	size_t n = c->n_watches, j = 0;

	conn_ref(c);
	c->watch_dispatch++;
	for (size_t i = 0; i < n && i < c->n_watches; i++)
		if (c->watches[i].fn)
			c->watches[i].fn(c, c->watches[i].userdata);
	if (--c->watch_dispatch == 0) {
		for (size_t i = 0; i < c->n_watches; i++)
			if (c->watches[i].fn)
				c->watches[j++] = c->watches[i];
		c->n_watches = j;
	}
	conn_unref(c);
}

static void conn_update_reading(struct conn *c)
{
	bool on = !c->closed && !c->full && !c->finishing && !c->eof &&
		  !(c->server && c->server->shutting_down);

	if (!c->rev || c->reading == on)
		return;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
	c->reading = on;
}

static void conn_want_write(struct conn *c)
{
	if (!c->wev || c->writing || c->closed)
		return;
	/* A peer that never reads cannot keep a finishing connection forever. */
	event_add(c->wev, c->finishing ? &conn_flush_timeout : NULL);
	c->writing = true;
}

static void conn_stop_write(struct conn *c)
{
	if (!c->writing)
		return;
	event_del(c->wev);
	c->writing = false;
}

/* Write queued answers right away rather than one loop iteration later (a
 * round trip then costs one wakeup); what the socket does not take waits for
 * the write event. Runs no callbacks and never closes, so it is safe from
 * anywhere; errors surface in conn_write_ev(). */
static void conn_try_write(struct conn *c)
{
	if (c->fd < 0 || c->closed || evbuffer_get_length(c->out) == 0)
		return;
	if (!c->writing && !c->full && !c->finishing)
		(void)evbuffer_write(c->out, c->fd);
	if (evbuffer_get_length(c->out) > 0)
		conn_want_write(c);
}

static int conn_queued(struct conn *c)
{
	if (c->fd < 0)
		return 0;
	if (!c->full && evbuffer_get_length(c->out) >= CONN_OUTPUT_HIGH) {
		c->full = true;
		conn_update_reading(c);
	}
	/* While the connection's own input is processed, the write happens once
	 * at the end, for all answers together. */
	if (!c->processing)
		conn_try_write(c);
	return 0;
}

int conn_write(struct conn *c, struct json_object *obj)
{
	int r;

	if (c->closed)
		return -EPIPE;
	r = gl_encode_evbuffer(obj, c->out);
	if (r < 0)
		return log_error_errno(r, "Failed to queue an answer: %m");
	return conn_queued(c);
}

int conn_write_text(struct conn *c, struct evbuffer *text)
{
	if (c->closed)
		return -EPIPE;
	if (evbuffer_add_buffer(c->out, text) < 0)
		return log_error_errno(-ENOMEM, "Failed to queue an answer: %m");
	return conn_queued(c);
}

int conn_notify(struct conn *c, const char *method, struct json_object *params)
{
	struct json_object *n;
	int r;

	if (c->closed) {
		json_object_put(params);
		return -EPIPE;
	}
	n = gl_rpc_request_new(method, params, NULL);
	if (!n)
		return -ENOMEM;
	r = conn_write(c, n);
	json_object_put(n);
	return r;
}

static void conn_deferred_free(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;

	/* Release the socket now, even if calls still hold the connection. */
	if (c->probe)
		event_free(c->probe);
	c->probe = NULL;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	conn_unref(c);
}

static void server_maybe_exit(struct server *s)
{
	if (s->shutting_down && s->n_conns == 0)
		event_base_loopexit(s->base, NULL);
}

static void conn_close(struct conn *c)
{
	struct server *s = c->server;
	static const struct timeval now = { 0, 0 };

	if (c->closed)
		return;
	c->closed = true;
	c->full = false;
	conn_ref(c);
	if (c->takeover_fn) {
		/* Only a connection whose answers were all written hands its socket on. */
		int fd = -1;
		if (c->fd >= 0 && evbuffer_get_length(c->out) == 0)
			fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3);
		c->takeover_fn(fd, c->in, c->takeover_data);
		c->takeover_fn = NULL;
	}
	/* Calls still in flight (exec.wait on a process that never ends) may keep
	 * c for long: let them keep nothing but c itself, not answers nobody
	 * will read, unread input or a half-decoded message. */
	evbuffer_drain(c->in, evbuffer_get_length(c->in));
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->dec = gl_decoder_free(c->dec);
	if (c->fd >= 0) {
		conn_update_reading(c);
		conn_stop_write(c);
		if (c->probe)
			event_del(c->probe);
		/* Never free inside the connection's own callback: the free runs from
		 * the loop, holding a reference until then. */
		if (event_base_once(c->base, -1, EV_TIMEOUT, conn_deferred_free, conn_ref(c), &now) < 0)
			conn_unref(c);
	}
	conn_run_watches(c);
	if (s) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->prev = c->next = NULL;
		c->server = NULL; /* calls may hold c longer than the server lives */
		s->n_conns--;
		conn_unref(c); /* the server's reference */
		server_maybe_exit(s);
	}
	conn_unref(c);
}

int conn_take_over(struct conn *c, conn_takeover_fn fn, void *userdata)
{
	if (c->fd < 0 || c->closed || c->finishing || c->takeover_fn)
		return -ENOTCONN;
	c->takeover_fn = fn;
	c->takeover_data = userdata;
	/* Not one more byte is read as JSON: what follows belongs to fn. The
	 * answers queued so far are flushed, then conn_close() hands over. */
	c->finishing = true;
	conn_update_reading(c);
	/* The write event (with the flush timeout) closes once the output is empty. */
	conn_stop_write(c);
	conn_want_write(c);
	return 0;
}

struct conn *conn_close_unref(struct conn *c)
{
	if (!c)
		return NULL;
	conn_close(c);
	return conn_unref(c);
}

/* Stop reading, flush what is queued, then close. */
static void conn_finish(struct conn *c)
{
	if (c->closed)
		return;
	c->finishing = true;
	conn_update_reading(c);
	if (c->fd < 0 || evbuffer_get_length(c->out) == 0) {
		conn_close(c);
		return;
	}
	/* Re-arm the write event with the flush timeout. */
	conn_stop_write(c);
	conn_want_write(c);
}

/* After EOF or on shutdown: close once nothing is left to answer. */
static void conn_maybe_finish(struct conn *c)
{
	bool shutting_down = c->server && c->server->shutting_down;

	if (c->closed || c->finishing || c->inflight > 0)
		return;
	if (shutting_down || (c->eof && !c->full))
		conn_finish(c);
}

void conn_inflight_inc(struct conn *c)
{
	c->inflight++;
}

static void conn_finish_later(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;

	conn_maybe_finish(c);
	conn_unref(c);
}

void conn_inflight_dec(struct conn *c)
{
	static const struct timeval now = { 0, 0 };

	if (c->inflight > 0)
		c->inflight--;
	if (c->inflight == 0 && c->takeover_fn && !c->closed)
		conn_want_write(c); /* the hand-over waited for this answer */
	if (c->inflight > 0 || c->closed || !(c->eof || (c->server && c->server->shutting_down)))
		return;
	/* The last answer may come from deep inside a method (a child's exit, a
	 * timer): closing here would run drain watches under its feet. */
	if (event_base_once(c->base, -1, EV_TIMEOUT, conn_finish_later, conn_ref(c), &now) < 0) {
		conn_unref(c);
		log_error("Failed to schedule closing a finished connection");
	}
}

static void conn_answer_error(struct conn *c, int code, const char *message)
{
	struct json_object *e = gl_rpc_error_new(NULL, code, message, NULL);

	if (e) {
		conn_write(c, e);
		json_object_put(e);
	}
}

static void conn_process(struct conn *c)
{
	if (c->processing)
		return;
	c->processing = true;
	conn_ref(c);
	while (!c->closed && !c->full && !c->finishing) {
		struct json_object *obj = NULL;
		enum gl_decode_status st = gl_decoder_decode_evbuffer(c->dec, c->in, &obj);

		if (st == GL_DECODE_AGAIN)
			break;
		if (st == GL_DECODE_MESSAGE)
			dispatch_message(c, obj);
		else if (st == GL_DECODE_SYNTAX)
			conn_answer_error(c, GL_RPC_PARSE_ERROR, NULL);
		else {
			char msg[96];
			snprintf(msg, sizeof(msg), "Message larger than max_message_bytes (%zu)",
				config_get()->max_message_bytes);
			log_ratelimited(&server_rl, LOG_NOTICE, 0,
				"Closing a connection that sent a message over %zu bytes",
				config_get()->max_message_bytes);
			conn_answer_error(c, GL_RPC_LIMIT, msg);
			conn_finish(c);
			break;
		}
	}
	c->processing = false;
	conn_try_write(c);
	if (c->eof)
		conn_maybe_finish(c);
	conn_unref(c);
}

int conn_feed(struct conn *c, const void *data, size_t len)
{
	if (c->closed)
		return -EPIPE;
	if (evbuffer_add(c->in, data, len) < 0)
		return -ENOMEM;
	conn_process(c);
	return 0;
}

/* EOF is a half-close, answered in full, unless the peer closed its socket
 * altogether: then nobody will read the answers, and a call that never ends
 * (exec.wait on a process that does not) would keep the connection, and its
 * slot among max_connections, for good. */
static bool conn_peer_gone(struct conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = 0 };

	if (c->fd < 0)
		return false;
	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)))
		return true;
	/* vsock tells a peer that stopped receiving (or reset) only to a send. */
	if (send(c->fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		(errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN))
		return true;
	return false;
}

static void conn_probe_ev(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;

	if (c->closed || c->finishing || c->inflight == 0)
		return;
	if (conn_peer_gone(c)) {
		conn_ref(c);
		conn_close(c);
		conn_unref(c);
		return;
	}
	static const struct timeval again = { CONN_PROBE_INTERVAL_S, 0 };
	evtimer_add(c->probe, &again);
}

static void conn_read_ev(evutil_socket_t fd, short what, void *userdata)
{
	/* One loop, one thread: a shared read buffer. Reading into a 64 KiB
	 * evbuffer chunk instead cost a large malloc and free per request. */
	static char buf[CONN_READ_SIZE];
	struct conn *c = userdata;
	ssize_t n;

	conn_ref(c);
	n = read(c->fd, buf, sizeof(buf));
	if (n > 0) {
		if (evbuffer_add(c->in, buf, (size_t)n) < 0) {
			conn_close(c);
			goto out;
		}
		conn_process(c);
	} else if (n == 0) {
		/* Half-close: answer what was sent, then close. */
		c->eof = true;
		conn_update_reading(c);
		conn_process(c);
		conn_maybe_finish(c);
		if (!c->closed && !c->finishing && c->inflight > 0) {
			if (!c->probe)
				c->probe = evtimer_new(c->base, conn_probe_ev, c);
			if (c->probe)
				conn_probe_ev(-1, EV_TIMEOUT, c);
		}
	} else if (errno != EAGAIN && errno != EINTR)
		conn_close(c);
out:
	conn_unref(c);
}

static void conn_write_ev(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;
	size_t len;

	conn_ref(c);
	if (what & EV_TIMEOUT) {
		log_ratelimited(&server_rl, LOG_NOTICE, 0,
			"Closing a connection whose peer did not read its last answers");
		conn_close(c);
		goto out;
	}
	/* evbuffer_write() of an empty buffer returns -1 without an errno. */
	if (evbuffer_get_length(c->out) > 0 && evbuffer_write(c->out, c->fd) < 0 &&
		errno != EAGAIN && errno != EINTR) {
		conn_close(c);
		goto out;
	}
	len = evbuffer_get_length(c->out);
	/* A hand-over waits for every call in flight (batch members answered
	 * from a worker thread) to be answered and written first. */
	if (len == 0 && (!c->finishing || (c->takeover_fn && c->inflight > 0)))
		conn_stop_write(c);
	if (c->full && len <= CONN_OUTPUT_LOW) {
		c->full = false;
		conn_update_reading(c);
		conn_run_watches(c);
		conn_process(c);
	}
	if (c->finishing && evbuffer_get_length(c->out) == 0 && !(c->takeover_fn && c->inflight > 0))
		conn_close(c);
out:
	conn_unref(c);
}

static struct conn *conn_alloc(struct event_base *base)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->refs = 1;
	c->fd = -1;
	c->base = base;
	c->dec = gl_decoder_new(config_get()->max_message_bytes, 0);
	if (!c->dec) {
		free(c);
		return NULL;
	}
	return c;
}

struct conn *conn_new_detached(struct event_base *base)
{
	struct conn *c = conn_alloc(base);

	if (!c)
		return NULL;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (!c->in || !c->out)
		return conn_unref(c);
	return c;
}

static int conn_new(struct server *s, int fd)
{
	struct conn *c = conn_alloc(s->base);

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->server = s;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, conn_read_ev, c);
	c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, conn_write_ev, c);
	if (!c->in || !c->out || !c->rev || !c->wev) {
		conn_unref(c);
		return -ENOMEM;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	conn_update_reading(c);
	return 0;
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
		if (conn_new(s, fd) < 0)
			log_ratelimited(&server_rl, LOG_ERR, -ENOMEM, "Failed to set up a connection: %m");
	}
}

int server_add_listener(struct server *s, int fd)
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
	struct conn **snap, *c;
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
		for (c = s->conns; c; c = c->next)
			snap[n++] = conn_ref(c);
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
		conn_close(s->conns);
	for (size_t i = 0; i < s->n_listeners; i++)
		free(s->listeners[i]);
	free(s->listeners);
	if (s->shutdown_timer)
		event_free(s->shutdown_timer);
	free(s);
	return NULL;
}

int conn_fd(const struct conn *c)
{
	return c ? c->fd : -1;
}
