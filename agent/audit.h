/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The audit trail: one record per call, with the peer that made it.
 *
 * A method whose table row lacks METHOD_READONLY changes the guest (exec,
 * file writes, set-time, hostname, shutdown, freeze, plugins, ...): its calls
 * are recorded at notice level, as are policy denials; read-only calls at
 * debug level. Records go to the journal with structured fields
 * (sd_journal_send: GUESTLINK_METHOD, GUESTLINK_PEER, GUESTLINK_OUTCOME,
 * GUESTLINK_CODE, GUESTLINK_ID, GUESTLINK_PARAMS) when stderr is the journal
 * (JOURNAL_STREAM), else as one "audit:" line on stderr with the same
 * fields. Client strings are escaped and cut; records are rate-limited. */
#pragma once

#include <stdbool.h>
#include <json-c/json.h>

struct conn;

/* A call finished: `request` is the request object (not taken), `code` 0 for
 * a result, else the JSON-RPC error code it was answered with. method names a
 * registered method. A call refused by policy (-32001) is recorded as
 * "denied" at notice level, whatever the method. */
void audit_call(struct conn *conn, const char *method, struct json_object *request, int code);
/* Would audit_call() record this outcome at the current log level (before
 * its rate limit)? read_only: the method's row has METHOD_READONLY (only
 * built-in rows do, and they never change, so the caller may have looked at
 * it when the call started). A caller that must build `request` first asks
 * this. */
bool audit_wanted(bool read_only, int code);
