/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stream framing over json-c's incremental tokener.
 *
 * json-c is used for the grammar only. Three things it gets wrong or leaves
 * to us are checked here, in one pass over the bytes it consumed:
 *  - UTF-8: JSON_TOKENER_VALIDATE_UTF8 in json-c 0.16 rejects a multi-byte
 *    sequence split across two feeds, and accepts encoded surrogates;
 *  - strict mode still accepts NaN/Infinity and raw control characters
 *    inside strings;
 *  - a NUL byte ends its input like end of data;
 *  - a number split across feeds is continued where one buffer would have
 *    ended it ("[66" then "-]" yields [66]), so every number is checked
 *    against the JSON number grammar here, and top-level numbers are delimited
 *    by that grammar before json-c sees them;
 *  - an integer beyond int64/uint64 is clamped without an error (json-c 0.16's
 *    json_parse_int64/json_parse_uint64 keep strtoll's saturated value), and
 *    json_object_get_int64() clamps one beyond int64, so
 *    the scanner keeps the text of each integer that does not fit and the
 *    finished tree carries it as a number json-c serializes from that text
 *    (json_object_new_double_s). It is then not of json_type_int: an id that
 *    does not fit is refused (-32600), an integer parameter refused (-32602),
 *    and a value passed through (agent.echo, plugins) comes out as sent.
 * The size cap is enforced by never feeding the tokener more than what is left
 * of max_message, so a huge text is refused without being buffered.
 *
 * Cost: json-c 0.16's json_tokener_parse_ex() switches LC_NUMERIC to "C" on
 * every call with duplocale(uselocale(NULL)) + newlocale(LC_NUMERIC_MASK, "C",
 * dup), and frees both on return: two allocations of a whole locale object
 * and a getenv() scan per call, about a tenth of an agent.ping. When the
 * thread's locale is already glibc's static "C" object, duplocale() returns it
 * and newlocale() on it returns it again, with no allocation and no freeing
 * (glibc locale/duplocale.c, newlocale.c, freelocale.c). So each call of the
 * tokener runs under the "C" locale object of the decoder (stream_parse()),
 * and the caller's locale is put back at once. Nothing else changes: the only
 * locale-dependent work of the tokener is its number conversion, which it
 * runs under LC_NUMERIC "C" in any case. */
#include <locale.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "guestlink/stream.h"
#include "macro.h"

/* Longest top-level number accepted (they are never valid messages anyway),
 * and longest integer out of the int64/uint64 range kept exactly. */
#define STREAM_MAX_NUMBER 256

/* Decimal digits of the int64 bounds: INT64_MAX and -INT64_MIN. */
#define STREAM_INT64_MAX_DIGITS "9223372036854775807"
#define STREAM_INT64_MIN_DIGITS "9223372036854775808"

/* An integer of the current text that json-c cannot hold: the ordinal of its
 * integer token in the text and the token itself. */
struct stream_bigint {
	size_t ordinal;
	char *text;
};

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
enum {
	NUM_START,     /* nothing yet */
	NUM_MINUS,     /* "-" */
	NUM_ZERO,      /* leading "0" (final) */
	NUM_INT,       /* integer digits (final) */
	NUM_DOT,       /* "." */
	NUM_FRAC,      /* fraction digits (final) */
	NUM_EXP,       /* "e" */
	NUM_EXP_SIGN,  /* "e+" / "e-" */
	NUM_EXP_DIGIT, /* exponent digits (final) */
	NUM_END,       /* the number ended before this character */
	NUM_BAD,
};

struct gl_decoder {
	struct json_tokener *tok;
	locale_t c_locale; /* newlocale(LC_ALL_MASK, "C"): (locale_t)0 if it failed */
	size_t max_message;
	size_t cur;    /* bytes of the current text given to the tokener */
	bool in_text;  /* a text has started (leading whitespace skipped) */
	bool skipping; /* after a syntax error: drop input through the next newline */
	bool toobig;

	/* A top-level number being collected (see stream_number_step). */
	bool in_number;
	unsigned char num_state;
	size_t num_len;
	char num[STREAM_MAX_NUMBER + 1];

	/* Scanner state, carried across feeds of one text. */
	bool in_string, escape;
	bool scan_in_num;
	unsigned char scan_num;                    /* number grammar state while scan_in_num */
	bool scan_num_int;                         /* no fraction or exponent so far */
	size_t scan_num_len;                       /* characters of the number so far */
	char scan_num_text[STREAM_MAX_NUMBER + 1]; /* its first characters */
	size_t ints;                               /* integer tokens of the text so far */
	size_t members;                            /* object members (':' outside strings) so far */
	struct stream_bigint *big;                 /* integers out of range, in text order */
	size_t n_big;
	unsigned char need;   /* UTF-8 continuation bytes still expected */
	unsigned char lo, hi; /* allowed range of the next continuation byte */
};

static void stream_big_clear(struct gl_decoder *d)
{
	for (size_t i = 0; i < d->n_big; i++)
		free(d->big[i].text);
	free(d->big);
	d->big = NULL;
	d->n_big = 0;
	d->ints = 0;
	d->members = 0;
}

static void stream_text_reset(struct gl_decoder *d)
{
	stream_big_clear(d);
	json_tokener_reset(d->tok);
	d->cur = 0;
	d->in_text = false;
	d->in_number = false;
	d->num_len = 0;
	d->in_string = d->escape = false;
	d->scan_in_num = false;
	d->need = 0;
}

struct gl_decoder *gl_decoder_new(size_t max_message, int max_depth)
{
	struct gl_decoder *d;

	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->max_message = max_message ? max_message : GL_DEFAULT_MAX_MESSAGE;
	d->tok = json_tokener_new_ex(max_depth > 0 ? max_depth : GL_DEFAULT_MAX_DEPTH);
	if (!d->tok) {
		free(d);
		return NULL;
	}
	/* Trailing characters are the next text, not an error. */
	json_tokener_set_flags(d->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	/* Only a speed-up: without it the tokener runs in the caller's locale. */
	d->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	return d;
}

struct gl_decoder *gl_decoder_free(struct gl_decoder *d)
{
	if (!d)
		return NULL;
	stream_big_clear(d);
	json_tokener_free(d->tok);
	if (d->c_locale)
		freelocale(d->c_locale);
	free(d);
	return NULL;
}

size_t gl_decoder_pending(const struct gl_decoder *d)
{
	return d ? d->cur : 0;
}

/* json_tokener_parse_ex() under the decoder's "C" locale (see the top of
 * this file); the calling thread's locale is restored before returning. */
static struct json_object *stream_parse(struct gl_decoder *d, const char *str, int len)
{
	struct json_object *obj;
	locale_t old;

	if (!d->c_locale)
		return json_tokener_parse_ex(d->tok, str, len);
	old = uselocale(d->c_locale);
	obj = json_tokener_parse_ex(d->tok, str, len);
	if (old)
		uselocale(old);
	return obj;
}

static unsigned char stream_number_step(unsigned char state, char c)
{
	bool digit = c >= '0' && c <= '9';

	switch (state) {
	case NUM_START:
		return c == '-' ? NUM_MINUS : c == '0' ? NUM_ZERO : digit ? NUM_INT : NUM_BAD;
	case NUM_MINUS:
		return c == '0' ? NUM_ZERO : digit ? NUM_INT : NUM_BAD;
	case NUM_ZERO:
		return c == '.' ? NUM_DOT : (c == 'e' || c == 'E') ? NUM_EXP : NUM_END;
	case NUM_INT:
		return digit                    ? NUM_INT
		       : c == '.'               ? NUM_DOT
		       : (c == 'e' || c == 'E') ? NUM_EXP
						: NUM_END;
	case NUM_DOT:
		return digit ? NUM_FRAC : NUM_BAD;
	case NUM_FRAC:
		return digit ? NUM_FRAC : (c == 'e' || c == 'E') ? NUM_EXP : NUM_END;
	case NUM_EXP:
		return (c == '+' || c == '-') ? NUM_EXP_SIGN : digit ? NUM_EXP_DIGIT : NUM_BAD;
	case NUM_EXP_SIGN:
	case NUM_EXP_DIGIT:
		return digit ? NUM_EXP_DIGIT : state == NUM_EXP_DIGIT ? NUM_END : NUM_BAD;
	default:
		return NUM_BAD;
	}
}

/* Does the integer token `t` (grammar-checked, no fraction or exponent) fit
 * int64? json-c also holds uint64 exactly, but every reader here takes
 * integers through json_object_get_int64(), which clamps those above
 * INT64_MAX: so they are kept as text like any other integer out of range. */
static bool stream_int_fits(const char *t, size_t len)
{
	const char *max = STREAM_INT64_MAX_DIGITS;
	size_t max_len = sizeof(STREAM_INT64_MAX_DIGITS) - 1;

	if (t[0] == '-') {
		t++;
		len--;
		max = STREAM_INT64_MIN_DIGITS;
		max_len = sizeof(STREAM_INT64_MIN_DIGITS) - 1;
	}
	if (len != max_len)
		return len < max_len; /* no leading zeros: the JSON grammar forbids them */
	return memcmp(t, max, len) <= 0;
}

/* A number token inside a text ended: remember an integer json-c would clamp.
 * Returns 0, -E2BIG for such an integer longer than STREAM_MAX_NUMBER, -ENOMEM. */
static int stream_number_done(struct gl_decoder *d)
{
	struct stream_bigint *big;
	size_t ordinal;

	if (!d->scan_num_int)
		return 0;
	ordinal = d->ints++;
	if (d->scan_num_len <= STREAM_MAX_NUMBER && stream_int_fits(d->scan_num_text, d->scan_num_len))
		return 0;
	if (d->scan_num_len > STREAM_MAX_NUMBER)
		return -E2BIG;
	big = realloc(d->big, (d->n_big + 1) * sizeof(*big));
	if (!big)
		return -ENOMEM;
	d->big = big;
	big[d->n_big].text = strndup(d->scan_num_text, d->scan_num_len);
	if (!big[d->n_big].text)
		return -ENOMEM;
	big[d->n_big++].ordinal = ordinal;
	return 0;
}

/* Bytes the scanner passes over without a change of state, in the two places
 * where runs of them are long: inside a string (ASCII from the space up but
 * the quote and the backslash; a control character, an escape or UTF-8 needs
 * a look), and between tokens (ASCII but what starts a string or a number, a
 * member's ':', the first letter of NaN or Infinity, and NUL). */
enum {
	STREAM_PLAIN_IN_STRING = 1 << 0,
	STREAM_PLAIN_OUTSIDE = 1 << 1,
};

#define STREAM_PLAIN_BOTH (STREAM_PLAIN_IN_STRING | STREAM_PLAIN_OUTSIDE)

/* In code point order; '"', NUL and bytes from 0x80 are plain nowhere. */
static const unsigned char stream_plain[256] = {
	[0x01 ... 0x1f] = STREAM_PLAIN_OUTSIDE,
	[' ' ... '!'] = STREAM_PLAIN_BOTH,
	['#' ... ','] = STREAM_PLAIN_BOTH,
	['-'] = STREAM_PLAIN_IN_STRING,
	['.' ... '/'] = STREAM_PLAIN_BOTH,
	['0' ... ':'] = STREAM_PLAIN_IN_STRING,
	[';' ... 'H'] = STREAM_PLAIN_BOTH,
	['I'] = STREAM_PLAIN_IN_STRING,
	['J' ... 'M'] = STREAM_PLAIN_BOTH,
	['N'] = STREAM_PLAIN_IN_STRING,
	['O' ... '['] = STREAM_PLAIN_BOTH,
	['\\'] = STREAM_PLAIN_OUTSIDE,
	[']' ... 0x7f] = STREAM_PLAIN_BOTH,
};

/* Check bytes the tokener consumed; returns the offset of the first byte that
 * makes the text invalid, or n. Runs of plain bytes (stream_plain) are passed
 * over by one table lookup each, and the quotes and colons between them by
 * a test each; every other byte goes through the state machine below. */
static size_t stream_scan(struct gl_decoder *d, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c;

		/* The common bytes: plain runs, quotes, and ':' between tokens. */
		while (!d->need && !d->scan_in_num && !d->escape) {
			unsigned char plain =
				d->in_string ? STREAM_PLAIN_IN_STRING : STREAM_PLAIN_OUTSIDE;

			while (i < n && (stream_plain[p[i]] & plain))
				i++;
			if (i == n)
				return n;
			if (p[i] == '"')
				d->in_string = !d->in_string;
			else if (p[i] == ':' && !d->in_string)
				d->members++;
			else
				break;
			i++;
		}
		if (i == n)
			break;
		c = p[i];
		if (d->need) {
			if (c < d->lo || c > d->hi)
				return i;
			d->need--;
			d->lo = 0x80;
			d->hi = 0xbf;
			continue;
		}
		if (c < 0x80) {
			if (d->scan_in_num) {
				unsigned char next = stream_number_step(d->scan_num, (char)c);

				if (next == NUM_BAD)
					return i;
				if (next != NUM_END) {
					d->scan_num = next;
					if (next >= NUM_DOT)
						d->scan_num_int = false;
					if (d->scan_num_len < STREAM_MAX_NUMBER)
						d->scan_num_text[d->scan_num_len] = (char)c;
					d->scan_num_len++;
					continue;
				}
				/* Inside a text a number ends at a separator; json-c would
				 * have taken these characters into it. */
				if (strchr("0123456789.+-eE", c))
					return i;
				d->scan_in_num = false;
				if (stream_number_done(d) < 0)
					return i;
			}
			if (d->in_string) {
				if (c < 0x20)
					return i; /* control characters must be escaped */
				if (d->escape)
					d->escape = false;
				else if (c == '\\')
					d->escape = true;
				else if (c == '"')
					d->in_string = false;
			} else if (c == '"')
				d->in_string = true;
			else if (c == '-' || (c >= '0' && c <= '9')) {
				d->scan_in_num = true;
				d->scan_num = stream_number_step(NUM_START, (char)c);
				d->scan_num_int = true;
				d->scan_num_text[0] = (char)c;
				d->scan_num_len = 1;
			} else if (c == ':')
				d->members++;
			else if (c == 'N' || c == 'I' || c == 0)
				return i; /* NaN, Infinity: not JSON */
			continue;
		}
		if (!d->in_string)
			return i;
		d->escape = false;
		d->lo = 0x80;
		d->hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			d->need = 1;
		else if (c == 0xe0) {
			d->need = 2;
			d->lo = 0xa0; /* overlong */
		} else if (c == 0xed) {
			d->need = 2;
			d->hi = 0x9f; /* surrogates */
		} else if (c >= 0xe1 && c <= 0xef)
			d->need = 2;
		else if (c == 0xf0) {
			d->need = 3;
			d->lo = 0x90; /* overlong */
		} else if (c >= 0xf1 && c <= 0xf3)
			d->need = 3;
		else if (c == 0xf4) {
			d->need = 3;
			d->hi = 0x8f; /* above U+10FFFF */
		} else
			return i;
	}
	return n;
}

/* Collect a top-level number from buf[i..len). Returns the offset reached;
 * *ret_status is AGAIN (all consumed, number goes on), MESSAGE, SYNTAX or TOOBIG. */
static size_t stream_number(struct gl_decoder *d, const char *buf, size_t i, size_t len,
	enum gl_decode_status *ret_status, struct json_object **ret_obj)
{
	for (; i < len; i++) {
		unsigned char next = stream_number_step(d->num_state, buf[i]);
		struct json_object *obj;

		if (next == NUM_BAD) {
			stream_text_reset(d);
			d->skipping = true;
			*ret_status = GL_DECODE_SYNTAX;
			return i;
		}
		if (next == NUM_END) {
			/* The delimiter tells json-c the number is complete. */
			d->num[d->num_len++] = ' ';
			json_tokener_reset(d->tok);
			obj = stream_parse(d, d->num, (int)d->num_len);
			if (!obj) { /* cannot happen for grammar-checked text, but never trust */
				stream_text_reset(d);
				d->skipping = true;
				*ret_status = GL_DECODE_SYNTAX;
				return i;
			}
			stream_text_reset(d);
			*ret_obj = obj;
			*ret_status = GL_DECODE_MESSAGE;
			return i;
		}
		if (d->num_len >= STREAM_MAX_NUMBER || d->num_len >= d->max_message) {
			if (d->num_len >= d->max_message) {
				d->toobig = true;
				*ret_status = GL_DECODE_TOOBIG;
			} else {
				stream_text_reset(d);
				d->skipping = true;
				*ret_status = GL_DECODE_SYNTAX;
			}
			return i;
		}
		d->num[d->num_len++] = buf[i];
		d->cur = d->num_len;
		d->num_state = next;
	}
	*ret_status = GL_DECODE_AGAIN;
	return len;
}

struct stream_walk {
	const struct gl_decoder *d;
	size_t ints;    /* integer nodes seen */
	size_t next;    /* next entry of d->big */
	size_t members; /* object members seen */
};

/* The number node standing for big integer `b`: serialized from its text. */
static struct json_object *stream_big_node(const struct stream_bigint *b)
{
	return json_object_new_double_s(strtod(b->text, NULL), b->text);
}

/* Is `v` the integer node the next out-of-range token became? Then *ret_node
 * is its replacement (NULL on ENOMEM); the caller puts it in v's place. */
static int stream_walk_int(struct stream_walk *w, struct json_object *v, struct json_object **ret_node)
{
	if (!json_object_is_type(v, json_type_int))
		return 0;
	if (w->next >= w->d->n_big || w->d->big[w->next].ordinal != w->ints++)
		return 0;
	*ret_node = stream_big_node(&w->d->big[w->next++]);
	return *ret_node ? 1 : -ENOMEM;
}

/* Visit the tree in text order (json-c keeps members in insertion order),
 * counting integer nodes, and replace the ones whose text did not fit. */
static int stream_walk(struct stream_walk *w, struct json_object *obj)
{
	struct json_object *node;
	int r;

	if (json_object_is_type(obj, json_type_array)) {
		size_t n = json_object_array_length(obj);

		for (size_t i = 0; i < n; i++) {
			struct json_object *v = json_object_array_get_idx(obj, i);

			r = stream_walk_int(w, v, &node);
			if (r < 0)
				return r;
			if (r > 0 && json_object_array_put_idx(obj, i, node) < 0) {
				json_object_put(node);
				return -ENOMEM;
			}
			if (r == 0 && (r = stream_walk(w, v)) < 0)
				return r;
		}
	} else if (json_object_is_type(obj, json_type_object)) {
		json_object_object_foreach (obj, key, v) {
			w->members++;
			r = stream_walk_int(w, v, &node);
			if (r < 0)
				return r;
			/* Replaces the value in place; takes ownership of node. */
			if (r > 0 && json_object_object_add(obj, key, node) < 0)
				return -ENOMEM;
			if (r == 0 && (r = stream_walk(w, v)) < 0)
				return r;
		}
	}
	return 0;
}

/* Put the exact text of every integer json-c clamped back into the tree.
 * Returns 0, or -EBADMSG when member names repeat (json-c kept only one of
 * them, so tokens and nodes no longer pair up), -ENOMEM. */
static int stream_fix_integers(struct gl_decoder *d, struct json_object *obj)
{
	struct stream_walk w = { .d = d };
	int r;

	if (d->n_big == 0)
		return 0;
	r = stream_walk(&w, obj);
	if (r < 0)
		return r;
	if (w.members != d->members || w.next != d->n_big)
		return -EBADMSG;
	return 0;
}

static bool stream_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

size_t gl_decoder_decode(struct gl_decoder *d, const char *buf, size_t len,
	enum gl_decode_status *ret_status, struct json_object **ret_obj)
{
	size_t i = 0;

	if (d->toobig) {
		*ret_status = GL_DECODE_TOOBIG;
		return 0;
	}

	for (;;) {
		struct json_object *obj;
		enum json_tokener_error err;
		size_t n, end, bad;

		if (d->skipping) {
			const char *nl = i < len ? memchr(buf + i, '\n', len - i) : NULL;
			if (!nl) {
				*ret_status = GL_DECODE_AGAIN;
				return len;
			}
			i = (size_t)(nl - buf) + 1;
			d->skipping = false;
		}
		if (!d->in_text) {
			while (i < len && stream_is_space(buf[i]))
				i++;
			if (i == len) {
				*ret_status = GL_DECODE_AGAIN;
				return len;
			}
			d->in_text = true;
			if (buf[i] == '-' || (buf[i] >= '0' && buf[i] <= '9')) {
				d->in_number = true;
				d->num_state = NUM_START;
			}
		}
		if (d->in_number)
			return stream_number(d, buf, i, len, ret_status, ret_obj);
		if (i == len) {
			*ret_status = GL_DECODE_AGAIN;
			return len;
		}

		/* Never give the tokener more than the cap allows. */
		n = len - i;
		if (n > d->max_message - d->cur)
			n = d->max_message - d->cur;
		if (n > INT32_MAX)
			n = INT32_MAX;
		if (n == 0) {
			d->toobig = true;
			*ret_status = GL_DECODE_TOOBIG;
			return i;
		}

		obj = stream_parse(d, buf + i, (int)n);
		err = json_tokener_get_error(d->tok);
		end = json_tokener_get_parse_end(d->tok);
		if (end > n)
			end = n;

		bad = stream_scan(d, (const unsigned char *)buf + i, end);
		if (bad < end || (err != json_tokener_success && err != json_tokener_continue)) {
			json_object_put(obj);
			stream_text_reset(d);
			d->skipping = true;
			*ret_status = GL_DECODE_SYNTAX;
			return i + bad;
		}
		if (err == json_tokener_continue) {
			d->cur += n;
			i += n;
			continue;
		}

		/* A complete text. A string or number can only end outside a string
		 * and on a character boundary, so the scanner state is clean. The
		 * text is consumed whole: a refusal here skips nothing after it. */
		if (stream_fix_integers(d, obj) < 0) {
			json_object_put(obj);
			stream_text_reset(d);
			*ret_status = GL_DECODE_SYNTAX;
			return i + end;
		}
		stream_text_reset(d);
		*ret_obj = obj;
		*ret_status = GL_DECODE_MESSAGE;
		return i + end;
	}
}

enum gl_decode_status gl_decoder_decode_evbuffer(struct gl_decoder *d, struct evbuffer *in,
	struct json_object **ret_obj)
{
	for (;;) {
		enum gl_decode_status st;
		size_t len = evbuffer_get_length(in), avail, n;
		const char *data;

		if (len == 0)
			return GL_DECODE_AGAIN;
		/* Decode chunk by chunk; linearize only if the first chunk is empty. */
		avail = evbuffer_get_contiguous_space(in);
		if (avail == 0)
			avail = len < 65536 ? len : 65536;
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
		if (!data)
			return GL_DECODE_AGAIN;
		n = gl_decoder_decode(d, data, avail, &st, ret_obj);
		evbuffer_drain(in, n);
		if (st != GL_DECODE_AGAIN)
			return st;
	}
}

const char *gl_encode_string(struct json_object *obj, size_t *ret_len)
{
	const char *s;
	size_t n;

	s = json_object_to_json_string_length(obj,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (s && ret_len)
		*ret_len = n;
	return s;
}

int gl_encode_evbuffer(struct json_object *obj, struct evbuffer *out)
{
	const char *s;
	size_t n;

	s = gl_encode_string(obj, &n); /* json-c writes "null" for NULL */
	if (!s)
		return -ENOMEM;
	if (evbuffer_expand(out, n + 1) < 0 || evbuffer_add(out, s, n) < 0 ||
		evbuffer_add(out, "\n", 1) < 0)
		return -ENOMEM;
	return 0;
}
