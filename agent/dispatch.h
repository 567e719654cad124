/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON-RPC 2.0 dispatch: batches, reserved names, policy, limits, params
 * validation against the method table, and the in-flight call object. */
#pragma once

#include <json-c/json.h>

#include "params.h"

struct conn;
struct method;
struct method_param;

/* Handle one decoded JSON text from c (takes obj; NULL is the literal null). */
void dispatch_message(struct conn *c, struct json_object *obj);
