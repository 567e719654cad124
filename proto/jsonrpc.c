/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON-RPC 2.0 message model: strict validation of one message, builders. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "guestlink/jsonrpc.h"
#include "macro.h"

static const char *const jsonrpc_errno_names[] = {
	[EPERM] = "EPERM",
	[ENOENT] = "ENOENT",
	[ESRCH] = "ESRCH",
	[EINTR] = "EINTR",
	[EIO] = "EIO",
	[ENXIO] = "ENXIO",
	[E2BIG] = "E2BIG",
	[ENOEXEC] = "ENOEXEC",
	[EBADF] = "EBADF",
	[ECHILD] = "ECHILD",
	[EAGAIN] = "EAGAIN",
	[ENOMEM] = "ENOMEM",
	[EACCES] = "EACCES",
	[EFAULT] = "EFAULT",
	[ENOTBLK] = "ENOTBLK",
	[EBUSY] = "EBUSY",
	[EEXIST] = "EEXIST",
	[EXDEV] = "EXDEV",
	[ENODEV] = "ENODEV",
	[ENOTDIR] = "ENOTDIR",
	[EISDIR] = "EISDIR",
	[EINVAL] = "EINVAL",
	[ENFILE] = "ENFILE",
	[EMFILE] = "EMFILE",
	[ENOTTY] = "ENOTTY",
	[ETXTBSY] = "ETXTBSY",
	[EFBIG] = "EFBIG",
	[ENOSPC] = "ENOSPC",
	[ESPIPE] = "ESPIPE",
	[EROFS] = "EROFS",
	[EMLINK] = "EMLINK",
	[EPIPE] = "EPIPE",
	[EDOM] = "EDOM",
	[ERANGE] = "ERANGE",
	[EDEADLK] = "EDEADLK",
	[ENAMETOOLONG] = "ENAMETOOLONG",
	[ENOLCK] = "ENOLCK",
	[ENOSYS] = "ENOSYS",
	[ENOTEMPTY] = "ENOTEMPTY",
	[ELOOP] = "ELOOP",
	[ENOMSG] = "ENOMSG",
	[EIDRM] = "EIDRM",
	[ECHRNG] = "ECHRNG",
	[EL2NSYNC] = "EL2NSYNC",
	[EL3HLT] = "EL3HLT",
	[EL3RST] = "EL3RST",
	[ELNRNG] = "ELNRNG",
	[EUNATCH] = "EUNATCH",
	[ENOCSI] = "ENOCSI",
	[EL2HLT] = "EL2HLT",
	[EBADE] = "EBADE",
	[EBADR] = "EBADR",
	[EXFULL] = "EXFULL",
	[ENOANO] = "ENOANO",
	[EBADRQC] = "EBADRQC",
	[EBADSLT] = "EBADSLT",
	[EBFONT] = "EBFONT",
	[ENOSTR] = "ENOSTR",
	[ENODATA] = "ENODATA",
	[ETIME] = "ETIME",
	[ENOSR] = "ENOSR",
	[ENONET] = "ENONET",
	[ENOPKG] = "ENOPKG",
	[EREMOTE] = "EREMOTE",
	[ENOLINK] = "ENOLINK",
	[EADV] = "EADV",
	[ESRMNT] = "ESRMNT",
	[ECOMM] = "ECOMM",
	[EPROTO] = "EPROTO",
	[EMULTIHOP] = "EMULTIHOP",
	[EDOTDOT] = "EDOTDOT",
	[EBADMSG] = "EBADMSG",
	[EOVERFLOW] = "EOVERFLOW",
	[ENOTUNIQ] = "ENOTUNIQ",
	[EBADFD] = "EBADFD",
	[EREMCHG] = "EREMCHG",
	[ELIBACC] = "ELIBACC",
	[ELIBBAD] = "ELIBBAD",
	[ELIBSCN] = "ELIBSCN",
	[ELIBMAX] = "ELIBMAX",
	[ELIBEXEC] = "ELIBEXEC",
	[EILSEQ] = "EILSEQ",
	[ERESTART] = "ERESTART",
	[ESTRPIPE] = "ESTRPIPE",
	[EUSERS] = "EUSERS",
	[ENOTSOCK] = "ENOTSOCK",
	[EDESTADDRREQ] = "EDESTADDRREQ",
	[EMSGSIZE] = "EMSGSIZE",
	[EPROTOTYPE] = "EPROTOTYPE",
	[ENOPROTOOPT] = "ENOPROTOOPT",
	[EPROTONOSUPPORT] = "EPROTONOSUPPORT",
	[ESOCKTNOSUPPORT] = "ESOCKTNOSUPPORT",
	[EOPNOTSUPP] = "EOPNOTSUPP",
	[EPFNOSUPPORT] = "EPFNOSUPPORT",
	[EAFNOSUPPORT] = "EAFNOSUPPORT",
	[EADDRINUSE] = "EADDRINUSE",
	[EADDRNOTAVAIL] = "EADDRNOTAVAIL",
	[ENETDOWN] = "ENETDOWN",
	[ENETUNREACH] = "ENETUNREACH",
	[ENETRESET] = "ENETRESET",
	[ECONNABORTED] = "ECONNABORTED",
	[ECONNRESET] = "ECONNRESET",
	[ENOBUFS] = "ENOBUFS",
	[EISCONN] = "EISCONN",
	[ENOTCONN] = "ENOTCONN",
	[ESHUTDOWN] = "ESHUTDOWN",
	[ETOOMANYREFS] = "ETOOMANYREFS",
	[ETIMEDOUT] = "ETIMEDOUT",
	[ECONNREFUSED] = "ECONNREFUSED",
	[EHOSTDOWN] = "EHOSTDOWN",
	[EHOSTUNREACH] = "EHOSTUNREACH",
	[EALREADY] = "EALREADY",
	[EINPROGRESS] = "EINPROGRESS",
	[ESTALE] = "ESTALE",
	[EUCLEAN] = "EUCLEAN",
	[ENOTNAM] = "ENOTNAM",
	[ENAVAIL] = "ENAVAIL",
	[EISNAM] = "EISNAM",
	[EREMOTEIO] = "EREMOTEIO",
	[EDQUOT] = "EDQUOT",
	[ENOMEDIUM] = "ENOMEDIUM",
	[EMEDIUMTYPE] = "EMEDIUMTYPE",
	[ECANCELED] = "ECANCELED",
	[ENOKEY] = "ENOKEY",
	[EKEYEXPIRED] = "EKEYEXPIRED",
	[EKEYREVOKED] = "EKEYREVOKED",
	[EKEYREJECTED] = "EKEYREJECTED",
	[EOWNERDEAD] = "EOWNERDEAD",
	[ENOTRECOVERABLE] = "ENOTRECOVERABLE",
	[ERFKILL] = "ERFKILL",
	[EHWPOISON] = "EHWPOISON",
};

