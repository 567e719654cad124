/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dispatcher in-process: params validation for every parameter type,
 * asynchronous answers inside batches, handler mistakes, calls outliving
 * their connection, and output back-pressure with drain watches. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include <guestlink/address.h>
#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "conn.h"
#include "method.h"
#include "methods/methods.h"
#include "params.h"
#include "qga.h"
#include "server.h"
#include "tap.h"

struct types_params {
	const char *s;
	int64_t n;
	bool b;
	struct json_object *o, *a, *sa, *any;
	const char *ch;
};

static const char *const choices[] = { "x", "y", NULL };

static const struct method_param types_params[] = {
	{ "s", PARAM_STRING, offsetof(struct types_params, s), PARAM_MANDATORY, 0, 5, 0, NULL, "s" },
	{ "n", PARAM_INT, offsetof(struct types_params, n), 0, -3, 10, 7, NULL, "n" },
	{ "b", PARAM_BOOL, offsetof(struct types_params, b), 0, 0, 0, 1, NULL, "b" },
	{ "o", PARAM_OBJECT, offsetof(struct types_params, o), 0, 0, 0, 0, NULL, "o" },
	{ "a", PARAM_ARRAY, offsetof(struct types_params, a), 0, 0, 2, 0, NULL, "a" },
	{ "sa", PARAM_STRING_ARRAY, offsetof(struct types_params, sa), 0, 0, 3, 0, NULL, "sa" },
	{ "any", PARAM_ANY, offsetof(struct types_params, any), 0, 0, 0, 0, NULL, "any" },
	{ "ch", PARAM_STRING, offsetof(struct types_params, ch), 0, 0, 0, 0, choices, "ch" },
	{ NULL, 0, 0, 0, 0, 0, 0, NULL, NULL },
};

static int t_types(struct call *call, void *params)
{
	const struct types_params *p = params;
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "s", p->s ? json_object_new_string(p->s) : NULL);
	json_object_object_add(r, "n", json_object_new_int64(p->n));
	json_object_object_add(r, "b", json_object_new_boolean(p->b));
	json_object_object_add(r, "o", json_object_get(p->o));
	json_object_object_add(r, "a", json_object_get(p->a));
	json_object_object_add(r, "sa", json_object_get(p->sa));
	json_object_object_add(r, "any", json_object_get(p->any));
	json_object_object_add(r, "ch", p->ch ? json_object_new_string(p->ch) : NULL);
	call_reply(call, r);
	return 0;
}

/* An int without bounds (min = max = 0): any int64, and nothing else. */
struct unbounded_params {
	int64_t u;
};

static const struct method_param unbounded_params[] = {
	{ "u", PARAM_INT, offsetof(struct unbounded_params, u), PARAM_MANDATORY, 0, 0, 0, NULL, "u" },
	{ NULL, 0, 0, 0, 0, 0, 0, NULL, NULL },
};

static int t_unbounded(struct call *call, void *params)
{
	const struct unbounded_params *p = params;

	call_reply(call, json_object_new_int64(p->u));
	return 0;
}

static struct call *held[8];
static size_t n_held;

static int t_async(struct call *call, void *params)
{
	held[n_held++] = call_ref(call);
	return 0;
}

static int t_fail(struct call *call, void *params)
{
	return -ENOENT;
}

static int t_drop(struct call *call, void *params)
{
	return 0;
}

/* Rows with defaults and none mandatory: what a call without params gets. */
struct defaults_params {
	int64_t n;
	bool b;
};

static const struct method_param defaults_params[] = {
	{ "n", PARAM_INT, offsetof(struct defaults_params, n), 0, -3, 10, 7, NULL, "n" },
	{ "b", PARAM_BOOL, offsetof(struct defaults_params, b), 0, 0, 0, 1, NULL, "b" },
	{ NULL },
};

static int t_defaults(struct call *call, void *params)
{
	const struct defaults_params *p = params;
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "n", json_object_new_int64(p->n));
	json_object_object_add(r, "b", json_object_new_boolean(p->b));
	call_reply(call, r);
	return 0;
}

