/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A command the agent runs for us: see session.h. */
#include "cmd.h"
#include "session.h"

void session_exit_parse(struct json_object *params, struct session_exit *ret)
{
	struct session_exit x = { .status = CMD_EXIT_UNREACHABLE };
	int64_t v;

	cmd_get_bool(params, "timed_out", &x.timed_out);
	if (cmd_get_int64(params, "signal", &v) && v > 0 && v < 128) {
		x.has_signal = true;
		x.signal = (int)v;
	}
	if (cmd_get_int64(params, "code", &v) && v >= 0 && v <= 255) {
		x.has_code = true;
		x.code = (int)v;
	}
	if (x.has_signal)
		x.status = 128 + x.signal;
	else if (x.has_code)
		x.status = x.code;
	*ret = x;
}

bool session_start_id(struct json_object *result, int64_t *ret_id)
{
	int64_t id;

	if (!cmd_get_int64(result, "id", &id) || id <= 0)
		return false;
	*ret_id = id;
	return true;
}

bool session_is_ours(struct json_object *params, int64_t id)
{
	int64_t v;

	return id > 0 && cmd_get_int64(params, "id", &v) && v == id;
}
