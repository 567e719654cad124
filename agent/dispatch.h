/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The call and the shared way into the method table. A front end (jsonrpc.c,
 * qga.c) decodes its envelope, makes a call with its own answer function and
 * hands it to dispatch_invoke(), which looks the method up, applies the
 * policy, the in-flight limit and the params schema, and runs the handler. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "params.h"

struct call;
struct conn;
struct envelope;
struct method;
struct method_param;

/* How a front end delivers one answer: either result (takes; may be NULL for
 * JSON null) with code 0, or an error: a JSON-RPC code (GL_RPC_*), a message
 * (NULL = the code's standard text) and data (takes; may be NULL). Runs
 * exactly once per call. */
struct call_frontend {
	const char *name;
	void (*answer)(struct call *c, struct json_object *result, int code, const char *message,
		struct json_object *data);
	/* Optional: a result given as compact JSON text (call_reply_text()),
	 * len bytes; without it the text is parsed and given to answer(). */
	void (*answer_text)(struct call *c, const char *json, size_t len);
};

/* A new call on conn (holds a reference to conn and to request; id is
 * borrowed from request). Returns 0 or -ENOMEM. */
int dispatch_call_new(struct conn *conn, const struct call_frontend *fe, void *fe_data,
	struct json_object *request, struct json_object *id, bool notification, struct call **ret);
/* A new call on conn for a request read by envelope_scan() (nothing of e is
 * kept); its fe_data is NULL. Pass NULL params to dispatch_invoke(): the call
 * carries them. Returns 0 or -ENOMEM. */
int dispatch_call_new_envelope(struct conn *conn, const struct call_frontend *fe,
	const struct envelope *e, struct call **ret);
/* Look up method `name`, check policy, limits and params, run the handler.
 * Every outcome, error or not, is answered through the call's front end; the
 * caller still drops its reference with call_unref(). */
void dispatch_invoke(struct call *call, const char *name, struct json_object *params);

/* For front ends. */
struct json_object *call_id(struct call *c); /* NULL: JSON null (or out of memory) */
/* An integer id the call holds as a number (envelope calls): *ret set, true. */
bool call_id_int(struct call *c, int64_t *ret);
bool call_is_notification(struct call *c);
void *call_frontend_data(struct call *c);
/* The connection even after it closed (call_conn() is NULL then). */
struct conn *call_connection(struct call *c);

/* JSON-RPC 2.0 front end (jsonrpc.c): handle one decoded JSON text from c
 * (takes obj; NULL is the literal null). */
void dispatch_message(struct conn *c, struct json_object *obj);