static int t_text(struct call *call, void *params)
{
	call_reply_text(call, "[1,\"two\",{}]");
	return 0;
}

static int t_twice(struct call *call, void *params)
{
	call_reply(call, json_object_new_int(1));
	call_reply(call, json_object_new_int(2));
	return 0;
}

/* Answers with the first element of its params array, whatever it is. */
static int t_first(struct call *call, void *params)
{
	call_reply(call, json_object_get(json_object_array_get_idx(params, 0)));
	return 0;
}

/* Streams notifications until the connection's output is full, then waits
 * for the drain watch, like exec output does. */
static struct conn *flood_conn;
static int drains, flood_sent;

static void flood_drained(struct conn *c, void *userdata)
{
	drains++;
	if (conn_closed(c))
		return;
	conn_remove_drain_watch(c, flood_drained, userdata);
}

static int t_flood(struct call *call, void *params)
{
	struct conn *c = call_conn(call);
	char chunk[4096];

	memset(chunk, 'q', sizeof(chunk) - 1);
	chunk[sizeof(chunk) - 1] = 0;
	while (!conn_output_full(c) && flood_sent < 100000) {
		conn_notify(c, "t.data", json_object_new_string(chunk));
		flood_sent++;
	}
	flood_conn = conn_ref(c);
	if (conn_add_drain_watch(c, flood_drained, NULL) < 0)
		return -ENOMEM;
	call_reply(call, json_object_new_int(flood_sent));
	return 0;
}

static const struct method test_methods[] = {
	{ .name = "t.types",
		.summary = "types",
		.params = types_params,
		.params_size = sizeof(struct types_params),
		.handler = t_types },
	{ .name = "t.unbounded",
		.summary = "unbounded",
		.params = unbounded_params,
		.params_size = sizeof(struct unbounded_params),
		.handler = t_unbounded },
	{ .name = "t.async", .summary = "async", .handler = t_async },
	{ .name = "t.fail", .summary = "fail", .handler = t_fail },
	{ .name = "t.drop", .summary = "drop", .handler = t_drop },
	{ .name = "t.twice", .summary = "twice", .handler = t_twice },
	{ .name = "t.text", .summary = "text", .handler = t_text },
	{ .name = "t.defaults",
		.summary = "defaults",
		.params = defaults_params,
		.params_size = sizeof(struct defaults_params),
		.handler = t_defaults },
	{ .name = "t.flood", .summary = "flood", .handler = t_flood },
	{ .name = "t.first",
		.summary = "first",
		.flags = METHOD_RAW_PARAMS | METHOD_READONLY,
		.handler = t_first },
	{ .name = NULL },
};

/* Feed text, return everything answered as one JSON array of lines. */
static struct json_object *feed(struct conn *c, const char *text)
{
	struct evbuffer *out = conn_output(c);
	struct json_object *lines = json_object_new_array();
	char *line;
	size_t len;

	conn_feed(c, text, strlen(text));
	while ((line = evbuffer_readln(out, &len, EVBUFFER_EOL_LF))) {
		json_object_array_add(lines, json_tokener_parse(line));
		free(line);
	}
	return lines;
}

static int error_code(struct json_object *a)
{
	struct json_object *e, *code;

	if (!json_object_object_get_ex(a, "error", &e) ||
		!json_object_object_get_ex(e, "code", &code))
		return 0;
	return json_object_get_int(code);
}

static const char *error_message(struct json_object *a)
{
	struct json_object *e, *m;

	if (!json_object_object_get_ex(a, "error", &e) ||
		!json_object_object_get_ex(e, "message", &m))
		return "";
	return json_object_get_string(m);
}

static struct json_object *result(struct json_object *a)
{
	struct json_object *r = NULL;

	json_object_object_get_ex(a, "result", &r);
	return r;
}

