/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The oracle for the agent's envelope fast path (agent/envelope.c), shared by
 * tests/agent/test-envelope and tests/fuzz/fuzz-envelope: the same bytes go
 *  1. through envelope_scan() and through the stream decoder + gl_msg_parse():
 *     when the scanner takes a text, the decoder must take the same bytes as
 *     one request or notification with the same method, id and params;
 *  2. through two detached agent connections, one with the fast path and one
 *     without (the JSON-RPC front end minus its .envelope hook): their
 *     answers must be the same bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Once per process: quiet logs, the agent.* methods, a configuration with
 * max_message_bytes 4096 and max_inflight 4 that denies system.* (and
 * agent.info, whose uptime differs between two runs). */
void envelope_diff_init(void);

/* Check data[0..len) fed in pieces of `chunk` bytes (0: one piece). Returns
 * NULL when both paths agree, else what differed (static text). *ret_taken
 * (optional): the scanner took the first text of data. */
const char *envelope_diff(const char *data, size_t len, size_t chunk, bool *ret_taken);

/* The answers of the last envelope_diff() (fast path), for messages. */
const char *envelope_diff_answers(void);
