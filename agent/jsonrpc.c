/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON-RPC 2.0 front end: the envelope (request, notification, batch)
 * around the shared dispatcher. A batch collects its members' answers and is
 * written as one array once the last member (sync or async) answered. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "envelope.h"
#include "log.h"
#include "method.h"

/* Members of one batch: its answers are held until the last one, so a batch
 * of tiny requests must not be able to ask for unbounded answers. */
#define DISPATCH_MAX_BATCH 1024

struct batch {
	struct conn *conn;
	/* The answer array as text, built as members answer: its size is what
	 * the batch costs, and members are refused once it reaches
	 * max_message_bytes (1024 file.read answers would be 11 GiB). */
	struct evbuffer *text;
	size_t n_replies;
	unsigned pending; /* unanswered members, plus one while the batch is being read */
};

static struct batch *batch_new(struct conn *conn)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->text = evbuffer_new();
	if (!b->text) {
		free(b);
		return NULL;
	}
	b->conn = conn_ref(conn);
	b->pending = 1;
	return b;
}

/* Replace *reply (taken) by -32003 for the same id; returns its text. */
static const char *batch_limit_reply(struct json_object **reply, size_t *ret_len)
{
	struct json_object *id = NULL, *e;
	char msg[96];

	json_object_object_get_ex(*reply, "id", &id);
	snprintf(msg, sizeof(msg), "The answers of this batch reached max_message_bytes (%zu)",
		config_get()->max_message_bytes);
	e = gl_rpc_error_new(id, GL_RPC_LIMIT, msg, NULL);
	json_object_put(*reply);
	*reply = e;
	return e ? gl_encode_string(e, ret_len) : NULL;
}

/* One member finished (reply NULL for notifications); takes reply. Members
 * dispatched together may answer later (worker threads, child processes), all
 * after the check in jsonrpc_one(): an answer that would take the array past
 * max_message_bytes becomes -32003 (the first one always fits). */
static void batch_member_done(struct batch *b, struct json_object *reply)
{
	if (reply) {
		size_t n;
		const char *s = gl_encode_string(reply, &n);

		if (s && b->n_replies > 0 &&
			evbuffer_get_length(b->text) + n > config_get()->max_message_bytes)
			s = batch_limit_reply(&reply, &n);
		if (!s || evbuffer_add(b->text, b->n_replies ? "," : "[", 1) < 0 ||
			evbuffer_add(b->text, s, n) < 0)
			log_error("Out of memory collecting the answers of a batch, dropping one");
		else
			b->n_replies++;
		json_object_put(reply);
	}
	if (--b->pending > 0)
		return;
	/* A batch of notifications only is answered with nothing at all. */
	if (b->n_replies > 0 && evbuffer_add(b->text, "]\n", 2) == 0)
		conn_write_text(b->conn, b->text);
	evbuffer_free(b->text);
	conn_unref(b->conn);
	free(b);
}

/* Send or collect one answer; takes reply. */
static void jsonrpc_deliver(struct conn *conn, struct batch *b, bool notification,
	struct json_object *reply)
{
	if (notification) {
		json_object_put(reply);
		reply = NULL;
	}
	if (b) {
		batch_member_done(b, reply);
		return;
	}
	if (reply) {
		conn_write(conn, reply);
		json_object_put(reply);
	}
}

/* Decimal text of v into buf (at least 20 bytes); returns its length. */
static size_t jsonrpc_format_int(char *buf, int64_t v)
{
	char tmp[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = tmp[--n];
	return len;
}

/* Is the string s[0..len) written by json-c exactly as it is? Printable
 * ASCII other than '"', '\\' and '/' (json-c's json_escape_str() escapes
 * those, control characters, and '/' unless told not to). */
static bool jsonrpc_string_plain(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '/')
			return false;
	}
	return true;
}

/* A result outside a batch goes into the connection's output as text: the
 * envelope gl_rpc_result_new() would build, written around the result's own
 * text (the n_res pieces of res). Building, serializing and freeing that
 * envelope object was a fifth of the agent's work for an agent.ping. */
