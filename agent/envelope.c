/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The envelope fast path (see envelope.h). Every rule here only narrows what
 * is taken: when in doubt, return 0 and let the decoder and gl_msg_parse()
 * decide, so an answer can never differ from theirs.
 *
 * Why: for an agent.ping, json-c's tokener (a state machine per character),
 * the hash table of the request object, its strings and their frees were six
 * of the ten thousand instructions the agent spent per call. */
#include <string.h>

#include "envelope.h"

/* Integers of up to 18 digits fit int64 whatever their digits. */
#define ENVELOPE_INT_DIGITS 18

enum envelope_member {
	ENVELOPE_M_JSONRPC,
	ENVELOPE_M_METHOD,
	ENVELOPE_M_ID,
	ENVELOPE_M_PARAMS,
	ENVELOPE_M_COUNT,
};

/* Which name a first letter may start, plus one (0: none). */
static const unsigned char envelope_first[256] = {
	['j'] = ENVELOPE_M_JSONRPC + 1,
	['m'] = ENVELOPE_M_METHOD + 1,
	['i'] = ENVELOPE_M_ID + 1,
	['p'] = ENVELOPE_M_PARAMS + 1,
};

enum {
	ENVELOPE_PLAIN = 1 << 0, /* a string byte taken as it is: printable ASCII but '"' and '\\' */
	ENVELOPE_SPACE = 1 << 1, /* JSON whitespace (RFC 8259 section 2) */
};

static const unsigned char envelope_class[256] = {
	['\t'] = ENVELOPE_SPACE,
	['\n'] = ENVELOPE_SPACE,
	['\r'] = ENVELOPE_SPACE,
	[' '] = ENVELOPE_SPACE | ENVELOPE_PLAIN,
	['!'] = ENVELOPE_PLAIN,
	['#' ... '['] = ENVELOPE_PLAIN,
	[']' ... '~'] = ENVELOPE_PLAIN,
};

struct envelope_reader {
	const char *p, *end;
};

static inline void envelope_skip_space(struct envelope_reader *r)
{
	while (r->p < r->end && (envelope_class[(unsigned char)*r->p] & ENVELOPE_SPACE))
		r->p++;
}

/* Take character c (after whitespace). */
static inline bool envelope_take(struct envelope_reader *r, char c)
{
	envelope_skip_space(r);
	if (r->p >= r->end || *r->p != c)
		return false;
	r->p++;
	return true;
}

/* A string of printable ASCII without '"' or '\\' (so without escapes),
 * json-c's text and value alike; the opening quote is taken already.
 * *ret_s points into the input. */
static bool envelope_plain_string(struct envelope_reader *r, const char **ret_s, size_t *ret_len)
{
	const char *s = r->p;

	while (r->p < r->end && (envelope_class[(unsigned char)*r->p] & ENVELOPE_PLAIN))
		r->p++;
	if (r->p >= r->end || *r->p != '"')
		return false;
	*ret_s = s;
	*ret_len = (size_t)(r->p - s);
	r->p++; /* the closing quote */
	return true;
}

/* A member's value that is a plain string of at most max bytes, copied out
 * NUL-terminated. */
static bool envelope_copy_string(struct envelope_reader *r, char *buf, size_t max, size_t *ret_len)
{
	const char *s;
	size_t n;

	if (!envelope_take(r, '"') || !envelope_plain_string(r, &s, &n) || n > max)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (ret_len)
		*ret_len = n;
	return true;
}

/* An integer id: -?[1-9][0-9]{0,17} or 0, ended by a character that cannot
 * continue a JSON number ("-0", "01", 1.5, 1e3 and longer ones are left to
 * the decoder). */
static bool envelope_int(struct envelope_reader *r, int64_t *ret)
{
	bool neg = false;
	int64_t v = 0;
	size_t digits = 0;

	if (r->p < r->end && *r->p == '-') {
		neg = true;
		r->p++;
	}
	if (r->p >= r->end || *r->p < '0' || *r->p > '9')
		return false;
	if (*r->p == '0') {
		if (neg)
			return false;
		r->p++;
	} else
		for (; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
			if (++digits > ENVELOPE_INT_DIGITS)
				return false;
			v = v * 10 + (*r->p - '0');
		}
	/* The number must visibly end here (not at the end of the input). */
	if (r->p >= r->end || (*r->p >= '0' && *r->p <= '9') || *r->p == '.' || *r->p == 'e' ||
		*r->p == 'E')
		return false;
	*ret = neg ? -v : v;
	return true;
}

