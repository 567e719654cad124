/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How guestlink reports: results on stdout, one error line on stderr, or JSON
 * objects on stdout with --json; the call helper every command uses; and the
 * one place where text from the guest is made harmless for a terminal. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "guestlink/address.h"
#include "guestlink/jsonrpc.h"
#include "guestlink/stream.h"
#include "macro.h"

/* A backend that needed this long to close the CONNECT got no answer from the
 * guest (its connect timeout, 5 s in vhost-user-vsock); a guest's RST comes
 * back in milliseconds. */
#define OUTPUT_GUEST_SILENT_S 2.0

/* --- guest text --- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when s[0] does not
 * start one (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
static size_t output_utf8_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;
	} else
		return 0;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Control characters and stray bytes as \xNN (text) or \u00NN (inside JSON
 * text, where json-c already escaped C0 but leaves DEL and C1 alone). */
static void output_escape(FILE *f, const char *s, size_t len, bool json)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = output_utf8_len(p + i, len - i);
		unsigned cp;

		/* json-c escaped every control character inside strings: a raw
		 * newline there is its own pretty-printing. */
		if (n == 1 && ((p[i] >= 0x20 && p[i] != 0x7f) || (json && p[i] == '\n'))) {
			fputc(p[i], f);
			i++;
			continue;
		}
		/* C1 controls (U+0080..U+009F) are 0xc2 0x80..0x9f in UTF-8. */
		if (n > 1 && !(p[i] == 0xc2 && p[i + 1] <= 0x9f)) {
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		cp = n == 2 ? p[i + 1] : p[i];
		fprintf(f, json ? "\\u%04x" : "\\x%02x", cp);
		i += n ? n : 1;
	}
}

char *cmd_escape(const char *s)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		return NULL;
	output_escape(f, s, strlen(s), false);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

void cmd_put(FILE *f, const char *s)
{
	if (!s)
		return;
	if (isatty(fileno(f)))
		output_escape(f, s, strlen(s), false);
	else
		fputs(s, f);
}

void cmd_printf(FILE *f, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	n = vasprintf(&s, fmt, ap);
#pragma GCC diagnostic pop
	va_end(ap);
	if (n < 0)
		return;
	if (n > 0 && s[n - 1] == '\n') {
		s[n - 1] = 0;
		cmd_put(f, s);
		fputc('\n', f);
	} else
		cmd_put(f, s);
	free(s);
}

/* --- typed accessors --- */

static struct json_object *output_member(struct json_object *o, const char *key, enum json_type type)
{
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
		!json_object_is_type(v, type))
		return NULL;
	return v;
}

const char *cmd_get_string(struct json_object *o, const char *key)
{
	struct json_object *v = output_member(o, key, json_type_string);

	return v ? json_object_get_string(v) : NULL;
}

bool cmd_get_int64(struct json_object *o, const char *key, int64_t *ret)
{
	struct json_object *v = output_member(o, key, json_type_int);

	if (!v)
		return false;
	*ret = json_object_get_int64(v);
	return true;
}

bool cmd_get_bool(struct json_object *o, const char *key, bool *ret)
{
	struct json_object *v = output_member(o, key, json_type_boolean);

	if (!v)
		return false;
	*ret = json_object_get_boolean(v);
	return true;
}

struct json_object *cmd_get_object(struct json_object *o, const char *key)
{
	return output_member(o, key, json_type_object);
}

struct json_object *cmd_get_array(struct json_object *o, const char *key)
{
	return output_member(o, key, json_type_array);
}

struct json_object *cmd_json_rounded(double v, int decimals)
{
	char s[64];

	if (!isfinite(v))
		return json_object_new_double(0);
	snprintf(s, sizeof(s), "%.*f", decimals, v);
	return json_object_new_double_s(strtod(s, NULL), s);
}

/* --- errors --- */

/* An error object on stdout, one line, escaped like cmd_print_json() on a
 * terminal. Takes o. */
static void output_error_object(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	if (isatty(STDOUT_FILENO))
		output_escape(stdout, s, strlen(s), true);
	else
		fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	json_object_put(o);
}

