/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Method parameters checked against a method's rows (see method.h). */
#pragma once

#include <stddef.h>
#include <json-c/json.h>

struct method;
struct method_param;

/* Fill out (m->params_size bytes, zeroed by the caller) from params, a JSON
 * object (by name), array (by position) or NULL. On failure writes a message
 * naming the parameter into msg and returns -EINVAL (answered -32602). */
int params_fill(const struct method *m, struct json_object *params, void *out, char *msg,
	size_t size);

/* The JSON Schema of one parameter row (new object), for rpc.discover. */
struct json_object *dispatch_param_schema(const struct method_param *p);
