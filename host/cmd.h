/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink subcommands: one `const struct cmd_entry` per file, listed in
 * main.c's table (tmux's command table is the model). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>

#include "guestlink/client.h"

/* Exit statuses, documented in guestlink(1). exec exits with the remote
 * command's status, so guestlink's own failures there use what ssh and the
 * shells use and a command rarely does: 255, 126, 127. */
enum {
	CMD_EXIT_OK = 0,
	CMD_EXIT_FAILED = 1,           /* the call failed (the agent answered an error) */
	CMD_EXIT_USAGE = 2,            /* bad command line; nothing was sent */
	CMD_EXIT_CANNOT_EXECUTE = 126, /* exec: found but not executable */
	CMD_EXIT_NOT_FOUND = 127,      /* exec: no such program */
	CMD_EXIT_UNREACHABLE = 255,    /* could not reach the agent, or lost it */
};

struct cmd_ctx {
	const char *address; /* as given, for messages */
	int timeout_ms;
	bool json;
	struct gl_client *client; /* connected by cmd_connect() */
};

struct cmd_entry {
	const char *name;
	const char *usage;   /* arguments after the name */
	const char *summary; /* one line, for the command list */
	/* For `guestlink CMD --help`: option lines ("  -r, --recursive  what"),
	 * NULL when the command has none; shell completion reads them too. */
	const char *options;
	const char *example;    /* one or more command lines, without the prompt */
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
 * CMD_EXIT_UNREACHABLE on failure, else 0. A hybrid address whose backend
 * answers but whose guest refuses the port is told apart from a dead backend. */
int cmd_connect(struct cmd_ctx *ctx);
/* The same without printing: 0 or a negative errno; *ret_why (static text)
 * says what the errno means for this address. */
int cmd_try_connect(struct cmd_ctx *ctx, const char **ret_why);

/* Call and wait. On success returns 0 and *ret_result (owned; may be NULL for
 * a JSON null). On failure prints one error (line on stderr, or a JSON object
 * on stdout with --json) naming `object` (e.g. "guest:/etc/x"; NULL: the
 * method) and returns the exit status. Takes params. */
int cmd_call_on(struct cmd_ctx *ctx, const char *method, const char *object,
	struct json_object *params, struct json_object **ret_result);
static inline int cmd_call(struct cmd_ctx *ctx, const char *method, struct json_object *params,
	struct json_object **ret_result)
{
	return cmd_call_on(ctx, method, NULL, params, ret_result);
}

/* Report an error the agent answered (status -EREMOTEIO) or a transport
 * failure (other negative errno) of `method` about `object`; returns the exit
 * status it maps to (1 for an agent error, 255 for a lost connection). */
int cmd_report_call_error(struct cmd_ctx *ctx, const char *method, const char *object, int r,
	const struct gl_error *e);

/* A usage or local error: one line on stderr (or JSON with --json). Returns status. */
int cmd_error(struct cmd_ctx *ctx, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "OBJECT: strerror (ENAME)" for a local failure (negative errno r). Returns status. */
int cmd_error_errno(struct cmd_ctx *ctx, int status, int r, const char *object);

/* Print JSON on stdout: pretty for people, compact with --json; escaped
 * like cmd_put() when stdout is a terminal. */
void cmd_print_json(struct cmd_ctx *ctx, struct json_object *o);

/* --- guest text: the only way it reaches the screen --- */

/* Write untrusted text (from the guest) to f. When f is a terminal, control
 * characters (C0, DEL, C1) and bytes that are not UTF-8 are written as \xNN,
 * so no escape sequence reaches the terminal; otherwise the bytes go as they
 * are. */
void cmd_put(FILE *f, const char *s);
/* s as cmd_put() writes it on a terminal (control characters, DEL, C1 and
 * bytes that are not UTF-8 as \xNN; the rest valid UTF-8), in a new string;
 * NULL when out of memory. For guest text laid out before it is printed. */
char *cmd_escape(const char *s);
/* printf() whose result is written through cmd_put(): for lines that mix our
 * text with guest text. The format's own '\n' is written raw only at the end. */
void cmd_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Type-checked accessors for an agent's answer: NULL / false when the member
 * is missing or has another type (a guest may send anything). */
const char *cmd_get_string(struct json_object *o, const char *key);
bool cmd_get_int64(struct json_object *o, const char *key, int64_t *ret);
bool cmd_get_bool(struct json_object *o, const char *key, bool *ret);
struct json_object *cmd_get_object(struct json_object *o, const char *key);
struct json_object *cmd_get_array(struct json_object *o, const char *key);

/* A JSON number rounded to `decimals` places that prints as such ("0.721",
 * never "0.72099999999999997"). */
struct json_object *cmd_json_rounded(double v, int decimals);

/* --- help --- */

/* Usage, options and example of one command, on f. */
void cmd_help(FILE *f, const struct cmd_entry *cmd);
