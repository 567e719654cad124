/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The call: one request on its way through the method table, whatever front
 * end (JSON-RPC, QGA) it came from. dispatch_invoke() applies what every
 * front end shares: method lookup, policy, the in-flight limit and params
 * checking, then runs the handler; the front end only shapes the answer. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestlink/jsonrpc.h>

#include "audit.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "envelope.h"
#include "log.h"
#include "method.h"
#include "params.h"

/* Parameter structs up to this size live inside the call (agent.ping's is 8
 * bytes); larger ones are allocated. */
#define CALL_INLINE_PARAMS 64
/* Finished calls kept for reuse: enough for the calls one read of many
 * connections dispatches, small beside max_connections. */
#define CALL_MAX_FREE 256

struct call {
	unsigned refs;
	struct conn *conn;
	const struct call_frontend *fe;
	void *fe_data;
	/* Keeps the borrowed id, method and params alive; for a call read by
	 * envelope_scan(), built only when the audit asks (call_request()). */
	struct json_object *request;
	struct json_object *id;
	const char *method;
	void *params;
	bool notification, answered;
	/* A call read by envelope_scan(): the id is an integer held here, made
	 * a json_object only if call_id() is asked; an owned id or params
	 * value is freed with the call. */
	bool from_envelope, id_is_int, id_owned;
	int64_t id_int;
	enum envelope_params params_kind;
	struct json_object *params_obj;
	bool counted;   /* counted among the connection's calls in flight */
	bool read_only; /* the method's row has METHOD_READONLY (see audit_wanted()) */
	union {
		max_align_t align;
		unsigned char bytes[CALL_INLINE_PARAMS];
	} inline_params;
	struct call *next_free;
};

/* Calls are made and freed on the event loop only (refs is not atomic), so
 * one list serves: a call costs no allocation once the agent is warm. */
static struct call *call_free_list;
static size_t call_n_free;

static struct call *call_alloc(void)
{
	struct call *c = call_free_list;

	if (!c)
		return calloc(1, sizeof(*c));
	call_free_list = c->next_free;
	call_n_free--;
	memset(c, 0, sizeof(*c));
	return c;
}

static void call_release(struct call *c)
{
	if (c->id_owned)
		json_object_put(c->id);
	json_object_put(c->params_obj);
	if (c->params != c->inline_params.bytes)
		free(c->params);
	if (call_n_free >= CALL_MAX_FREE) {
		free(c);
		return;
	}
	c->next_free = call_free_list;
	call_free_list = c;
	call_n_free++;
}

int dispatch_call_new(struct conn *conn, const struct call_frontend *fe, void *fe_data,
	struct json_object *request, struct json_object *id, bool notification, struct call **ret)
{
	struct call *c = call_alloc();

	if (!c)
		return -ENOMEM;
	c->refs = 1;
	c->conn = conn_ref(conn);
	c->fe = fe;
	c->fe_data = fe_data;
	c->request = json_object_get(request);
	c->id = id;
	c->notification = notification;
	c->method = "";
	*ret = c;
	return 0;
}

int dispatch_call_new_envelope(struct conn *conn, const struct call_frontend *fe,
	const struct envelope *e, struct call **ret)
{
	struct json_object *id = NULL;
	struct call *c;
	int r;

	if (e->id_kind == ENVELOPE_ID_STRING) {
		id = json_object_new_string_len(e->id_str, (int)e->id_len);
		if (!id)
			return -ENOMEM;
	}
	r = dispatch_call_new(conn, fe, NULL, NULL, id, e->id_kind == ENVELOPE_ID_ABSENT, &c);
	if (r < 0) {
		json_object_put(id);
		return r;
	}
	c->from_envelope = true;
	c->id_owned = id != NULL;
	c->id_is_int = e->id_kind == ENVELOPE_ID_INT;
	c->id_int = e->id_int;
	c->params_kind = e->params;
	*ret = c;
	return 0;
}

/* The params value of an envelope call ({} or [], NULL when absent), made
 * on first use. Returns 0 or -ENOMEM. */
static int call_envelope_params(struct call *c, struct json_object **ret)
{
	if (!c->params_obj && c->params_kind != ENVELOPE_PARAMS_ABSENT) {
		c->params_obj = c->params_kind == ENVELOPE_PARAMS_OBJECT ? json_object_new_object()
									 : json_object_new_array();
		if (!c->params_obj)
			return -ENOMEM;
	}
	*ret = c->params_obj;
	return 0;
}

/* The request as a json_object, for the audit (which reads its "id" and
 * "params"): the decoded one, or for an envelope call one made now. NULL
 * when out of memory. */
static struct json_object *call_request(struct call *c)
{
	struct json_object *o, *params = NULL, *id;

	if (c->request || !c->from_envelope)
		return c->request;
	o = json_object_new_object();
	if (!o || call_envelope_params(c, &params) < 0)
		return json_object_put(o), NULL;
	id = call_id(c);
	/* Takes ownership of the new references. */
	if ((!c->notification && json_object_object_add(o, "id", json_object_get(id)) < 0) ||
		(params && json_object_object_add(o, "params", json_object_get(params)) < 0)) {
		json_object_put(o);
		return NULL;
	}
	c->request = o;
	return o;
}

struct call *call_ref(struct call *c)
{
	if (c)
		c->refs++;
	return c;
}