static bool envelope_id(struct envelope_reader *r, struct envelope *e)
{
	envelope_skip_space(r);
	if (r->p >= r->end)
		return false;
	if (*r->p == '"') {
		e->id_kind = ENVELOPE_ID_STRING;
		return envelope_copy_string(r, e->id_str, ENVELOPE_ID_MAX, &e->id_len);
	}
	if ((size_t)(r->end - r->p) >= 4 && memcmp(r->p, "null", 4) == 0) {
		r->p += 4;
		e->id_kind = ENVELOPE_ID_NULL;
		return true;
	}
	e->id_kind = ENVELOPE_ID_INT;
	return envelope_int(r, &e->id_int);
}

static bool envelope_version(struct envelope_reader *r, struct envelope *e)
{
	(void)e;
	envelope_skip_space(r);
	if (r->end - r->p < 5 || memcmp(r->p, "\"2.0\"", 5) != 0)
		return false;
	r->p += 5;
	return true;
}

static bool envelope_method(struct envelope_reader *r, struct envelope *e)
{
	return envelope_copy_string(r, e->method, ENVELOPE_METHOD_MAX, NULL);
}

/* {} or [] with nothing but whitespace inside. */
static bool envelope_params(struct envelope_reader *r, struct envelope *e)
{
	if (envelope_take(r, '{')) {
		e->params = ENVELOPE_PARAMS_OBJECT;
		return envelope_take(r, '}');
	}
	if (envelope_take(r, '[')) {
		e->params = ENVELOPE_PARAMS_ARRAY;
		return envelope_take(r, ']');
	}
	return false;
}

/* Each name with its closing quote, so one memcmp() matches it whole, and
 * the reader of its value. */
static const struct {
	const char *quoted;
	size_t len;
	bool (*value)(struct envelope_reader *r, struct envelope *e);
} envelope_members[ENVELOPE_M_COUNT] = {
	[ENVELOPE_M_JSONRPC] = { "jsonrpc\"", 8, envelope_version },
	[ENVELOPE_M_METHOD] = { "method\"", 7, envelope_method },
	[ENVELOPE_M_ID] = { "id\"", 3, envelope_id },
	[ENVELOPE_M_PARAMS] = { "params\"", 7, envelope_params },
};

/* The name of a member, its quotes and the colon: which of
 * envelope_members, or ENVELOPE_M_COUNT for any other name (escaped ones
 * too). */
static unsigned envelope_name(struct envelope_reader *r)
{
	unsigned i;

	if (!envelope_take(r, '"') || r->p >= r->end)
		return ENVELOPE_M_COUNT;
	/* The four names differ in their first letter. */
	i = envelope_first[(unsigned char)*r->p];
	if (i-- == 0)
		return ENVELOPE_M_COUNT;
	if ((size_t)(r->end - r->p) < envelope_members[i].len ||
		memcmp(r->p, envelope_members[i].quoted, envelope_members[i].len) != 0)
		return ENVELOPE_M_COUNT;
	r->p += envelope_members[i].len;
	return envelope_take(r, ':') ? i : ENVELOPE_M_COUNT;
}

static bool envelope_member(struct envelope_reader *r, struct envelope *e, unsigned *seen)
{
	unsigned i = envelope_name(r);

	/* Unknown or repeated (json-c keeps the last of repeated names). */
	if (i == ENVELOPE_M_COUNT || (*seen & (1u << i)))
		return false;
	*seen |= 1u << i;
	return envelope_members[i].value(r, e);
}

size_t envelope_scan(const char *buf, size_t len, size_t max_message, struct envelope *ret)
{
	struct envelope_reader r = { buf, buf + len };
	const char *start;
	unsigned seen = 0;

	envelope_skip_space(&r);
	start = r.p;
	ret->id_kind = ENVELOPE_ID_ABSENT;
	ret->params = ENVELOPE_PARAMS_ABSENT;
	if (!envelope_take(&r, '{'))
		return 0;
	do {
		if (!envelope_member(&r, ret, &seen))
			return 0;
	} while (envelope_take(&r, ','));
	if (!envelope_take(&r, '}'))
		return 0;
	if (!(seen & (1u << ENVELOPE_M_JSONRPC)) || !(seen & (1u << ENVELOPE_M_METHOD)))
		return 0;
	if ((size_t)(r.p - start) > max_message)
		return 0;
	envelope_skip_space(&r);
	return (size_t)(r.p - buf);
}