static void check_params(struct conn *c, const char *params, int want_code, const char *want_in_msg,
	const char *what)
{
	char req[1024];
	struct json_object *lines;

	snprintf(req, sizeof(req),
		"{\"jsonrpc\":\"2.0\",\"method\":\"t.types\",\"params\":%s,\"id\":1}\n", params);
	lines = feed(c, req);
	if (json_object_array_length(lines) != 1) {
		ok(0, "%s: one answer", what);
	} else {
		struct json_object *a = json_object_array_get_idx(lines, 0);
		int code = error_code(a);
		ok(code == want_code && (!want_in_msg || strstr(error_message(a), want_in_msg)),
			"%s -> %d (%s)", what, code, error_message(a));
	}
	json_object_put(lines);
}

static void test_params(struct event_base *base)
{
	struct conn *c = conn_new_detached(base);
	struct json_object *lines, *r, *v;

	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.types\",\"params\":{\"s\":\"abc\"},"
			"\"id\":1}\n");
	r = result(json_object_array_get_idx(lines, 0));
	ok(r && json_object_object_get_ex(r, "n", &v) && json_object_get_int(v) == 7,
		"absent int gets its default");
	ok(r && json_object_object_get_ex(r, "b", &v) && json_object_get_boolean(v),
		"absent bool gets its default");
	ok(r && json_object_object_get_ex(r, "o", &v) && v == NULL, "absent object is NULL");
	json_object_put(lines);

	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.types\",\"params\":"
			"[\"ab\",-3,false,{\"k\":1},[1,2],[\"p\",\"q\"],null,\"y\"],\"id\":2}\n");
	r = result(json_object_array_get_idx(lines, 0));
	is_str(r ? json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN) : NULL,
		"{\"s\":\"ab\",\"n\":-3,\"b\":false,\"o\":{\"k\":1},\"a\":[1,2],\"sa\":[\"p\","
		"\"q\"],"
		"\"any\":null,\"ch\":\"y\"}",
		"positional params fill every type in table order");
	json_object_put(lines);

	/* Without params (none, {} or []) every row takes its default. */
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.defaults\",\"id\":1}\n"
			"{\"jsonrpc\":\"2.0\",\"method\":\"t.defaults\",\"params\":{},\"id\":2}\n"
			"{\"jsonrpc\":\"2.0\",\"method\":\"t.defaults\",\"params\":[],\"id\":3}\n"
			"{\"jsonrpc\":\"2.0\",\"method\":\"t.defaults\",\"params\":[-2,false],"
			"\"id\":4}\n");
	is_str(json_object_to_json_string_ext(lines, JSON_C_TO_STRING_PLAIN),
		"[{\"jsonrpc\":\"2.0\",\"result\":{\"n\":7,\"b\":true},\"id\":1},"
		"{\"jsonrpc\":\"2.0\",\"result\":{\"n\":7,\"b\":true},\"id\":2},"
		"{\"jsonrpc\":\"2.0\",\"result\":{\"n\":7,\"b\":true},\"id\":3},"
		"{\"jsonrpc\":\"2.0\",\"result\":{\"n\":-2,\"b\":false},\"id\":4}]",
		"no params, {} and [] take every default; given ones are stored");
	json_object_put(lines);

	check_params(c, "{}", -32602, "'s'", "missing mandatory");
	check_params(c, "[]", -32602, "'s'", "missing mandatory (positional)");
	check_params(c, "{\"s\":null}", -32602, "'s'", "mandatory null");
	check_params(c, "{\"s\":5}", -32602, "'s'", "string of wrong type");
	check_params(c, "{\"s\":\"abcdef\"}", -32602, "'s'", "string over max length");
	check_params(c, "{\"s\":\"a\\u0000b\"}", -32602, "'s'", "string with NUL");
	check_params(c, "{\"s\":\"a\",\"n\":11}", -32602, "'n'", "int over max");
	check_params(c, "{\"s\":\"a\",\"n\":-4}", -32602, "'n'", "int under min");
	check_params(c, "{\"s\":\"a\",\"n\":1.0}", -32602, "'n'", "float for int");
	check_params(c, "{\"s\":\"a\",\"n\":99999999999999999999}", -32602, "'n'", "huge int");
	/* json-c keeps 2^63 .. 2^64-1 as a uint64 and its int64 getter clamps
	 * them to INT64_MAX without a word (errno untouched): an unbounded int
	 * must refuse them, not take INT64_MAX. */
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.unbounded\","
			"\"params\":{\"u\":9223372036854775807},\"id\":1}\n");
	r = result(json_object_array_get_idx(lines, 0));
	ok(r && json_object_get_int64(r) == INT64_MAX, "an unbounded int takes INT64_MAX");
	json_object_put(lines);
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.unbounded\","
			"\"params\":{\"u\":-9223372036854775808},\"id\":1}\n");
	r = result(json_object_array_get_idx(lines, 0));
	ok(r && json_object_get_int64(r) == INT64_MIN, "an unbounded int takes INT64_MIN");
	json_object_put(lines);
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.unbounded\","
			"\"params\":{\"u\":9223372036854775808},\"id\":1}\n");
	is_int(error_code(json_object_array_get_idx(lines, 0)), -32602,
		"an unbounded int refuses 2^63 instead of clamping it: %s",
		json_object_to_json_string(lines));
	json_object_put(lines);
	{
		/* Built in-process, a uint64 int object does reach the params: refused. */
		struct json_object *o = json_object_new_object();
		struct unbounded_params out = { 0 };
		char msg[256] = "";

		json_object_object_add(o, "u", json_object_new_uint64(UINT64_C(1) << 63));
		is_int(params_fill(method_find("t.unbounded"), o, &out, msg, sizeof(msg)), -EINVAL,
			"params_fill refuses a uint64 2^63 object (%s), got %lld", msg,
			(long long)out.u);
		json_object_put(o);
	}
	check_params(c, "{\"s\":\"a\",\"b\":1}", -32602, "'b'", "int for bool");
	check_params(c, "{\"s\":\"a\",\"o\":[]}", -32602, "'o'", "array for object");
	check_params(c, "{\"s\":\"a\",\"a\":[1,2,3]}", -32602, "'a'", "array over max elements");
	check_params(c, "{\"s\":\"a\",\"sa\":[\"x\",1]}", -32602, "'sa'",
		"non-string in string array");
	check_params(c, "{\"s\":\"a\",\"sa\":[\"a\",\"b\",\"c\",\"d\"]}", -32602, "'sa'",
		"string array over max");
	check_params(c, "{\"s\":\"a\",\"ch\":\"z\"}", -32602, "'ch'", "string not among choices");
	check_params(c, "{\"s\":\"a\",\"zz\":1}", -32602, "'zz'", "unknown member");
	check_params(c, "[\"a\",1,true,null,null,null,null,\"x\",9]", -32602, "at most 8",
		"too many positional");
	check_params(c, "{\"s\":\"a\",\"any\":{\"deep\":[1]}}", 0, NULL, "any value accepted");
	conn_close_unref(c);
}