struct jsonrpc_code_text {
	int code;
	const char *text;
};

static const struct jsonrpc_code_text jsonrpc_code_texts[] = {
	{ GL_RPC_PARSE_ERROR, "Parse error" },
	{ GL_RPC_INVALID_REQUEST, "Invalid Request" },
	{ GL_RPC_METHOD_NOT_FOUND, "Method not found" },
	{ GL_RPC_INVALID_PARAMS, "Invalid params" },
	{ GL_RPC_INTERNAL_ERROR, "Internal error" },
	{ GL_RPC_OS_ERROR, "Operating system error" },
	{ GL_RPC_DENIED, "Denied by policy" },
	{ GL_RPC_NO_SUCH_OBJECT, "No such object" },
	{ GL_RPC_LIMIT, "Limit reached" },
	{ GL_RPC_TIMEOUT, "Timed out" },
};

/* The members gl_msg_parse() looks at, found in one pass over the object
 * (json-c keeps one value per name: of repeated names, the last). */
enum {
	JSONRPC_M_JSONRPC,
	JSONRPC_M_METHOD,
	JSONRPC_M_PARAMS,
	JSONRPC_M_ID,
	JSONRPC_M_RESULT,
	JSONRPC_M_ERROR,
	JSONRPC_M_COUNT,
	JSONRPC_M_REQUEST_COUNT = JSONRPC_M_RESULT, /* members a request may carry */
};

static const char *const jsonrpc_members[JSONRPC_M_COUNT] = {
	[JSONRPC_M_JSONRPC] = "jsonrpc",
	[JSONRPC_M_METHOD] = "method",
	[JSONRPC_M_PARAMS] = "params",
	[JSONRPC_M_ID] = "id",
	[JSONRPC_M_RESULT] = "result",
	[JSONRPC_M_ERROR] = "error",
};

struct jsonrpc_seen {
	struct json_object *val[JSONRPC_M_COUNT];
	bool has[JSONRPC_M_COUNT];
	bool other_than_request; /* a member a request may not carry */
};