static void output_error_json(int code, int errnum, const char *message, const char *object,
	struct json_object *data)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	if (code)
		json_object_object_add(e, "code", json_object_new_int(code));
	if (errnum) {
		const char *name = gl_errno_name(errnum);
		json_object_object_add(e, "errno",
			name ? json_object_new_string(name) : json_object_new_int(errnum));
	}
	json_object_object_add(e, "message", json_object_new_string(message));
	if (object)
		json_object_object_add(e, "object", json_object_new_string(object));
	if (data)
		json_object_object_add(e, "data", json_object_get(data));
	json_object_object_add(o, "error", e);
	output_error_object(o);
}

static void output_error_line(const char *msg)
{
	fputs("guestlink: ", stderr);
	cmd_put(stderr, msg);
	fputc('\n', stderr);
}

int cmd_error(struct cmd_ctx *ctx, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ctx && ctx->json)
		output_error_json(0, EINVAL, msg, NULL, NULL);
	else
		output_error_line(msg);
	return status;
}

/* Bytes of an object named in an error message, so that the reason after it fits. */
#define OUTPUT_OBJECT_MAX 600

int cmd_error_errno(struct cmd_ctx *ctx, int status, int r, const char *object)
{
	char msg[1024];
	size_t len = strlen(object);

	/* A long object (a path 256 directories deep) must not push the
	 * reason out of the message: keep its start and end. */
	if (len > OUTPUT_OBJECT_MAX)
		snprintf(msg, sizeof(msg), "%.*s...%s: %s", OUTPUT_OBJECT_MAX / 2, object,
			object + len - OUTPUT_OBJECT_MAX / 2, strerror(abs(r)));
	else
		snprintf(msg, sizeof(msg), "%s: %s", object, strerror(abs(r)));
	if (ctx && ctx->json)
		output_error_json(0, abs(r), msg, object, NULL);
	else
		output_error_line(msg);
	return status;
}

int cmd_report_call_error(struct cmd_ctx *ctx, const char *method, const char *object, int r,
	const struct gl_error *e)
{
	const char *prefix = object ?: method, *ename = NULL, *emsg = NULL;
	char msg[2048];

	if (r != -EREMOTEIO) {
		if (r == -ETIMEDOUT)
			snprintf(msg, sizeof(msg), "%s: no answer within %d ms", prefix,
				ctx->timeout_ms);
		else
			/* The connection broke or the agent spoke garbage. */
			snprintf(msg, sizeof(msg), "%s: %s: %s", ctx->address, method, strerror(-r));
		if (ctx->json)
			output_error_json(0, -r, msg, object, NULL);
		else
			output_error_line(msg);
		return r == -ETIMEDOUT ? CMD_EXIT_FAILED : CMD_EXIT_UNREACHABLE;
	}
	/* OS errors carry {"errno": "ENOENT", "message": "No such file or directory"}. */
	ename = cmd_get_string(e->data, "errno");
	emsg = cmd_get_string(e->data, "message");
	if (ename && emsg && object)
		snprintf(msg, sizeof(msg), "%s: %s", object, emsg);
	else if (ename && emsg)
		snprintf(msg, sizeof(msg), "%s: %s: %s (%s)", method, e->message, emsg, ename);
	else if (cmd_get_string(e->data, "stderr") && *cmd_get_string(e->data, "stderr"))
		/* A plugin's or a process's own words say most. */
		snprintf(msg, sizeof(msg), "%s: %s (%d): %.*s", prefix, e->message, e->code,
			(int)strcspn(cmd_get_string(e->data, "stderr"), "\n"),
			cmd_get_string(e->data, "stderr"));
	else
		snprintf(msg, sizeof(msg), "%s: %s (%d)", prefix, e->message, e->code);
	if (ctx->json) {
		struct json_object *o = json_object_new_object(), *err = json_object_new_object();

		json_object_object_add(err, "code", json_object_new_int(e->code));
		json_object_object_add(err, "message", json_object_new_string(e->message));
		if (ename)
			json_object_object_add(err, "errno", json_object_new_string(ename));
		if (object)
			json_object_object_add(err, "object", json_object_new_string(object));
		if (e->data)
			json_object_object_add(err, "data", json_object_get(e->data));
		json_object_object_add(o, "error", err);
		output_error_object(o);
	} else
		output_error_line(msg);
	return CMD_EXIT_FAILED;
}

