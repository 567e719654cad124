/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON-RPC 2.0 message model, strict validation, and builders. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

enum gl_rpc_code {
	GL_RPC_PARSE_ERROR = -32700,
	GL_RPC_INVALID_REQUEST = -32600,
	GL_RPC_METHOD_NOT_FOUND = -32601,
	GL_RPC_INVALID_PARAMS = -32602,
	GL_RPC_INTERNAL_ERROR = -32603,
	GL_RPC_OS_ERROR = -32000,       /* data: {"errno": "ENOENT", "message": "..."} */
	GL_RPC_DENIED = -32001,         /* denied by policy */
	GL_RPC_NO_SUCH_OBJECT = -32002, /* exec id, file, ... */
	GL_RPC_LIMIT = -32003,          /* a limit was reached */
	GL_RPC_TIMEOUT = -32004,
};

enum gl_msg_kind {
	GL_MSG_REQUEST,      /* method + id */
	GL_MSG_NOTIFICATION, /* method, no id */
	GL_MSG_RESULT,       /* result + id */
	GL_MSG_ERROR,        /* error + id (id may be null) */
};

/* A validated view of one JSON-RPC message. Every pointer is borrowed from the
 * json_object that was parsed and lives as long as it does. */
struct gl_msg {
	enum gl_msg_kind kind;
	bool has_id;
	struct json_object *id;     /* string, integer or NULL (JSON null) */
	const char *method;         /* requests and notifications */
	struct json_object *params; /* array, object, or NULL when absent */
	struct json_object *result; /* GL_MSG_RESULT; may be NULL (JSON null) */
	int error_code;             /* GL_MSG_ERROR */
	const char *error_message;
	struct json_object *error_data; /* may be NULL */
};

/* Validate one message (not a batch). Returns 0 and fills *ret, or -EBADMSG
 * with a static human-readable reason in *ret_reason (when non-NULL).
 * Rules: "jsonrpc" must be exactly "2.0"; id a string, an integer or null
 * (fractional numbers rejected); method a string; params an array or object;
 * exactly one of result/error in responses; error.code an integer and
 * error.message a string; no unknown members in requests. A request whose
 * method starts with "rpc." is valid here: reserving is the dispatcher's job. */
int gl_msg_parse(struct json_object *obj, struct gl_msg *ret, const char **ret_reason);

/* Builders. Each returns a new object owned by the caller (NULL on OOM).
 * Arguments marked "takes" are owned by the new object even on failure. */
struct json_object *gl_rpc_request_new(const char *method, struct json_object *params /* takes */,
	struct json_object *id /* takes; NULL = notification */);
struct json_object *gl_rpc_result_new(struct json_object *id /* borrowed, copied */,
	struct json_object *result /* takes */);
struct json_object *gl_rpc_error_new(struct json_object *id /* borrowed, copied */, int code,
	const char *message /* NULL = standard text */, struct json_object *data /* takes */);
/* -32000 with data {"errno": "EACCES", "message": strerror}. errnum is positive or negative. */
struct json_object *gl_rpc_os_error_new(struct json_object *id, int errnum, const char *message);

/* The standard text for a code ("Parse error", "Method not found", ...). */
const char *gl_rpc_code_message(int code);
/* "ENOENT" for ENOENT, NULL if unknown. */
const char *gl_errno_name(int errnum);

#ifdef __cplusplus
}
#endif
