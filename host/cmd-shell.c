/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink shell [--user U] [--cwd DIR] [--env K=V]...
 * The user's login shell in the guest on a terminal (see term.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "term.h"

/* Run by /bin/sh in the guest: the passwd entry of the user we run as gives
 * HOME, USER, LOGNAME, SHELL and the shell, started as a login shell (-l, as
 * bash, zsh, dash and fish take it); $1 = "cd" to start in the home directory. */
static const char shell_login_script[] =
	"IFS=: read -r name _ _ _ _ home shell <<EOF\n"
	"$(getent passwd \"$(id -u)\")\n"
	"EOF\n"
	"export USER=\"$name\" LOGNAME=\"$name\" HOME=\"${home:-/}\" SHELL=\"${shell:-/bin/sh}\"\n"
	"[ \"$1\" = cd ] && { cd \"$HOME\" 2>/dev/null || cd /; }\n"
	"exec \"$SHELL\" -l\n";

static int shell_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "user", required_argument, NULL, 'u' },
		{ "cwd", required_argument, NULL, 'C' }, { "env", required_argument, NULL, 'e' },
		{ "force-tty", no_argument, NULL, 't' }, {} };
	struct json_object *params = json_object_new_object(), *env = json_object_new_array();
	struct json_object *args = json_object_new_array();
	const char *user = NULL, *cwd = NULL;
	int c, ts = 1;

	optind = 0; /* glibc: restart option parsing on our own arguments */
	while ((c = getopt_long(argc + 1, argv - 1, "+u:C:e:t", options, NULL)) >= 0) {
		switch (c) {
		case 'u':
			user = optarg;
			break;
		case 'C':
			cwd = optarg;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				json_object_put(params);
				json_object_put(env);
				json_object_put(args);
				return cmd_error(ctx, CMD_EXIT_USAGE,
					"--env needs KEY=VALUE, not '%s'", optarg);
			}
			json_object_array_add(env, json_object_new_string(optarg));
			break;
		case 't':
			ts++;
			break;
		default:
			json_object_put(params);
			json_object_put(env);
			json_object_put(args);
			return cmd_error(ctx, CMD_EXIT_USAGE, "usage: guestlink shell %s",
				cmd_shell_entry.usage);
		}
	}
	if (optind <= argc) {
		json_object_put(params);
		json_object_put(env);
		json_object_put(args);
		return cmd_error(ctx, CMD_EXIT_USAGE,
			"shell takes no arguments (use exec -t -- CMD)");
	}
	json_object_array_add(args, json_object_new_string("/bin/sh"));
	json_object_array_add(args, json_object_new_string("-c"));
	json_object_array_add(args, json_object_new_string(shell_login_script));
	json_object_array_add(args, json_object_new_string("guestlink-shell"));
	json_object_array_add(args, json_object_new_string(cwd ? "" : "cd"));
	json_object_object_add(params, "argv", args); /* takes */
	if (json_object_array_length(env) > 0)
		json_object_object_add(params, "env", json_object_get(env));
	json_object_put(env);
	if (cwd)
		json_object_object_add(params, "cwd", json_object_new_string(cwd));
	if (user)
		json_object_object_add(params, "user", json_object_new_string(user));
	return term_session_run(ctx, params, ts > 1);
}

const struct cmd_entry cmd_shell_entry = {
	.name = "shell",
	.usage = "[--user U] [--cwd DIR] [--env K=V] [-t]",
	.summary =
		"the login shell in the guest on a terminal (-t again: even without a local one)",
	.options = "  -u, --user=U       log in as user U (default: the agent's user)\n"
		   "  -C, --cwd=DIR      start in DIR instead of the user's home\n"
		   "  -e, --env=K=V      set an environment variable (repeatable)\n"
		   "  -t                 again (-tt): even when stdin is not a terminal\n"
		   "  (`~.` at the start of a line drops the session)\n",
	.example = "  guestlink -m vm1 shell\n"
		   "  guestlink -m vm1 shell --user alice --cwd /srv\n",
	.min_args = 0,
	.max_args = -1,
	.exec = shell_exec,
};
