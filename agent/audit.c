/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit trail (see audit.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include <systemd/sd-journal.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "audit.h"
#include "log.h"
#include "method.h"
#include "conn.h"

/* What of a client's params a record keeps: strings cut to AUDIT_STRING
 * bytes, containers to AUDIT_ITEMS entries, AUDIT_DEPTH levels, and the
 * whole text to AUDIT_PARAMS bytes once escaped. Enough to see an argv, a
 * path or a hostname; an upload's data shows only as its size. */
#define AUDIT_STRING 160
#define AUDIT_ITEMS 32
#define AUDIT_DEPTH 4
#define AUDIT_PARAMS 1024
#define AUDIT_ID 96

struct audit_record {
	const char *method;
	const char *outcome; /* "ok", "error", "denied" */
	int code;            /* 0 or the JSON-RPC error code */
	int level;
	char peer[64];
	char id[AUDIT_ID];
	char params[AUDIT_PARAMS];
};

/* Calls that change the guest: a flood of them is what an audit is for, so
 * the bound is generous; the suppressed count is logged. */
static struct log_ratelimit audit_rl_changes = LOG_RATELIMIT_INIT(1000, 200);
static struct log_ratelimit audit_rl_reads = LOG_RATELIMIT_INIT(1000, 50);

static bool audit_to_journal(void)
{
	static int journal = -1;

	if (journal < 0) {
		const char *e = getenv("JOURNAL_STREAM");

		journal = e && *e;
	}
	return journal;
}

/* "vsock:CID:PORT", "unix:pid=P,uid=U", "internal" (no socket) or "gone". */
static void audit_peer(struct conn *conn, char *buf, size_t size)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	int fd = conn_fd(conn);

	if (fd < 0) {
		snprintf(buf, size, "%s", conn && conn_closed(conn) ? "gone" : "internal");
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
		snprintf(buf, size, "unknown (%s)", strerror(errno));
		return;
	}
	if (ss.ss_family == AF_VSOCK) {
		const struct sockaddr_vm *vm = (const struct sockaddr_vm *)&ss;

		snprintf(buf, size, "vsock:%u:%u", vm->svm_cid, vm->svm_port);
	} else if (ss.ss_family == AF_UNIX) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
			snprintf(buf, size, "unix:pid=%d,uid=%u", (int)cred.pid, (unsigned)cred.uid);
		else
			snprintf(buf, size, "unix");
	} else
		snprintf(buf, size, "family %d", ss.ss_family);
}

/* Params whose value is a secret: a record says only that one was given.
 * user.set-password's (and QGA guest-set-user-password's) "password". */
static const char *const audit_secret_keys[] = { "password" };

static bool audit_secret(const char *key)
{
	for (size_t i = 0; i < ELEMENTSOF(audit_secret_keys); i++)
		if (strcmp(key, audit_secret_keys[i]) == 0)
			return true;
	return false;
}

/* A bounded copy of a client's value (see AUDIT_*), secrets hidden
 * (audit_secret_keys); NULL only for null. */
static struct json_object *audit_summary(struct json_object *v, int depth)
{
	struct json_object *o;
	char cut[AUDIT_STRING + 64];
	size_t i = 0, n;

	switch (json_object_get_type(v)) {
	case json_type_string:
		n = (size_t)json_object_get_string_len(v);
		if (n <= AUDIT_STRING)
			return json_object_get(v);
		snprintf(cut, sizeof(cut), "%.*s... (%zu bytes)", AUDIT_STRING,
			json_object_get_string(v), n);
		return json_object_new_string(cut);
	case json_type_array:
		if (depth >= AUDIT_DEPTH)
			return json_object_new_string("[...]");
		n = json_object_array_length(v);
		o = json_object_new_array();
		for (i = 0; o && i < n && i < AUDIT_ITEMS; i++)
			json_object_array_add(o,
				audit_summary(json_object_array_get_idx(v, i), depth + 1));
		if (o && n > AUDIT_ITEMS) {
			snprintf(cut, sizeof(cut), "... (%zu more)", n - AUDIT_ITEMS);
			json_object_array_add(o, json_object_new_string(cut));
		}
		return o;
	case json_type_object:
		if (depth >= AUDIT_DEPTH)
			return json_object_new_string("{...}");
		o = json_object_new_object();
		json_object_object_foreach (v, key, val) {
			if (!o || i++ >= AUDIT_ITEMS)
				break;
			json_object_object_add(o, key,
				audit_secret(key) ? json_object_new_string("(secret)")
						  : audit_summary(val, depth + 1));
		}
		return o;
	default:
		return json_object_get(v);
	}
}

