/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libguestlink client: synchronous calls for scripts and simple tools, and an
 * asynchronous API on a libevent base for management tools that keep many
 * calls in flight on one connection (answers matched by id, out of order). */
#pragma once

#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct gl_client;

/* An error answered by the agent (status -EREMOTEIO). */
struct gl_error {
	int code;
	const char *message;      /* borrowed; valid during the callback / until the next call */
	struct json_object *data; /* borrowed; may be NULL */
};

/* Connect to an address string (see address.h). Returns 0 or a negative
 * errno (-ETIMEDOUT, -ECONNREFUSED, -EPROTO, -EINVAL for a bad address).
 * For exec:COMMAND the command is started here (a command that cannot run
 * shows as -ECONNRESET on the first call; its stderr is the caller's) and
 * reaped by gl_client_free(), which may then wait up to twice
 * GL_ADDRESS_EXEC_GRACE_MS for a command that does not exit by itself. */
int gl_client_connect(const char *address, int timeout_ms, struct gl_client **ret);
/* Wrap an already connected stream socket; takes ownership of fd. */
int gl_client_new_fd(int fd, struct gl_client **ret);
struct gl_client *gl_client_free(
	struct gl_client *c); /* NULL-safe; fails pending calls with -ECANCELED */

/* Timeouts (here and in the async API) are in milliseconds of CLOCK_MONOTONIC,
 * and a call never times out before its timeout has fully passed: it may end
 * later (scheduling, a busy loop), never earlier.
 *
 * Synchronous call. params: takes ownership (NULL = no params).
 * Returns 0 and *ret_result (owned by the caller; may be NULL for a JSON null
 * result), or -EREMOTEIO with *ret_error filled (valid until the next call on
 * c), or -ETIMEDOUT, -ECONNRESET, -EPROTO (an answer too large, or an answer
 * to this call that is not valid JSON-RPC). Notifications that arrive while
 * waiting go to the notification callback. Not usable once attached. */
int gl_client_call(struct gl_client *c, const char *method, struct json_object *params,
	int timeout_ms, struct json_object **ret_result, struct gl_error *ret_error);
/* Send a notification (no answer). Takes params. */
int gl_client_notify(struct gl_client *c, const char *method, struct json_object *params);

/* --- asynchronous API --- */

/* status: 0 (result valid, borrowed), -EREMOTEIO (error valid), -ETIMEDOUT,
 * -ECONNRESET (connection lost), -ECANCELED (client freed), -EPROTO (the
 * answer to this call is not valid JSON-RPC, e.g. an error without an integer
 * code). */
typedef void (*gl_reply_fn)(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata);
typedef void (*gl_notification_fn)(struct gl_client *c, const char *method,
	struct json_object *params, void *userdata);
/* The connection ended (error 0 = orderly EOF); pending calls get -ECONNRESET first. */
typedef void (*gl_close_fn)(struct gl_client *c, int error, void *userdata);

void gl_client_set_notification_handler(struct gl_client *c, gl_notification_fn fn, void *userdata);
void gl_client_set_close_handler(struct gl_client *c, gl_close_fn fn, void *userdata);

/* Move the client onto an event loop; from then on use only the async calls. */
int gl_client_attach(struct gl_client *c, struct event_base *base);
/* Queue a call; the reply callback runs exactly once. timeout_ms < 0: none;
 * -ETIMEDOUT never comes early, even on a base without
 * EVENT_BASE_FLAG_PRECISE_TIMER (an early libevent timer is re-armed).
 * Takes params. Returns 0 or a negative errno (callback then not called). */
int gl_client_call_async(struct gl_client *c, const char *method, struct json_object *params,
	int timeout_ms, gl_reply_fn fn, void *userdata);
/* Number of calls waiting for an answer. */
unsigned gl_client_pending(struct gl_client *c);

#ifdef __cplusplus
}
#endif
