/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink: the command-line client. Options, the address, then one
 * subcommand from the table below. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "guestlink/address.h"
#include "macro.h"

#define MAIN_DEFAULT_TIMEOUT_MS 10000

static const struct cmd_entry *const main_cmds[] = {
	&cmd_ping_entry,
	&cmd_info_entry,
	&cmd_methods_entry,
	&cmd_call_entry,
	&cmd_exec_entry,
	&cmd_cp_entry,
	&cmd_shutdown_entry,
	&cmd_reboot_entry,
	&cmd_freeze_entry,
	&cmd_thaw_entry,
	&cmd_shell_entry,
	&cmd_connect_entry,
};

static void main_help(FILE *f)
{
	fprintf(f,
		"Usage: guestlink [-a ADDR | -m NAME] [--timeout S] [--json] COMMAND [ARGS...]\n"
		"\n"
		"Call the guestlink agent in a virtual machine.\n"
		"\n"
		"Options:\n"
		"  -a, --address=ADDR   agent address: vsock:CID:PORT, unix:PATH, "
		"hybrid:PATH:PORT,\n"
		"                       exec:COMMAND (protocol over its stdin/stdout)\n"
		"                       (default: $GUESTLINK_ADDRESS)\n"
		"  -m, --machine=NAME   the machine's backend socket: hybrid:%s/NAME.vsock:%d\n"
		"  -t, --timeout=S      seconds to wait for the connection and each answer "
		"(default %d)\n"
		"  -j, --json           print results and errors as JSON on stdout\n"
		"  -h, --help           show this help\n"
		"  -V, --version        show the version\n"
		"\n"
		"Commands:\n",
		GL_RUNDIR, GL_DEFAULT_PORT, MAIN_DEFAULT_TIMEOUT_MS / 1000);
	for (size_t i = 0; i < ELEMENTSOF(main_cmds); i++) {
		char head[512];

		snprintf(head, sizeof(head), "%s %s", main_cmds[i]->name, main_cmds[i]->usage);
		/* Long usages get the summary on a line of its own. */
		if (strlen(head) > 28)
			fprintf(f, "  %s\n  %-28s %s\n", head, "", main_cmds[i]->summary);
		else
			fprintf(f, "  %-28s %s\n", head, main_cmds[i]->summary);
	}
	fprintf(f, "  %-28s %s\n", "help [COMMAND]",
		"show this help, or a command's usage, options and example");
	fprintf(f, "\nRun 'guestlink COMMAND --help' for a command's options.\n"
		   "Exit status: 0 ok, 1 the call failed, 2 usage, 255 cannot reach the agent;\n"
		   "exec: the command's status, 126 not executable, 127 not found.\n");
}

static const struct cmd_entry *main_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(main_cmds); i++)
		if (strcmp(main_cmds[i]->name, name) == 0)
			return main_cmds[i];
	return NULL;
}

/* `CMD --help` or `CMD -h` among the command's options: options end at the
 * first operand or at "--" (exec -- ls -h asks ls, not us). */
static bool main_wants_help(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')
			return false;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

/* guestlink help [COMMAND] */
static int main_help_command(int argc, char **argv)
{
	const struct cmd_entry *cmd;

	/* "help --help" and "help help" ask for this overview too. */
	if (argc == 0 || (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
					       strcmp(argv[0], "help") == 0))) {
		main_help(stdout);
		return CMD_EXIT_OK;
	}
	cmd = argc == 1 ? main_find(argv[0]) : NULL;
	if (!cmd)
		return cmd_error(NULL, CMD_EXIT_USAGE,
			argc == 1 ? "unknown command '%s' (see --help)"
				  : "usage: guestlink help [COMMAND]",
			argv[0]);
	cmd_help(stdout, cmd);
	return CMD_EXIT_OK;
}

static int main_parse_timeout(const char *s, int *ret_ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 86400.0)
		return -EINVAL;
	*ret_ms = (int)ceil(v * 1000.0);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = { { "address", required_argument, NULL, 'a' },
		{ "machine", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, {} };
	struct cmd_ctx ctx = { .timeout_ms = MAIN_DEFAULT_TIMEOUT_MS };
	const char *address = NULL, *machine = NULL;
	const struct cmd_entry *cmd;
	char machine_address[256];
	struct gl_address a;
	int c, nargs, status;

	opterr = 0;
	/* "+": options end at the command, so PARAMS may start with '-'. */
	while ((c = getopt_long(argc, argv, "+a:m:t:jhV", options, NULL)) >= 0) {
		switch (c) {
		case 'a':
			address = optarg;
			break;
		case 'm':
			machine = optarg;
			break;
		case 't':
			if (main_parse_timeout(optarg, &ctx.timeout_ms) < 0)
				return cmd_error(NULL, CMD_EXIT_USAGE,
					"invalid --timeout '%s': seconds > 0 expected", optarg);
			break;
		case 'j':
			ctx.json = true;
			break;
		case 'h':
			main_help(stdout);
			return CMD_EXIT_OK;
		case 'V':
			printf("guestlink %s\n", PACKAGE_VERSION);
			return CMD_EXIT_OK;
		case ':':
			return cmd_error(NULL, CMD_EXIT_USAGE,
				"option '%s' needs an argument (see --help)", argv[optind - 1]);
		default:
			return cmd_error(NULL, CMD_EXIT_USAGE, "unknown option '%s' (see --help)",
				argv[optind - 1]);
		}
	}

	if (optind >= argc)
		return cmd_error(&ctx, CMD_EXIT_USAGE, "no command given (see --help)");
	nargs = argc - optind - 1;
	if (strcmp(argv[optind], "help") == 0)
		return main_help_command(nargs, argv + optind + 1);
	cmd = main_find(argv[optind]);
	if (!cmd)
		return cmd_error(&ctx, CMD_EXIT_USAGE, "unknown command '%s' (see --help)",
			argv[optind]);
	/* Help needs no address and no connection. */
	if (main_wants_help(nargs, argv + optind + 1)) {
		cmd_help(stdout, cmd);
		return CMD_EXIT_OK;
	}
	if (nargs < cmd->min_args || (cmd->max_args >= 0 && nargs > cmd->max_args))
		return cmd_error(&ctx, CMD_EXIT_USAGE,
			"usage: guestlink %s %s (see 'guestlink %s --help')", cmd->name, cmd->usage,
			cmd->name);

	if (address && machine)
		return cmd_error(&ctx, CMD_EXIT_USAGE, "-a and -m exclude each other");
	if (machine) {
		if (gl_address_from_machine(machine, &a) < 0 ||
			gl_address_format(&a, machine_address, sizeof(machine_address)) < 0)
			return cmd_error(&ctx, CMD_EXIT_USAGE, "invalid machine name '%s'", machine);
		address = machine_address;
	}
	if (!address) {
		address = getenv("GUESTLINK_ADDRESS");
		if (address && !*address)
			address = NULL;
	}
	if (!address)
		return cmd_error(&ctx, CMD_EXIT_USAGE, "no address: use -a, -m or GUESTLINK_ADDRESS");
	if (gl_address_parse(address, &a) < 0)
		return cmd_error(&ctx, CMD_EXIT_USAGE,
			"invalid address '%s': vsock:CID:PORT, unix:PATH, hybrid:PATH:PORT or "
			"exec:COMMAND "
			"expected",
			address);
	ctx.address = address;

	status = cmd->exec(&ctx, nargs, argv + optind + 1);
	gl_client_free(ctx.client);
	return status;
}
