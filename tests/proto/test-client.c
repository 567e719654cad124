/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client library, sync and async, against a scripted JSON-RPC server in
 * a forked child: out-of-order replies, interleaved notifications, late
 * answers, timeouts, garbage, a dropped connection, a hostile huge message. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <event2/event.h>

#include "guestlink/guestlink.h"
#include "tap.h"

/* --- the scripted server (child) --- */

#define MAX_HELD 64

static int srv_fd;
static struct json_object *held[MAX_HELD]; /* ids of held requests */
static struct json_object *held_params[MAX_HELD];
static int n_held;
static struct json_object *late[MAX_HELD];
static int n_late;

static void srv_send(struct json_object *o)
{
	size_t len;
	const char *s = gl_encode_string(o, &len);

	if (write(srv_fd, s, len) != (ssize_t)len || write(srv_fd, "\n", 1) != 1)
		_exit(0);
	json_object_put(o);
}

static void srv_raw(const char *s)
{
	if (write(srv_fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(0);
}

static void srv_request(struct gl_msg *m)
{
	struct json_object *id = m->id;

	/* Answers to calls the client gave up on come first: it must drop them. */
	for (int i = 0; i < n_late; i++) {
		srv_send(gl_rpc_result_new(late[i], json_object_new_string("late")));
		json_object_put(late[i]);
	}
	n_late = 0;

	if (strcmp(m->method, "echo") == 0)
		srv_send(gl_rpc_result_new(id, json_object_get(m->params)));
	else if (strcmp(m->method, "fail") == 0) {
		struct json_object *data = json_object_new_object();
		json_object_object_add(data, "why", json_object_new_string("scripted"));
		srv_send(gl_rpc_error_new(id, GL_RPC_METHOD_NOT_FOUND, NULL, data));
	} else if (strcmp(m->method, "slow") == 0 && n_late < MAX_HELD)
		late[n_late++] = json_object_get(id);
	else if (strcmp(m->method, "hold") == 0 && n_held < MAX_HELD) {
		held[n_held] = json_object_get(id);
		held_params[n_held++] = json_object_get(m->params);
	} else if (strcmp(m->method, "flush") == 0) {
		int n = n_held;
		/* Reverse order, a notification before each answer. */
		while (n_held > 0) {
			struct json_object *p = json_object_new_object();
			n_held--;
			json_object_object_add(p, "n", json_object_new_int(n_held));
			srv_send(gl_rpc_request_new("tick", p, NULL));
			srv_send(gl_rpc_result_new(held[n_held], held_params[n_held]));
			json_object_put(held[n_held]);
		}
		srv_send(gl_rpc_result_new(id, json_object_new_int(n)));
	} else if (strcmp(m->method, "note") == 0) {
		srv_send(gl_rpc_request_new("event", json_object_get(m->params), NULL));
		srv_send(gl_rpc_result_new(id, json_object_new_string("noted")));
	} else if (strcmp(m->method, "garbage") == 0) {
		srv_raw("}{ not json at all\n\"\xff\"\n{\"jsonrpc\":\"2.0\",\"bogus\":1}\n");
		srv_send(gl_rpc_result_new(id, json_object_new_string("after garbage")));
	} else if (strcmp(m->method, "badanswer") == 0) {
		/* Answers to this very call, neither valid JSON-RPC: an error whose
		 * code is a string, then (for the next such call) a wrong version. */
		static int n;
		char buf[256];
		snprintf(buf, sizeof(buf),
			n++ % 2 ? "{\"jsonrpc\":\"1.0\",\"id\":%s,\"result\":1}\n"
				: "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":\"x\","
				  "\"message\":5}}\n",
			json_object_get_string(id));
		srv_raw(buf);
	} else if (strcmp(m->method, "nullid") == 0)
		srv_send(gl_rpc_error_new(NULL, GL_RPC_INVALID_REQUEST, NULL, NULL));
	else if (strcmp(m->method, "drop") == 0)
		_exit(0);
	else if (strcmp(m->method, "huge") == 0) {
		static char chunk[65536];
		memset(chunk, 'a', sizeof(chunk));
		srv_raw("{\"jsonrpc\":\"2.0\",\"result\":\"");
		for (int i = 0; i < 17 * 16; i++) /* 17 MiB, more than the client's cap */
			if (write(srv_fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
				_exit(0);
		srv_raw("\"}\n");
	} else
		srv_send(gl_rpc_error_new(id, GL_RPC_METHOD_NOT_FOUND, NULL, NULL));
}

static void srv_run(int fd)
{
	struct gl_decoder *d = gl_decoder_new(0, 0);
	char buf[4096];
	ssize_t n;

	srv_fd = fd;
	alarm(30); /* never outlive a broken test */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		size_t off = 0;

		while (off < (size_t)n) {
			enum gl_decode_status st;
			struct json_object *o = NULL;
			struct gl_msg m;

			off += gl_decoder_decode(d, buf + off, (size_t)n - off, &st, &o);
			if (st != GL_DECODE_MESSAGE)
				continue;
			if (gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_REQUEST)
				srv_request(&m);
			json_object_put(o);
		}
	}
	_exit(0);
}

static pid_t srv_pid;

static struct gl_client *client_start(void)
{
	struct gl_client *c = NULL;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	srv_pid = fork();
	if (srv_pid == 0) {
		close(sv[0]);
		srv_run(sv[1]);
	}
	close(sv[1]);
	if (gl_client_new_fd(sv[0], &c) < 0)
		return NULL;
	return c;
}

static void client_stop(struct gl_client *c)
{
	gl_client_free(c);
	kill(srv_pid, SIGTERM);
	waitpid(srv_pid, NULL, 0);
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- notifications --- */

static int n_notes;
static char last_note[256];

static void on_note(struct gl_client *c, const char *method, struct json_object *params, void *ud)
{
	n_notes++;
	snprintf(last_note, sizeof(last_note), "%s %s", method, gl_encode_string(params, NULL));
}

/* --- synchronous --- */

static void test_sync(void)
{
	struct gl_client *c = client_start();
	struct json_object *res = NULL;
	struct gl_error e = { 0 };
	int64_t t0, dt;
	int r;

	ok(c != NULL, "sync: client on a socketpair");
	if (!c)
		return;
	gl_client_set_notification_handler(c, on_note, NULL);

	r = gl_client_call(c, "echo", json_tokener_parse("[1,\"two\",{\"3\":3}]"), 2000, &res, &e);
	is_int(r, 0, "sync: echo");
	is_str(gl_encode_string(res, NULL), "[1,\"two\",{\"3\":3}]", "sync: result is the params");
	json_object_put(res);

	r = gl_client_call(c, "fail", NULL, 2000, &res, &e);
	is_int(r, -EREMOTEIO, "sync: error answer is -EREMOTEIO");
	is_int(e.code, -32601, "sync: error code");
	is_str(e.message, "Method not found", "sync: error message");
	is_str(gl_encode_string(e.data, NULL), "{\"why\":\"scripted\"}", "sync: error data");

	r = gl_client_call(c, "note", json_tokener_parse("{\"k\":1}"), 2000, &res, &e);
	ok(r == 0 && n_notes == 1, "sync: notification delivered while waiting");
	is_str(last_note, "event {\"k\":1}", "sync: notification method and params");
	json_object_put(res);

	t0 = now_ms();
	r = gl_client_call(c, "slow", NULL, 200, &res, &e);
	dt = now_ms() - t0;
	is_int(r, -ETIMEDOUT, "sync: no answer: -ETIMEDOUT");
	/* The library promises never early; late by up to the 10 s watchdog. */
	ok(dt >= 200 && dt < 10000, "sync: ... after %lld ms (timeout 200, never earlier)",
		(long long)dt);

	res = NULL;
	r = gl_client_call(c, "echo", json_tokener_parse("[\"fresh\"]"), 2000, &res, &e);
	ok(r == 0 && strcmp(gl_encode_string(res, NULL), "[\"fresh\"]") == 0,
		"sync: the late answer to the timed-out call is dropped, not taken for this one");
	json_object_put(res);

	res = NULL;
	r = gl_client_call(c, "garbage", NULL, 2000, &res, &e);
	ok(r == 0 && strcmp(json_object_get_string(res), "after garbage") == 0,
		"sync: garbage and invalid messages from the server are skipped");
	json_object_put(res);

	/* Not a timeout: the answer came, it is malformed; the stream goes on. */
	r = gl_client_call(c, "badanswer", NULL, 60000, &res, &e);
	is_int(r, -EPROTO, "sync: an answer with a string error code: -EPROTO, not a timeout");
	r = gl_client_call(c, "badanswer", NULL, 60000, &res, &e);
	is_int(r, -EPROTO, "sync: an answer with jsonrpc 1.0: -EPROTO, not a timeout");
	res = NULL;
	r = gl_client_call(c, "echo", json_tokener_parse("[\"still\"]"), 2000, &res, &e);
	ok(r == 0 && strcmp(gl_encode_string(res, NULL), "[\"still\"]") == 0,
		"sync: ... and the next call is answered");
	json_object_put(res);

	r = gl_client_call(c, "nullid", NULL, 2000, &res, &e);
	ok(r == -EREMOTEIO && e.code == -32600, "sync: an error with id null answers the one call");

	res = NULL;
	r = gl_client_call(c, "echo", NULL, 2000, &res, &e);
	ok(r == 0 && res == NULL, "sync: JSON null result gives NULL");

	ok(gl_client_notify(c, "echo", NULL) == 0, "sync: notify");
	r = gl_client_call(c, "drop", NULL, 2000, &res, &e);
	is_int(r, -ECONNRESET, "sync: server closes: -ECONNRESET");
	r = gl_client_call(c, "echo", NULL, 2000, &res, &e);
	is_int(r, -ECONNRESET, "sync: later calls fail at once");
	client_stop(c);

	c = client_start();
	t0 = now_ms();
	r = gl_client_call(c, "huge", NULL, 10000, &res, &e);
	is_int(r, -EPROTO, "sync: a 17 MiB answer over the 16 MiB cap: -EPROTO");
	client_stop(c);
}

/* --- asynchronous --- */

struct reply {
	int calls, status;
	char result[128];
	int code;
	int64_t at_us; /* when the callback ran */
};

static void on_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *ud)
{
	struct reply *r = ud;

	r->calls++;
	r->status = status;
	r->at_us = now_us();
	if (status == 0)
		snprintf(r->result, sizeof(r->result), "%s", gl_encode_string(result, NULL));
	if (status == -EREMOTEIO)
		r->code = error->code;
}

static int close_calls, close_error = 1;

static void on_close(struct gl_client *c, int error, void *ud)
{
	close_calls++;
	close_error = error;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct event_base *base = arg;
	diag("watchdog: loop stopped after 10 s");
	event_base_loopbreak(base);
}

/* Run the loop until *done becomes true (checked every 10 ms) or 10 s pass. */
static void run_until(struct event_base *base, const int *done)
{
	struct event *wd = evtimer_new(base, on_watchdog, base);
	struct timeval tv = { 10, 0 }, tick = { 0, 10000 };
	int64_t end = now_ms() + 10000;

	evtimer_add(wd, &tv);
	while (!*done && now_ms() < end) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	event_free(wd);
}

static int all_done(const struct reply *r, int n)
{
	for (int i = 0; i < n; i++)
		if (r[i].calls == 0)
			return 0;
	return 1;
}

static struct reply replies[40];
static int replies_done;

static void on_reply_check(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *ud)
{
	on_reply(c, status, result, error, ud);
	replies_done = all_done(replies, 40);
}

static struct gl_client *freed_in_cb;
static int freed_calls;

static void on_reply_free(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *ud)
{
	freed_calls++;
	if (freed_in_cb) {
		freed_in_cb = gl_client_free(freed_in_cb); /* from inside its own callback */
	}
}

static void test_async(void)
{
	struct event_base *base = event_base_new();
	struct gl_client *c = client_start();
	struct reply flush = { 0 }, slow = { 0 }, after = { 0 }, fail = { 0 };
	int bad = 0, done, calls_ok = 1;

	ok(c != NULL, "async: client");
	gl_client_set_notification_handler(c, on_note, NULL);
	gl_client_set_close_handler(c, on_close, NULL);

	/* A sync call before attaching, then attach: the connection carries on. */
	{
		struct json_object *res = NULL;
		ok(gl_client_call(c, "echo", json_tokener_parse("[0]"), 2000, &res, NULL) == 0,
			"async: sync call before attach");
		json_object_put(res);
	}
	ok(gl_client_attach(c, base) == 0, "async: attach");
	ok(gl_client_call(c, "echo", NULL, 100, NULL, NULL) == -EINVAL,
		"async: sync call once attached is -EINVAL");

	/* 40 calls in flight; the server answers them in reverse order with a
	 * notification before each: every reply must reach its own call. */
	n_notes = 0;
	for (int i = 0; i < 40; i++) {
		struct json_object *p = json_object_new_array();
		json_object_array_add(p, json_object_new_int(i));
		calls_ok &=
			gl_client_call_async(c, "hold", p, 5000, on_reply_check, &replies[i]) == 0;
	}
	ok(calls_ok, "async: 40 calls queued");
	is_int(gl_client_pending(c), 40, "async: 40 pending");
	gl_client_call_async(c, "flush", NULL, 5000, on_reply, &flush);
	run_until(base, &replies_done);
	for (int i = 0; i < 40; i++) {
		char want[16];
		snprintf(want, sizeof(want), "[%d]", i);
		bad += replies[i].calls != 1 || replies[i].status != 0 ||
		       strcmp(replies[i].result, want) != 0;
	}
	ok(replies_done && bad == 0,
		"async: 40 out-of-order replies each matched to its call (%d wrong)", bad);
	is_int(n_notes, 40, "async: 40 interleaved notifications delivered");
	done = 0;
	while (flush.calls == 0 && !done) {
		run_until(base, &flush.calls);
		done = 1;
	}
	ok(flush.calls == 1 && strcmp(flush.result, "40") == 0, "async: flush answered");

	/* Timeout, and the late answer is ignored. */
	{
		int64_t t0 = now_ms(), dt;
		gl_client_call_async(c, "slow", NULL, 200, on_reply, &slow);
		run_until(base, &slow.calls);
		dt = now_ms() - t0;
		ok(slow.calls == 1 && slow.status == -ETIMEDOUT, "async: -ETIMEDOUT");
		ok(dt >= 200 && dt < 10000, "async: ... after %lld ms (timeout 200, never earlier)",
			(long long)dt);
		is_int(gl_client_pending(c), 0, "async: nothing pending after the timeout");
	}
	/* Many short timeouts: on a base without a precise timer libevent's
	 * coarse clock fires some of them a few ms early; the library re-arms. */
	{
		int early = 0, n = 30;
		int64_t worst = INT64_MAX;

		for (int i = 0; i < n; i++) {
			struct reply r = { 0 };
			int timeout_ms = 3 + i % 7;
			int64_t t0 = now_us(), dt;

			gl_client_call_async(c, "slow", NULL, timeout_ms, on_reply, &r);
			run_until(base, &r.calls);
			dt = r.at_us - t0;
			if (r.calls != 1 || r.status != -ETIMEDOUT || dt < timeout_ms * 1000) {
				if (!early)
					diag("call %d: status %d after %lld us (timeout %d ms)", i,
						r.status, (long long)dt, timeout_ms);
				early++;
			}
			if (dt - timeout_ms * 1000 < worst)
				worst = dt - timeout_ms * 1000;
		}
		ok(early == 0, "async: %d short timeouts, none early (closest: %lld us after)", n,
			(long long)worst);
	}
	gl_client_call_async(c, "echo", json_tokener_parse("[\"after\"]"), 2000, on_reply, &after);
	run_until(base, &after.calls);
	ok(after.calls == 1 && strcmp(after.result, "[\"after\"]") == 0 && slow.calls == 1,
		"async: late answer dropped; the next call gets its own");

	{
		struct reply b1 = { 0 }, b2 = { 0 }, next = { 0 };

		gl_client_call_async(c, "badanswer", NULL, 60000, on_reply, &b1);
		gl_client_call_async(c, "badanswer", NULL, 60000, on_reply, &b2);
		gl_client_call_async(c, "echo", json_tokener_parse("[2]"), 2000, on_reply, &next);
		run_until(base, &next.calls);
		ok(b1.calls == 1 && b1.status == -EPROTO && b2.calls == 1 && b2.status == -EPROTO,
			"async: malformed answers to two calls: both -EPROTO, not timeouts (%d, "
			"%d)",
			b1.status, b2.status);
		ok(next.calls == 1 && strcmp(next.result, "[2]") == 0,
			"async: ... the next call answered");
	}

	gl_client_call_async(c, "fail", NULL, 2000, on_reply, &fail);
	run_until(base, &fail.calls);
	ok(fail.calls == 1 && fail.status == -EREMOTEIO && fail.code == -32601,
		"async: error answer");

	/* Connection drop fails everything pending. */
	{
		struct reply hold5[5] = { { 0 } }, drop = { 0 };
		int all = 0;

		for (int i = 0; i < 5; i++)
			gl_client_call_async(c, "hold", NULL, -1, on_reply, &hold5[i]);
		gl_client_call_async(c, "drop", NULL, -1, on_reply, &drop);
		run_until(base, &close_calls);
		for (int i = 0; i < 5; i++)
			all += hold5[i].calls == 1 && hold5[i].status == -ECONNRESET;
		ok(all == 5 && drop.calls == 1 && drop.status == -ECONNRESET,
			"async: connection lost: all 6 pending calls get -ECONNRESET");
		ok(close_calls == 1 && close_error == 0, "async: close handler once, orderly EOF");
		is_int(gl_client_pending(c), 0, "async: nothing pending");
		is_int(gl_client_call_async(c, "echo", NULL, -1, on_reply, &drop), -ECONNRESET,
			"async: calls after the loss fail at once");
	}
	client_stop(c);

	/* Free with calls pending: -ECANCELED. */
	{
		struct reply p1 = { 0 }, p2 = { 0 };

		c = client_start();
		gl_client_attach(c, base);
		gl_client_call_async(c, "hold", NULL, -1, on_reply, &p1);
		gl_client_call_async(c, "hold", NULL, 1000, on_reply, &p2);
		client_stop(c);
		ok(p1.calls == 1 && p1.status == -ECANCELED && p2.calls == 1 &&
				p2.status == -ECANCELED,
			"async: free fails pending calls with -ECANCELED");
	}

	/* Free from inside a reply callback. */
	{
		struct reply r2 = { 0 };
		int dummy = 0;

		c = client_start();
		gl_client_attach(c, base);
		freed_in_cb = c;
		freed_calls = 0;
		gl_client_call_async(c, "echo", NULL, 2000, on_reply_free, NULL);
		gl_client_call_async(c, "hold", NULL, 2000, on_reply, &r2);
		run_until(base, &freed_calls);
		ok(freed_in_cb == NULL && freed_calls == 1,
			"async: client freed inside its reply callback");
		ok(r2.calls == 1 && r2.status == -ECANCELED,
			"async: ... the other call got -ECANCELED");
		/* The loop keeps working (nothing dangling fires). */
		{
			struct timeval tv = { 0, 50000 };
			event_base_loopexit(base, &tv);
			event_base_dispatch(base);
			ok(dummy == 0, "async: loop runs on afterwards");
		}
		kill(srv_pid, SIGTERM);
		waitpid(srv_pid, NULL, 0);
	}

	/* A hostile huge answer is refused at the cap. */
	{
		struct reply h = { 0 };

		close_calls = 0;
		c = client_start();
		gl_client_set_close_handler(c, on_close, NULL);
		gl_client_attach(c, base);
		gl_client_call_async(c, "huge", NULL, 10000, on_reply, &h);
		run_until(base, &h.calls);
		ok(h.calls == 1 && h.status == -ECONNRESET, "async: 17 MiB answer: call fails");
		ok(close_calls == 1 && close_error == -EPROTO,
			"async: ... connection closed with -EPROTO");
		client_stop(c);
	}

	event_base_free(base);
}

static void test_connect(void)
{
	struct gl_client *c = NULL;

	is_int(gl_client_connect("nonsense", 100, &c), -EINVAL, "connect: bad address");
	is_int(gl_client_connect("unix:/nonexistent/guestlink.sock", 100, &c), -ENOENT,
		"connect: missing socket");
	ok(c == NULL, "connect: nothing returned on failure");
	ok(gl_client_free(NULL) == NULL, "free(NULL)");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_connect();
	test_sync();
	test_async();
	return tap_done();
}
