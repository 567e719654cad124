/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink call METHOD [PARAMS]: any method, params as JSON text. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static int call_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *params = NULL, *result = NULL;
	int r;

	if (argc > 1) {
		enum json_tokener_error err = json_tokener_success;

		params = json_tokener_parse_verbose(argv[1], &err);
		if (err != json_tokener_success)
			return cmd_error(ctx, CMD_EXIT_USAGE, "PARAMS is not valid JSON: %s",
				json_tokener_error_desc(err));
		if (!json_object_is_type(params, json_type_array) &&
			!json_object_is_type(params, json_type_object)) {
			json_object_put(params);
			return cmd_error(ctx, CMD_EXIT_USAGE,
				"PARAMS must be a JSON array or object");
		}
	}
	r = cmd_call(ctx, argv[0], params, &result); /* takes params */
	if (r)
		return r;
	cmd_print_json(ctx, result);
	json_object_put(result);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_call_entry = {
	.name = "call",
	.usage = "METHOD [PARAMS-JSON]",
	.summary = "call any method; print its result as JSON",
	.example = "  guestlink -m vm1 call agent.echo '{\"hello\": [1, 2]}'\n"
		   "  guestlink -m vm1 --json call system.info\n",
	.min_args = 1,
	.max_args = 2,
	.exec = call_exec,
};
