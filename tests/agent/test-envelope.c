/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The envelope fast path (agent/envelope.c): which texts it takes, and for
 * every text, taken or not and fed whole or in pieces, the same call and the
 * same answer bytes as the decoder + gl_msg_parse() path
 * (tests/fuzz/envelope-diff.h). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <guestlink/stream.h>

#include "envelope-diff.h"
#include "envelope.h"
#include "tap.h"

#define P "\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\""

struct envelope_case {
	const char *text;
	bool taken;          /* the scanner takes the first text */
	const char *answers; /* NULL: not checked beyond equality of both paths */
};

static const struct envelope_case cases[] = {
	/* Members in every order, each optional one missing. */
	{ "{" P ",\"id\":1}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":1}\n" },
	{ "{\"id\":2," P "}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":2}\n" },
	{ "{\"method\":\"agent.ping\",\"id\":3,\"jsonrpc\":\"2.0\"}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":3}\n" },
	{ "{\"params\":{},\"id\":4,\"method\":\"agent.ping\",\"jsonrpc\":\"2.0\"}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":4}\n" },
	{ "{\"jsonrpc\":\"2.0\",\"params\":[],\"method\":\"agent.ping\",\"id\":5}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":5}\n" },
	{ "{" P "}", true, "" }, /* a notification */
	{ "{" P ",\"params\":{}}", true, "" },
	{ "{\"id\":6,\"method\":\"agent.ping\"}", false, NULL },         /* no jsonrpc */
	{ "{\"jsonrpc\":\"2.0\",\"id\":7}", false, NULL },               /* no method */
	{ "{\"jsonrpc\":\"2.0\",\"params\":{},\"id\":8}", false, NULL }, /* no method */
	{ "{}", false, NULL },
	/* Duplicates: json-c keeps the last one; the decoder decides. */
	{ "{" P ",\"id\":9,\"id\":10}", false,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":10}\n" },
	{ "{" P ",\"method\":\"agent.echo\",\"id\":11}", false, NULL },
	{ "{" P ",\"jsonrpc\":\"2.0\",\"id\":12}", false, NULL },
	{ "{" P ",\"params\":{},\"params\":[],\"id\":13}", false, NULL },
	/* Escapes anywhere. */
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.p\\u0069ng\",\"id\":14}", false,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":14}\n" },
	{ "{\"json\\u0072pc\":\"2.0\",\"method\":\"agent.ping\",\"id\":15}", false, NULL },
	{ "{" P ",\"id\":\"a\\\"b\"}", false, NULL },
	{ "{" P ",\"id\":\"a\\/b\"}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\\u0000x\",\"id\":16}", false, NULL },
	{ "{\"jsonrpc\":\"2\\u002e0\",\"method\":\"agent.ping\",\"id\":17}", false, NULL },
	/* Ids. */
	{ "{" P ",\"id\":\"s-1/x\"}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":\"s-1/x\"}\n" },
	{ "{" P ",\"id\":\"\"}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":\"\"}\n" },
	{ "{" P ",\"id\":0}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":0}\n" },
	{ "{" P ",\"id\":-42}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":-42}\n" },
	{ "{" P ",\"id\":999999999999999999}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":999999999999999999}\n" },
	{ "{" P ",\"id\":-999999999999999999}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":-999999999999999999}\n" },
	{ "{" P ",\"id\":null}", true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":null}\n" },
	{ "{" P ",\"id\":-0}", false, NULL },
	{ "{" P ",\"id\":01}", false, NULL },
	{ "{" P ",\"id\":9223372036854775807}", false,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":9223372036854775807}\n" },
	{ "{" P ",\"id\":-9223372036854775808}", false, NULL },
	{ "{" P ",\"id\":9223372036854775808}", false, NULL },
	{ "{" P ",\"id\":123456789012345678901234567890}", false, NULL },
	{ "{" P ",\"id\":1.5}", false, NULL },
	{ "{" P ",\"id\":1e3}", false, NULL },
	{ "{" P ",\"id\":1E3}", false, NULL },
	{ "{" P ",\"id\":-}", false, NULL },
	{ "{" P ",\"id\":true}", false, NULL },
	{ "{" P ",\"id\":nul}", false, NULL },
	{ "{" P ",\"id\":nullx}", false, NULL },
	{ "{" P ",\"id\":[1]}", false, NULL },
	{ "{" P ",\"id\":{}}", false, NULL },
	{ "{" P ",\"id\":\"x\xc3\xa9\"}", false, NULL },
	{ "{" P ",\"id\":\""
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "\"}",
		true, NULL }, /* ENVELOPE_ID_MAX bytes */
	{ "{" P ",\"id\":\""
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "4\"}",
		false, NULL },
	/* Params. */
	{ "{" P ",\"params\":{\"delay_ms\":0},\"id\":20}", false,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":20}\n" },
	{ "{" P ",\"params\":[0],\"id\":21}", false, NULL },
	{ "{" P ",\"params\":null,\"id\":22}", false, NULL },
	{ "{" P ",\"params\":\"x\",\"id\":23}", false, NULL },
	{ "{" P ",\"params\":{ \t\r\n},\"id\":24}", true, NULL },
	{ "{" P ",\"params\":[ ],\"id\":25}", true, NULL },
	{ "{" P ",\"params\":{],\"id\":26}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":{},\"id\":27}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":{},\"id\":27}\n" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":[],\"id\":28}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":[],\"id\":28}\n" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"id\":29}", true,
		"{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":29}\n" },
	/* Unknown members, responses, other versions and methods. */
	{ "{" P ",\"id\":30,\"x\":1}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":31}", false, NULL },
	{ "{\"jsonrpc\":\"1.0\",\"method\":\"agent.ping\",\"id\":32}", false, NULL },
	{ "{\"jsonrpc\":\"2.00\",\"method\":\"agent.ping\",\"id\":33}", false, NULL },
	{ "{\"jsonrpc\":2.0,\"method\":\"agent.ping\",\"id\":34}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":35}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\",\"id\":36}",
		true, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":36}\n" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":37}", true, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.nosuch\",\"id\":38}", true, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"system.info\",\"id\":39}",
		true, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,\"message\":\"Method denied by policy\"},\"id\":39}\n" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"agent.ping\xc3\xa9\",\"id\":40}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\tb\",\"id\":41}", false, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\""
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "\",\"id\":42}",
		true, NULL }, /* ENVELOPE_METHOD_MAX bytes */
	{ "{\"jsonrpc\":\"2.0\",\"method\":\""
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "4\",\"id\":43}",
		false, NULL },
	/* Batches, nesting, other top-level values. */
	{ "[{" P ",\"id\":44}]", false, "[{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":44}]\n" },
	{ "{" P ",\"id\":45,\"params\":{\"a\":{}}}", false, NULL },
	{ "\"x\"", false, NULL },
	{ "12", false, NULL },
	{ "null", false, NULL },
	/* Trailing garbage, truncation, whitespace. */
	{ "{" P ",\"id\":50}}", true, NULL },
	{ "{" P ",\"id\":51}xyz\n{" P ",\"id\":52}", true, NULL },
	{ "{" P ",\"id\":53", false, NULL },
	{ "{" P ",\"id\":54,}", false, NULL },
	{ "{" P ",,\"id\":55}", false, NULL },
	{ "{" P " \"id\":56}", false, NULL },
	{ "{" P ",\"id\" 57}", false, NULL },
	{ "{" P ",\"id\":58", false, NULL },
	{ "{\"jsonrpc\"", false, NULL },
	{ " \t\r\n{ \"jsonrpc\" : \"2.0\" , \"method\" :\t\"agent.ping\" ,\r\n \"id\" : 60 } \n",
		true, "{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":60}\n" },
	{ "\f{" P ",\"id\":61}", false, NULL },
	{ "{" P ",\"id\":62\f}", false, NULL },
	{ "{" P ",\"id\":63\v}", false, NULL },
	{ "{" P ",\"id\":64}\n{" P ",\"id\":65}\n\n{" P ",\"params\":[\"x\"],\"id\":66}\n{" P
	  ",\"id\":67}",
		true,
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":64}\n"
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":65}\n"
		"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"Invalid parameter "
		"'delay_ms': "
		"must be an integer\"},\"id\":66}\n"
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":67}\n" },
	/* After a syntax error the decoder skips to the newline: so must we. */
	{ "{x {" P ",\"id\":70}\n{" P ",\"id\":71}", false,
		"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse "
		"error\"},\"id\":null}\n"
		"{\"jsonrpc\":\"2.0\",\"result\":\"pong\",\"id\":71}\n" },
};

