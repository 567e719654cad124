/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The method table: one `const struct method` row per RPC method, in one file
 * per family (methods/agent.c, methods/system.c, ...). A generic dispatcher
 * validates params against the row's schema and fills the handler's params
 * struct (systemd's parameter tables are the model); handlers never see raw,
 * unchecked JSON. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

struct call;
struct conn;
struct event_base;

enum param_type {
	PARAM_STRING,       /* const char *  (valid UTF-8, no NUL, length <= max when max > 0) */
	PARAM_INT,          /* int64_t       (min <= v <= max; def when absent) */
	PARAM_BOOL,         /* bool          (def when absent) */
	PARAM_OBJECT,       /* struct json_object *  (borrowed; NULL when absent) */
	PARAM_ARRAY,        /* struct json_object *  (array; elements <= max when max > 0) */
	PARAM_STRING_ARRAY, /* struct json_object *  (array of strings; elements <= max) */
	PARAM_ANY,          /* struct json_object *  (any JSON value) */
};

#define PARAM_MANDATORY (1u << 0)

struct method_param {
	const char *name;
	enum param_type type;
	size_t offset;  /* offsetof() into the handler's params struct */
	unsigned flags; /* PARAM_MANDATORY */
	int64_t min, max, def;
	const char *const *choices; /* PARAM_STRING: NULL-terminated allowed values */
	const char *description;    /* for rpc.discover */
};

/* Flags of a method. */
#define METHOD_RAW_PARAMS                                                          \
	(1u << 0)               /* no schema: handler gets the params value itself \
				   (struct json_object *, may be NULL) — agent.echo */
#define METHOD_WRITES (1u << 1) /* changes the guest's filesystems: refused while frozen */
#define METHOD_READONLY                                               \
	(1u << 2) /* only reads: audited at debug level. Every method \
		     without it is taken to change the guest and is   \
		     audited at notice level (agent/audit.h) */

/* Return 0 after replying or after taking a reference to reply later;
 * a negative errno makes the dispatcher answer -32000 with that errno. */
typedef int (*method_fn)(struct call *call, void *params);

struct method {
	const char *name;
	const char *summary;               /* one line, for rpc.discover and `guestlink methods` */
	const struct method_param *params; /* terminated by a row with name == NULL; NULL = none */
	size_t params_size;                /* sizeof the handler's params struct */
	method_fn handler;
	unsigned flags;
	const char *result_schema; /* JSON Schema text of the result, for rpc.discover; may be NULL */
};

/* Families register their table at startup. `methods` ends with name == NULL. */
void method_register(const struct method *methods);
const struct method *method_find(const char *name);
/* Iterate all registered methods in registration order; *iter starts at 0. */
const struct method *method_next(size_t *iter);
/* Dynamic methods (plugins): rows owned by the caller, replaced wholesale on reload. */
void method_register_dynamic(const struct method *methods, size_t n);

/* --- one in-flight request --- */

struct call *call_ref(struct call *c);
struct call *call_unref(struct call *c); /* NULL-safe; returns NULL */

/* Answer the call exactly once. Replying after the client went away is a no-op
 * (the call still completes and its in-flight slot is freed). */
void call_reply(struct call *c, struct json_object *result /* takes */);
/* call_reply() of a constant result given as compact JSON text, e.g.
 * "\"pong\"": a front end that writes text answers builds no json-c
 * object for it. Only for constant, valid JSON (a bad text answers
 * -32603). */
void call_reply_text(struct call *c, const char *json);
void call_error(struct call *c, int code, const char *message, struct json_object *data /* takes */);
void call_os_error(struct call *c, int errnum, const char *message); /* -32000 + errno name */
bool call_answered(struct call *c);

const char *call_method(struct call *c);
/* The connection the call came on (borrowed; NULL once it closed). */
struct conn *call_conn(struct call *c);
struct event_base *call_event_base(struct call *c);

/* --- the connection, for methods that stream notifications --- */

struct conn *conn_ref(struct conn *c);
struct conn *conn_unref(struct conn *c);
bool conn_closed(struct conn *c);
/* Queue a notification to this connection only. Returns 0, or -EPIPE once closed. */
int conn_notify(struct conn *c, const char *method, struct json_object *params /* takes */);
/* True while the output buffer is above its high-water mark: producers stop
 * reading their source and wait for the drain callback. */
bool conn_output_full(struct conn *c);
/* Called once each time the output buffer falls below the low-water mark after
 * having been full, and once when the connection closes (conn_closed() true). */
typedef void (*conn_drain_fn)(struct conn *c, void *userdata);
/* Returns 0 or -ENOMEM (then fn will not be called: the caller undoes what
 * relied on it). */
int conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata);
void conn_remove_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata);

/* Raw data side channel: hand the connection's socket to a method. The
 * connection stops reading requests at once; when the answers queued so far
 * (the answer of the call that asked) are written, fn gets a duplicate of
 * the socket (O_CLOEXEC, non-blocking) and the input bytes already read past
 * that call (to be consumed during the call), and the connection closes. fd
 * is -1 when the connection failed first. Returns 0 or -ENOTCONN. */
struct evbuffer;
typedef void (*conn_takeover_fn)(int fd, struct evbuffer *early, void *userdata);
int conn_take_over(struct conn *c, conn_takeover_fn fn, void *userdata);
