/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Method parameters: a request's params (object or array) checked against a
 * method's rows and stored into the handler's params struct; the JSON Schema
 * of a row for rpc.discover. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "method.h"
#include "params.h"

#define DISPATCH_MAX_PARAMS 64

/* --- params validation --- */

static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else
			return false;
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			(cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static const char *param_string_problem(struct json_object *v, int64_t max)
{
	size_t len;

	if (!json_object_is_type(v, json_type_string))
		return "must be a string";
	len = (size_t)json_object_get_string_len(v);
	if (strlen(json_object_get_string(v)) != len)
		return "must not contain NUL characters";
	if (!utf8_valid((const unsigned char *)json_object_get_string(v), len))
		return "must be valid UTF-8";
	if (max > 0 && len > (uint64_t)max)
		return "is too long";
	return NULL;
}

/* Check one value against its row and store it. Returns NULL or what is wrong. */
static const char *param_store(const struct method_param *p, struct json_object *v, void *out,
	char *buf, size_t size)
{
	char *field = (char *)out + p->offset;
	const char *why;
	int64_t i;
	size_t n;

	switch (p->type) {
	case PARAM_STRING:
		if ((why = param_string_problem(v, p->max)))
			return why;
		if (p->choices) {
			const char *const *ch;
			for (ch = p->choices; *ch; ch++)
				if (strcmp(*ch, json_object_get_string(v)) == 0)
					break;
			if (!*ch)
				return "is not one of the allowed values";
		}
		*(const char **)field = json_object_get_string(v);
		return NULL;
	case PARAM_INT:
		if (!json_object_is_type(v, json_type_int))
			return "must be an integer";
		/* json_object_get_int64() of an int object never sets errno: it
		 * clamps a uint64 above INT64_MAX silently. From the wire such an
		 * integer never arrives as an int (proto/stream.c keeps integers
		 * beyond int64 as text); a json-c object built here could. */
		i = json_object_get_int64(v);
		if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
			return "must be an integer within the int64 range";
		/* A zero range means unbounded. */
		if ((p->min != 0 || p->max != 0) && (i < p->min || i > p->max)) {
			snprintf(buf, size, "must be between %lld and %lld", (long long)p->min,
				(long long)p->max);
			return buf;
		}
		*(int64_t *)field = i;
		return NULL;
	case PARAM_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return "must be a boolean";
		*(bool *)field = json_object_get_boolean(v);
		return NULL;
	case PARAM_OBJECT:
		if (!json_object_is_type(v, json_type_object))
			return "must be an object";
		*(struct json_object **)field = v;
		return NULL;
	case PARAM_ARRAY:
	case PARAM_STRING_ARRAY:
		if (!json_object_is_type(v, json_type_array))
			return p->type == PARAM_ARRAY ? "must be an array"
						      : "must be an array of strings";
		n = json_object_array_length(v);
		if (p->max > 0 && n > (uint64_t)p->max)
			return "has too many elements";
		if (p->type == PARAM_STRING_ARRAY)
			for (size_t k = 0; k < n; k++)
				if ((why = param_string_problem(json_object_array_get_idx(v, k), 0))) {
					snprintf(buf, size, "element %zu %s", k, why);
					return buf;
				}
		*(struct json_object **)field = v;
		return NULL;
	case PARAM_ANY:
		*(struct json_object **)field = v;
		return NULL;
	}
	return "has an unknown type";
}

/* No params given (none, {} or []): every row takes its default, or the
 * call misses a mandatory one. Without the per-row value tables of the full
 * path: most calls (agent.ping) come this way. */
static int params_fill_defaults(const struct method *m, void *out, char *msg, size_t size)
{
	for (const struct method_param *p = m->params; p && p->name; p++) {
		if (p->flags & PARAM_MANDATORY) {
			snprintf(msg, size, "Missing mandatory parameter '%s'", p->name);
			return -EINVAL;
		}
		if (p->type == PARAM_INT)
			*(int64_t *)((char *)out + p->offset) = p->def;
		else if (p->type == PARAM_BOOL)
			*(bool *)((char *)out + p->offset) = p->def != 0;
	}
	return 0;
}

/* params_fill() of params given (not empty). */
static int params_fill_given(const struct method *m, struct json_object *params, void *out,
	char *msg, size_t size)
{
	struct json_object *vals[DISPATCH_MAX_PARAMS] = { NULL };
	bool present[DISPATCH_MAX_PARAMS] = { false };
	const struct method_param *rows = m->params;
	size_t n_rows = 0;
	char why_buf[96];

	while (rows && rows[n_rows].name)
		n_rows++;
	if (n_rows > DISPATCH_MAX_PARAMS) {
		snprintf(msg, size, "Method has too many parameters");
		return -EINVAL;
	}

	if (json_object_is_type(params, json_type_array)) {
		size_t n = json_object_array_length(params);
		if (n > n_rows) {
			snprintf(msg, size, "Too many positional parameters: %s takes at most %zu",
				m->name, n_rows);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			vals[i] = json_object_array_get_idx(params, i);
			present[i] = true;
		}
	} else if (params) {
		json_object_object_foreach (params, key, v) {
			size_t i;
			for (i = 0; i < n_rows; i++)
				if (strcmp(rows[i].name, key) == 0)
					break;
			if (i == n_rows) {
				char esc[64];
				snprintf(msg, size, "Unknown parameter '%s'",
					log_escape(esc, sizeof(esc), key, strlen(key)));
				return -EINVAL;
			}
			vals[i] = v;
			present[i] = true;
		}
	}

	for (size_t i = 0; i < n_rows; i++) {
		const struct method_param *p = &rows[i];
		const char *why;

		/* JSON null counts as absent, so positional callers can skip optional ones. */
		if (!present[i] || !vals[i]) {
			if (p->flags & PARAM_MANDATORY && !(p->type == PARAM_ANY && present[i])) {
				snprintf(msg, size, "Missing mandatory parameter '%s'", p->name);
				return -EINVAL;
			}
			if (p->type == PARAM_INT)
				*(int64_t *)((char *)out + p->offset) = p->def;
			else if (p->type == PARAM_BOOL)
				*(bool *)((char *)out + p->offset) = p->def != 0;
			continue;
		}
		why = param_store(p, vals[i], out, why_buf, sizeof(why_buf));
		if (why) {
			snprintf(msg, size, "Invalid parameter '%s': %s", p->name, why);
			return -EINVAL;
		}
	}
	return 0;
}

/* Fill out from params by the method's rows. On failure writes a message
 * naming the parameter into msg and returns -EINVAL. */
int params_fill(const struct method *m, struct json_object *params, void *out, char *msg, size_t size)
{
	if (!params ||
		(json_object_is_type(params, json_type_object) &&
			json_object_object_length(params) == 0) ||
		(json_object_is_type(params, json_type_array) &&
			json_object_array_length(params) == 0))
		return params_fill_defaults(m, out, msg, size);
	return params_fill_given(m, params, out, msg, size);
}

struct json_object *dispatch_param_schema(const struct method_param *p)
{
	struct json_object *s = json_object_new_object();

	if (!s)
		return NULL;
	switch (p->type) {
	case PARAM_STRING:
		json_object_object_add(s, "type", json_object_new_string("string"));
		if (p->max > 0)
			json_object_object_add(s, "maxLength", json_object_new_int64(p->max));
		if (p->choices) {
			struct json_object *e = json_object_new_array();
			for (const char *const *ch = p->choices; *ch; ch++)
				json_object_array_add(e, json_object_new_string(*ch));
			json_object_object_add(s, "enum", e);
		}
		break;
	case PARAM_INT:
		json_object_object_add(s, "type", json_object_new_string("integer"));
		if (p->min != 0 || p->max != 0) {
			json_object_object_add(s, "minimum", json_object_new_int64(p->min));
			json_object_object_add(s, "maximum", json_object_new_int64(p->max));
		}
		/* A default outside the range marks "not given" (e.g. -1: keep the
		 * file's mode); it is not a value a client may send, so not shown. */
		if (!(p->flags & PARAM_MANDATORY) &&
			(!(p->min != 0 || p->max != 0) || (p->def >= p->min && p->def <= p->max)))
			json_object_object_add(s, "default", json_object_new_int64(p->def));
		break;
	case PARAM_BOOL:
		json_object_object_add(s, "type", json_object_new_string("boolean"));
		if (!(p->flags & PARAM_MANDATORY))
			json_object_object_add(s, "default", json_object_new_boolean(p->def != 0));
		break;
	case PARAM_OBJECT:
		json_object_object_add(s, "type", json_object_new_string("object"));
		break;
	case PARAM_ARRAY:
	case PARAM_STRING_ARRAY:
		json_object_object_add(s, "type", json_object_new_string("array"));
		if (p->type == PARAM_STRING_ARRAY) {
			struct json_object *items = json_object_new_object();
			json_object_object_add(items, "type", json_object_new_string("string"));
			json_object_object_add(s, "items", items);
		}
		if (p->max > 0)
			json_object_object_add(s, "maxItems", json_object_new_int64(p->max));
		break;
	case PARAM_ANY:
		break;
	}
	return s;
}
