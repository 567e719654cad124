/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON-RPC 2.0 envelope of a plain request, read straight from the bytes
 * without building a json-c tree: the agent's fast path for the requests
 * nearly every client sends, such as
 *   {"jsonrpc":"2.0","method":"agent.ping","id":7}
 *
 * envelope_scan() accepts only a subset of what the stream decoder
 * (proto/stream.c) followed by gl_msg_parse() accepts as a request or a
 * notification, and for that subset yields the same call: a top-level object
 * whose members are among "jsonrpc" (exactly "2.0"), "method", "id" and
 * "params", each at most once, with
 *  - the method a string of printable ASCII without escapes, at most
 *    ENVELOPE_METHOD_MAX bytes;
 *  - the id absent, null, an integer of at most 18 digits, or a string like
 *    the method of at most ENVELOPE_ID_MAX bytes;
 *  - params absent, {} or [] (whitespace inside allowed);
 *  - JSON whitespace (space, tab, LF, CR) anywhere between tokens.
 * Everything else (escapes, non-ASCII, duplicate or unknown members, other
 * params, floats, big numbers, batches, responses, truncated text) is left to
 * the decoder, which answers it as before. tests/fuzz/fuzz-envelope.c checks
 * both on any input. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_METHOD_MAX 64
#define ENVELOPE_ID_MAX 64

enum envelope_id {
	ENVELOPE_ID_ABSENT, /* a notification */
	ENVELOPE_ID_NULL,
	ENVELOPE_ID_INT,
	ENVELOPE_ID_STRING,
};

enum envelope_params {
	ENVELOPE_PARAMS_ABSENT,
	ENVELOPE_PARAMS_OBJECT, /* {} */
	ENVELOPE_PARAMS_ARRAY,  /* [] */
};

/* One request, copied out of the input (the bytes may go away). */
struct envelope {
	char method[ENVELOPE_METHOD_MAX + 1]; /* NUL-terminated */
	enum envelope_id id_kind;
	int64_t id_int;                   /* ENVELOPE_ID_INT */
	char id_str[ENVELOPE_ID_MAX + 1]; /* ENVELOPE_ID_STRING, NUL-terminated */
	size_t id_len;
	enum envelope_params params;
};

/* Read one request from the start of buf[0..len): JSON whitespace, the
 * object, and the whitespace after it. A text longer than max_message bytes
 * (from its '{' to its '}', as the decoder counts) is not taken. Returns the
 * bytes consumed with *ret filled, or 0 with *ret unspecified: the bytes are
 * not (or not yet) such a request and go to the decoder unchanged. */
size_t envelope_scan(const char *buf, size_t len, size_t max_message, struct envelope *ret);
