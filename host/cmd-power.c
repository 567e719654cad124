/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink shutdown|reboot [--halt] [--delay S], guestlink freeze [--timeout S]
 * [MOUNTPOINT...], guestlink thaw. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#define POWER_DEFAULT_FREEZE_TIMEOUT_S 60

static int power_parse_seconds(const char *s, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int power_shutdown_common(struct cmd_ctx *ctx, int argc, char **argv, bool reboot)
{
	static const struct option options[] = { { "halt", no_argument, NULL, 'H' },
		{ "delay", required_argument, NULL, 'd' }, {} };
	const char *mode = reboot ? "reboot" : "poweroff";
	struct json_object *params, *result = NULL;
	long delay = 0;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "+Hd:", options, NULL)) >= 0) {
		switch (c) {
		case 'H':
			if (reboot)
				return cmd_error(ctx, CMD_EXIT_USAGE,
					"reboot: --halt makes no sense");
			mode = "halt";
			break;
		case 'd':
			if (power_parse_seconds(optarg, 86400, &delay) < 0)
				return cmd_error(ctx, CMD_EXIT_USAGE, "invalid --delay '%s'", optarg);
			break;
		default:
			return cmd_error(ctx, CMD_EXIT_USAGE, "usage: guestlink %s [%s--delay S]",
				reboot ? "reboot" : "shutdown", reboot ? "" : "--halt] [");
		}
	}
	if (optind <= argc)
		return cmd_error(ctx, CMD_EXIT_USAGE, "unexpected argument '%s'", argv[optind - 1]);
	params = json_object_new_object();
	json_object_object_add(params, "mode", json_object_new_string(mode));
	if (delay > 0)
		json_object_object_add(params, "delay_s", json_object_new_int64(delay));
	r = cmd_call(ctx, "system.shutdown", params, &result);
	if (r)
		return r;
	if (ctx->json)
		cmd_print_json(ctx, result);
	json_object_put(result);
	return CMD_EXIT_OK;
}

static int power_shutdown(struct cmd_ctx *ctx, int argc, char **argv)
{
	return power_shutdown_common(ctx, argc, argv, false);
}

static int power_reboot(struct cmd_ctx *ctx, int argc, char **argv)
{
	return power_shutdown_common(ctx, argc, argv, true);
}

static int power_freeze(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "timeout", required_argument, NULL, 'T' }, {} };
	struct json_object *params, *result = NULL, *mps;
	long timeout = POWER_DEFAULT_FREEZE_TIMEOUT_S;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "+T:", options, NULL)) >= 0) {
		if (c != 'T' || power_parse_seconds(optarg, 3600, &timeout) < 0 || timeout == 0)
			return cmd_error(ctx, CMD_EXIT_USAGE,
				"usage: guestlink freeze [--timeout S (1-3600)] [MOUNTPOINT...]");
	}
	params = json_object_new_object();
	json_object_object_add(params, "timeout_s", json_object_new_int64(timeout));
	if (optind <= argc) {
		mps = json_object_new_array();
		for (int i = optind - 1; i < argc; i++)
			json_object_array_add(mps, json_object_new_string(argv[i]));
		json_object_object_add(params, "mountpoints", mps);
	}
	r = cmd_call(ctx, "fs.freeze", params, &result);
	if (r)
		return r;
	if (ctx->json)
		cmd_print_json(ctx, result);
	else if ((mps = cmd_get_array(result, "mountpoints"))) {
		size_t n = json_object_array_length(mps);
		printf("frozen for at most %lds:", timeout);
		for (size_t i = 0; i < n; i++) {
			struct json_object *mp = json_object_array_get_idx(mps, i);
			putchar(' ');
			if (json_object_is_type(mp, json_type_string))
				cmd_put(stdout, json_object_get_string(mp));
		}
		printf("%s\n", n ? "" : " (no freezable filesystem)");
	}
	json_object_put(result);
	return CMD_EXIT_OK;
}

static int power_thaw(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct json_object *result = NULL;
	int64_t n;
	int r;

	r = cmd_call(ctx, "fs.thaw", NULL, &result);
	if (r)
		return r;
	if (ctx->json)
		cmd_print_json(ctx, result);
	else if (cmd_get_int64(result, "thawed", &n))
		printf("thawed %lld filesystem(s)\n", (long long)n);
	json_object_put(result);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_shutdown_entry = {
	.name = "shutdown",
	.usage = "[--halt] [--delay S]",
	.summary = "power the guest off (or halt it)",
	.options = "      --halt     halt instead of powering off\n"
		   "  -d, --delay=S  wait S seconds first\n",
	.example = "  guestlink -m vm1 shutdown --delay 5\n",
	.min_args = 0,
	.max_args = -1,
	.exec = power_shutdown,
};

const struct cmd_entry cmd_reboot_entry = {
	.name = "reboot",
	.usage = "[--delay S]",
	.summary = "reboot the guest",
	.options = "  -d, --delay=S  wait S seconds first\n",
	.example = "  guestlink -m vm1 reboot\n",
	.min_args = 0,
	.max_args = -1,
	.exec = power_reboot,
};

const struct cmd_entry cmd_freeze_entry = {
	.name = "freeze",
	.usage = "[--timeout S] [MOUNTPOINT...]",
	.summary =
		"freeze the guest's filesystems (thawed by itself after the timeout, default 60 s)",
	.options = "  -T, --timeout=S  thaw by itself after S seconds (1-3600, default 60)\n",
	.example = "  guestlink -m vm1 freeze --timeout 30 / && snapshot-the-disk; guestlink -m "
		   "vm1 thaw\n",
	.min_args = 0,
	.max_args = -1,
	.exec = power_freeze,
};

const struct cmd_entry cmd_thaw_entry = {
	.name = "thaw",
	.usage = "",
	.summary = "thaw the filesystems frozen by freeze",
	.example = "  guestlink -m vm1 thaw\n",
	.min_args = 0,
	.max_args = 0,
	.exec = power_thaw,
};