const char *gl_errno_name(int errnum)
{
	errnum = abs(errnum);
	if ((size_t)errnum >= ELEMENTSOF(jsonrpc_errno_names))
		return NULL;
	return jsonrpc_errno_names[errnum];
}

const char *gl_rpc_code_message(int code)
{
	for (size_t i = 0; i < ELEMENTSOF(jsonrpc_code_texts); i++)
		if (jsonrpc_code_texts[i].code == code)
			return jsonrpc_code_texts[i].text;
	if (code >= -32099 && code <= -32000)
		return "Server error";
	return "Unknown error";
}

/* One pass over the members of obj: what json_object_object_get_ex() would
 * find for each name of jsonrpc_members, without a hash lookup per name. */
static void jsonrpc_collect(struct json_object *obj, struct jsonrpc_seen *seen)
{
	json_object_object_foreach (obj, key, val) {
		size_t i;

		for (i = 0; i < JSONRPC_M_COUNT; i++)
			if (key[0] == jsonrpc_members[i][0] && strcmp(key, jsonrpc_members[i]) == 0)
				break;
		if (i >= JSONRPC_M_REQUEST_COUNT)
			seen->other_than_request = true;
		if (i < JSONRPC_M_COUNT) {
			seen->has[i] = true;
			seen->val[i] = val;
		}
	}
}

static int jsonrpc_fail(const char **ret_reason, const char *reason)
{
	if (ret_reason)
		*ret_reason = reason;
	return -EBADMSG;
}

int gl_msg_parse(struct json_object *obj, struct gl_msg *ret, const char **ret_reason)
{
	struct json_object *v, *id, *method, *result, *error;
	struct jsonrpc_seen seen = { 0 };
	struct gl_msg m = { 0 };
	bool has_result, has_error;

	if (!json_object_is_type(obj, json_type_object))
		return jsonrpc_fail(ret_reason, "message is not an object");
	jsonrpc_collect(obj, &seen);

	v = seen.val[JSONRPC_M_JSONRPC];
	if (!seen.has[JSONRPC_M_JSONRPC] || !json_object_is_type(v, json_type_string) ||
		strcmp(json_object_get_string(v), "2.0") != 0)
		return jsonrpc_fail(ret_reason, "\"jsonrpc\" must be \"2.0\"");

	m.has_id = seen.has[JSONRPC_M_ID];
	id = seen.val[JSONRPC_M_ID];
	/* The decoder hands on an integer beyond int64 as a number with its own
	 * text (see stream.c): it cannot be held, so it cannot be echoed. */
	if (m.has_id && json_object_is_type(id, json_type_double) &&
		!strpbrk(json_object_get_string(id), ".eE"))
		return jsonrpc_fail(ret_reason, "\"id\" is an integer beyond the int64 range");
	if (m.has_id && id && !json_object_is_type(id, json_type_string) &&
		!json_object_is_type(id, json_type_int))
		return jsonrpc_fail(ret_reason, "\"id\" must be a string, an integer or null");
	m.id = id;

	if (seen.has[JSONRPC_M_METHOD]) {
		method = seen.val[JSONRPC_M_METHOD];
		if (!json_object_is_type(method, json_type_string))
			return jsonrpc_fail(ret_reason, "\"method\" must be a string");
		if (seen.other_than_request)
			return jsonrpc_fail(ret_reason, "unknown member in request");
		if (seen.has[JSONRPC_M_PARAMS]) {
			v = seen.val[JSONRPC_M_PARAMS];
			if (!json_object_is_type(v, json_type_array) &&
				!json_object_is_type(v, json_type_object))
				return jsonrpc_fail(ret_reason,
					"\"params\" must be an array or an object");
			m.params = v;
		}
		/* "agent.echo\u0000x" must not run as agent.echo. */
		if (strlen(json_object_get_string(method)) !=
			(size_t)json_object_get_string_len(method))
			return jsonrpc_fail(ret_reason,
				"\"method\" must not contain NUL characters");
		m.method = json_object_get_string(method);
		m.kind = m.has_id ? GL_MSG_REQUEST : GL_MSG_NOTIFICATION;
		*ret = m;
		return 0;
	}

	has_result = seen.has[JSONRPC_M_RESULT];
	result = seen.val[JSONRPC_M_RESULT];
	has_error = seen.has[JSONRPC_M_ERROR];
	error = seen.val[JSONRPC_M_ERROR];
	if (has_result == has_error)
		return jsonrpc_fail(ret_reason,
			"a response needs exactly one of \"result\" and \"error\"");
	if (!m.has_id)
		return jsonrpc_fail(ret_reason, "a response needs an \"id\"");
	if (seen.has[JSONRPC_M_PARAMS])
		return jsonrpc_fail(ret_reason, "\"params\" in a response");

	if (has_result) {
		m.kind = GL_MSG_RESULT;
		m.result = result;
	} else {
		int64_t code;

		if (!json_object_is_type(error, json_type_object))
			return jsonrpc_fail(ret_reason, "\"error\" must be an object");
		if (!json_object_object_get_ex(error, "code", &v) ||
			!json_object_is_type(v, json_type_int))
			return jsonrpc_fail(ret_reason, "\"error.code\" must be an integer");
		code = json_object_get_int64(v);
		if (code < INT32_MIN || code > INT32_MAX)
			return jsonrpc_fail(ret_reason, "\"error.code\" out of range");
		if (!json_object_object_get_ex(error, "message", &v) ||
			!json_object_is_type(v, json_type_string))
			return jsonrpc_fail(ret_reason, "\"error.message\" must be a string");
		m.kind = GL_MSG_ERROR;
		m.error_code = (int)code;
		m.error_message = json_object_get_string(v);
		if (json_object_object_get_ex(error, "data", &v))
			m.error_data = v;
	}
	*ret = m;
	return 0;
}

