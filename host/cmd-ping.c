/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink ping [--wait S]: one agent.ping, and the round-trip time; with
 * --wait, keep trying (backoff) until the agent answers, e.g. while it boots. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

#define PING_BACKOFF_FIRST_MS 100
#define PING_BACKOFF_MAX_MS 2000

static double ping_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void ping_sleep_ms(double ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
		.tv_nsec = (long)fmod(ms, 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Until the deadline: connect and ping quietly; 0 once the agent answered. */
static int ping_wait(struct cmd_ctx *ctx, double wait_ms)
{
	double deadline = ping_now_ms() + wait_ms, backoff = PING_BACKOFF_FIRST_MS;

	for (;;) {
		struct json_object *result = NULL;
		struct gl_error e = { 0 };
		const char *why;
		double left;
		int r;

		r = ctx->client ? 0 : cmd_try_connect(ctx, &why);
		if (r == 0) {
			r = gl_client_call(ctx->client, "agent.ping", NULL, ctx->timeout_ms,
				&result, &e);
			json_object_put(result);
			if (r == 0)
				return 0;
			ctx->client = gl_client_free(ctx->client);
		}
		left = deadline - ping_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		ping_sleep_ms(backoff < left ? backoff : left);
		backoff = fmin(backoff * 2, PING_BACKOFF_MAX_MS);
	}
}

static int ping_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "wait", required_argument, NULL, 'w' }, {} };
	struct json_object *result = NULL, *o;
	double t0, rtt, wait_s = 0;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "+w:", options, NULL)) >= 0) {
		char *end;

		if (c != 'w')
			return cmd_error(ctx, CMD_EXIT_USAGE,
				"usage: guestlink ping %s (see --help)", cmd_ping_entry.usage);
		wait_s = strtod(optarg, &end);
		if (*end || end == optarg || !(wait_s > 0 && wait_s <= 86400))
			return cmd_error(ctx, CMD_EXIT_USAGE,
				"invalid --wait '%s': seconds > 0 expected", optarg);
	}
	if (optind <= argc)
		return cmd_error(ctx, CMD_EXIT_USAGE, "ping: unexpected argument '%s'",
			argv[optind - 1]);

	t0 = ping_now_ms();
	if (wait_s > 0 && ping_wait(ctx, wait_s * 1000) < 0) {
		/* Once more, out loud: the error says why. */
		r = cmd_connect(ctx);
		if (r)
			return r;
	}
	if (wait_s > 0 && !ctx->json)
		printf("agent up after %.1f s\n", (ping_now_ms() - t0) / 1000);
	/* Connect first: the round trip measures the call, not the connect. */
	r = cmd_connect(ctx);
	if (r)
		return r;
	t0 = ping_now_ms();
	r = cmd_call(ctx, "agent.ping", NULL, &result);
	if (r)
		return r;
	rtt = ping_now_ms() - t0;
	/* Something that speaks JSON-RPC but is not the agent (a wrong -a). */
	if (!json_object_is_type(result, json_type_string) ||
		strcmp(json_object_get_string(result), "pong") != 0) {
		r = cmd_error(ctx, CMD_EXIT_FAILED, "%s: agent.ping answered %s, not \"pong\"",
			ctx->address, result ? json_object_to_json_string(result) : "null");
		json_object_put(result);
		return r;
	}

	if (ctx->json) {
		o = json_object_new_object();
		json_object_object_add(o, "address", json_object_new_string(ctx->address));
		json_object_object_add(o, "time_ms", cmd_json_rounded(rtt, 3));
		json_object_object_add(o, "result", result); /* takes ownership */
		cmd_print_json(ctx, o);
		json_object_put(o);
	} else {
		cmd_printf(stdout, "pong from %s: time=%.3f ms\n", ctx->address, rtt);
		json_object_put(result);
	}
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_ping_entry = {
	.name = "ping",
	.usage = "[--wait S]",
	.summary = "call agent.ping and print the round-trip time",
	.options = "  -w, --wait=S  until the agent answers (e.g. while the VM boots), retry with\n"
		   "                backoff for at most S seconds\n",
	.example = "  guestlink -m vm1 ping\n"
		   "  guestlink -m vm1 ping --wait 120   # after starting the VM\n",
	.min_args = 0,
	.max_args = -1,
	.exec = ping_exec,
};
