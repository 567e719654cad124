/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See envelope-diff.h. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "conn.h"
#include "envelope-diff.h"
#include "envelope.h"
#include "log.h"
#include "method.h"
#include "methods/methods.h"

#define ENVELOPE_DIFF_MAX_MESSAGE 4096

static struct event_base *diff_base;
static struct conn_proto diff_proto_slow; /* conn_proto_jsonrpc without the fast path */
static char *diff_answers;

void envelope_diff_init(void)
{
	static const char *const deny[] = { "system.*", "agent.info" };
	struct config *c;

	if (diff_base)
		return;
	log_set_max_level(LOG_CRIT);
	methods_agent_register();
	methods_system_register();
	diff_base = event_base_new();
	if (!diff_base || config_load(NULL, false, &c) < 0)
		abort();
	c->max_message_bytes = ENVELOPE_DIFF_MAX_MESSAGE;
	c->max_inflight = 4;
	free(c->deny[0]);
	free(c->deny);
	c->deny = calloc(sizeof(deny) / sizeof(deny[0]) + 1, sizeof(char *));
	if (!c->deny)
		abort();
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
		if (!(c->deny[i] = strdup(deny[i])))
			abort();
	config_set(c);
	diff_proto_slow = conn_proto_jsonrpc;
	diff_proto_slow.envelope = NULL;
}

static bool diff_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The decoder and gl_msg_parse() on the first text of data must give what
 * envelope_scan() gave (e, `used` bytes). */
static const char *diff_structure(const char *data, size_t len, const struct envelope *e, size_t used)
{
	struct gl_decoder *d = gl_decoder_new(ENVELOPE_DIFF_MAX_MESSAGE, 0);
	struct json_object *obj = NULL;
	enum gl_decode_status st;
	const char *why = NULL;
	struct gl_msg m;
	size_t n;

	if (!d)
		abort();
	n = gl_decoder_decode(d, data, len, &st, &obj);
	if (st != GL_DECODE_MESSAGE)
		why = "the decoder did not take a text the scanner took";
	else if (n > used)
		why = "the decoder's text is longer than the scanner's";
	else {
		for (size_t i = n; i < used; i++)
			if (!diff_is_space(data[i]))
				why = "the scanner's text is longer than the decoder's";
	}
	if (!why && gl_msg_parse(obj, &m, NULL) < 0)
		why = "gl_msg_parse() refused a text the scanner took";
	if (why)
		goto out;
	if (m.kind != (e->id_kind == ENVELOPE_ID_ABSENT ? GL_MSG_NOTIFICATION : GL_MSG_REQUEST))
		why = "kind differs";
	else if (strlen(m.method) != strlen(e->method) || strcmp(m.method, e->method) != 0)
		why = "method differs";
	else if (m.has_id != (e->id_kind != ENVELOPE_ID_ABSENT))
		why = "presence of the id differs";
	else if (e->id_kind == ENVELOPE_ID_NULL && m.id)
		why = "null id differs";
	else if (e->id_kind == ENVELOPE_ID_INT && (!json_object_is_type(m.id, json_type_int) ||
							  json_object_get_int64(m.id) != e->id_int))
		why = "integer id differs";
	else if (e->id_kind == ENVELOPE_ID_STRING &&
		 (!json_object_is_type(m.id, json_type_string) ||
			 (size_t)json_object_get_string_len(m.id) != e->id_len ||
			 memcmp(json_object_get_string(m.id), e->id_str, e->id_len) != 0))
		why = "string id differs";
	else if (e->params == ENVELOPE_PARAMS_ABSENT && m.params)
		why = "params present for the decoder only";
	else if (e->params == ENVELOPE_PARAMS_OBJECT &&
		 (!json_object_is_type(m.params, json_type_object) ||
			 json_object_object_length(m.params) != 0))
		why = "params {} differ";
	else if (e->params == ENVELOPE_PARAMS_ARRAY &&
		 (!json_object_is_type(m.params, json_type_array) ||
			 json_object_array_length(m.params) != 0))
		why = "params [] differ";
out:
	json_object_put(obj);
	gl_decoder_free(d);
	return why;
}

/* data through a new detached connection of proto; returns its answers as a
 * NUL-terminated string (malloc'ed). */
static char *diff_run(const struct conn_proto *proto, const char *data, size_t len, size_t chunk)
{
	struct evbuffer *all = evbuffer_new();
	struct conn *conn = conn_new_detached_proto(diff_base, proto);
	char *text;
	size_t n;

	if (!all || !conn)
		abort();
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len && !conn_closed(conn); off += chunk) {
		n = len - off < chunk ? len - off : chunk;
		conn_feed(conn, data + off, n);
		evbuffer_add_buffer(all, conn_output(conn));
	}
	conn_close_unref(conn);
	/* Delayed pings still hold their calls: answer into the void and free them. */
	methods_agent_cleanup();
	event_base_loop(diff_base, EVLOOP_NONBLOCK);
	n = evbuffer_get_length(all);
	text = malloc(n + 1);
	if (!text)
		abort();
	evbuffer_remove(all, text, n);
	text[n] = '\0';
	evbuffer_free(all);
	return text;
}

const char *envelope_diff(const char *data, size_t len, size_t chunk, bool *ret_taken)
{
	struct envelope e;
	const char *why = NULL;
	size_t used;
	char *slow;

	used = envelope_scan(data, len, ENVELOPE_DIFF_MAX_MESSAGE, &e);
	if (ret_taken)
		*ret_taken = used > 0;
	if (used > len)
		return "the scanner took more than it was given";
	if (used > 0)
		why = diff_structure(data, len, &e, used);
	free(diff_answers);
	diff_answers = diff_run(&conn_proto_jsonrpc, data, len, chunk);
	slow = diff_run(&diff_proto_slow, data, len, chunk);
	if (!why && strcmp(diff_answers, slow) != 0)
		why = "the answers differ from those without the fast path";
	free(slow);
	return why;
}

const char *envelope_diff_answers(void)
{
	return diff_answers ? diff_answers : "";
}
