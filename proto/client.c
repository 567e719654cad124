/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libguestlink client. Synchronous mode talks over the socket with poll();
 * once attached to an event base, a bufferevent carries any number of calls in
 * flight, matched to their answers by id in a small hash table.
 *
 * User callbacks may free the client. Every entry point that runs callbacks
 * holds c->busy; gl_client_free() from inside one only marks the client dead,
 * and the outermost frame destroys it on the way out. */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "guestlink/address.h"
#include "guestlink/client.h"
#include "guestlink/jsonrpc.h"
#include "guestlink/stream.h"
#include "deadline.h"
#include "macro.h"

#define CLIENT_BUCKETS 256u
#define CLIENT_READ_MAX 65536

struct client_call {
	struct client_call *next; /* hash chain */
	struct gl_client *client;
	int64_t id;
	gl_reply_fn fn;
	void *userdata;
	struct event *timer;
	int64_t deadline_us; /* CLOCK_MONOTONIC; the timer fires no earlier */
};

struct gl_client {
	int fd;      /* until attached; then the bufferevent owns it */
	pid_t child; /* exec: address: the command, reaped after the fd closes */
	struct gl_decoder *dec;
	struct evbuffer *in; /* synchronous mode input */
	int64_t next_id;
	bool broken;                    /* connection lost: every later call fails */
	bool lost;                      /* ... and the close handler ran */
	struct json_object *sync_reply; /* keeps the last error's strings alive */

	struct event_base *base;
	struct bufferevent *bev;
	struct event *kick; /* processes input left over from synchronous mode */
	struct client_call *calls[CLIENT_BUCKETS];
	unsigned n_calls;
	unsigned busy;
	bool dead;

	gl_notification_fn notify_fn;
	void *notify_userdata;
	gl_close_fn close_fn;
	void *close_userdata;
};

static void client_destroy(struct gl_client *c);

static void client_enter(struct gl_client *c)
{
	c->busy++;
}

static void client_leave(struct gl_client *c)
{
	if (--c->busy == 0 && c->dead)
		client_destroy(c);
}

/* --- construction --- */