static void jsonrpc_write_answer(struct call *c, const struct iovec *res, size_t n_res)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"result\":", mid[] = ",\"id\":";
	struct json_object *id = NULL;
	char num[24];
	struct iovec iov[7];
	size_t n = 0;
	bool is_int;
	int64_t v = 0;

	iov[n++] = (struct iovec){ (void *)head, sizeof(head) - 1 };
	for (size_t i = 0; i < n_res; i++)
		iov[n++] = res[i];
	iov[n++] = (struct iovec){ (void *)mid, sizeof(mid) - 1 };
	/* json-c clamps a uint64 above INT64_MAX: that one it writes itself. */
	is_int = call_id_int(c, &v);
	if (!is_int) {
		id = call_id(c);
		is_int = json_object_is_type(id, json_type_int) &&
			 (v = json_object_get_int64(id)) != INT64_MAX;
	}
	if (is_int)
		iov[n++] = (struct iovec){ num, jsonrpc_format_int(num, v) };
	else {
		iov[n].iov_base = (void *)gl_encode_string(id, &iov[n].iov_len); /* NULL: "null" */
		if (!iov[n++].iov_base) {
			log_error("Out of memory writing an answer, dropping it");
			return;
		}
	}
	iov[n++] = (struct iovec){ (void *)"}\n", 2 };
	(void)conn_write_iov(call_connection(c), iov, n);
}

/* jsonrpc_write_answer() of a result object. A string result that needs no
 * escaping ("pong") is written between its quotes as it is, without json-c's
 * serialization buffer, nor is an empty object. Takes result. */
static void jsonrpc_write_result(struct call *c, struct json_object *result)
{
	struct iovec res[3];
	size_t n = 0;

	if (json_object_is_type(result, json_type_string) &&
		jsonrpc_string_plain(json_object_get_string(result),
			(size_t)json_object_get_string_len(result))) {
		res[n++] = (struct iovec){ (void *)"\"", 1 };
		res[n++] = (struct iovec){ (void *)json_object_get_string(result),
			(size_t)json_object_get_string_len(result) };
		res[n++] = (struct iovec){ (void *)"\"", 1 };
	} else if (json_object_is_type(result, json_type_object) &&
		   json_object_object_length(result) == 0) {
		/* Methods that only act answer {}: json-c's printbuf not needed. */
		res[n++] = (struct iovec){ (void *)"{}", 2 };
	} else {
		res[n].iov_base = (void *)gl_encode_string(result, &res[n].iov_len);
		if (!res[n++].iov_base) {
			log_error("Out of memory writing an answer, dropping it");
			json_object_put(result);
			return;
		}
	}
	jsonrpc_write_answer(c, res, n);
	json_object_put(result);
}

static void jsonrpc_answer(struct call *c, struct json_object *result, int code,
	const char *message, struct json_object *data)
{
	struct json_object *reply;

	if (code == 0 && !call_frontend_data(c) && !call_is_notification(c)) {
		jsonrpc_write_result(c, result);
		return;
	}
	reply = code == 0 ? gl_rpc_result_new(call_id(c), result)
			  : gl_rpc_error_new(call_id(c), code, message, data);
	jsonrpc_deliver(call_connection(c), call_frontend_data(c), call_is_notification(c), reply);
}

/* call_reply_text(): outside a batch the text goes out as it is; a batch
 * member (or a notification) takes the object path. */
static void jsonrpc_answer_text(struct call *c, const char *json, size_t len)
{
	struct json_object *result;

	if (!call_frontend_data(c) && !call_is_notification(c)) {
		jsonrpc_write_answer(c, &(struct iovec){ (void *)json, len }, 1);
		return;
	}
	result = json_tokener_parse(json);
	if (!result && strcmp(json, "null") != 0) {
		jsonrpc_answer(c, NULL, GL_RPC_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	jsonrpc_answer(c, result, 0, NULL, NULL);
}

static const struct call_frontend jsonrpc_frontend = {
	.name = "jsonrpc",
	.answer = jsonrpc_answer,
	.answer_text = jsonrpc_answer_text,
};

static void jsonrpc_error(struct conn *conn, struct batch *b, struct json_object *id, int code,
	const char *message)
{
	if (b)
		b->pending++;
	jsonrpc_deliver(conn, b, false, gl_rpc_error_new(id, code, message, NULL));
}

/* The id to answer an invalid request with: its own when it is a valid id. */
static struct json_object *jsonrpc_guess_id(struct json_object *obj)
{
	struct json_object *id;

	if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, "id", &id))
		return NULL;
	if (json_object_is_type(id, json_type_string) || json_object_is_type(id, json_type_int))
		return id;
	return NULL;
}

