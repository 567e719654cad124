/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stream decoder: split at every byte boundary, whitespace, resync after
 * garbage, size and depth caps, UTF-8, top-level scalars; and the encoder. */
#include <locale.h>
#include <stdbool.h>
#include <string.h>
#include <event2/buffer.h>

#include "guestlink/stream.h"
#include "tap.h"

/* Longer than the longest out-of-range integer the decoder keeps (256). */
#define STREAM_TEST_LONGINT 300

/* A log of what the decoder produced: "M<json>" per message, "S" per syntax
 * error, "T" for too big, joined by '|'. */
struct out {
	char buf[65536];
	size_t len;
	size_t max_pending;
};

static void out_add(struct out *o, const char *s)
{
	size_t n = strlen(s);

	if (o->len + n + 2 >= sizeof(o->buf))
		return;
	if (o->len)
		o->buf[o->len++] = '|';
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = 0;
}

/* Feed one chunk completely (as a caller would: again and again with the rest). */
static void feed(struct gl_decoder *d, const char *p, size_t len, struct out *o)
{
	while (len > 0) {
		enum gl_decode_status st;
		struct json_object *obj = NULL;
		size_t n;

		n = gl_decoder_decode(d, p, len, &st, &obj);
		if (n > len) {
			out_add(o, "OVERRUN");
			return;
		}
		p += n;
		len -= n;
		if (gl_decoder_pending(d) > o->max_pending)
			o->max_pending = gl_decoder_pending(d);
		switch (st) {
		case GL_DECODE_AGAIN:
			if (len != 0)
				out_add(o, "AGAIN-WITH-REST");
			return;
		case GL_DECODE_MESSAGE: {
			char m[4096];
			snprintf(m, sizeof(m), "M%s", gl_encode_string(obj, NULL));
			out_add(o, m);
			json_object_put(obj);
			break;
		}
		case GL_DECODE_SYNTAX:
			out_add(o, "S");
			break;
		case GL_DECODE_TOOBIG:
			out_add(o, "T");
			return;
		}
	}
}

static void decode_split(const char *text, size_t len, size_t at, size_t max, int depth,
	struct out *o)
{
	struct gl_decoder *d = gl_decoder_new(max, depth);

	memset(o, 0, sizeof(*o));
	feed(d, text, at, o);
	feed(d, text + at, len - at, o);
	gl_decoder_free(d);
}

static void decode_bytes(const char *text, size_t len, struct out *o)
{
	struct gl_decoder *d = gl_decoder_new(0, 0);

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < len; i++)
		feed(d, text + i, 1, o);
	gl_decoder_free(d);
}