static struct json_object *jsonrpc_envelope(void)
{
	struct json_object *o = json_object_new_object();

	if (o && json_object_object_add(o, "jsonrpc", json_object_new_string("2.0")) < 0)
		o = (json_object_put(o), NULL);
	return o;
}

/* Add `val` under `key`; takes val even on failure. A NULL val is a failed
 * allocation: JSON null is added with jsonrpc_add_nullable(). */
static int jsonrpc_add_nullable(struct json_object *o, const char *key, struct json_object *val)
{
	if (json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

static int jsonrpc_add(struct json_object *o, const char *key, struct json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

struct json_object *gl_rpc_request_new(const char *method, struct json_object *params,
	struct json_object *id)
{
	struct json_object *o;

	o = jsonrpc_envelope();
	if (!o || jsonrpc_add(o, "method", json_object_new_string(method)) < 0 ||
		(params && jsonrpc_add(o, "params", json_object_get(params)) < 0) ||
		(id && jsonrpc_add(o, "id", json_object_get(id)) < 0))
		o = (json_object_put(o), NULL);
	json_object_put(params);
	json_object_put(id);
	return o;
}

struct json_object *gl_rpc_result_new(struct json_object *id, struct json_object *result)
{
	struct json_object *o;

	o = jsonrpc_envelope();
	if (!o || jsonrpc_add_nullable(o, "result", json_object_get(result)) < 0 ||
		jsonrpc_add_nullable(o, "id", json_object_get(id)) < 0)
		o = (json_object_put(o), NULL);
	json_object_put(result);
	return o;
}

struct json_object *gl_rpc_error_new(struct json_object *id, int code, const char *message,
	struct json_object *data)
{
	struct json_object *o, *e;

	o = jsonrpc_envelope();
	if (!o || jsonrpc_add(o, "error", e = json_object_new_object()) < 0)
		goto fail;
	if (jsonrpc_add(e, "code", json_object_new_int(code)) < 0 ||
		jsonrpc_add(e, "message",
			json_object_new_string(message ? message : gl_rpc_code_message(code))) < 0 ||
		(data && jsonrpc_add(e, "data", json_object_get(data)) < 0) ||
		jsonrpc_add_nullable(o, "id", json_object_get(id)) < 0)
		goto fail;
	json_object_put(data);
	return o;
fail:
	json_object_put(o);
	json_object_put(data);
	return NULL;
}

struct json_object *gl_rpc_os_error_new(struct json_object *id, int errnum, const char *message)
{
	struct json_object *data;
	const char *name;

	errnum = abs(errnum);
	name = gl_errno_name(errnum);
	data = json_object_new_object();
	if (!data)
		return NULL;
	if (jsonrpc_add(data, "errno",
		    name ? json_object_new_string(name) : json_object_new_int(errnum)) < 0 ||
		jsonrpc_add(data, "message", json_object_new_string(strerror(errnum))) < 0) {
		json_object_put(data);
		return NULL;
	}
	return gl_rpc_error_new(id, GL_RPC_OS_ERROR, message ? message : strerror(errnum), data);
}
