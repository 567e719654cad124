/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink subcommands: one `const struct cmd_entry` per file, listed in
 * main.c's table (tmux's command table is the model). */
#pragma once

#include <stdbool.h>
#include <json-c/json.h>

#include "guestlink/client.h"

/* Exit statuses (DESIGN.md). */
enum {
	CMD_EXIT_OK = 0,
	CMD_EXIT_FAILED = 1,      /* the call failed */
	CMD_EXIT_USAGE = 2,
	CMD_EXIT_UNREACHABLE = 3, /* cannot reach the agent */
};

struct cmd_ctx {
	const char *address; /* as given, for messages */
	int timeout_ms;
	bool json;
	struct gl_client *client; /* connected by cmd_connect() */
};

struct cmd_entry {
	const char *name;
	const char *usage; /* arguments after the name */
	const char *summary;
	int min_args, max_args; /* max -1: no limit */
	/* argv[0] is the first argument after the name. Returns an exit status. */
	int (*exec)(struct cmd_ctx *ctx, int argc, char **argv);
};

extern const struct cmd_entry cmd_ping_entry;
extern const struct cmd_entry cmd_info_entry;
extern const struct cmd_entry cmd_methods_entry;
extern const struct cmd_entry cmd_call_entry;
extern const struct cmd_entry cmd_exec_entry;
extern const struct cmd_entry cmd_cp_entry;
extern const struct cmd_entry cmd_shutdown_entry;
extern const struct cmd_entry cmd_reboot_entry;
extern const struct cmd_entry cmd_freeze_entry;
extern const struct cmd_entry cmd_thaw_entry;
extern const struct cmd_entry cmd_shell_entry;
extern const struct cmd_entry cmd_connect_entry;

/* Connect if not yet connected; prints the error and returns
 * CMD_EXIT_UNREACHABLE on failure, else 0. */
int cmd_connect(struct cmd_ctx *ctx);

/* Call and wait. On success returns 0 and *ret_result (owned; may be NULL for
 * a JSON null). On failure prints one error (line on stderr, or a JSON object
 * on stdout with --json) and returns the exit status. Takes params. */
int cmd_call(struct cmd_ctx *ctx, const char *method, struct json_object *params,
	struct json_object **ret_result);

/* A usage or local error: one line on stderr (or JSON with --json). Returns status. */
int cmd_error(struct cmd_ctx *ctx, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Print JSON on stdout: pretty for people, compact with --json. */
void cmd_print_json(struct cmd_ctx *ctx, struct json_object *o);
