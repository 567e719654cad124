/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A command the agent runs for us: see session.h. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base64.h"
#include "cmd.h"
#include "session.h"

void session_exit_parse(struct json_object *params, struct session_exit *ret)
{
	struct session_exit x = { .status = CMD_EXIT_UNREACHABLE };
	int64_t v;

	cmd_get_bool(params, "timed_out", &x.timed_out);
	if (cmd_get_int64(params, "signal", &v) && v > 0 && v < 128) {
		x.has_signal = true;
		x.signal = (int)v;
	}
	if (cmd_get_int64(params, "code", &v) && v >= 0 && v <= 255) {
		x.has_code = true;
		x.code = (int)v;
	}
	if (x.has_signal)
		x.status = 128 + x.signal;
	else if (x.has_code)
		x.status = x.code;
	*ret = x;
}

bool session_start_id(struct json_object *result, int64_t *ret_id)
{
	int64_t id;

	if (!cmd_get_int64(result, "id", &id) || id <= 0)
		return false;
	*ret_id = id;
	return true;
}

bool session_is_ours(struct json_object *params, int64_t id)
{
	int64_t v;

	return id > 0 && cmd_get_int64(params, "id", &v) && v == id;
}

/* --- the streaming loop --- */

int session_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			(void)poll(&pfd, 1, -1);
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void session_leave(struct session *s)
{
	if (s->ops->leave)
		s->ops->leave(s);
}

void session_finish(struct session *s, int status)
{
	if (s->done)
		return;
	s->done = true;
	s->status = status;
	event_base_loopbreak(s->base);
}

static void session_on_notification(struct gl_client *c, const char *method,
	struct json_object *params, void *userdata)
{
	struct session *s = userdata;

	/* After the first exec.exit (or the session's end) the loop only has to
	 * stop: what follows in the same read, a second exec.exit or more
	 * output, is not reported. */
	if (s->done || !session_is_ours(params, s->id))
		return;
	if (strcmp(method, "exec.output") == 0) {
		const char *stream = cmd_get_string(params, "stream") ?: "stdout";
		const char *data = cmd_get_string(params, "data");
		void *bytes;
		size_t n;

		if (!data || gl_base64_decode(data, strlen(data), &bytes, &n) < 0)
			return;
		s->ops->output(s, strcmp(stream, "stderr") == 0 ? "stderr" : "stdout", data, bytes,
			n);
		free(bytes);
	} else if (strcmp(method, "exec.exit") == 0) {
		struct session_exit x;

		session_exit_parse(params, &x);
		session_finish(s, s->ops->exit ? s->ops->exit(s, &x) : x.status);
	}
}

static void session_on_close(struct gl_client *c, int error, void *userdata)
{
	struct session *s = userdata;

	if (s->done)
		return;
	session_leave(s);
	cmd_error(s->ctx, 0, "%s: connection lost before the command ended: %s", s->ctx->address,
		strerror(error ? abs(error) : ECONNRESET));
	session_finish(s, CMD_EXIT_UNREACHABLE);
}

void session_stop_input(struct session *s)
{
	s->stdin_forward = false;
	if (s->stdin_ev)
		event_del(s->stdin_ev);
}

static void session_pump(struct session *s);

static void session_on_write(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct session *s = userdata;

	s->writes_inflight--;
	if (status < 0) {
		/* The command closed its stdin or ended: its exec.exit follows. */
		session_stop_input(s);
		return;
	}
	session_pump(s);
}

void session_send(struct session *s, const char *buf, size_t n, bool eof)
{
	struct json_object *p;
	char *b64;

	if (n == 0 && !eof)
		return;
	if (gl_base64_encode(buf, n, &b64, NULL) < 0) {
		session_leave(s);
		session_finish(s, cmd_error(s->ctx, CMD_EXIT_UNREACHABLE, "out of memory"));
		return;
	}
	p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_int64(s->id));
	json_object_object_add(p, "data", json_object_new_string(b64));
	free(b64);
	if (eof)
		json_object_object_add(p, "eof", json_object_new_boolean(true));
	if (gl_client_call_async(s->client, "exec.write", p, -1, session_on_write, s) == 0)
		s->writes_inflight++;
}

static void session_on_ignored_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
}