int gl_client_new_fd(int fd, struct gl_client **ret)
{
	struct gl_client *c;
	int fl;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->dec = gl_decoder_new(0, 0);
	c->in = evbuffer_new();
	if (!c->dec || !c->in) {
		client_destroy(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

int gl_client_connect(const char *address, int timeout_ms, struct gl_client **ret)
{
	struct gl_address a;
	pid_t pid;
	int fd, r;

	r = gl_address_parse(address, &a);
	if (r < 0)
		return r;
	fd = gl_address_open(&a, timeout_ms, &pid);
	if (fd < 0)
		return fd;
	r = gl_client_new_fd(fd, ret);
	if (r < 0) {
		(void)gl_address_close(-1, pid); /* gl_client_new_fd closed fd */
		return r;
	}
	(*ret)->child = pid;
	return 0;
}

void gl_client_set_notification_handler(struct gl_client *c, gl_notification_fn fn, void *userdata)
{
	c->notify_fn = fn;
	c->notify_userdata = userdata;
}

void gl_client_set_close_handler(struct gl_client *c, gl_close_fn fn, void *userdata)
{
	c->close_fn = fn;
	c->close_userdata = userdata;
}

unsigned gl_client_pending(struct gl_client *c)
{
	return c ? c->n_calls : 0;
}

/* --- the table of calls in flight --- */

static struct client_call **client_bucket(struct gl_client *c, int64_t id)
{
	return &c->calls[(uint64_t)id % CLIENT_BUCKETS];
}

static struct client_call *client_take(struct gl_client *c, int64_t id)
{
	for (struct client_call **p = client_bucket(c, id); *p; p = &(*p)->next)
		if ((*p)->id == id) {
			struct client_call *call = *p;
			*p = call->next;
			c->n_calls--;
			return call;
		}
	return NULL;
}

static struct client_call *client_take_any(struct gl_client *c)
{
	for (unsigned i = 0; i < CLIENT_BUCKETS && c->n_calls > 0; i++)
		if (c->calls[i])
			return client_take(c, c->calls[i]->id);
	return NULL;
}

static struct client_call *client_call_free(struct client_call *call)
{
	if (!call)
		return NULL;
	if (call->timer)
		event_free(call->timer);
	free(call);
	return NULL;
}

/* Run a call's callback once and free it. */
static void client_complete(struct client_call *call, int status, struct json_object *result,
	const struct gl_error *error)
{
	gl_reply_fn fn = call->fn;
	void *userdata = call->userdata;
	struct gl_client *c = call->client;

	client_call_free(call);
	fn(c, status, result, error, userdata);
}

static void client_fail_all(struct gl_client *c, int status)
{
	struct client_call *call;

	while ((call = client_take_any(c)))
		client_complete(call, status, NULL, NULL);
}

static void client_destroy(struct gl_client *c)
{
	struct client_call *call;

	while ((call = client_take_any(c)))
		client_call_free(call);
	if (c->bev)
		bufferevent_free(c->bev); /* closes the fd */
	if (c->kick)
		event_free(c->kick);
	if (c->fd >= 0)
		close(c->fd);
	/* After the close: an exec: command sees EOF on its stdin first. */
	if (c->child > 0)
		(void)gl_address_close(-1, c->child);
	gl_decoder_free(c->dec);
	if (c->in)
		evbuffer_free(c->in);
	json_object_put(c->sync_reply);
	free(c);
}

struct gl_client *gl_client_free(struct gl_client *c)
{
	if (!c || c->dead)
		return NULL;
	c->dead = true;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	client_enter(c);
	client_fail_all(c, -ECANCELED);
	client_leave(c);
	return NULL;
}

/* --- messages from the agent --- */

static bool client_id_is(const struct gl_msg *m, int64_t *ret_id)
{
	if (!m->id || !json_object_is_type(m->id, json_type_int))
		return false;
	*ret_id = json_object_get_int64(m->id);
	return true;
}

static void client_notify(struct gl_client *c, const struct gl_msg *m)
{
	if (c->notify_fn)
		c->notify_fn(c, m->method, m->params, c->notify_userdata);
}

static void client_error_of(const struct gl_msg *m, struct gl_error *e)
{
	e->code = m->error_code;
	e->message = m->error_message;
	e->data = m->error_data;
}

/* --- synchronous mode --- */

static int client_send_sync(struct gl_client *c, struct json_object *msg, int64_t deadline)
{
	const char *s;
	size_t len, off = 0;
	struct iovec iov[2];

	s = gl_encode_string(msg, &len);
	if (!s)
		return -ENOMEM;
	while (off < len + 1) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t n;
		int r;

		if (off < len) {
			iov[0] = (struct iovec){ (void *)(s + off), len - off };
			iov[1] = (struct iovec){ (void *)"\n", 1 };
		} else {
			iov[0] = (struct iovec){ (void *)"\n", 1 };
			mh.msg_iovlen = 1;
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -ECONNRESET;
		r = deadline_poll(c->fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The integer id of a message that looks like a response ("result" or
 * "error", an integer "id") but that gl_msg_parse() refused: an answer to
 * that call, malformed. Its call fails with -EPROTO at once rather than
 * waiting out its timeout for an answer that will not come. */
static bool client_malformed_answer_id(struct json_object *obj, int64_t *ret_id)
{
	struct json_object *v;

	if (!json_object_is_type(obj, json_type_object) ||
		!(json_object_object_get_ex(obj, "result", NULL) ||
			json_object_object_get_ex(obj, "error", NULL)) ||
		!json_object_object_get_ex(obj, "id", &v) || !json_object_is_type(v, json_type_int))
		return false;
	*ret_id = json_object_get_int64(v);
	return true;
}

/* One message while waiting for `id`: 1 when it is the answer (obj then kept
 * or released here), 0 otherwise. */
static int client_sync_message(struct gl_client *c, struct json_object *obj, int64_t id,
	struct json_object **ret_result, struct gl_error *ret_error, int *ret_status)
{
	struct gl_msg m;
	int64_t got;

	if (gl_msg_parse(obj, &m, NULL) < 0) {
		bool ours = client_malformed_answer_id(obj, &got) && got == id;

		json_object_put(obj);
		if (ours)
			*ret_status = -EPROTO;
		return ours;
	}
	if (m.kind == GL_MSG_NOTIFICATION) {
		client_notify(c, &m);
		json_object_put(obj);
		return 0;
	}
	if (m.kind == GL_MSG_REQUEST) {
		json_object_put(obj);
		return 0;
	}
	/* With one call outstanding, an error without an id is ours too. */
	if (client_id_is(&m, &got) ? got != id : !(m.kind == GL_MSG_ERROR && !m.id)) {
		json_object_put(obj); /* a late answer to a call that timed out */
		return 0;
	}
	if (m.kind == GL_MSG_RESULT) {
		if (ret_result)
			*ret_result = json_object_get(m.result);
		json_object_put(obj);
		*ret_status = 0;
	} else {
		c->sync_reply = obj; /* ret_error borrows from it */
		if (ret_error)
			client_error_of(&m, ret_error);
		*ret_status = -EREMOTEIO;
	}
	return 1;
}

int gl_client_call(struct gl_client *c, const char *method, struct json_object *params,
	int timeout_ms, struct json_object **ret_result, struct gl_error *ret_error)
{
	int64_t deadline = deadline_from_timeout(timeout_ms);
	struct json_object *req;
	int64_t id;
	int r;

	json_object_put(c->sync_reply);
	c->sync_reply = NULL;
	if (c->bev || c->dead) {
		json_object_put(params);
		return -EINVAL;
	}
	if (c->broken) {
		json_object_put(params);
		return -ECONNRESET;
	}
	id = ++c->next_id;
	req = gl_rpc_request_new(method, params, json_object_new_int64(id));
	if (!req)
		return -ENOMEM;
	r = client_send_sync(c, req, deadline);
	json_object_put(req);
	if (r == -ECONNRESET)
		c->broken = true;
	if (r < 0)
		return r;

	client_enter(c);
	for (;;) {
		struct json_object *obj = NULL;
		enum gl_decode_status st;
		int status = 0, n;

		st = gl_decoder_decode_evbuffer(c->dec, c->in, &obj);
		if (st == GL_DECODE_MESSAGE) {
			if (client_sync_message(c, obj, id, ret_result, ret_error, &status)) {
				r = status;
				break;
			}
			if (c->dead) {
				r = -ECANCELED;
				break;
			}
			continue;
		}
		if (st == GL_DECODE_SYNTAX)
			continue; /* the decoder resynchronizes on the next line */
		if (st == GL_DECODE_TOOBIG) {
			c->broken = true;
			r = -EPROTO;
			break;
		}
		r = deadline_poll(c->fd, POLLIN, deadline);
		if (r < 0)
			break;
		n = evbuffer_read(c->in, c->fd, CLIENT_READ_MAX);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			c->broken = true;
			r = -ECONNRESET;
			break;
		}
	}
	client_leave(c);
	return r;
}

int gl_client_notify(struct gl_client *c, const char *method, struct json_object *params)
{
	struct json_object *msg;
	int r;

	if (c->dead || c->broken) {
		json_object_put(params);
		return -ECONNRESET;
	}
	msg = gl_rpc_request_new(method, params, NULL);
	if (!msg)
		return -ENOMEM;
	if (c->bev)
		r = gl_encode_evbuffer(msg, bufferevent_get_output(c->bev));
	else {
		r = client_send_sync(c, msg, -1);
		if (r == -ECONNRESET)
			c->broken = true;
	}
	json_object_put(msg);
	return r;
}

/* --- asynchronous mode --- */

static void client_lost(struct gl_client *c, int error)
{
	if (c->lost)
		return;
	c->lost = true;
	c->broken = true;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	client_fail_all(c, -ECONNRESET);
	if (!c->dead && c->close_fn)
		c->close_fn(c, error, c->close_userdata);
}

static void client_async_message(struct gl_client *c, struct json_object *obj)
{
	struct client_call *call;
	struct gl_error e;
	struct gl_msg m;
	int64_t id;

	if (gl_msg_parse(obj, &m, NULL) < 0) {
		if (client_malformed_answer_id(obj, &id) && (call = client_take(c, id)))
			client_complete(call, -EPROTO, NULL, NULL);
		return;
	}
	switch (m.kind) {
	case GL_MSG_NOTIFICATION:
		client_notify(c, &m);
		return;
	case GL_MSG_REQUEST:
		return; /* the agent does not call clients */
	case GL_MSG_RESULT:
	case GL_MSG_ERROR:
		if (!client_id_is(&m, &id) || !(call = client_take(c, id)))
			return; /* unknown or already timed out */
		if (m.kind == GL_MSG_RESULT)
			client_complete(call, 0, m.result, NULL);
		else {
			client_error_of(&m, &e);
			client_complete(call, -EREMOTEIO, NULL, &e);
		}
		return;
	}
}

static void client_process(struct gl_client *c, struct evbuffer *in)
{
	while (!c->dead && !c->broken) {
		struct json_object *obj = NULL;
		enum gl_decode_status st;

		st = gl_decoder_decode_evbuffer(c->dec, in, &obj);
		if (st == GL_DECODE_AGAIN)
			break;
		if (st == GL_DECODE_TOOBIG) {
			/* A hostile agent cannot make us buffer more than max_message. */
			client_lost(c, -EPROTO);
			break;
		}
		if (st == GL_DECODE_MESSAGE) {
			client_async_message(c, obj);
			json_object_put(obj);
		}
	}
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct gl_client *c = arg;

	client_enter(c);
	client_process(c, bufferevent_get_input(bev));
	client_leave(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct gl_client *c = arg;
	int error = 0;

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (what & BEV_EVENT_ERROR)
		error = -(EVUTIL_SOCKET_ERROR() ?: ECONNRESET);
	client_enter(c);
	/* Answers that arrived with the EOF still count. */
	client_process(c, bufferevent_get_input(bev));
	if (!c->dead)
		client_lost(c, error);
	client_leave(c);
}

static void client_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct gl_client *c = arg;

	client_read_cb(c->bev, c);
}

/* Arm a call's timer for what is left until its deadline, rounded up. */
static int client_timer_arm(struct client_call *call, int64_t left_us)
{
	struct timeval tv = { (time_t)(left_us / 1000000), (suseconds_t)(left_us % 1000000) };

	return evtimer_add(call->timer, &tv) < 0 ? -ENOMEM : 0;
}

static void client_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client_call *call = arg;
	struct gl_client *c = call->client;
	int64_t left_us = call->deadline_us - deadline_now_us();

	/* libevent's timers run on a cached, coarse monotonic clock unless the
	 * base was made with EVENT_BASE_FLAG_PRECISE_TIMER, and the base is the
	 * caller's: a timer may fire a few ms early. A call never times out
	 * before its timeout has passed, so an early timer is re-armed. */
	if (left_us > 0 && client_timer_arm(call, left_us) == 0)
		return;
	if (!client_take(c, call->id))
		return;
	client_enter(c);
	client_complete(call, -ETIMEDOUT, NULL, NULL);
	client_leave(c);
}

int gl_client_attach(struct gl_client *c, struct event_base *base)
{
	struct bufferevent *bev;

	if (c->bev || c->dead || !base)
		return -EINVAL;
	bev = bufferevent_socket_new(base, c->fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return -ENOMEM;
	c->kick = event_new(base, -1, 0, client_kick_cb, c);
	if (!c->kick || evbuffer_add_buffer(bufferevent_get_input(bev), c->in) < 0) {
		if (c->kick)
			event_free(c->kick);
		c->kick = NULL;
		bufferevent_setfd(bev, -1);
		bufferevent_free(bev);
		return -ENOMEM;
	}
	c->fd = -1;
	c->bev = bev;
	c->base = base;
	bufferevent_setcb(bev, client_read_cb, NULL, client_event_cb, c);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) < 0)
		return -ENOMEM;
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		event_active(c->kick, EV_READ, 0);
	return 0;
}

int gl_client_call_async(struct gl_client *c, const char *method, struct json_object *params,
	int timeout_ms, gl_reply_fn fn, void *userdata)
{
	struct client_call *call;
	struct client_call **bucket;
	struct json_object *req;
	int r;

	if (!c->bev || c->dead || !fn) {
		json_object_put(params);
		return -EINVAL;
	}
	if (c->broken) {
		json_object_put(params);
		return -ECONNRESET;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		json_object_put(params);
		return -ENOMEM;
	}
	call->client = c;
	call->id = ++c->next_id;
	call->fn = fn;
	call->userdata = userdata;
	if (timeout_ms >= 0) {
		call->deadline_us = deadline_now_us() + (int64_t)timeout_ms * 1000;
		call->timer = evtimer_new(c->base, client_timeout_cb, call);
		if (!call->timer || client_timer_arm(call, (int64_t)timeout_ms * 1000) < 0) {
			json_object_put(params);
			client_call_free(call);
			return -ENOMEM;
		}
	}
	req = gl_rpc_request_new(method, params, json_object_new_int64(call->id));
	r = req ? gl_encode_evbuffer(req, bufferevent_get_output(c->bev)) : -ENOMEM;
	json_object_put(req);
	if (r < 0) {
		client_call_free(call);
		return r;
	}
	bucket = client_bucket(c, call->id);
	call->next = *bucket;
	*bucket = call;
	c->n_calls++;
	return 0;
}