/* Compact JSON of v (or "-" when absent), escaped into buf. */
static void audit_text(char *buf, size_t size, struct json_object *v, bool present, bool summarize)
{
	struct json_object *s;
	const char *text;
	size_t n;

	if (!present) {
		snprintf(buf, size, "-");
		return;
	}
	s = summarize ? audit_summary(v, 0) : json_object_get(v);
	text = gl_encode_string(s, &n);
	log_escape(buf, size, text ? text : "?", text ? n : 1);
	json_object_put(s);
}

static void audit_emit(struct audit_record *r)
{
	char msg[256];
	int k;

	snprintf(msg, sizeof(msg), "%s from %s: %s", r->method, r->peer, r->outcome);
	if (r->code != 0) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, " (%d)", r->code);
	}
	if (audit_to_journal()) {
		k = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", r->level,
			"SYSLOG_IDENTIFIER=guestlink-agent", "GUESTLINK_METHOD=%s", r->method,
			"GUESTLINK_PEER=%s", r->peer, "GUESTLINK_OUTCOME=%s", r->outcome,
			"GUESTLINK_CODE=%d", r->code, "GUESTLINK_ID=%s", r->id,
			"GUESTLINK_PARAMS=%s", r->params, NULL);
		if (k >= 0)
			return;
	}
	log_full_errno(r->level, 0, "audit: %s method=%s peer=%s outcome=%s code=%d id=%s params=%s",
		msg, r->method, r->peer, r->outcome, r->code, r->id, r->params);
}

static void audit_record(struct conn *conn, const char *method, struct json_object *request,
	const char *outcome, int code, bool read_only)
{
	int level = read_only ? LOG_DEBUG : LOG_NOTICE;
	struct audit_record r;
	struct json_object *v;
	bool has;

	/* Decide first: the record's text buffers are cleared only for a call
	 * that is logged, not for every read-only call at the default level. */
	if (level > log_get_max_level())
		return;
	r = (struct audit_record){
		.method = method,
		.outcome = outcome,
		.code = code,
		.level = level,
	};
	if (!log_ratelimit_test(read_only ? &audit_rl_reads : &audit_rl_changes))
		return;
	audit_peer(conn, r.peer, sizeof(r.peer));
	has = json_object_object_get_ex(request, "id", &v);
	audit_text(r.id, sizeof(r.id), v, has, false);
	has = json_object_object_get_ex(request, "params", &v);
	audit_text(r.params, sizeof(r.params), v, has, true);
	audit_emit(&r);
}

bool audit_wanted(bool read_only, int code)
{
	int max = log_get_max_level();

	/* The levels audit_record() decides by, without a table lookup. */
	if (code == GL_RPC_DENIED || !read_only)
		return LOG_NOTICE <= max;
	return LOG_DEBUG <= max;
}

void audit_call(struct conn *conn, const char *method, struct json_object *request, int code)
{
	const struct method *m = method_find(method);

	if (code == GL_RPC_DENIED) {
		audit_record(conn, method, request, "denied", code, false);
		return;
	}
	/* A method that is not (or no longer: plugins reload) in the table is
	 * taken to change the guest. */
	audit_record(conn, method, request, code ? "error" : "ok", code,
		m && (m->flags & METHOD_READONLY));
}