static void test_calls(struct event_base *base)
{
	struct conn *c = conn_new_detached(base);
	struct json_object *lines, *a;

	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.fail\",\"id\":1}\n");
	a = json_object_array_get_idx(lines, 0);
	ok(error_code(a) == -32000 && strstr(json_object_to_json_string(a), "ENOENT"),
		"a handler's negative errno -> -32000 with the errno name: %s",
		json_object_to_json_string(a));
	json_object_put(lines);

	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.drop\",\"id\":1}\n");
	is_int(error_code(json_object_array_get_idx(lines, 0)), -32603,
		"a handler that neither answers nor keeps the call -> -32603");
	json_object_put(lines);

	/* call_reply_text(): written as text outside a batch, parsed inside one. */
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.text\",\"id\":5}\n"
			"[{\"jsonrpc\":\"2.0\",\"method\":\"t.text\",\"id\":6}]\n"
			"{\"jsonrpc\":\"2.0\",\"method\":\"t.text\"}\n");
	is_int(json_object_array_length(lines), 2,
		"call_reply_text: a request and a batch answered, a notification not");
	is_str(json_object_to_json_string_ext(json_object_array_get_idx(lines, 0),
		       JSON_C_TO_STRING_PLAIN),
		"{\"jsonrpc\":\"2.0\",\"result\":[1,\"two\",{}],\"id\":5}",
		"call_reply_text outside a batch: the text as the result");
	is_str(json_object_to_json_string_ext(json_object_array_get_idx(lines, 1),
		       JSON_C_TO_STRING_PLAIN),
		"[{\"jsonrpc\":\"2.0\",\"result\":[1,\"two\",{}],\"id\":6}]",
		"call_reply_text in a batch: the same result");
	json_object_put(lines);

	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.twice\",\"id\":1}\n");
	is_int(json_object_array_length(lines), 1, "answering twice sends one answer");
	json_object_put(lines);

	/* Batch with an async member: nothing until it answers, then one array. */
	lines = feed(c, "[{\"jsonrpc\":\"2.0\",\"method\":\"t.async\",\"id\":\"A\"},"
			"{\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\",\"id\":\"P\"},"
			"{\"jsonrpc\":\"2.0\",\"method\":\"t.async\"}]\n");
	is_int(json_object_array_length(lines), 0, "a batch waits for its async members");
	json_object_put(lines);
	is_int(n_held, 2, "both async calls held");
	call_reply(held[0], json_object_new_string("late"));
	held[0] = call_unref(held[0]);
	lines = feed(c, "");
	is_int(json_object_array_length(lines), 0, "still waiting for the async notification member");
	json_object_put(lines);
	call_reply(held[1], json_object_new_string("ignored"));
	held[1] = call_unref(held[1]);
	lines = feed(c, "");
	a = json_object_array_get_idx(lines, 0);
	ok(json_object_array_length(lines) == 1 && json_object_is_type(a, json_type_array) &&
			json_object_array_length(a) == 2,
		"batch written as one array of 2 after the last member: %s",
		json_object_to_json_string(lines));
	json_object_put(lines);
	n_held = 0;

	/* A call outliving its connection: replying later is harmless. */
	lines = feed(c, "{\"jsonrpc\":\"2.0\",\"method\":\"t.async\",\"id\":5}\n");
	json_object_put(lines);
	ok(call_conn(held[0]) == c, "call_conn while open");
	conn_close_unref(c);
	ok(call_conn(held[0]) == NULL, "call_conn is NULL once the connection closed");
	call_reply(held[0], json_object_new_string("nobody listens"));
	ok(call_answered(held[0]), "reply after close completes the call");
	held[0] = call_unref(held[0]);
	n_held = 0;
}

