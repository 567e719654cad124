/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON-RPC 2.0 dispatch. Every request becomes a reference-counted call; a
 * batch collects its members' answers and is written as one array once the
 * last member (sync or async) answered. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "audit.h"
#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "method.h"
#include "server.h"

#define DISPATCH_MAX_PARAMS 64
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

struct call {
	unsigned refs;
	struct conn *conn;
	struct batch *batch;
	struct json_object *request; /* keeps the borrowed id, method and params alive */
	struct json_object *id;
	const char *method;
	void *params;
	bool notification, answered;
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
static const char *dispatch_limit_reply(struct json_object **reply, size_t *ret_len)
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

/* One member finished (reply NULL for notifications); takes reply. */
static void batch_member_done(struct batch *b, struct json_object *reply)
{
	if (reply) {
		size_t n;
		const char *s = gl_encode_string(reply, &n);

		/* Members answered later (worker threads) were all dispatched before
		 * any answer counted: past max_message_bytes an answer becomes -32003. */
		if (s && b->n_replies > 0 &&
			evbuffer_get_length(b->text) + n > config_get()->max_message_bytes)
			s = dispatch_limit_reply(&reply, &n);
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

/* Send or collect one answer to a request; takes reply. */
static void dispatch_reply(struct conn *conn, struct batch *b, bool notification,
	struct json_object *reply)
{
	if (notification) {
		json_object_put(reply);
		reply = NULL;
	}
	if (b) {
		b->pending++;
		batch_member_done(b, reply);
		return;
	}
	if (reply) {
		conn_write(conn, reply);
		json_object_put(reply);
	}
}

static void dispatch_error(struct conn *conn, struct batch *b, bool notification,
	struct json_object *id, int code, const char *message)
{
	dispatch_reply(conn, b, notification, gl_rpc_error_new(id, code, message, NULL));
}

/* --- the call object --- */

struct call *call_ref(struct call *c)
{
	if (c)
		c->refs++;
	return c;
}

static void call_answer(struct call *c, struct json_object *reply)
{
	if (c->answered) {
		log_error("Method %s answered twice, ignoring the second answer", c->method);
		json_object_put(reply);
		return;
	}
	c->answered = true;
	audit_call(c->conn, c->method, c->request, reply);
	if (c->notification) {
		json_object_put(reply);
		reply = NULL;
	}
	if (c->batch) {
		batch_member_done(c->batch, reply);
		c->batch = NULL;
	} else if (reply) {
		conn_write(c->conn, reply);
		json_object_put(reply);
	}
	conn_inflight_dec(c->conn);
}

struct call *call_unref(struct call *c)
{
	if (!c || --c->refs > 0)
		return NULL;
	if (!c->answered) {
		/* A handler returned 0 without answering or keeping a reference. */
		log_error("Method %s dropped its call without answering", c->method);
		c->refs = 1;
		call_error(c, GL_RPC_INTERNAL_ERROR, "The method did not answer", NULL);
		c->refs = 0;
	}
	free(c->params);
	json_object_put(c->request);
	conn_unref(c->conn);
	free(c);
	return NULL;
}

void call_reply(struct call *c, struct json_object *result)
{
	call_answer(c, gl_rpc_result_new(c->id, result));
}

void call_error(struct call *c, int code, const char *message, struct json_object *data)
{
	call_answer(c, gl_rpc_error_new(c->id, code, message, data));
}

void call_os_error(struct call *c, int errnum, const char *message)
{
	call_answer(c, gl_rpc_os_error_new(c->id, errnum, message));
}

bool call_answered(struct call *c)
{
	return c->answered;
}

const char *call_method(struct call *c)
{
	return c->method;
}

struct conn *call_conn(struct call *c)
{
	return conn_closed(c->conn) ? NULL : c->conn;
}

struct event_base *call_event_base(struct call *c)
{
	return conn_event_base(c->conn);
}

/* --- params validation --- */

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			(cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static const char *param_string_problem(struct json_object *v, int64_t max)
{
	size_t len;

	if (!json_object_is_type(v, json_type_string))
		return "must be a string";
	len = (size_t)json_object_get_string_len(v);
	if (strlen(json_object_get_string(v)) != len)
		return "must not contain NUL characters";
	if (!utf8_valid((const unsigned char *)json_object_get_string(v), len))
		return "must be valid UTF-8";
	if (max > 0 && len > (uint64_t)max)
		return "is too long";
	return NULL;
}

/* Check one value against its row and store it. Returns NULL or what is wrong. */
static const char *param_store(const struct method_param *p, struct json_object *v, void *out,
	char *buf, size_t size)
{
	char *field = (char *)out + p->offset;
	const char *why;
	int64_t i;
	size_t n;

	switch (p->type) {
	case PARAM_STRING:
		if ((why = param_string_problem(v, p->max)))
			return why;
		if (p->choices) {
			const char *const *ch;
			for (ch = p->choices; *ch; ch++)
				if (strcmp(*ch, json_object_get_string(v)) == 0)
					break;
			if (!*ch)
				return "is not one of the allowed values";
		}
		*(const char **)field = json_object_get_string(v);
		return NULL;
	case PARAM_INT:
		if (!json_object_is_type(v, json_type_int))
			return "must be an integer";
		errno = 0;
		i = json_object_get_int64(v);
		/* A zero range means unbounded; json-c clamps and flags out-of-range input. */
		if (errno != 0 || ((p->min != 0 || p->max != 0) && (i < p->min || i > p->max))) {
			snprintf(buf, size, "must be between %lld and %lld", (long long)p->min,
				(long long)p->max);
			return buf;
		}
		*(int64_t *)field = i;
		return NULL;
	case PARAM_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return "must be a boolean";
		*(bool *)field = json_object_get_boolean(v);
		return NULL;
	case PARAM_OBJECT:
		if (!json_object_is_type(v, json_type_object))
			return "must be an object";
		*(struct json_object **)field = v;
		return NULL;
	case PARAM_ARRAY:
	case PARAM_STRING_ARRAY:
		if (!json_object_is_type(v, json_type_array))
			return p->type == PARAM_ARRAY ? "must be an array" : "must be an array of strings";
		n = json_object_array_length(v);
		if (p->max > 0 && n > (uint64_t)p->max)
			return "has too many elements";
		if (p->type == PARAM_STRING_ARRAY)
			for (size_t k = 0; k < n; k++)
				if ((why = param_string_problem(json_object_array_get_idx(v, k), 0))) {
					snprintf(buf, size, "element %zu %s", k, why);
					return buf;
				}
		*(struct json_object **)field = v;
		return NULL;
	case PARAM_ANY:
		*(struct json_object **)field = v;
		return NULL;
	}
	return "has an unknown type";
}

/* Fill out from params by the method's rows. On failure writes a message
 * naming the parameter into msg and returns -EINVAL. */
static int params_fill(const struct method *m, struct json_object *params, void *out, char *msg,
	size_t size)
{
	struct json_object *vals[DISPATCH_MAX_PARAMS] = { NULL };
	bool present[DISPATCH_MAX_PARAMS] = { false };
	const struct method_param *rows = m->params;
	size_t n_rows = 0;
	char why_buf[96];

	while (rows && rows[n_rows].name)
		n_rows++;
	if (n_rows > DISPATCH_MAX_PARAMS) {
		snprintf(msg, size, "Method has too many parameters");
		return -EINVAL;
	}

	if (json_object_is_type(params, json_type_array)) {
		size_t n = json_object_array_length(params);
		if (n > n_rows) {
			snprintf(msg, size, "Too many positional parameters: %s takes at most %zu",
				m->name, n_rows);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			vals[i] = json_object_array_get_idx(params, i);
			present[i] = true;
		}
	} else if (params) {
		json_object_object_foreach(params, key, v) {
			size_t i;
			for (i = 0; i < n_rows; i++)
				if (strcmp(rows[i].name, key) == 0)
					break;
			if (i == n_rows) {
				char esc[64];
				snprintf(msg, size, "Unknown parameter '%s'",
					log_escape(esc, sizeof(esc), key, strlen(key)));
				return -EINVAL;
			}
			vals[i] = v;
			present[i] = true;
		}
	}

	for (size_t i = 0; i < n_rows; i++) {
		const struct method_param *p = &rows[i];
		const char *why;

		/* JSON null counts as absent, so positional callers can skip optional ones. */
		if (!present[i] || !vals[i]) {
			if (p->flags & PARAM_MANDATORY && !(p->type == PARAM_ANY && present[i])) {
				snprintf(msg, size, "Missing mandatory parameter '%s'", p->name);
				return -EINVAL;
			}
			if (p->type == PARAM_INT)
				*(int64_t *)((char *)out + p->offset) = p->def;
			else if (p->type == PARAM_BOOL)
				*(bool *)((char *)out + p->offset) = p->def != 0;
			continue;
		}
		why = param_store(p, vals[i], out, why_buf, sizeof(why_buf));
		if (why) {
			snprintf(msg, size, "Invalid parameter '%s': %s", p->name, why);
			return -EINVAL;
		}
	}
	return 0;
}

struct json_object *dispatch_param_schema(const struct method_param *p)
{
	struct json_object *s = json_object_new_object();

	if (!s)
		return NULL;
	switch (p->type) {
	case PARAM_STRING:
		json_object_object_add(s, "type", json_object_new_string("string"));
		if (p->max > 0)
			json_object_object_add(s, "maxLength", json_object_new_int64(p->max));
		if (p->choices) {
			struct json_object *e = json_object_new_array();
			for (const char *const *ch = p->choices; *ch; ch++)
				json_object_array_add(e, json_object_new_string(*ch));
			json_object_object_add(s, "enum", e);
		}
		break;
	case PARAM_INT:
		json_object_object_add(s, "type", json_object_new_string("integer"));
		if (p->min != 0 || p->max != 0) {
			json_object_object_add(s, "minimum", json_object_new_int64(p->min));
			json_object_object_add(s, "maximum", json_object_new_int64(p->max));
		}
		if (!(p->flags & PARAM_MANDATORY))
			json_object_object_add(s, "default", json_object_new_int64(p->def));
		break;
	case PARAM_BOOL:
		json_object_object_add(s, "type", json_object_new_string("boolean"));
		if (!(p->flags & PARAM_MANDATORY))
			json_object_object_add(s, "default", json_object_new_boolean(p->def != 0));
		break;
	case PARAM_OBJECT:
		json_object_object_add(s, "type", json_object_new_string("object"));
		break;
	case PARAM_ARRAY:
	case PARAM_STRING_ARRAY:
		json_object_object_add(s, "type", json_object_new_string("array"));
		if (p->type == PARAM_STRING_ARRAY) {
			struct json_object *items = json_object_new_object();
			json_object_object_add(items, "type", json_object_new_string("string"));
			json_object_object_add(s, "items", items);
		}
		if (p->max > 0)
			json_object_object_add(s, "maxItems", json_object_new_int64(p->max));
		break;
	case PARAM_ANY:
		break;
	}
	return s;
}

/* --- requests --- */

/* The id to answer an invalid request with: its own when it is a valid id. */
static struct json_object *dispatch_guess_id(struct json_object *obj)
{
	struct json_object *id;

	if (!json_object_is_type(obj, json_type_object) ||
		!json_object_object_get_ex(obj, "id", &id))
		return NULL;
	if (json_object_is_type(id, json_type_string) || json_object_is_type(id, json_type_int))
		return id;
	return NULL;
}

static void dispatch_one(struct conn *conn, struct json_object *obj, struct batch *b)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 10);
	const struct config *cfg = config_get();
	const struct method *m;
	const char *reason = NULL;
	struct gl_msg msg;
	struct call *call;
	char errmsg[256];
	bool notif;
	int r;

	if (gl_msg_parse(obj, &msg, &reason) < 0) {
		snprintf(errmsg, sizeof(errmsg), "Invalid Request: %s", reason ? reason : "malformed");
		dispatch_error(conn, b, false, dispatch_guess_id(obj), GL_RPC_INVALID_REQUEST, errmsg);
		return;
	}
	if (msg.kind != GL_MSG_REQUEST && msg.kind != GL_MSG_NOTIFICATION) {
		/* The agent never sends requests, so a response can only be a mistake. */
		dispatch_error(conn, b, false, msg.has_id ? msg.id : NULL, GL_RPC_INVALID_REQUEST,
			"Invalid Request: expected a request, got a response");
		return;
	}
	notif = msg.kind == GL_MSG_NOTIFICATION;
	if (b && !notif && evbuffer_get_length(b->text) >= cfg->max_message_bytes) {
		snprintf(errmsg, sizeof(errmsg),
			"The answers of this batch reached max_message_bytes (%zu)",
			cfg->max_message_bytes);
		dispatch_error(conn, b, notif, msg.id, GL_RPC_LIMIT, errmsg);
		return;
	}

	/* "rpc." is reserved for the protocol itself: only rpc.discover exists. */
	m = method_find(msg.method);
	if (!m || (strncmp(msg.method, "rpc.", 4) == 0 && strcmp(msg.method, "rpc.discover") != 0)) {
		dispatch_error(conn, b, notif, msg.id, GL_RPC_METHOD_NOT_FOUND, NULL);
		return;
	}
	if (!config_method_allowed(cfg, m->name)) {
		char esc[80];
		log_ratelimited(&rl, LOG_NOTICE, 0, "Denied call of %s by policy",
			log_escape(esc, sizeof(esc), m->name, strlen(m->name)));
		audit_denied(conn, m->name, obj);
		dispatch_error(conn, b, notif, msg.id, GL_RPC_DENIED, "Method denied by policy");
		return;
	}
	if (conn_inflight(conn) >= cfg->max_inflight) {
		snprintf(errmsg, sizeof(errmsg), "Too many calls in flight on this connection (max %u)",
			cfg->max_inflight);
		dispatch_error(conn, b, notif, msg.id, GL_RPC_LIMIT, errmsg);
		return;
	}

	call = calloc(1, sizeof(*call));
	if (!call) {
		dispatch_error(conn, b, notif, msg.id, GL_RPC_INTERNAL_ERROR, "Out of memory");
		return;
	}
	call->refs = 1;
	call->notification = notif;
	call->request = json_object_get(obj);
	call->id = msg.id;
	call->method = m->name;

	if (m->flags & METHOD_RAW_PARAMS) {
		call->params = NULL;
		r = 0;
	} else {
		call->params = calloc(1, m->params_size ? m->params_size : 1);
		if (!call->params) {
			json_object_put(call->request);
			free(call);
			dispatch_error(conn, b, notif, msg.id, GL_RPC_INTERNAL_ERROR, "Out of memory");
			return;
		}
		r = params_fill(m, msg.params, call->params, errmsg, sizeof(errmsg));
	}
	if (r < 0) {
		free(call->params);
		json_object_put(call->request);
		free(call);
		dispatch_error(conn, b, notif, msg.id, GL_RPC_INVALID_PARAMS, errmsg);
		return;
	}

	call->conn = conn_ref(conn);
	if (b) {
		b->pending++;
		call->batch = b;
	}
	conn_inflight_inc(conn);
	/* Raw-params handlers get the params value itself (maybe NULL). */
	r = m->handler(call, (m->flags & METHOD_RAW_PARAMS) ? (void *)msg.params : call->params);
	if (r < 0 && !call->answered)
		call_os_error(call, r, NULL);
	call_unref(call);
}

void dispatch_message(struct conn *conn, struct json_object *obj)
{
	struct batch *b;
	size_t n;

	if (!json_object_is_type(obj, json_type_array)) {
		dispatch_one(conn, obj, NULL);
		json_object_put(obj);
		return;
	}
	n = json_object_array_length(obj);
	if (n == 0) {
		dispatch_error(conn, NULL, false, NULL, GL_RPC_INVALID_REQUEST,
			"Invalid Request: empty batch");
		json_object_put(obj);
		return;
	}
	if (n > DISPATCH_MAX_BATCH) {
		char msg[80];
		snprintf(msg, sizeof(msg), "Batch of %zu requests is larger than %d", n,
			DISPATCH_MAX_BATCH);
		dispatch_error(conn, NULL, false, NULL, GL_RPC_LIMIT, msg);
		json_object_put(obj);
		return;
	}
	b = batch_new(conn);
	if (!b) {
		dispatch_error(conn, NULL, false, NULL, GL_RPC_INTERNAL_ERROR, "Out of memory");
		json_object_put(obj);
		return;
	}
	for (size_t i = 0; i < n; i++)
		dispatch_one(conn, json_object_array_get_idx(obj, i), b);
	json_object_put(obj);
	batch_member_done(b, NULL);
}
