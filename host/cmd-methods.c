/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink methods [METHOD]: the agent's methods from rpc.discover
 * (OpenRPC), or one method's summary and parameters. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

/* "string", "integer 0..8388608", "array of string", "one of a, b". */
static void methods_print_schema(struct json_object *schema)
{
	const char *type = cmd_get_string(schema, "type");
	struct json_object *items = cmd_get_object(schema, "items"),
			   *en = cmd_get_array(schema, "enum");
	int64_t min, max, def;

	if (en) {
		fputs("one of ", stdout);
		for (size_t i = 0; i < json_object_array_length(en); i++) {
			struct json_object *v = json_object_array_get_idx(en, i);
			if (i)
				fputs(", ", stdout);
			if (json_object_is_type(v, json_type_string))
				cmd_put(stdout, json_object_get_string(v));
		}
	} else
		cmd_put(stdout, type ?: "any");
	if (items && cmd_get_string(items, "type")) {
		fputs(" of ", stdout);
		cmd_put(stdout, cmd_get_string(items, "type"));
	}
	if (cmd_get_int64(schema, "minimum", &min) && cmd_get_int64(schema, "maximum", &max))
		printf(" %lld..%lld", (long long)min, (long long)max);
	if (cmd_get_int64(schema, "default", &def))
		printf(", default %lld", (long long)def);
}

static int methods_show_one(struct cmd_ctx *ctx, struct json_object *methods, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(methods); i++) {
		struct json_object *m = json_object_array_get_idx(methods, i), *params;
		const char *n = cmd_get_string(m, "name"), *summary;

		if (!n || strcmp(n, name) != 0)
			continue;
		if (ctx->json) {
			cmd_print_json(ctx, m);
			return CMD_EXIT_OK;
		}
		summary = cmd_get_string(m, "summary") ?: cmd_get_string(m, "description");
		cmd_printf(stdout, "%s: %s\n", n, summary ?: "(no summary)");
		params = cmd_get_array(m, "params");
		if (!params || json_object_array_length(params) == 0) {
			printf("No parameters.\n");
			return CMD_EXIT_OK;
		}
		printf("Parameters:\n");
		for (size_t j = 0; j < json_object_array_length(params); j++) {
			struct json_object *p = json_object_array_get_idx(params, j);
			const char *desc = cmd_get_string(p, "description");
			bool required = false;

			cmd_get_bool(p, "required", &required);
			cmd_printf(stdout, "  %s (", cmd_get_string(p, "name") ?: "?");
			methods_print_schema(cmd_get_object(p, "schema"));
			printf("%s)", required ? ", required" : "");
			if (desc)
				cmd_printf(stdout, ": %s", desc);
			putchar('\n');
		}
		return CMD_EXIT_OK;
	}
	return cmd_error(ctx, CMD_EXIT_FAILED, "%s: no such method (see 'guestlink methods')", name);
}

static int methods_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *doc = NULL, *methods, *list;
	size_t n, width = 0;
	int r;

	r = cmd_call(ctx, "rpc.discover", NULL, &doc);
	if (r)
		return r;
	methods = cmd_get_array(doc, "methods");
	if (!methods) {
		json_object_put(doc);
		return cmd_error(ctx, CMD_EXIT_FAILED,
			"rpc.discover: the answer has no \"methods\" array");
	}
	if (argc == 1) {
		r = methods_show_one(ctx, methods, argv[0]);
		json_object_put(doc);
		return r;
	}

	n = json_object_array_length(methods);
	list = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *m = json_object_array_get_idx(methods, i), *row;
		const char *name = cmd_get_string(m, "name"),
			   *summary = cmd_get_string(m, "summary");

		if (!name)
			continue;
		if (!summary)
			summary = cmd_get_string(m, "description");
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(name));
		json_object_object_add(row, "summary",
			json_object_new_string(summary ? summary : ""));
		json_object_array_add(list, row);
		if (strlen(name) > width)
			width = strlen(name);
	}
	if (ctx->json)
		cmd_print_json(ctx, list);
	else
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			struct json_object *row = json_object_array_get_idx(list, i);
			const char *summary = cmd_get_string(row, "summary");

			if (*summary)
				cmd_printf(stdout, "%-*s  %s\n", (int)width,
					cmd_get_string(row, "name"), summary);
			else
				cmd_printf(stdout, "%s\n", cmd_get_string(row, "name"));
		}
	json_object_put(list);
	json_object_put(doc);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_methods_entry = {
	.name = "methods",
	.usage = "[METHOD]",
	.summary = "list the agent's methods, or show one method's parameters (rpc.discover)",
	.example = "  guestlink -m vm1 methods\n"
		   "  guestlink -m vm1 methods file.read\n",
	.min_args = 0,
	.max_args = 1,
	.exec = methods_exec,
};