/* A result is written as text around its own serialization, and a string
 * that needs no escaping between its quotes as it is: the answer line must
 * be byte for byte what json-c writes for the whole answer object, for every
 * single character and for strings mixing plain and escaped ones. */
static void test_result_text(struct event_base *base)
{
	static const char *const strings[] = { "pong", "", "a/b", "q\\\"x", "back\\\\slash",
		"tab\\there", "\\u007f~ !", "\\u00e9t\\u00e9", "\\u2028", "12345678901234567890" };
	struct conn *c = conn_new_detached(base);
	struct evbuffer *out = conn_output(c);
	int wrong = 0, n = 0;

	for (int i = 0; i < 0x100 + (int)(sizeof(strings) / sizeof(strings[0])); i++) {
		char req[160], esc[64], *line;
		struct json_object *arg, *id, *want;
		const char *want_text;
		size_t len;

		if (i == 0)
			continue;
		if (i < 0x100)
			snprintf(esc, sizeof(esc), "\\u%04x", i); /* U+0080..U+00FF: two bytes */
		else
			snprintf(esc, sizeof(esc), "%s", strings[i - 0x100]);
		snprintf(req,
			sizeof(req), "{\"jsonrpc\":\"2.0\",\"method\":\"t.first\",\"params\":[\"%s\"],\"id\":%d}\n",
			esc, i);
		arg = json_tokener_parse(strchr(req, '[')); /* up to the ']' */
		id = json_object_new_int(i);
		want = gl_rpc_result_new(id, json_object_get(json_object_array_get_idx(arg, 0)));
		want_text = gl_encode_string(want, NULL);
		conn_feed(c, req, strlen(req));
		line = evbuffer_readln(out, &len, EVBUFFER_EOL_LF);
		n++;
		if (!line || !want_text || strcmp(line, want_text) != 0) {
			if (wrong++ == 0)
				printf("#   %s: got '%s', want '%s'\n", esc, line ? line : "(none)",
					want_text ? want_text : "(none)");
		}
		free(line);
		json_object_put(want);
		json_object_put(id);
		json_object_put(arg);
	}
	ok(wrong == 0 && n == 0xff + (int)(sizeof(strings) / sizeof(strings[0])),
		"string results: the answer text is json-c's for each of %d strings (%d differ)", n,
		wrong);
	conn_close_unref(c);
}

