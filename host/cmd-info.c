/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink info: agent.info and system.info, as indented "key: value" lines. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static void info_print(struct json_object *v, int indent);

static bool info_is_scalar(struct json_object *v)
{
	return !json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array);
}

static void info_print_scalar(struct json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		cmd_put(stdout, json_object_get_string(v));
	else if (json_object_is_type(v, json_type_double))
		printf("%.6g", json_object_get_double(v));
	else
		fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), stdout);
}

static bool info_scalar_array(struct json_object *v)
{
	if (!json_object_is_type(v, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(v); i++)
		if (!info_is_scalar(json_object_array_get_idx(v, i)))
			return false;
	return true;
}

/* Scalars after "key: "; arrays of scalars joined by ", "; the rest nested. */
static void info_print_member(const char *key, struct json_object *v, int indent)
{
	cmd_printf(stdout, "%*s%s:", indent, "", key);
	if (info_is_scalar(v)) {
		putchar(' ');
		info_print_scalar(v);
		putchar('\n');
	} else if (info_scalar_array(v)) {
		putchar(json_object_array_length(v) ? ' ' : '\n');
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			info_print_scalar(json_object_array_get_idx(v, i));
			fputs(i + 1 < json_object_array_length(v) ? ", " : "\n", stdout);
		}
	} else {
		putchar('\n');
		info_print(v, indent + 2);
	}
}

static void info_print(struct json_object *v, int indent)
{
	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach (v, key, val)
			info_print_member(key, val, indent);
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			char key[32];

			snprintf(key, sizeof(key), "[%zu]", i);
			info_print_member(key, json_object_array_get_idx(v, i), indent);
		}
	} else {
		printf("%*s", indent, "");
		info_print_scalar(v);
		putchar('\n');
	}
}

static const struct {
	const char *key, *method;
} info_parts[] = {
	{ "agent", "agent.info" },
	{ "system", "system.info" },
};

static int info_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *all = json_object_new_object();
	int status = CMD_EXIT_OK;

	for (size_t i = 0; i < sizeof(info_parts) / sizeof(info_parts[0]); i++) {
		struct json_object *result = NULL;
		int r;

		r = cmd_call(ctx, info_parts[i].method, NULL, &result);
		if (r == CMD_EXIT_UNREACHABLE) {
			json_object_put(all);
			return r;
		}
		if (r && ctx->json) {
			json_object_put(all); /* one JSON document: the error */
			return r;
		}
		if (r) {
			status = r; /* printed; show what the other part says */
			continue;
		}
		json_object_object_add(all, info_parts[i].key, result); /* takes ownership */
	}
	if (ctx->json)
		cmd_print_json(ctx, all);
	else
		info_print(all, 0);
	json_object_put(all);
	return status;
}

const struct cmd_entry cmd_info_entry = {
	.name = "info",
	.usage = "",
	.summary = "show agent.info and system.info",
	.example = "  guestlink -m vm1 info\n",
	.min_args = 0,
	.max_args = 0,
	.exec = info_exec,
};