void session_notify(struct session *s, const char *method, struct json_object *params)
{
	gl_client_call_async(s->client, method, params, -1, session_on_ignored_reply, s);
}

static void session_read_stdin(struct session *s)
{
	char buf[SESSION_READ_MAX];
	size_t chunk = s->ops->read_chunk < sizeof(buf) ? s->ops->read_chunk : sizeof(buf);
	ssize_t n;

	do
		n = read(STDIN_FILENO, buf, chunk);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		s->stdin_eof = true;
		if (s->stdin_ev)
			event_del(s->stdin_ev);
		if (s->ops->input_end)
			s->ops->input_end(s);
		else
			session_send(s, "", 0, true);
		return;
	}
	if (s->ops->input)
		s->ops->input(s, buf, (size_t)n);
	else
		session_send(s, buf, (size_t)n, false);
}

static void session_pump(struct session *s)
{
	if (!s->stdin_forward || s->stdin_eof || s->id <= 0 || s->done)
		return;
	if (s->stdin_ev) {
		if (s->writes_inflight >= s->ops->write_window) {
			event_del(s->stdin_ev);
			return;
		}
		if (event_add(s->stdin_ev, NULL) == 0)
			return;
		/* Not pollable after all (epoll refuses it): read directly. */
		event_free(s->stdin_ev);
		s->stdin_ev = NULL;
	}
	while (s->stdin_forward && !s->stdin_eof && !s->done &&
		s->writes_inflight < s->ops->write_window)
		session_read_stdin(s);
}

static void session_on_stdin(evutil_socket_t fd, short what, void *userdata)
{
	struct session *s = userdata;

	session_read_stdin(s);
	session_pump(s);
}

static void session_on_started(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct session *s = userdata;

	if (status < 0) {
		session_leave(s);
		session_finish(s, s->ops->start_failed(s, status, error));
		return;
	}
	if (!session_start_id(result, &s->id)) {
		session_leave(s);
		cmd_error(s->ctx, 0,
			"exec.start: answer without a valid process id (protocol error)");
		session_finish(s, CMD_EXIT_UNREACHABLE);
		return;
	}
	if (s->ops->started)
		s->ops->started(s);
	session_pump(s);
}

int session_open(struct session *s, struct cmd_ctx *ctx, const struct session_ops *ops, void *userdata)
{
	int r;

	*s = (struct session){ .ctx = ctx, .ops = ops, .userdata = userdata };
	r = cmd_connect(ctx);
	if (r)
		return r;
	s->base = event_base_new();
	if (!s->base)
		return cmd_error(ctx, CMD_EXIT_UNREACHABLE, "cannot create an event loop");
	s->client = ctx->client;
	gl_client_set_notification_handler(s->client, session_on_notification, s);
	gl_client_set_close_handler(s->client, session_on_close, s);
	if (gl_client_attach(s->client, s->base) < 0)
		return cmd_error(ctx, CMD_EXIT_UNREACHABLE,
			"cannot attach the client to the event loop");
	return 0;
}

int session_forward_stdin(struct session *s, bool pollable)
{
	s->stdin_forward = true;
	if (!pollable)
		return 0;
	s->stdin_ev = event_new(s->base, STDIN_FILENO, EV_READ | EV_PERSIST, session_on_stdin, s);
	if (!s->stdin_ev)
		return cmd_error(s->ctx, CMD_EXIT_UNREACHABLE, "cannot watch stdin");
	return 0;
}

int session_run(struct session *s, struct json_object *params, int timeout_ms)
{
	int r;

	r = gl_client_call_async(s->client, "exec.start", params, timeout_ms, session_on_started,
		s); /* takes params */
	if (r < 0) {
		session_leave(s);
		return cmd_error(s->ctx, CMD_EXIT_UNREACHABLE, "exec.start: %s", strerror(-r));
	}
	event_base_dispatch(s->base);
	return s->done ? s->status : CMD_EXIT_UNREACHABLE;
}

void session_close(struct session *s)
{
	if (!s->base)
		return;
	/* The client belongs to ctx but is attached to our base: free it first. */
	s->ctx->client = gl_client_free(s->ctx->client);
	s->client = NULL;
	if (s->stdin_ev)
		event_free(s->stdin_ev);
	s->stdin_ev = NULL;
	event_base_free(s->base);
	s->base = NULL;
}