static void on_client_read(evutil_socket_t fd, short what, void *arg)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (drains > 0)
		event_base_loopbreak(arg);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void test_backpressure(struct event_base *base)
{
	char dir[] = "/tmp/guestlink-dispatch.XXXXXX", addr[128];
	struct gl_address a;
	struct server *s;
	struct event *rd, *to;
	struct timeval tv = { 10, 0 };
	const char *req = "{\"jsonrpc\":\"2.0\",\"method\":\"t.flood\",\"id\":1}\n";
	int lfd, cfd;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(addr, sizeof(addr), "unix:%s/s", dir);
	server_new(base, &s);
	lfd = (gl_address_parse(addr, &a) == 0) ? gl_address_listen(&a, 16) : -1;
	ok(lfd >= 0 && server_add_listener(s, lfd) == 0, "in-process server listens");
	cfd = gl_address_connect(&a, 5000);
	ok(cfd >= 0, "client connected");
	if (cfd < 0)
		goto out;
	ok(write(cfd, req, strlen(req)) == (ssize_t)strlen(req), "flood request sent");

	/* Let the agent fill its output while the client does not read. */
	to = evtimer_new(base, on_timeout, base);
	tv.tv_sec = 0;
	tv.tv_usec = 300000;
	evtimer_add(to, &tv);
	event_base_dispatch(base);
	ok(flood_conn && conn_output_full(flood_conn),
		"output is full while the client does not read");
	ok(flood_sent > 0 && flood_sent < 1000,
		"the producer stopped at the high-water mark (%d x 4 KiB)", flood_sent);
	is_int(drains, 0, "no drain callback while nobody reads");

	/* Now read: the drain watch fires once the buffer falls below the low mark. */
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	rd = event_new(base, cfd, EV_READ | EV_PERSIST, on_client_read, base);
	event_add(rd, NULL);
	tv.tv_sec = 10;
	tv.tv_usec = 0;
	evtimer_add(to, &tv);
	event_base_dispatch(base);
	is_int(drains, 1, "drain watch called once after the client read");
	ok(flood_conn && !conn_output_full(flood_conn), "output no longer full");
	event_free(rd);
	event_free(to);
	close(cfd);
out:
	server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK);
	flood_conn = conn_unref(flood_conn);
	snprintf(addr, sizeof(addr), "%s/s", dir);
	unlink(addr);
	rmdir(dir);
}