static void jsonrpc_one(struct conn *conn, struct json_object *obj, struct batch *b)
{
	const struct config *cfg = config_get();
	const char *reason = NULL;
	struct gl_msg msg;
	struct call *call;
	char errmsg[256];
	bool notif;

	if (gl_msg_parse(obj, &msg, &reason) < 0) {
		snprintf(errmsg, sizeof(errmsg), "Invalid Request: %s",
			reason ? reason : "malformed");
		jsonrpc_error(conn, b, jsonrpc_guess_id(obj), GL_RPC_INVALID_REQUEST, errmsg);
		return;
	}
	if (msg.kind != GL_MSG_REQUEST && msg.kind != GL_MSG_NOTIFICATION) {
		/* The agent never sends requests, so a response can only be a mistake. */
		jsonrpc_error(conn, b, msg.has_id ? msg.id : NULL, GL_RPC_INVALID_REQUEST,
			"Invalid Request: expected a request, got a response");
		return;
	}
	notif = msg.kind == GL_MSG_NOTIFICATION;
	if (b && !notif && evbuffer_get_length(b->text) >= cfg->max_message_bytes) {
		snprintf(errmsg, sizeof(errmsg),
			"The answers of this batch reached max_message_bytes (%zu)",
			cfg->max_message_bytes);
		jsonrpc_error(conn, b, msg.id, GL_RPC_LIMIT, errmsg);
		return;
	}
	if (dispatch_call_new(conn, &jsonrpc_frontend, b, obj, msg.id, notif, &call) < 0) {
		if (!notif)
			jsonrpc_error(conn, b, msg.id, GL_RPC_INTERNAL_ERROR, "Out of memory");
		return;
	}
	if (b)
		b->pending++;
	dispatch_invoke(call, msg.method, msg.params);
	call_unref(call);
}

void dispatch_message(struct conn *conn, struct json_object *obj)
{
	struct batch *b;
	size_t n;

	if (!json_object_is_type(obj, json_type_array)) {
		jsonrpc_one(conn, obj, NULL);
		json_object_put(obj);
		return;
	}
	n = json_object_array_length(obj);
	if (n == 0) {
		jsonrpc_error(conn, NULL, NULL, GL_RPC_INVALID_REQUEST,
			"Invalid Request: empty batch");
		json_object_put(obj);
		return;
	}
	if (n > DISPATCH_MAX_BATCH) {
		char msg[80];
		snprintf(msg, sizeof(msg), "Batch of %zu requests is larger than %d", n,
			DISPATCH_MAX_BATCH);
		jsonrpc_error(conn, NULL, NULL, GL_RPC_LIMIT, msg);
		json_object_put(obj);
		return;
	}
	b = batch_new(conn);
	if (!b) {
		jsonrpc_error(conn, NULL, NULL, GL_RPC_INTERNAL_ERROR, "Out of memory");
		json_object_put(obj);
		return;
	}
	for (size_t i = 0; i < n; i++)
		jsonrpc_one(conn, json_object_array_get_idx(obj, i), b);
	json_object_put(obj);
	batch_member_done(b, NULL);
}

/* A request read by envelope_scan(): no batch, no response, no tree. */
static void jsonrpc_envelope(struct conn *conn, const struct envelope *e)
{
	struct call *call;

	if (dispatch_call_new_envelope(conn, &jsonrpc_frontend, e, &call) < 0) {
		if (e->id_kind != ENVELOPE_ID_ABSENT)
			jsonrpc_error(conn, NULL, NULL, GL_RPC_INTERNAL_ERROR, "Out of memory");
		return;
	}
	dispatch_invoke(call, e->method, NULL);
	call_unref(call);
}

static void jsonrpc_syntax_error(struct conn *c)
{
	jsonrpc_error(c, NULL, NULL, GL_RPC_PARSE_ERROR, NULL);
}

static void jsonrpc_too_big(struct conn *c)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "Message larger than max_message_bytes (%zu)",
		config_get()->max_message_bytes);
	jsonrpc_error(c, NULL, NULL, GL_RPC_LIMIT, msg);
}

const struct conn_proto conn_proto_jsonrpc = {
	.name = "jsonrpc",
	.message = dispatch_message,
	.envelope = jsonrpc_envelope,
	.syntax_error = jsonrpc_syntax_error,
	.too_big = jsonrpc_too_big,
};
