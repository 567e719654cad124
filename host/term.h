/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An interactive session on a guest terminal (`guestlink shell`, `exec -t`):
 * exec.start with a pty, the local terminal in raw mode (restored on every
 * way out), keystrokes as exec.write, output as exec.output, SIGWINCH as
 * exec.resize, and ssh's "~." escape at the start of a line. */
#pragma once

#include <stdbool.h>
#include <json-c/json.h>

#include "cmd.h"

/* Exit status when the session is dropped with "~." (as ssh). */
#define TERM_EXIT_DROPPED 255

/* Run params (exec.start params with argv, env, cwd...; this adds pty,
 * stream and stdin) on a terminal. With stdin not a terminal the session is
 * refused (usage error, exit 2) unless force (-tt). Returns the remote exit
 * status (128+N for signal N), TERM_EXIT_DROPPED after "~.", 128+N when
 * SIGTERM/SIGHUP ended us, CMD_EXIT_UNREACHABLE when the connection was lost
 * or the agent's answers were malformed (see session.h).
 * Takes params. */
int term_session_run(struct cmd_ctx *ctx, struct json_object *params, bool force);