static void test_config(void)
{
	char path[] = "/tmp/guestlink-conf.XXXXXX";
	struct config *cfg = NULL;
	int fd = mkstemp(path);
	const char *text =
		"{\"allow\":[\"agent.*\",\"t.*\"],\"deny\":[\"t.f*\"],\"peer_cids\":[2,7],"
		"\"max_inflight\":3,\"exec\":{\"result_ttl_s\":9}}";

	ok(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "config written");
	close(fd);
	is_int(config_load(path, true, &cfg), 0, "config loads");
	if (cfg) {
		ok(config_method_allowed(cfg, "agent.ping"), "allowed by glob");
		ok(!config_method_allowed(cfg, "t.fail"), "deny wins over allow");
		ok(!config_method_allowed(cfg, "system.info"), "not in allow -> denied");
		ok(cfg->n_peer_cids == 2 && cfg->peer_cids[1] == 7, "peer_cids");
		ok(cfg->max_inflight == 3 && cfg->exec_result_ttl_s == 9,
			"numbers and nested keys");
		is_int(cfg->max_connections, 1024, "defaults kept for absent keys");
	}
	config_free(cfg);
	unlink(path);
	cfg = NULL;
	is_int(config_load("/nonexistent/agent.conf", false, &cfg), 0,
		"a missing default config file means defaults");
	ok(cfg && config_method_allowed(cfg, "anything"), "defaults allow everything");
	config_free(cfg);
}

/* Every evbuffer_search() the agent makes (linked with --wrap): the bytes it
 * examined, to count the work of finding QGA's 0xFF sentinel. */
struct evbuffer_ptr __real_evbuffer_search(struct evbuffer *buf, const char *what, size_t len,
	const struct evbuffer_ptr *start);
struct evbuffer_ptr __wrap_evbuffer_search(struct evbuffer *buf, const char *what, size_t len,
	const struct evbuffer_ptr *start);
static uint64_t search_bytes;

struct evbuffer_ptr __wrap_evbuffer_search(struct evbuffer *buf, const char *what, size_t len,
	const struct evbuffer_ptr *start)
{
	struct evbuffer_ptr p = __real_evbuffer_search(buf, what, len, start);
	size_t from = start ? (size_t)start->pos : 0;
	size_t to = p.pos >= 0 ? (size_t)p.pos + len : evbuffer_get_length(buf);

	search_bytes += to > from ? to - from : 0;
	return p;
}

/* n tiny QGA lines in one piece: all answered, and the sentinel search
 * examines each byte a bounded number of times (it used to rescan the whole
 * input once per message: n^2/2 lines' worth). Returns whether it was linear. */
static bool qga_lines(struct event_base *base, size_t n)
{
	static const char line[] = "{\"execute\":\"guest-ping\"}\n";
	size_t len = (sizeof(line) - 1) * n, answers = 0, alen;
	struct conn *c = conn_new_detached_proto(base, &conn_proto_qga);
	struct evbuffer *out = conn_output(c);
	char *text = malloc(len + 1), *a;
	struct timespec t0, t1;
	bool linear;

	for (size_t i = 0; i < n; i++)
		memcpy(text + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	search_bytes = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	conn_feed(c, text, len);
	event_base_loop(base, EVLOOP_NONBLOCK);
	while ((a = evbuffer_readln(out, &alen, EVBUFFER_EOL_LF))) {
		answers += strcmp(a, "{\"return\":{}}") == 0;
		free(a);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	is_int((long long)answers, (long long)n, "%zu QGA lines in one piece: each answered", n);
	linear = search_bytes <= 2 * (uint64_t)len;
	ok(linear, "... the 0xFF search examined %llu bytes of %zu input (at most twice)",
		(unsigned long long)search_bytes, len);
	/* not a timed assertion: a figure for the record */
	diag("%zu lines: %.3f s", n,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	conn_close_unref(c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	free(text);
	return linear;
}

static void test_qga_sentinel_search(struct event_base *base)
{
	/* The small run first: a quadratic search would take hours on the big one. */
	if (qga_lines(base, 5000))
		qga_lines(base, 200000);
	else
		ok(false, "200000 lines skipped: the search is not linear");
}

int main(void)
{
	struct event_base *base = event_base_new();

	methods_agent_register();
	method_register(test_methods);
	test_config();
	test_params(base);
	test_calls(base);
	test_result_text(base);
	test_backpressure(base);
	test_qga_sentinel_search(base);
	methods_agent_cleanup();
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	config_clear();
	return tap_done();
}
