/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How guestlink reports: results on stdout, one error line on stderr, or JSON
 * objects on stdout with --json; and the call helper every command uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "guestlink/jsonrpc.h"
#include "guestlink/stream.h"

static void output_error_json(int code_or_errno, bool is_errno, const char *message,
	struct json_object *data)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	if (is_errno) {
		const char *name = gl_errno_name(code_or_errno);
		json_object_object_add(e, "errno",
			name ? json_object_new_string(name) : json_object_new_int(code_or_errno));
	} else
		json_object_object_add(e, "code", json_object_new_int(code_or_errno));
	json_object_object_add(e, "message", json_object_new_string(message));
	if (data)
		json_object_object_add(e, "data", json_object_get(data));
	json_object_object_add(o, "error", e);
	printf("%s\n", gl_encode_string(o, NULL));
	fflush(stdout);
	json_object_put(o);
}

int cmd_error(struct cmd_ctx *ctx, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctx && ctx->json)
		output_error_json(EINVAL, true, msg, NULL);
	else
		fprintf(stderr, "guestlink: %s\n", msg);
	return status;
}

static int output_errno(struct cmd_ctx *ctx, int status, int r, const char *what)
{
	char msg[1024];

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-r));
	if (ctx->json)
		output_error_json(-r, true, msg, NULL);
	else
		fprintf(stderr, "guestlink: %s\n", msg);
	return status;
}

int cmd_connect(struct cmd_ctx *ctx)
{
	char what[1024];
	int r;

	if (ctx->client)
		return 0;
	r = gl_client_connect(ctx->address, ctx->timeout_ms, &ctx->client);
	if (r < 0) {
		snprintf(what, sizeof(what), "%s: cannot connect", ctx->address);
		return output_errno(ctx, CMD_EXIT_UNREACHABLE, r, what);
	}
	return 0;
}

int cmd_call(struct cmd_ctx *ctx, const char *method, struct json_object *params,
	struct json_object **ret_result)
{
	struct json_object *result = NULL;
	struct gl_error e = { 0 };
	char what[1024];
	int r;

	r = cmd_connect(ctx);
	if (r) {
		json_object_put(params);
		return r;
	}
	r = gl_client_call(ctx->client, method, params, ctx->timeout_ms, &result, &e);
	if (r == 0) {
		*ret_result = result;
		return 0;
	}
	if (r == -EREMOTEIO) {
		if (ctx->json)
			output_error_json(e.code, false, e.message, e.data);
		else
			fprintf(stderr, "guestlink: %s: %s (%d)\n", method, e.message, e.code);
		return CMD_EXIT_FAILED;
	}
	if (r == -ETIMEDOUT) {
		snprintf(what, sizeof(what), "%s: no answer within %d ms", method, ctx->timeout_ms);
		return output_errno(ctx, CMD_EXIT_FAILED, r, what);
	}
	/* The connection broke or the agent spoke garbage. */
	snprintf(what, sizeof(what), "%s: %s", ctx->address, method);
	return output_errno(ctx, CMD_EXIT_UNREACHABLE, r, what);
}

void cmd_print_json(struct cmd_ctx *ctx, struct json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;

	flags |= ctx->json ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
	printf("%s\n", json_object_to_json_string_ext(o, flags));
}
