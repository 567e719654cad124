/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gl_msg_parse: every rule accepted and rejected; builders round-trip. */
#include <errno.h>
#include <string.h>

#include "guestlink/jsonrpc.h"
#include "guestlink/stream.h"
#include "tap.h"

static const struct {
	const char *text;
	int kind; /* enum gl_msg_kind, or -1 for invalid */
	const char *why;
} cases[] = {
	/* requests and notifications */
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1}", GL_MSG_REQUEST, "integer id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":-7}", GL_MSG_REQUEST, "negative id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":\"x\"}", GL_MSG_REQUEST, "string id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":null}", GL_MSG_REQUEST, "null id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\"}", GL_MSG_NOTIFICATION, "no id: notification" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":[1,2],\"id\":1}", GL_MSG_REQUEST,
		"params array" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":{\"x\":1},\"id\":1}", GL_MSG_REQUEST,
		"params object" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.discover\",\"id\":1}", GL_MSG_REQUEST,
		"rpc. names are the dispatcher's business" },
	{ "{\"id\":1,\"method\":\"a\",\"jsonrpc\":\"2.0\"}", GL_MSG_REQUEST, "member order is free" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1.5}", -1, "fractional id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1.0}", -1, "id 1.0 is not an integer" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1e2}", -1, "exponent id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":true}", -1, "boolean id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":[1]}", -1, "array id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":{}}", -1, "object id" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":1,\"id\":1}", -1, "numeric method" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":null,\"id\":1}", -1, "null method" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":\"x\",\"id\":1}", -1, "string params" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":3,\"id\":1}", -1, "number params" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":null,\"id\":1}", -1, "null params" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"extra\":1,\"id\":1}", -1, "unknown member" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"result\":1,\"id\":1}", -1, "method and result" },
	{ "{\"jsonrpc\":\"1.0\",\"method\":\"a\",\"id\":1}", -1, "jsonrpc 1.0" },
	{ "{\"jsonrpc\":2.0,\"method\":\"a\",\"id\":1}", -1, "jsonrpc a number" },
	{ "{\"jsonrpc\":\"2.0 \",\"method\":\"a\",\"id\":1}", -1, "jsonrpc with a space" },
	{ "{\"method\":\"a\",\"id\":1}", -1, "no jsonrpc" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1}", -1, "neither method nor result" },
	{ "[]", -1, "array" },
	{ "1", -1, "number" },
	{ "\"x\"", -1, "string" },
	/* responses */
	{ "{\"jsonrpc\":\"2.0\",\"result\":{\"a\":1},\"id\":1}", GL_MSG_RESULT, "result" },
	{ "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":\"q\"}", GL_MSG_RESULT, "null result" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"m\"},\"id\":1}",
		GL_MSG_ERROR, "error" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"m\"},\"id\":null}",
		GL_MSG_ERROR, "error, id null" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":\"m\",\"data\":[1]},\"id\":1}",
		GL_MSG_ERROR, "error with data" },
	{ "{\"jsonrpc\":\"2.0\",\"result\":1}", -1, "result without id" },
	{ "{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":{\"code\":1,\"message\":\"m\"},\"id\":1}",
		-1, "result and error" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1.5,\"message\":\"m\"},\"id\":1}", -1,
		"fractional code" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":\"1\",\"message\":\"m\"},\"id\":1}", -1,
		"string code" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":4294967296,\"message\":\"m\"},\"id\":1}", -1,
		"code out of range" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"message\":\"m\"},\"id\":1}", -1, "no code" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1},\"id\":1}", -1, "no message" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":2},\"id\":1}", -1,
		"numeric message" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":\"boom\",\"id\":1}", -1, "error not an object" },
	{ "{\"jsonrpc\":\"2.0\",\"error\":null,\"id\":1}", -1, "error null" },
	{ "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":1.5}", -1, "response with fractional id" },
};

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json_object *o = json_tokener_parse(cases[i].text);
		struct gl_msg m;
		const char *reason = NULL;
		int r;

		if (!o) {
			ok(0, "parse %s", cases[i].text);
			continue;
		}
		memset(&m, 0xaa, sizeof(m));
		r = gl_msg_parse(o, &m, &reason);
		if (cases[i].kind < 0)
			ok(r == -EBADMSG && reason && *reason, "reject: %s (%s)", cases[i].why,
				reason ? reason : "no reason");
		else
			ok(r == 0 && (int)m.kind == cases[i].kind, "accept: %s", cases[i].why);
		json_object_put(o);
	}
}

