/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One connection: its socket, its decoder and a bounded output buffer; while
 * the output is above the high-water mark the connection's requests are not
 * read. Connections are reference-counted and closed by deferring the free
 * out of their own callbacks. */
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "envelope.h"
#include "log.h"
#include "method.h"
#include "server.h"

/* Bytes read per wakeup; the decoder consumes them and bounds a message itself. */
#define CONN_READ_SIZE (64u * 1024)
#define CONN_FLUSH_TIMEOUT_S 5
/* After EOF with calls in flight: how often to look whether the peer is gone. */
#define CONN_PROBE_INTERVAL_S 10
/* Input read ahead while a one-at-a-time connection's call runs. */
#define CONN_INPUT_HELD_MAX (256u * 1024)
/* A peer that took none of its output for this long is not reading. */
#define CONN_STALL_USEC (1000u * 1000)
/* Answers gathered while one read is processed (see conn_gather). */
#define CONN_GATHER_SIZE (64u * 1024)

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
	bool reading, writing; /* rev / wev added */
	struct gl_decoder *dec;
	const struct conn_proto *proto;
	/* The decoder may hold state that pending() does not show (it skips to
	 * a newline after a syntax error): no envelope_scan() until its next
	 * message. */
	bool dec_dirty;
	bool skipping;         /* after a message too big: dropping input up to 0xFF or newline */
	size_t sentinel_clear; /* proto->sentinel: the first bytes of in hold no 0xFF */
	/* Input read but not yet decoded that comes before all of in: the part
	 * of the shared read buffer conn_read_ev() decodes in place (see there). */
	const char *direct;
	size_t direct_len;
	unsigned inflight;
	bool closed;    /* no more input or output */
	bool full;      /* output above the high-water mark: not reading */
	bool eof;       /* the peer stopped sending */
	bool finishing; /* flushing the last answers, then closing */
	bool processing;
	bool overflowed;        /* answers beyond the hard limit: closing, output dropped */
	uint64_t progress_usec; /* monotonic time the peer last took output (or connected) */
	struct drain_watch *watches;
	size_t n_watches;
	unsigned watch_dispatch;
	conn_takeover_fn takeover_fn; /* conn_take_over(): called from conn_close() */
	void *takeover_data;
	struct server_link link; /* in the server's list while open */
};

static struct log_ratelimit conn_rl = LOG_RATELIMIT_INIT(5000, 10);

/* The answers produced while a connection's input is processed, gathered in
 * one contiguous buffer and written with one write() when the processing
 * ends (the raw echo server's one read(), one write() per round trip):
 * appending each answer to the evbuffer allocated a chain per answer, and
 * its writev() drained and freed it. Only what the socket does not take
 * goes into the evbuffer, and then the write event, the high-water mark and
 * the overflow rule apply as to any answer. One loop, one thread, one
 * connection processing at a time: one buffer serves, owned by the
 * connection gathering (another connection's answers meanwhile go to its
 * evbuffer). A connection gathers only while its evbuffer is empty, so the
 * order of answers holds: once anything waits there, later answers queue
 * behind it. */
static struct {
	struct conn *owner; /* NULL: nobody gathers */
	size_t len;
	char buf[CONN_GATHER_SIZE];
} conn_gather;

static void conn_process(struct conn *c);

static const struct timeval conn_flush_timeout = { CONN_FLUSH_TIMEOUT_S, 0 };

static uint64_t conn_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

/* Write what the socket takes, noting that the peer is reading. */
static int conn_flush(struct conn *c)
{
	int n = evbuffer_write(c->out, c->fd);

	if (n > 0)
		c->progress_usec = conn_now_usec();
	return n;
}

