/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink ping: one agent.ping, and the round-trip time. */
#include <stdio.h>
#include <time.h>

#include "cmd.h"

static double ping_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int ping_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *result = NULL, *o;
	double t0, rtt;
	int r;

	/* Connect first: the round trip measures the call, not the connect. */
	r = cmd_connect(ctx);
	if (r)
		return r;
	t0 = ping_now_ms();
	r = cmd_call(ctx, "agent.ping", NULL, &result);
	if (r)
		return r;
	rtt = ping_now_ms() - t0;

	if (ctx->json) {
		o = json_object_new_object();
		json_object_object_add(o, "address", json_object_new_string(ctx->address));
		json_object_object_add(o, "time_ms", json_object_new_double(rtt));
		json_object_object_add(o, "result", result); /* takes ownership */
		cmd_print_json(ctx, o);
		json_object_put(o);
	} else {
		printf("pong from %s: time=%.3f ms\n", ctx->address, rtt);
		json_object_put(result);
	}
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_ping_entry = {
	.name = "ping",
	.usage = "",
	.summary = "call agent.ping and print the round-trip time",
	.min_args = 0,
	.max_args = 0,
	.exec = ping_exec,
};