/* --- connect and call --- */

/* Does anything listen on the Unix socket at path? */
static bool output_unix_listens(const char *path)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static double output_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_try_connect(struct cmd_ctx *ctx, const char **ret_why)
{
	struct gl_address a;
	double t0 = output_now();
	int r;

	r = gl_client_connect(ctx->address, ctx->timeout_ms, &ctx->client);
	if (r >= 0)
		return 0;
	*ret_why = NULL;
	if (gl_address_parse(ctx->address, &a) < 0 || a.type != GL_ADDRESS_HYBRID)
		return r;
	/* The backend closes the client socket at once when the guest answers
	 * RST, and only after its own connect timeout when nobody answers (no
	 * VM, or a guest without a vsock driver yet): tell those apart, and both
	 * from "no backend". */
	if (r == -ECONNREFUSED && output_unix_listens(a.path) &&
		output_now() - t0 >= OUTPUT_GUEST_SILENT_S)
		*ret_why = "the backend is up but the guest did not answer: is the VM running "
			   "(or still booting)?";
	else if (r == -ECONNREFUSED && output_unix_listens(a.path))
		*ret_why = "the backend is up but the guest refused the port: is the agent "
			   "installed and its socket unit started?";
	else if (r == -ETIMEDOUT && output_unix_listens(a.path))
		*ret_why = "the backend is up but the guest did not answer: is the VM running "
			   "(or still booting)?";
	else if (r == -ECONNREFUSED || r == -ENOENT)
		*ret_why =
			"no backend listens there: is the VM's vhost-user-vsock backend running?";
	return r;
}

int cmd_connect(struct cmd_ctx *ctx)
{
	const char *why = NULL;
	char msg[1024];
	int r;

	if (ctx->client)
		return 0;
	r = cmd_try_connect(ctx, &why);
	if (r == 0)
		return 0;
	if (why)
		snprintf(msg, sizeof(msg), "%s: cannot connect: %s (%s)", ctx->address,
			strerror(-r), why);
	else
		snprintf(msg, sizeof(msg), "%s: cannot connect: %s", ctx->address, strerror(-r));
	if (ctx->json)
		output_error_json(0, -r, msg, ctx->address, NULL);
	else
		output_error_line(msg);
	return CMD_EXIT_UNREACHABLE;
}

int cmd_call_on(struct cmd_ctx *ctx, const char *method, const char *object,
	struct json_object *params, struct json_object **ret_result)
{
	struct json_object *result = NULL;
	struct gl_error e = { 0 };
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
	return cmd_report_call_error(ctx, method, object, r, &e);
}

void cmd_print_json(struct cmd_ctx *ctx, struct json_object *o)
{
	int flags = JSON_C_TO_STRING_NOSLASHESCAPE;
	const char *s;

	flags |= ctx->json ? JSON_C_TO_STRING_PLAIN
			   : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
	s = json_object_to_json_string_ext(o, flags);
	if (isatty(STDOUT_FILENO))
		output_escape(stdout, s, strlen(s), true);
	else
		fputs(s, stdout);
	fputc('\n', stdout);
}

/* --- help --- */

void cmd_help(FILE *f, const struct cmd_entry *cmd)
{
	fprintf(f, "Usage: guestlink [-a ADDR | -m NAME] [--json] %s%s%s\n\n%c%s.\n", cmd->name,
		*cmd->usage ? " " : "", cmd->usage, toupper((unsigned char)cmd->summary[0]),
		cmd->summary + 1);
	fprintf(f, "\nOptions:\n%s  -h, --help  show this help\n", cmd->options ?: "");
	if (cmd->example)
		fprintf(f, "\nExample:\n%s", cmd->example);
}