/* Consume n bytes of input. */
static void conn_in_drain(struct conn *c, size_t n)
{
	evbuffer_drain(c->in, n);
	c->sentinel_clear = c->sentinel_clear > n ? c->sentinel_clear - n : 0;
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

int conn_fd(const struct conn *c)
{
	return c ? c->fd : -1;
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
	return c->full || c->overflowed;
}

unsigned conn_inflight(struct conn *c)
{
	return c->inflight;
}

int conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata)
{
	struct drain_watch *w = realloc(c->watches, (c->n_watches + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	c->watches = w;
	c->watches[c->n_watches++] = (struct drain_watch){ fn, userdata };
	return 0;
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

void conn_update_reading(struct conn *c)
{
	/* A connection answering one request at a time holds what follows. */
	bool held = c->proto->one_at_a_time && c->inflight > 0 &&
		    evbuffer_get_length(c->in) >= CONN_INPUT_HELD_MAX;
	bool on = !c->closed && !c->full && !c->finishing && !c->eof && !c->overflowed && !held &&
		  !(c->server && server_shutting_down(c->server));

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
		(void)conn_flush(c);
	if (evbuffer_get_length(c->out) > 0)
		conn_want_write(c);
}

static void conn_close_later(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;

	conn_close(c);
	conn_unref(c);
}

/* Drop the output and close from the loop: the answer that decided it may
 * come from deep inside a method. */
static void conn_close_soon(struct conn *c)
{
	static const struct timeval now = { 0, 0 };

	c->overflowed = true;
	conn_update_reading(c);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	if (event_base_once(c->base, -1, EV_TIMEOUT, conn_close_later, conn_ref(c), &now) < 0) {
		conn_unref(c);
		log_error("Failed to schedule closing a connection");
	}
}

/* Calls in flight answer whether or not the peer reads: stopping to read
 * requests above the high-water mark bounds what new calls can add, but up to
 * max_inflight answers of any size could still pile up. Past the mark plus
 * max_message_bytes, a peer that took nothing for CONN_STALL_USEC is not
 * reading its answers: the connection is closed, so what it costs stays
 * bounded whatever is in flight. A peer that reads keeps its burst. */
static bool conn_over_limit(struct conn *c)
{
	if (c->overflowed)
		return true;
	if (evbuffer_get_length(c->out) <= CONN_OUTPUT_HIGH + config_get()->max_message_bytes ||
		conn_now_usec() - c->progress_usec < CONN_STALL_USEC)
		return false;
	log_ratelimited(&conn_rl, LOG_NOTICE, 0,
		"Closing a connection with more than %zu bytes of answers unread",
		CONN_OUTPUT_HIGH + config_get()->max_message_bytes);
	conn_close_soon(c);
	return true;
}

static int conn_queued(struct conn *c)
{
	if (c->fd < 0)
		return 0;
	if (conn_over_limit(c))
		return -ENOBUFS;
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

/* Write what c gathered (conn_gather) with one write(); what the socket
 * does not take goes into the evbuffer and waits for the write event.
 * Errors other than EAGAIN surface there, from the next write, as for any
 * answer. */
static void conn_gather_end(struct conn *c)
{
	size_t len = conn_gather.len, done = 0;
	ssize_t n;

	if (conn_gather.owner != c)
		return;
	conn_gather.owner = NULL;
	conn_gather.len = 0;
	n = write(c->fd, conn_gather.buf, len);
	if (n > 0) {
		c->progress_usec = conn_now_usec();
		done = (size_t)n;
	}
	if (done == len)
		return;
	if (evbuffer_add(c->out, conn_gather.buf + done, len - done) < 0) {
		/* The stream would lose answers in its middle: end it instead. */
		log_error("Failed to queue %zu bytes of answers, closing the connection", len - done);
		conn_close_soon(c);
		return;
	}
	if (conn_over_limit(c))
		return;
	if (!c->full && evbuffer_get_length(c->out) >= CONN_OUTPUT_HIGH) {
		c->full = true;
		conn_update_reading(c);
	}
	conn_want_write(c);
}

/* Does an answer of len bytes go into conn_gather? */
static bool conn_gathers(struct conn *c, size_t len)
{
	if (conn_gather.owner == c) {
		if (len <= sizeof(conn_gather.buf) - conn_gather.len)
			return true;
		/* Full: write what is there, then take this answer afresh. */
		conn_gather_end(c);
		if (c->closed || c->overflowed)
			return false;
	}
	if (conn_gather.owner || !c->processing || c->fd < 0 || c->finishing ||
		len > sizeof(conn_gather.buf) || evbuffer_get_length(c->out) > 0)
		return false;
	conn_gather.owner = c;
	return true;
}

/* Append the n pieces of iov, gathered or queued: all or nothing. */
static int conn_append(struct conn *c, const struct iovec *iov, size_t n)
{
	size_t len = 0;

	if (c->closed || c->overflowed)
		return -EPIPE;
	for (size_t i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (conn_gathers(c, len)) {
		for (size_t i = 0; i < n; i++) {
			memcpy(conn_gather.buf + conn_gather.len, iov[i].iov_base, iov[i].iov_len);
			conn_gather.len += iov[i].iov_len;
		}
		return 0;
	}
	if (c->closed || c->overflowed)
		return -EPIPE;
	/* Room for the whole text first: then the appends allocate nothing and
	 * cannot fail half-way (evbuffer_expand()'s promise). */
	if (evbuffer_expand(c->out, len) < 0)
		return log_error_errno(-ENOMEM, "Failed to queue an answer: %m");
	for (size_t i = 0; i < n; i++)
		(void)evbuffer_add(c->out, iov[i].iov_base, iov[i].iov_len);
	return conn_queued(c);
}

int conn_write(struct conn *c, struct json_object *obj)
{
	struct iovec iov[2];

	if (c->closed || c->overflowed)
		return -EPIPE;
	iov[0].iov_base = (void *)gl_encode_string(obj, &iov[0].iov_len); /* NULL obj: "null" */
	if (!iov[0].iov_base)
		return log_error_errno(-ENOMEM, "Failed to queue an answer: %m");
	iov[1] = (struct iovec){ (void *)"\n", 1 };
	return conn_append(c, iov, 2);
}

int conn_write_raw(struct conn *c, const void *data, size_t len)
{
	struct iovec iov = { (void *)data, len };

	return conn_append(c, &iov, 1);
}

int conn_write_iov(struct conn *c, const struct iovec *iov, size_t n)
{
	return conn_append(c, iov, n);
}

int conn_write_text(struct conn *c, struct evbuffer *text)
{
	size_t len = evbuffer_get_length(text);

	if (c->closed || c->overflowed)
		return -EPIPE;
	if (conn_gathers(c, len)) {
		/* evbuffer_remove() of what is there cannot fail. */
		(void)evbuffer_remove(text, conn_gather.buf + conn_gather.len, len);
		conn_gather.len += len;
		return 0;
	}
	if (c->closed || c->overflowed)
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

/* Move what is left of the input decoded in place in front of in, which
 * then holds all unread input again. Returns 0 or -ENOMEM (the rest is lost:
 * the caller closes the connection). */
static int conn_direct_keep(struct conn *c)
{
	int r = 0;

	if (c->direct_len > 0 && evbuffer_prepend(c->in, c->direct, c->direct_len) < 0)
		r = log_error_errno(-ENOMEM, "Failed to keep %zu bytes of input", c->direct_len);
	c->direct = NULL;
	c->direct_len = 0;
	return r;
}

void conn_close(struct conn *c)
{
	struct server *s = c->server;
	static const struct timeval now = { 0, 0 };

	if (c->closed)
		return;
	c->closed = true;
	c->full = false;
	if (conn_gather.owner == c) {
		/* Closing drops queued output: gathered answers too. */
		conn_gather.owner = NULL;
		conn_gather.len = 0;
	}
	conn_ref(c);
	(void)conn_direct_keep(c);
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
	conn_in_drain(c, evbuffer_get_length(c->in));
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->dec = gl_decoder_free(c->dec);
	if (c->fd >= 0) {
		conn_update_reading(c);
		conn_stop_write(c);
		if (c->probe)
			event_del(c->probe);
		/* Never free inside the connection's own callback: the free runs from
		 * the loop, holding a reference until then. */
		if (event_base_once(c->base, -1, EV_TIMEOUT, conn_deferred_free, conn_ref(c), &now) <
			0)
			conn_unref(c);
	}
	conn_run_watches(c);
	if (s) {
		c->server = NULL; /* calls may hold c longer than the server lives */
		server_conn_removed(s, &c->link); /* drops the server's reference */
	}
	conn_unref(c);
}

int conn_take_over(struct conn *c, conn_takeover_fn fn, void *userdata)
{
	if (c->fd < 0 || c->closed || c->finishing || c->takeover_fn)
		return -ENOTCONN;
	/* What was gathered so far goes before the hand-over. */
	conn_gather_end(c);
	if (c->closed || c->overflowed)
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
	conn_gather_end(c);
	if (c->closed)
		return;
	if (c->fd < 0 || evbuffer_get_length(c->out) == 0) {
		conn_close(c);
		return;
	}
	/* Re-arm the write event with the flush timeout. */
	conn_stop_write(c);
	conn_want_write(c);
}

/* After EOF or on shutdown: close once nothing is left to answer. */
void conn_maybe_finish(struct conn *c)
{
	bool shutting_down = c->server && server_shutting_down(c->server);

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

static void conn_process_later(evutil_socket_t fd, short what, void *userdata)
{
	struct conn *c = userdata;

	if (!c->closed) {
		conn_update_reading(c);
		conn_process(c);
	}
	conn_unref(c);
}

void conn_inflight_dec(struct conn *c)
{
	static const struct timeval now = { 0, 0 };

	if (c->inflight > 0)
		c->inflight--;
	if (c->takeover_fn && c->inflight == 0 && !c->closed) {
		conn_stop_write(c);
		conn_want_write(c);
	}
	if (c->proto->one_at_a_time && c->inflight == 0 && !c->closed &&
		event_base_once(c->base, -1, EV_TIMEOUT, conn_process_later, conn_ref(c), &now) < 0)
		conn_unref(c);
	if (c->inflight > 0 || c->closed ||
		!(c->eof || (c->server && server_shutting_down(c->server))))
		return;
	/* The last answer may come from deep inside a method (a child's exit, a
	 * timer): closing here would run drain watches under its feet. */
	if (event_base_once(c->base, -1, EV_TIMEOUT, conn_finish_later, conn_ref(c), &now) < 0) {
		conn_unref(c);
		log_error("Failed to schedule closing a finished connection");
	}
}

/* Where the next 0xFF in the input is, or -1. Only bytes not searched before
 * are searched: each decoded message used to rescan the whole buffer, which
 * made many small messages in one read quadratic. */
static ssize_t conn_find_sentinel(struct conn *c, size_t avail)
{
	struct evbuffer_ptr start, p;

	if (c->sentinel_clear >= avail) {
		c->sentinel_clear = avail;
		return -1;
	}
	if (evbuffer_ptr_set(c->in, &start, c->sentinel_clear, EVBUFFER_PTR_SET) < 0)
		return -1;
	p = evbuffer_search(c->in, "\xff", 1, &start);
	c->sentinel_clear = p.pos >= 0 ? (size_t)p.pos : avail;
	return p.pos >= 0 ? (ssize_t)p.pos : -1;
}

/* After the decoder answered st: is it known to hold nothing? */
static void conn_decoded(struct conn *c, enum gl_decode_status st)
{
	if (st == GL_DECODE_MESSAGE)
		c->dec_dirty = false;
	else if (st != GL_DECODE_AGAIN)
		c->dec_dirty = true;
}

/* A plain request taken straight from the input by envelope_scan() while the
 * decoder holds nothing (so no text is cut in two): no tree is built for it.
 * Anything else is left to conn_decode(). */
static bool conn_scan(struct conn *c, struct envelope *ret)
{
	size_t max = config_get()->max_message_bytes, used;
	struct evbuffer_iovec v;

	if (!c->proto->envelope || c->proto->sentinel || c->skipping || c->dec_dirty ||
		gl_decoder_pending(c->dec) > 0)
		return false;
	if (c->direct_len > 0) {
		used = envelope_scan(c->direct, c->direct_len, max, ret);
		c->direct += used;
		c->direct_len -= used;
		return used > 0;
	}
	if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
		return false;
	used = envelope_scan(v.iov_base, v.iov_len, max, ret);
	conn_in_drain(c, used);
	return used > 0;
}

/* The next message from the input. With proto->sentinel a 0xFF byte (never
 * part of JSON text) discards whatever partial message came before it and
 * starts afresh, as QGA's guest-sync-delimited asks (qga/qapi-schema.json). */
static enum gl_decode_status conn_decode(struct conn *c, struct json_object **ret_obj)
{
	while (c->direct_len > 0) {
		enum gl_decode_status st;
		size_t used = gl_decoder_decode(c->dec, c->direct, c->direct_len, &st, ret_obj);

		conn_decoded(c, st);
		c->direct += used;
		c->direct_len -= used;
		if (st != GL_DECODE_AGAIN)
			return st;
		if (used == 0)
			return GL_DECODE_AGAIN;
	}
	for (;;) {
		size_t avail = evbuffer_get_length(c->in), limit = avail, used;
		enum gl_decode_status st;
		struct evbuffer_iovec v;

		if (avail == 0)
			return GL_DECODE_AGAIN;
		if (c->proto->sentinel) {
			ssize_t pos = conn_find_sentinel(c, avail);

			if (pos == 0) {
				conn_in_drain(c, 1);
				c->dec = gl_decoder_free(c->dec);
				c->dec = gl_decoder_new(config_get()->max_message_bytes, 0);
				c->skipping = false;
				if (!c->dec)
					return GL_DECODE_TOOBIG;
				continue;
			}
			if (pos > 0)
				limit = (size_t)pos;
		}
		if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1)
			return GL_DECODE_AGAIN;
		if (v.iov_len < limit)
			limit = v.iov_len;
		if (c->skipping) {
			const char *nl = memchr(v.iov_base, '\n', limit);

			used = nl ? (size_t)(nl - (const char *)v.iov_base) + 1 : limit;
			conn_in_drain(c, used);
			if (nl) {
				c->skipping = false;
				c->dec = gl_decoder_free(c->dec);
				c->dec = gl_decoder_new(config_get()->max_message_bytes, 0);
				if (!c->dec)
					return GL_DECODE_TOOBIG;
			}
			continue;
		}
		used = gl_decoder_decode(c->dec, v.iov_base, limit, &st, ret_obj);
		conn_decoded(c, st);
		conn_in_drain(c, used);
		if (st != GL_DECODE_AGAIN)
			return st;
		if (used == 0)
			return GL_DECODE_AGAIN;
	}
}

/* With proto->one_at_a_time, the next request waits for the answer before. */
static bool conn_busy(struct conn *c)
{
	return c->proto->one_at_a_time && c->inflight > 0;
}

static void conn_process(struct conn *c)
{
	if (c->processing)
		return;
	c->processing = true;
	conn_ref(c);
	while (!c->closed && !c->full && !c->finishing && !conn_busy(c)) {
		struct json_object *obj = NULL;
		enum gl_decode_status st;
		struct envelope env;

		if (conn_scan(c, &env)) {
			c->proto->envelope(c, &env);
			continue;
		}
		st = conn_decode(c, &obj);
		if (st == GL_DECODE_AGAIN)
			break;
		if (st == GL_DECODE_MESSAGE)
			c->proto->message(c, obj);
		else if (st == GL_DECODE_SYNTAX)
			c->proto->syntax_error(c);
		else {
			log_ratelimited(&conn_rl, LOG_NOTICE, 0,
				"A connection sent a message over %zu bytes",
				config_get()->max_message_bytes);
			c->proto->too_big(c);
			if (c->proto->sentinel) {
				/* The peer can resynchronise: drop input to 0xFF or a newline. */
				c->skipping = true;
				continue;
			}
			conn_finish(c);
			break;
		}
	}
	c->processing = false;
	/* One write for the answers of this read (conn_gather). */
	if (conn_gather.owner == c)
		conn_gather_end(c);
	else
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

/* May conn_read_ev() decode in place? Not while older input waits in in,
 * nor for the protocols that search in for 0xFF or hold input back. */
static bool conn_direct_ok(struct conn *c)
{
	return !c->proto->sentinel && !c->proto->one_at_a_time && !c->skipping && !c->processing &&
	       evbuffer_get_length(c->in) == 0;
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
	if (n > 0 && conn_direct_ok(c)) {
		/* Nothing is waiting in in: decode straight from buf, and keep
		 * in in only what decoding did not reach (stopped by a full
		 * output, say). Copying every request into in, then peeking and
		 * draining it, was a twentieth of an agent.ping. */
		c->direct = buf;
		c->direct_len = (size_t)n;
		conn_process(c);
		if (conn_direct_keep(c) < 0)
			conn_close(c);
		conn_update_reading(c);
	} else if (n > 0) {
		if (evbuffer_add(c->in, buf, (size_t)n) < 0) {
			conn_close(c);
			goto out;
		}
		conn_process(c);
		conn_update_reading(c);
	} else if (n == 0 && c->proto->eof_closes) {
		/* virtio-serial: the host side closed; nobody will read answers. */
		conn_close(c);
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
		log_ratelimited(&conn_rl, LOG_NOTICE, 0,
			"Closing a connection whose peer did not read its last answers");
		conn_close(c);
		goto out;
	}
	/* evbuffer_write() of nothing answers -1: a hand-over waiting for calls
	 * in flight arms this event with the output empty. */
	if (evbuffer_get_length(c->out) > 0 && conn_flush(c) < 0 && errno != EAGAIN &&
		errno != EINTR) {
		conn_close(c);
		goto out;
	}
	len = evbuffer_get_length(c->out);
	if (len == 0 && !c->finishing)
		conn_stop_write(c);
	if (c->full && len <= CONN_OUTPUT_LOW) {
		c->full = false;
		conn_update_reading(c);
		conn_run_watches(c);
		conn_process(c);
	}
	if (c->finishing && evbuffer_get_length(c->out) == 0) {
		/* A hand-over waits for the calls still running (a batch member
		 * on a worker thread): their answers come first on this socket.
		 * conn_inflight_dec() re-arms the write event. */
		if (c->takeover_fn && c->inflight > 0)
			conn_stop_write(c);
		else
			conn_close(c);
	}
out:
	conn_unref(c);
}

static struct conn *conn_alloc(struct event_base *base, const struct conn_proto *proto)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->proto = proto;
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
	return conn_new_detached_proto(base, &conn_proto_jsonrpc);
}

struct conn *conn_new_detached_proto(struct event_base *base, const struct conn_proto *proto)
{
	struct conn *c = conn_alloc(base, proto);

	if (!c)
		return NULL;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (!c->in || !c->out)
		return conn_unref(c);
	return c;
}

int conn_new(struct server *s, struct event_base *base, int fd, const struct conn_proto *proto,
	struct conn **ret)
{
	struct conn *c = conn_alloc(base, proto);

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->server = s;
	c->progress_usec = conn_now_usec();
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_ev, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_ev, c);
	if (!c->in || !c->out || !c->rev || !c->wev) {
		conn_unref(c);
		return -ENOMEM;
	}
	c->link.conn = c;
	server_conn_added(s, &c->link); /* takes the reference */
	conn_update_reading(c);
	if (ret)
		*ret = c;
	return 0;
}
