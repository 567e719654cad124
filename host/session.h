/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What `guestlink exec` and terminal sessions (term.c) read alike from a
 * command the agent runs for them (exec.start with stream: true): the
 * process id in the answer, and the exit status in exec.exit. A guest may
 * send anything: both are checked here, once. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

struct session_exit {
	int status;      /* as a shell reports it: see session_exit_parse() */
	bool has_code;   /* code: 0..255, the command exited */
	bool has_signal; /* signal: 1..127, a signal ended it (wins over code) */
	int code, signal;
	bool timed_out; /* the agent killed it after its timeout_ms */
};

/* exec.exit params {id, code, signal, timed_out} into *ret. status is
 * 128 + signal, else code, else CMD_EXIT_UNREACHABLE (255: the agent's
 * report holds neither in range, e.g. code 256 or signal 300, which must not
 * pass for a success or another signal). */
void session_exit_parse(struct json_object *params, struct session_exit *ret);

/* The process id in exec.start's answer {id}. false when it is missing, not
 * an integer or not positive: a protocol error by the agent (the caller
 * reports it and exits CMD_EXIT_UNREACHABLE); *ret_id is then untouched. */
bool session_start_id(struct json_object *result, int64_t *ret_id);

/* Does a notification's params.id name our process? */
bool session_is_ours(struct json_object *params, int64_t id);