/* The sample stream: every kind of text, separators and errors. */
static const char sample[] = "{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":[1,-2.5e3,"
			     "true,false,null],\"id\":1}\n"
			     "{\"a\":{\"b\":[{},[]]},\"s\":\"\\\"esc\\\\aped\\u00e9\\n\"}\r\n"
			     "\t [1,2,3]{\"x\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}[\"/\"]\n"
			     "  \"str\" 42 -0.5 true false null 7 8-9 0.5e+3[1]0{}\n"
			     "{bad json here}\n"
			     "{\"after\":\"garbage\"}\n"
			     "\x01\x02\xff\n"
			     "[12345678901234567890]\n";

static const char sample_expect[] =
	"M{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":[1,-2.5e3,true,false,null],"
	"\"id\":1}|"
	"M{\"a\":{\"b\":[{},[]]},\"s\":\"\\\"esc\\\\aped\xc3\xa9\\n\"}|"
	"M[1,2,3]|M{\"x\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}|M[\"/\"]|"
	"M\"str\"|M42|M-0.5|Mtrue|Mfalse|Mnull|M7|M8|M-9|M0.5e+3|M[1]|M0|M{}|"
	"S|M{\"after\":\"garbage\"}|S|M[12345678901234567890]";

static void test_splits(void)
{
	size_t len = sizeof(sample) - 1;
	struct out whole, part;
	size_t bad = 0;

	decode_split(sample, len, len, 0, 0, &whole);
	is_str(whole.buf, sample_expect, "sample stream decodes as expected in one piece");

	for (size_t at = 0; at <= len; at++) {
		decode_split(sample, len, at, 0, 0, &part);
		if (strcmp(part.buf, whole.buf) != 0) {
			if (!bad)
				diag("split at %zu: %s", at, part.buf);
			bad++;
		}
	}
	ok(bad == 0, "split at each of %zu byte boundaries: identical messages (%zu differ)",
		len + 1, bad);

	decode_bytes(sample, len, &part);
	is_str(part.buf, whole.buf, "fed one byte at a time: identical messages");
}

/* Integers beyond int64/uint64: json-c 0.16 clamps them without an error, so
 * the decoder must hand them on with their own text and not as json_type_int. */
static void test_big_integers(void)
{
	static const char text[] =
		"[9223372036854775807,9223372036854775808,18446744073709551616,"
		"-9223372036854775808,-9223372036854775809,123456789012345678901234567890,-0,7]\n"
		"{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":{\"n\":[1e400,"
		"99999999999999999999999999999]},\"id\":18446744073709551616}\n"
		"{\"a\":1,\"b\":100000000000000000000,\"a\":2}\n"
		"{\"a\":100000000000000000000,\"a\":2}\n"
		"{\"ok\":[5]}\n";
	static const char expect[] =
		"M[9223372036854775807,9223372036854775808,18446744073709551616,"
		"-9223372036854775808,-9223372036854775809,123456789012345678901234567890,0,7]|"
		"M{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":{\"n\":[1e400,"
		"99999999999999999999999999999]},\"id\":18446744073709551616}|"
		"S|S|M{\"ok\":[5]}";
	size_t len = sizeof(text) - 1, bad = 0;
	struct gl_decoder *d = gl_decoder_new(0, 0);
	struct json_object *obj = NULL, *id = NULL, *v;
	enum gl_decode_status st;
	struct out o;
	char longint[STREAM_TEST_LONGINT + 3];

	decode_split(text, len, len, 0, 0, &o);
	is_str(o.buf, expect, "integers out of range come out exactly as sent");
	for (size_t at = 0; at <= len; at++) {
		struct out part;

		decode_split(text, len, at, 0, 0, &part);
		if (strcmp(part.buf, o.buf) != 0) {
			if (!bad)
				diag("split at %zu: %s", at, part.buf);
			bad++;
		}
	}
	ok(bad == 0, "split at each of %zu byte boundaries: the same (%zu differ)", len + 1, bad);

	/* The id of the second text: not an integer node, so no parser takes it as one. */
	gl_decoder_decode(d, text, len, &st, &obj);
	json_object_put(obj);
	obj = NULL;
	gl_decoder_decode(d, strchr(text, '\n') + 1, len, &st, &obj);
	ok(st == GL_DECODE_MESSAGE && json_object_object_get_ex(obj, "id", &id) &&
			!json_object_is_type(id, json_type_int),
		"an id of 2^64 is not a json-c integer (json-c alone makes it 2^64-1)");
	ok(json_object_object_get_ex(obj, "params", &v) && json_object_object_get_ex(v, "n", &v) &&
			json_object_is_type(json_object_array_get_idx(v, 1), json_type_double),
		"a 29-digit integer in params is not a json-c integer");
	json_object_put(obj);
	gl_decoder_free(d);

	d = gl_decoder_new(0, 0);
	obj = NULL;
	gl_decoder_decode(d, "[9223372036854775807,9223372036854775808]", 41, &st, &obj);
	ok(st == GL_DECODE_MESSAGE &&
			json_object_is_type(json_object_array_get_idx(obj, 0), json_type_int) &&
			!json_object_is_type(json_object_array_get_idx(obj, 1), json_type_int),
		"INT64_MAX is an integer, INT64_MAX+1 is not (json_object_get_int64 would clamp "
		"it)");
	json_object_put(obj);
	gl_decoder_free(d);

	/* An out-of-range integer longer than the decoder keeps is refused, not clamped. */
	longint[0] = '[';
	memset(longint + 1, '9', STREAM_TEST_LONGINT);
	longint[STREAM_TEST_LONGINT + 1] = ']';
	longint[STREAM_TEST_LONGINT + 2] = '\n';
	decode_split(longint, sizeof(longint), sizeof(longint), 0, 0, &o);
	is_str(o.buf, "S", "a %d-digit integer is refused", STREAM_TEST_LONGINT);
}

static void test_whitespace(void)
{
	static const char text[] = "{}{}[][]{\"a\":1}[2] \t\r\n{} \n\n\n\t[3]\r\r{}";
	struct out o;

	decode_split(text, sizeof(text) - 1, sizeof(text) - 1, 0, 0, &o);
	is_str(o.buf, "M{}|M{}|M[]|M[]|M{\"a\":1}|M[2]|M{}|M[3]|M{}",
		"objects and arrays back to back and with mixed whitespace");

	decode_split("   \t\r\n  ", 8, 8, 0, 0, &o);
	is_str(o.buf, "", "whitespace only: nothing");
	ok(o.max_pending == 0, "whitespace is not retained");
}

static void test_scalars(void)
{
	struct out o;
	struct gl_decoder *d = gl_decoder_new(0, 0);

	/* A number at the end of the input may go on: "12" then "3" is 123. */
	memset(&o, 0, sizeof(o));
	feed(d, "12", 2, &o);
	is_str(o.buf, "", "top-level number at end of buffer: not yet complete");
	feed(d, "3", 1, &o);
	is_str(o.buf, "", "still a number");
	feed(d, "\n", 1, &o);
	is_str(o.buf, "M123", "completed by the delimiter: 123");
	memset(&o, 0, sizeof(o));
	feed(d, "tru", 3, &o);
	feed(d, "e ", 2, &o);
	feed(d, "nul", 3, &o);
	feed(d, "l\n\"s", 4, &o);
	feed(d, "\"", 1, &o);
	is_str(o.buf, "Mtrue|Mnull|M\"s\"", "literals and a string across feeds");
	gl_decoder_free(d);

	/* "2" then "-1": one buffer would end the number at '-', so must two. */
	d = gl_decoder_new(0, 0);
	memset(&o, 0, sizeof(o));
	feed(d, "2", 1, &o);
	feed(d, "-1 1", 4, &o);
	feed(d, "e", 1, &o);
	feed(d, "+", 1, &o);
	feed(d, "5 1.", 4, &o);
	feed(d, "\n-", 2, &o);
	feed(d, "x\n0", 3, &o);
	feed(d, "1\n", 2, &o);
	is_str(o.buf, "M2|M-1|M1e+5|S|S|M0|M1",
		"number grammar decides where numbers end, across feeds");
	gl_decoder_free(d);

	decode_split("1234567890\n", 11, 11, 10, 0, &o);
	is_str(o.buf, "M1234567890", "a 10-digit number with a 10-byte cap");
	decode_split("12345678901\n", 12, 12, 10, 0, &o);
	is_str(o.buf, "T", "an 11-digit number with a 10-byte cap: too big");

	decode_split("null\n", 5, 5, 0, 0, &o);
	is_str(o.buf, "Mnull", "literal null is a message (with a NULL object)");
}

static void test_garbage(void)
{
	static const struct {
		const char *in, *want, *why;
	} cases[] = {
		{ "xyz\n{\"ok\":1}\n", "S|M{\"ok\":1}", "letters" },
		{ "{\"a\":}\n{\"ok\":1}\n", "S|M{\"ok\":1}", "missing value" },
		{ "{\"a\":1,}\n[1]\n", "S|M[1]", "trailing comma" },
		{ "[1,2\n3]\n[4]\n", "S|M[4]", "error on the next line skips that line" },
		{ "]]]]\n[5]", "S|M[5]", "closing brackets" },
		{ "{\"a\":1} garbage {\"b\":2}\n{\"c\":3}\n", "M{\"a\":1}|S|M{\"c\":3}",
			"garbage after a message" },
		{ "'single'\n[6]\n", "S|M[6]", "single quotes" },
		{ "[NaN]\n[Infinity]\n[-Infinity]\n[7]\n", "S|S|S|M[7]",
			"NaN and Infinity are not JSON" },
		{ "[01]\n[8]\n", "S|M[8]", "leading zero" },
		{ "[\"a\x01\"]\n[9]\n", "S|M[9]", "raw control character in a string" },
		{ "[\"a\nb\"]\n[10]\n", "S|S|M[10]",
			"raw newline in a string (it ends the bad line)" },
		{ "{\"a\"\0:1}\n[11]\n", "S|M[11]", "NUL byte" },
		{ "/* c */[12]\n[13]\n", "S|M[13]", "comments are not JSON" },
		{ "[66-]\n[15]\n", "S|M[15]", "a number ending in '-'" },
		{ "[2-0\n[1] 2\n", "S|M[1]|M2", "two numbers without a comma, then a newline" },
		{ "[1.5.3]\n[16]\n", "S|M[16]", "two decimal points" },
		{ "{\"a\":1e5e3}\n[17]\n", "S|M[17]", "two exponents" },
		{ "[-]\n[18]\n", "S|M[18]", "a lone minus" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		struct out o;
		size_t bad = 0;

		if (i == 11)
			len = 14; /* the NUL case */
		decode_split(cases[i].in, len, len, 0, 0, &o);
		is_str(o.buf, cases[i].want, "resync: %s", cases[i].why);
		for (size_t at = 0; at <= len; at++) {
			struct out p;
			decode_split(cases[i].in, len, at, 0, 0, &p);
			bad += strcmp(p.buf, o.buf) != 0;
		}
		ok(bad == 0, "resync: %s, at every split", cases[i].why);
	}

	/* The skip to the newline spans feeds. */
	{
		struct gl_decoder *d = gl_decoder_new(0, 0);
		struct out o = { 0 };

		feed(d, "{oops", 5, &o);
		feed(d, " still garbage [1] {}", 21, &o);
		feed(d, " more\n[14]\n", 11, &o);
		is_str(o.buf, "S|M[14]", "skipping spans three feeds");
		gl_decoder_free(d);
	}
}

static void test_utf8(void)
{
	static const struct {
		const char *in;
		const char *why;
	} bad[] = {
		{ "[\"\xff\"]\n", "0xff" },
		{ "[\"\xc3\"]\n", "truncated 2-byte sequence" },
		{ "[\"\xc0\xaf\"]\n", "overlong 2-byte" },
		{ "[\"\xe0\x80\xaf\"]\n", "overlong 3-byte" },
		{ "[\"\xf0\x80\x80\xaf\"]\n", "overlong 4-byte" },
		{ "[\"\xed\xa0\x80\"]\n", "UTF-16 surrogate" },
		{ "[\"\xf4\x90\x80\x80\"]\n", "above U+10FFFF" },
		{ "[\"\x80\"]\n", "lone continuation byte" },
		{ "[\"\xe2\x82\"]\n", "truncated 3-byte sequence" },
		{ "\xc3\xa9\n", "non-ASCII outside a string" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64];
		size_t len, errs = 0;
		struct out o;

		snprintf(text, sizeof(text), "%s[0]\n", bad[i].in);
		len = strlen(text);
		for (size_t at = 0; at <= len; at++) {
			decode_split(text, len, at, 0, 0, &o);
			errs += strcmp(o.buf, "S|M[0]") != 0;
		}
		ok(errs == 0, "invalid UTF-8 rejected at every split: %s", bad[i].why);
	}

	{
		static const char good[] = "[\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80"
					   "\x80\xf4\x8f\xbf\xbf\"]\n";
		size_t len = sizeof(good) - 1, errs = 0;
		struct out o;

		for (size_t at = 0; at <= len; at++) {
			decode_split(good, len, at, 0, 0, &o);
			errs += o.buf[0] != 'M' || strchr(o.buf, '|') != NULL;
		}
		ok(errs == 0, "boundary code points U+0080..U+10FFFF accepted at every split");
	}
}

static void test_size_cap(void)
{
	struct out o;
	struct gl_decoder *d;
	char chunk[4096];
	size_t fed = 0;
	int toobig = 0, too_much = 0;

	/* Exactly the cap is fine; one more byte is not. */
	decode_split("[\"123456\"]\n", 11, 11, 10, 0, &o);
	is_str(o.buf, "M[\"123456\"]", "a 10-byte text with a 10-byte cap");
	decode_split("[\"1234567\"]\n", 12, 12, 10, 0, &o);
	is_str(o.buf, "T", "an 11-byte text with a 10-byte cap: too big");
	ok(o.max_pending <= 10, "retained bytes never above the cap (%zu)", o.max_pending);
	decode_split("[\"123456\"]  \n\n  [\"123456\"]\n", 27, 27, 10, 0, &o);
	is_str(o.buf, "M[\"123456\"]|M[\"123456\"]", "whitespace between texts does not count");

	/* A 100 MB line fed in 4 KiB chunks against a 1 MiB cap: refused once the
	 * cap is reached, never buffered. */
	d = gl_decoder_new(1024 * 1024, 0);
	memset(chunk, 'a', sizeof(chunk));
	chunk[0] = '"';
	while (fed < 100u * 1024 * 1024) {
		const char *p = fed ? chunk + 1 : chunk;
		size_t len = fed ? sizeof(chunk) - 1 : sizeof(chunk);

		while (len > 0) {
			enum gl_decode_status st;
			struct json_object *obj = NULL;
			size_t n = gl_decoder_decode(d, p, len, &st, &obj);

			if (gl_decoder_pending(d) > 1024 * 1024)
				too_much = 1;
			p += n;
			len -= n;
			if (st == GL_DECODE_TOOBIG) {
				toobig = 1;
				break;
			}
			json_object_put(obj);
			if (st == GL_DECODE_AGAIN)
				break;
		}
		if (toobig)
			break;
		fed += sizeof(chunk) - 1;
	}
	ok(toobig, "100 MB line: too big");
	ok(fed <= 1024 * 1024 + sizeof(chunk), "... detected after %zu bytes (cap 1 MiB)", fed);
	ok(!too_much, "... retained bytes never above the cap");
	{
		enum gl_decode_status st;
		struct json_object *obj = NULL;
		size_t n = gl_decoder_decode(d, "[1]\n", 4, &st, &obj);
		ok(n == 0 && st == GL_DECODE_TOOBIG,
			"after too big the decoder refuses more input");
	}
	gl_decoder_free(d);

	/* Skipped garbage is not retained either. */
	d = gl_decoder_new(64, 0);
	memset(&o, 0, sizeof(o));
	feed(d, "x", 1, &o);
	for (int i = 0; i < 1000; i++)
		feed(d, chunk, sizeof(chunk), &o);
	feed(d, "\n[1]\n", 5, &o);
	is_str(o.buf, "S|M[1]", "4 MB of garbage skipped without a cap error");
	ok(o.max_pending == 0, "... and without retaining it");
	gl_decoder_free(d);
}

static void test_depth(void)
{
	struct out o;
	char deep[300];
	size_t n = 0;

	for (int i = 0; i < 4; i++)
		deep[n++] = '[';
	for (int i = 0; i < 4; i++)
		deep[n++] = ']';
	deep[n++] = '\n';
	decode_split(deep, n, n, 0, 4, &o);
	is_str(o.buf, "M[[[[]]]]", "depth 4 within a cap of 4");

	n = 0;
	for (int i = 0; i < 5; i++)
		deep[n++] = '[';
	for (int i = 0; i < 5; i++)
		deep[n++] = ']';
	memcpy(deep + n, "\n[1]\n", 5);
	n += 5;
	decode_split(deep, n, n, 0, 4, &o);
	is_str(o.buf, "S|M[1]", "depth 5 with a cap of 4: syntax error, then resync");

	/* 100,000 deep with the default cap. */
	{
		size_t len = 100000 * 2 + 5;
		char *big = malloc(len);

		memset(big, '[', 100000);
		memset(big + 100000, ']', 100000);
		memcpy(big + 200000, "\n[2]\n", 5);
		decode_split(big, len, len, 0, 0, &o);
		is_str(o.buf, "S|M[2]", "nesting 100,000 deep: syntax error, then resync");
		free(big);
	}
}

static void test_evbuffer(void)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct gl_decoder *d = gl_decoder_new(0, 0);
	struct json_object *obj = NULL, *o;
	char text[256];
	size_t n;

	/* Two chunks in the evbuffer, a message spanning them. */
	evbuffer_add(in, "{\"a\":", 5);
	{
		struct evbuffer *tail = evbuffer_new();
		evbuffer_add(tail, "[1,2]} [3]\nzz\n{}", 16);
		evbuffer_add_buffer(in, tail);
		evbuffer_free(tail);
	}
	ok(gl_decoder_decode_evbuffer(d, in, &obj) == GL_DECODE_MESSAGE, "evbuffer: first message");
	is_str(gl_encode_string(obj, NULL), "{\"a\":[1,2]}", "... spanning two chains");
	json_object_put(obj);
	ok(gl_decoder_decode_evbuffer(d, in, &obj) == GL_DECODE_MESSAGE,
		"evbuffer: second message");
	json_object_put(obj);
	ok(gl_decoder_decode_evbuffer(d, in, &obj) == GL_DECODE_SYNTAX, "evbuffer: syntax error");
	ok(gl_decoder_decode_evbuffer(d, in, &obj) == GL_DECODE_MESSAGE, "evbuffer: resynced");
	json_object_put(obj);
	ok(gl_decoder_decode_evbuffer(d, in, &obj) == GL_DECODE_AGAIN && evbuffer_get_length(in) == 0,
		"evbuffer: drained, again");

	o = json_tokener_parse("{\"path\":\"/a/b\",\"u\":\"\xc3\xa9\",\"n\":[1, 2]}");
	ok(gl_encode_evbuffer(o, out) == 0, "encode");
	n = evbuffer_remove(out, text, sizeof(text) - 1);
	text[n] = 0;
	is_str(text, "{\"path\":\"/a/b\",\"u\":\"\xc3\xa9\",\"n\":[1,2]}\n",
		"encoder: compact, slashes unescaped, UTF-8 kept, newline");
	json_object_put(o);
	ok(gl_encode_evbuffer(NULL, out) == 0, "encode null");
	n = evbuffer_remove(out, text, sizeof(text) - 1);
	text[n] = 0;
	is_str(text, "null\n", "null encodes as null");

	gl_decoder_free(d);
	evbuffer_free(in);
	evbuffer_free(out);
	ok(gl_decoder_free(NULL) == NULL, "free(NULL)");
}

/* Every byte value alone in the middle of a long string, in one feed and at
 * every split: only printable ASCII other than '"' and '\\' is accepted as
 * it is (a raw control character, a lone byte from 0x80 and an invalid
 * escape are refused). The scanner passes over runs of such bytes by table. */
static void test_string_bytes(void)
{
	char text[64], want[64];
	int wrong = 0, first_wrong = -1;

	for (int b = 0; b < 256; b++) {
		bool accept = b >= 0x20 && b <= 0x7f && b != '"' && b != '\\';
		size_t len;

		len = (size_t)snprintf(text, sizeof(text),
			"[\"xxxxxxxxxxxxxxxx_xxxxxxxxxxxxxxxx\"]\n[7]\n");
		text[18] = (char)b;
		memcpy(want, text, 37);
		want[37] = 0;
		for (size_t at = 0; at <= len; at++) {
			struct out o;
			char expect[80];

			decode_split(text, len, at, 0, 0, &o);
			if (accept)
				snprintf(expect, sizeof(expect), "M%s|M[7]", want);
			else if (b == '\n') /* it ends the bad line: the rest is one more */
				snprintf(expect, sizeof(expect), "S|S|M[7]");
			else
				snprintf(expect, sizeof(expect), "S|M[7]");
			if (strcmp(o.buf, expect) != 0) {
				wrong++;
				if (first_wrong < 0)
					printf("# 0x%02x split at %zu: %s\n", b, at, o.buf);
				if (first_wrong < 0)
					first_wrong = b;
			}
		}
	}
	ok(wrong == 0, "each byte value in a string, at every split: %d wrong (first byte 0x%02x)",
		wrong, first_wrong < 0 ? 0 : first_wrong);
}

/* The decoder parses under its own "C" locale object and gives the thread
 * back the locale it had, whether the global one or one of its own. */
static void test_locale(void)
{
	locale_t dup = duplocale(LC_GLOBAL_LOCALE);
	locale_t mine = dup ? newlocale(LC_NUMERIC_MASK, "C", dup) : (locale_t)0;
	struct out o;

	ok(mine != (locale_t)0, "locale: a thread locale of our own");
	if (!mine) {
		if (dup)
			freelocale(dup);
		return;
	}
	uselocale(mine);
	decode_split("[1.5,{\"a\":-2e3}]\n-2.25 \"x\"", 26, 5, 0, 0, &o);
	is_str(o.buf, "M[1.5,{\"a\":-2e3}]|M-2.25|M\"x\"", "locale: numbers parsed");
	ok(uselocale((locale_t)0) == mine, "locale: the thread's own locale is back");
	uselocale(LC_GLOBAL_LOCALE);
	decode_split("[0.5] 7 ", 8, 2, 0, 0, &o);
	is_str(o.buf, "M[0.5]|M7", "locale: numbers parsed under the global locale");
	ok(uselocale((locale_t)0) == LC_GLOBAL_LOCALE, "locale: the global locale is back");
	freelocale(mine);
}

int main(void)
{
	test_splits();
	test_big_integers();
	test_whitespace();
	test_scalars();
	test_garbage();
	test_utf8();
	test_size_cap();
	test_depth();
	test_evbuffer();
	test_locale();
	test_string_bytes();
	return tap_done();
}