static void test_fields(void)
{
	struct json_object *o;
	struct gl_msg m;

	o = json_tokener_parse(
		"{\"jsonrpc\":\"2.0\",\"method\":\"m.x\",\"params\":[7],\"id\":\"abc\"}");
	ok(gl_msg_parse(o, &m, NULL) == 0, "request parses");
	is_str(m.method, "m.x", "method");
	ok(m.has_id && json_object_is_type(m.id, json_type_string), "string id kept");
	ok(json_object_array_length(m.params) == 1, "params borrowed");
	json_object_put(o);

	o = json_tokener_parse("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"id\":null}");
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.has_id && m.id == NULL && m.params == NULL,
		"null id: has_id with id NULL, no params");
	json_object_put(o);

	o = json_tokener_parse("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}");
	ok(gl_msg_parse(o, &m, NULL) == 0 && !m.has_id && m.kind == GL_MSG_NOTIFICATION,
		"notification has no id");
	json_object_put(o);

	o = json_tokener_parse("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32004,\"message\":"
			       "\"late\",\"data\":5},\"id\":3}");
	ok(gl_msg_parse(o, &m, NULL) == 0, "error parses");
	is_int(m.error_code, -32004, "error code");
	is_str(m.error_message, "late", "error message");
	is_int(json_object_get_int(m.error_data), 5, "error data");
	json_object_put(o);

	ok(gl_msg_parse(NULL, &m, NULL) == -EBADMSG, "NULL (JSON null) rejected");
}

/* The members are found in one pass over the object: every order, names
 * repeated in the text (json-c keeps the last value), names that look like
 * the ones wanted, and each wrong type, with the exact reason. */
static const struct {
	const char *text;
	int kind;           /* enum gl_msg_kind, or -1 for invalid */
	const char *expect; /* method for requests, the reason for refusals */
} pass_cases[] = {
	{ "{\"params\":[3],\"id\":5,\"method\":\"m\",\"jsonrpc\":\"2.0\"}", GL_MSG_REQUEST, "m" },
	{ "{\"id\":1,\"id\":2,\"jsonrpc\":\"2.0\",\"method\":\"m\"}", GL_MSG_REQUEST, "m" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":1,\"method\":\"last\",\"id\":2}", GL_MSG_REQUEST, "last" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":1,\"id\":2}", -1,
		"\"method\" must be a string" },
	{ "{\"jsonrpc\":\"1.0\",\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":2}", GL_MSG_REQUEST, "m" },
	{ "{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"1.0\",\"method\":\"m\",\"id\":2}", -1,
		"\"jsonrpc\" must be \"2.0\"" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":2,\"params\":[],\"params\":7}", -1,
		"\"params\" must be an array or an object" },
	{ "{\"method\":\"m\",\"ids\":1,\"jsonrpc\":\"2.0\"}", -1, "unknown member in request" },
	{ "{\"i\":1,\"method\":\"m\",\"jsonrpc\":\"2.0\"}", -1, "unknown member in request" },
	{ "{\"jsonrpc\":\"2.0\",\"\":1,\"method\":\"m\"}", -1, "unknown member in request" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"Id\":1}", -1, "unknown member in request" },
	{ "{\"error\":{},\"jsonrpc\":\"2.0\",\"method\":\"m\"}", -1, "unknown member in request" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":7,\"extra\":1}", -1, "\"method\" must be a string" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\":true,\"extra\":1}", -1,
		"\"id\" must be a string, an integer or null" },
	{ "{\"method\":\"m\",\"jsonrpc\":null}", -1, "\"jsonrpc\" must be \"2.0\"" },
	{ "{\"method\":\"m\",\"jsonrpc\":[\"2.0\"]}", -1, "\"jsonrpc\" must be \"2.0\"" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":true}", -1,
		"\"params\" must be an array or an object" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"a\\u0000b\",\"id\":1}", -1,
		"\"method\" must not contain NUL characters" },
	/* responses */
	{ "{\"id\":3,\"result\":[],\"jsonrpc\":\"2.0\",\"extra\":1}", GL_MSG_RESULT, NULL },
	{ "{\"result\":1,\"jsonrpc\":\"2.0\",\"id\":3,\"params\":[]}", -1,
		"\"params\" in a response" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":3,\"results\":1}", -1,
		"a response needs exactly one of \"result\" and \"error\"" },
	{ "{\"jsonrpc\":\"2.0\",\"result\":1,\"error\":null,\"id\":3}", -1,
		"a response needs exactly one of \"result\" and \"error\"" },
	{ "{\"error\":{\"message\":\"x\",\"code\":-1},\"jsonrpc\":\"2.0\",\"id\":null}",
		GL_MSG_ERROR, NULL },
	{ "{\"error\":{\"code\":-1,\"message\":\"x\"},\"jsonrpc\":\"2.0\"}", -1,
		"a response needs an \"id\"" },
};