/* text with control characters and non-ASCII as \xNN, for one TAP line. */
static const char *printable(const char *text, char *buf, size_t size)
{
	size_t o = 0;

	for (; *text && o + 5 < size; text++) {
		unsigned char c = (unsigned char)*text;

		if (c < 0x20 || c > 0x7e)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

/* Pieces every case is fed in: whole, byte by byte, and two odd sizes. */
static const size_t chunks[] = { 0, 1, 3, 17 };

int main(void)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	envelope_diff_init();
	for (size_t i = 0; i < n; i++) {
		const struct envelope_case *t = &cases[i];
		const char *why = NULL;
		bool taken = false, answers_ok = true;
		char shown[512];

		for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]) && !why; k++) {
			why = envelope_diff(t->text, strlen(t->text), chunks[k], &taken);
			if (t->answers && strcmp(envelope_diff_answers(), t->answers) != 0)
				answers_ok = false;
		}
		ok(!why && taken == t->taken && answers_ok, "%s %s: %s",
			t->taken ? "taken" : "left", printable(t->text, shown, sizeof(shown)),
			why          ? why
			: answers_ok ? "same call and answers"
				     : "wrong answers");
		if (!answers_ok)
			printf("#   got '%s', want '%s'\n",
				printable(envelope_diff_answers(), shown, sizeof(shown)), t->answers);
		if (taken != t->taken)
			printf("#   the scanner %s it\n", taken ? "took" : "left");
	}

	/* The size limit: a text of max_message bytes is taken by both, one
	 * byte more by neither (the decoder answers it -32003 and closes). */
	{
		const char *text = "  {" P ",\"id\":1}\n";
		size_t len = strlen(text), size = len - 3; /* without the whitespace */
		struct json_object *obj = NULL;
		enum gl_decode_status st_at, st_over;
		struct gl_decoder *d;
		struct envelope e;

		d = gl_decoder_new(size, 0);
		gl_decoder_decode(d, text, len, &st_at, &obj);
		json_object_put(obj);
		gl_decoder_free(d);
		d = gl_decoder_new(size - 1, 0);
		gl_decoder_decode(d, text, len, &st_over, &obj);
		gl_decoder_free(d);
		ok(st_at == GL_DECODE_MESSAGE && envelope_scan(text, len, size, &e) == len,
			"a text of exactly max_message bytes: taken by the decoder and the "
			"scanner");
		ok(st_over == GL_DECODE_TOOBIG && envelope_scan(text, len, size - 1, &e) == 0,
			"one byte over: too big for the decoder, left by the scanner");
	}
	return tap_done();
}