/* Before an answer: false if the call was answered already. */
static bool call_answer_begin(struct call *c, int code)
{
	if (c->answered) {
		log_error("Method %s answered twice, ignoring the second answer", c->method);
		return false;
	}
	c->answered = true;
	/* Only calls that reached a method are audited (not unknown names). */
	if (c->method[0] && audit_wanted(c->read_only, code))
		audit_call(c->conn, c->method, call_request(c), code);
	return true;
}

/* The one way out for an answer: the front end shapes and queues it. */
static void call_answer(struct call *c, struct json_object *result, int code, const char *message,
	struct json_object *data)
{
	if (!call_answer_begin(c, code)) {
		json_object_put(result);
		json_object_put(data);
		return;
	}
	c->fe->answer(c, result, code, message, data);
	if (c->counted)
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
	json_object_put(c->request);
	conn_unref(c->conn);
	call_release(c);
	return NULL;
}

void call_reply(struct call *c, struct json_object *result)
{
	call_answer(c, result, 0, NULL, NULL);
}

void call_reply_text(struct call *c, const char *json)
{
	struct json_object *result;

	if (c->fe->answer_text) {
		if (!call_answer_begin(c, 0))
			return;
		c->fe->answer_text(c, json, strlen(json));
		if (c->counted)
			conn_inflight_dec(c->conn);
		return;
	}
	result = json_tokener_parse(json);
	if (!result && strcmp(json, "null") != 0) {
		log_error("Method %s answered with text that is not JSON", c->method);
		call_error(c, GL_RPC_INTERNAL_ERROR, NULL, NULL);
		return;
	}
	call_reply(c, result);
}

void call_error(struct call *c, int code, const char *message, struct json_object *data)
{
	call_answer(c, NULL, code, message, data);
}

void call_os_error(struct call *c, int errnum, const char *message)
{
	/* The proto builder knows the shape of the errno data; take it apart. */
	struct json_object *e = gl_rpc_os_error_new(NULL, errnum, message), *err, *data = NULL;
	char text[256];

	snprintf(text, sizeof(text), "%s", message ? message : strerror(abs(errnum)));
	if (e && json_object_object_get_ex(e, "error", &err) &&
		json_object_object_get_ex(err, "data", &data))
		json_object_get(data);
	json_object_put(e);
	call_answer(c, NULL, GL_RPC_OS_ERROR, text, data);
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

struct json_object *call_id(struct call *c)
{
	if (c->id_is_int && !c->id) {
		c->id = json_object_new_int64(c->id_int);
		c->id_owned = c->id != NULL;
	}
	return c->id;
}

bool call_id_int(struct call *c, int64_t *ret)
{
	if (!c->id_is_int)
		return false;
	*ret = c->id_int;
	return true;
}

bool call_is_notification(struct call *c)
{
	return c->notification;
}

void *call_frontend_data(struct call *c)
{
	return c->fe_data;
}

struct conn *call_connection(struct call *c)
{
	return c->conn;
}

void dispatch_invoke(struct call *call, const char *name, struct json_object *params)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 10);
	const struct config *cfg = config_get();
	const struct method *m;
	char errmsg[256];
	int r;

	/* "rpc." is reserved for the protocol itself: only rpc.discover exists. */
	m = method_find(name);
	if (!m || (strncmp(name, "rpc.", 4) == 0 && strcmp(name, "rpc.discover") != 0)) {
		call_error(call, GL_RPC_METHOD_NOT_FOUND, NULL, NULL);
		return;
	}
	call->method = m->name;
	call->read_only = m->flags & METHOD_READONLY;
	if (!config_method_allowed(cfg, m->name)) {
		char esc[80];
		log_ratelimited(&rl, LOG_NOTICE, 0, "Denied call of %s by policy",
			log_escape(esc, sizeof(esc), m->name, strlen(m->name)));
		call_error(call, GL_RPC_DENIED, "Method denied by policy", NULL);
		return;
	}
	if (conn_inflight(call->conn) >= cfg->max_inflight) {
		snprintf(errmsg, sizeof(errmsg),
			"Too many calls in flight on this connection (max %u)", cfg->max_inflight);
		call_error(call, GL_RPC_LIMIT, errmsg, NULL);
		return;
	}

	if (m->flags & METHOD_RAW_PARAMS) {
		/* params_fill() takes {}, [] and none alike; a raw handler sees which. */
		r = call->from_envelope ? call_envelope_params(call, &params) : 0;
		if (r < 0) {
			call_error(call, GL_RPC_INTERNAL_ERROR, "Out of memory", NULL);
			return;
		}
	} else {
		if (m->params_size <= sizeof(call->inline_params))
			call->params = call->inline_params.bytes; /* zeroed by call_alloc() */
		else
			call->params = calloc(1, m->params_size);
		if (!call->params) {
			call_error(call, GL_RPC_INTERNAL_ERROR, "Out of memory", NULL);
			return;
		}
		r = params_fill(m, params, call->params, errmsg, sizeof(errmsg));
	}
	if (r < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, errmsg, NULL);
		return;
	}

	call->counted = true;
	conn_inflight_inc(call->conn);
	/* Raw-params handlers get the params value itself (maybe NULL). */
	r = m->handler(call, (m->flags & METHOD_RAW_PARAMS) ? (void *)params : call->params);
	if (r < 0 && !call->answered)
		call_os_error(call, r, NULL);
}