static void test_one_pass(void)
{
	/* The request in each of the 24 orders of its four members. */
	static const char *const member[] = { "\"jsonrpc\":\"2.0\"", "\"method\":\"m.p\"",
		"\"params\":{\"k\":1}", "\"id\":42" };
	int good = 0;

	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 4; b++)
			for (int c = 0; c < 4; c++) {
				int d = 6 - a - b - c;
				char text[160];
				struct json_object *o;
				struct gl_msg m;

				if (a == b || a == c || b == c || d < 0 || d > 3 || d == a ||
					d == b || d == c)
					continue;
				snprintf(text, sizeof(text), "{%s,%s,%s,%s}", member[a], member[b],
					member[c], member[d]);
				o = json_tokener_parse(text);
				if (gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_REQUEST &&
					strcmp(m.method, "m.p") == 0 && m.has_id &&
					json_object_get_int64(m.id) == 42 &&
					json_object_is_type(m.params, json_type_object) &&
					json_object_object_length(m.params) == 1)
					good++;
				json_object_put(o);
			}
	is_int(good, 24, "a request in each of the 24 orders of its members");

	for (size_t i = 0; i < sizeof(pass_cases) / sizeof(pass_cases[0]); i++) {
		struct json_object *o = json_tokener_parse(pass_cases[i].text);
		const char *reason = NULL;
		struct gl_msg m;
		int r;

		memset(&m, 0xaa, sizeof(m));
		r = gl_msg_parse(o, &m, &reason);
		if (pass_cases[i].kind < 0) {
			ok(r == -EBADMSG && reason && strcmp(reason, pass_cases[i].expect) == 0,
				"refused with the reason '%s': %s", pass_cases[i].expect,
				pass_cases[i].text);
			if (r != -EBADMSG || !reason || strcmp(reason, pass_cases[i].expect) != 0)
				printf("#   got %d '%s'\n", r, r < 0 && reason ? reason : "");
		} else if (pass_cases[i].kind == GL_MSG_REQUEST)
			ok(r == 0 && m.kind == GL_MSG_REQUEST && m.has_id &&
					json_object_get_int64(m.id) ==
						(strstr(pass_cases[i].text, "\"id\":5") ? 5 : 2) &&
					strcmp(m.method, pass_cases[i].expect) == 0,
				"request '%s' (the last of repeated members): %s",
				pass_cases[i].expect, pass_cases[i].text);
		else
			ok(r == 0 && (int)m.kind == pass_cases[i].kind && m.has_id,
				"response accepted: %s", pass_cases[i].text);
		json_object_put(o);
	}
}

static const char *enc(struct json_object *o)
{
	return gl_encode_string(o, NULL);
}

