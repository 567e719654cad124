/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JSON-RPC 2.0 dispatch: batches, reserved names, policy, limits, params
 * validation against the method table, and the in-flight call object. */
#pragma once

#include <json-c/json.h>

struct conn;
struct method;
struct method_param;

/* Handle one decoded JSON text from c (takes obj; NULL is the literal null). */
void dispatch_message(struct conn *c, struct json_object *obj);

/* The JSON Schema of one parameter row (new object), for rpc.discover. */
struct json_object *dispatch_param_schema(const struct method_param *p);
