/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stream framing: JSON texts separated by any whitespace in, one compact JSON
 * text plus "\n" per message out. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evbuffer;

#define GL_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)
#define GL_DEFAULT_MAX_DEPTH 64

enum gl_decode_status {
	GL_DECODE_AGAIN,   /* everything given was consumed; feed more */
	GL_DECODE_MESSAGE, /* *ret_obj holds one complete JSON text (owned by the caller;
			      NULL when the text was the literal null) */
	GL_DECODE_SYNTAX,  /* syntax error: answer -32700 with id null. The decoder then
			      drops input up to and including the next newline, across
			      later calls if needed, and resumes there. A complete text
			      refused afterwards (member names repeated together with
			      an integer beyond int64, or such an integer longer than
			      256 characters) is consumed whole, nothing after it */
	GL_DECODE_TOOBIG,  /* the current text exceeds max_message: answer, then close */
};

struct gl_decoder;

/* max_message: bytes in one JSON text (0 = GL_DEFAULT_MAX_MESSAGE);
 * max_depth: nesting limit (0 = GL_DEFAULT_MAX_DEPTH). Strict JSON only.
 * Integers that fit int64 become json_type_int; one beyond that range (which
 * json-c would clamp) becomes a json_type_double node that serializes as the
 * integer's own text, so it is never silently altered and never mistaken for
 * an int64 by a reader that checks json_type_int. */
struct gl_decoder *gl_decoder_new(size_t max_message, int max_depth);
struct gl_decoder *gl_decoder_free(struct gl_decoder *d); /* NULL-safe, returns NULL */

/* Decode from buf[0..len). Returns the number of bytes consumed and sets
 * *ret_status. Call again with the unconsumed rest until it returns
 * GL_DECODE_AGAIN. After GL_DECODE_TOOBIG the decoder must not be fed again. */
size_t gl_decoder_decode(struct gl_decoder *d, const char *buf, size_t len,
	enum gl_decode_status *ret_status, struct json_object **ret_obj);

/* Bytes of the current, unfinished text held by the decoder (never more than
 * max_message): what a peer can make it retain. */
size_t gl_decoder_pending(const struct gl_decoder *d);

/* Convenience over an evbuffer: decodes from the front of `in`, draining what
 * was consumed. Same statuses; returns GL_DECODE_AGAIN when `in` is empty. */
enum gl_decode_status gl_decoder_decode_evbuffer(struct gl_decoder *d, struct evbuffer *in,
	struct json_object **ret_obj);

/* Append obj as compact JSON plus "\n". Returns 0 or -ENOMEM. */
int gl_encode_evbuffer(struct json_object *obj, struct evbuffer *out);
/* Compact JSON text (no newline) owned by obj; *ret_len set when non-NULL. */
const char *gl_encode_string(struct json_object *obj, size_t *ret_len);

#ifdef __cplusplus
}
#endif