static void test_builders(void)
{
	struct json_object *o, *id, *p;
	struct gl_msg m;

	o = gl_rpc_request_new("agent.echo", json_tokener_parse("[1,\"a/b\"]"),
		json_object_new_int(9));
	is_str(enc(o),
		"{\"jsonrpc\":\"2.0\",\"method\":\"agent.echo\",\"params\":[1,\"a/b\"],\"id\":9}",
		"request text (compact, no slash escapes)");
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_REQUEST, "request round-trips");
	json_object_put(o);

	o = gl_rpc_request_new("tick", NULL, NULL);
	is_str(enc(o), "{\"jsonrpc\":\"2.0\",\"method\":\"tick\"}", "notification text");
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_NOTIFICATION,
		"notification round-trips");
	json_object_put(o);

	id = json_object_new_string("k");
	o = gl_rpc_result_new(id, json_object_new_boolean(1));
	json_object_put(id); /* borrowed: the result keeps its own */
	is_str(enc(o), "{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":\"k\"}", "result text");
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_RESULT, "result round-trips");
	json_object_put(o);

	o = gl_rpc_result_new(NULL, NULL);
	is_str(enc(o), "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":null}", "null result, null id");
	json_object_put(o);

	o = gl_rpc_error_new(NULL, GL_RPC_PARSE_ERROR, NULL, NULL);
	is_str(enc(o), "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}",
		"parse error text");
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.kind == GL_MSG_ERROR && m.error_code == -32700,
		"error round-trips");
	json_object_put(o);

	id = json_object_new_int(4);
	p = json_object_new_array();
	o = gl_rpc_error_new(id, GL_RPC_DENIED, "no", p);
	json_object_put(id);
	is_str(enc(o), "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,\"message\":\"no\",\"data\":[]},\"id\":4}",
		"error with message and data");
	json_object_put(o);

	id = json_object_new_int(5);
	o = gl_rpc_os_error_new(id, -ENOENT, NULL);
	json_object_put(id);
	ok(gl_msg_parse(o, &m, NULL) == 0 && m.error_code == GL_RPC_OS_ERROR, "os error is -32000");
	{
		struct json_object *v;
		ok(json_object_object_get_ex(m.error_data, "errno", &v) &&
				strcmp(json_object_get_string(v), "ENOENT") == 0,
			"os error data.errno ENOENT");
		ok(json_object_object_get_ex(m.error_data, "message", &v) &&
				strcmp(json_object_get_string(v), strerror(ENOENT)) == 0,
			"os error data.message");
	}
	is_str(m.error_message, strerror(ENOENT), "os error message defaults to strerror");
	json_object_put(o);
}

static void test_tables(void)
{
	is_str(gl_rpc_code_message(-32700), "Parse error", "-32700 text");
	is_str(gl_rpc_code_message(-32600), "Invalid Request", "-32600 text");
	is_str(gl_rpc_code_message(-32601), "Method not found", "-32601 text");
	is_str(gl_rpc_code_message(-32602), "Invalid params", "-32602 text");
	is_str(gl_rpc_code_message(-32603), "Internal error", "-32603 text");
	is_str(gl_rpc_code_message(-32050), "Server error", "reserved server range");
	is_str(gl_errno_name(ENOENT), "ENOENT", "ENOENT");
	is_str(gl_errno_name(-EACCES), "EACCES", "negative errno accepted");
	is_str(gl_errno_name(EAGAIN), "EAGAIN", "EAGAIN (not its alias)");
	is_str(gl_errno_name(EOPNOTSUPP), "EOPNOTSUPP", "EOPNOTSUPP");
	is_str(gl_errno_name(EHWPOISON), "EHWPOISON", "the last one");
	ok(gl_errno_name(0) == NULL, "0 has no name");
	ok(gl_errno_name(100000) == NULL, "out of range has no name");
}

int main(void)
{
	test_cases();
	test_fields();
	test_one_pass();
	test_builders();
	test_tables();
	return tap_done();
}
