/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink methods: the agent's methods from rpc.discover (OpenRPC). */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const char *methods_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int methods_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *doc = NULL, *methods, *list;
	size_t n, width = 0;
	int r;

	r = cmd_call(ctx, "rpc.discover", NULL, &doc);
	if (r)
		return r;
	if (!json_object_is_type(doc, json_type_object) ||
		!json_object_object_get_ex(doc, "methods", &methods) ||
		!json_object_is_type(methods, json_type_array)) {
		json_object_put(doc);
		return cmd_error(ctx, CMD_EXIT_FAILED, "rpc.discover: the answer has no \"methods\" array");
	}

	n = json_object_array_length(methods);
	list = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(methods, i), *row;
		const char *name = methods_string(m, "name"), *summary = methods_string(m, "summary");

		if (!name)
			continue;
		if (!summary)
			summary = methods_string(m, "description");
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(name));
		json_object_object_add(row, "summary", json_object_new_string(summary ? summary : ""));
		json_object_array_add(list, row);
		if (strlen(name) > width)
			width = strlen(name);
	}
	if (ctx->json)
		cmd_print_json(ctx, list);
	else
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *row = json_object_array_get_idx(list, i);
			const char *summary = methods_string(row, "summary");

			if (*summary)
				printf("%-*s  %s\n", (int)width, methods_string(row, "name"), summary);
			else
				printf("%s\n", methods_string(row, "name"));
		}
	json_object_put(list);
	json_object_put(doc);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_methods_entry = {
	.name = "methods",
	.usage = "",
	.summary = "list the agent's methods (rpc.discover)",
	.min_args = 0,
	.max_args = 0,
	.exec = methods_exec,
};
