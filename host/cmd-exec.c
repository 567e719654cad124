/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink exec [--env K=V] [--cwd DIR] [--stdin] [--timeout S] [-t[t]] -- CMD ARGS...
 * Output is streamed live (exec.start with stream: true), stdin forwarded with
 * exec.write, Ctrl-C forwarded as SIGINT, and the exit status is the
 * command's (128+N for a signal). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "base64.h"
#include "cmd.h"
#include "guestlink/jsonrpc.h"
#include "session.h"
#include "term.h"

#define EXEC_STDIN_CHUNK (64 * 1024)
/* exec.write calls in flight: the agent answers once the pipe took the bytes,
 * so this bounds what we buffer on its side. */
#define EXEC_STDIN_WINDOW 4

struct exec_run {
	struct session s;
	int pending_signal;
	int term_signal;           /* the SIGTERM/SIGHUP forwarded, or 0 */
	struct event *leave_timer; /* armed by the first SIGTERM/SIGHUP */
	const char *argv0, *cwd;   /* for messages */
};

/* exec.start failed: name the program and the cause, and exit as a shell
 * would (127 not found, 126 not executable), else 255 (could not run). */
static int exec_start_error(struct session *s, int status, const struct gl_error *error)
{
	struct exec_run *e = s->userdata;

	const char *ename = status == -EREMOTEIO ? cmd_get_string(error->data, "errno") : NULL;

	if (status == -EREMOTEIO && error->code == GL_RPC_NO_SUCH_OBJECT && s->ctx->json) {
		cmd_report_call_error(s->ctx, "exec.start", e->argv0, status, error);
		return CMD_EXIT_NOT_FOUND;
	}
	if (status == -EREMOTEIO && error->code == GL_RPC_NO_SUCH_OBJECT) {
		if (e->cwd)
			return cmd_error(s->ctx, CMD_EXIT_NOT_FOUND, "%s (or --cwd %s): %s",
				e->argv0, e->cwd, strerror(ENOENT));
		return cmd_error(s->ctx, CMD_EXIT_NOT_FOUND, "%s: %s", e->argv0, strerror(ENOENT));
	}
	if (ename && (strcmp(ename, "EACCES") == 0 || strcmp(ename, "ENOEXEC") == 0 ||
			     strcmp(ename, "EISDIR") == 0 || strcmp(ename, "ENOTDIR") == 0)) {
		cmd_report_call_error(s->ctx, "exec.start", e->argv0, status, error);
		return CMD_EXIT_CANNOT_EXECUTE;
	}
	cmd_report_call_error(s->ctx, "exec.start", e->argv0, status, error);
	return CMD_EXIT_UNREACHABLE;
}

/* --json: one JSON text per line, for each output chunk and the exit. */
static void exec_print_json_line(struct cmd_ctx *ctx, struct json_object *o)
{
	cmd_print_json(ctx, o);
	fflush(stdout);
	json_object_put(o);
}

static void exec_on_output(struct session *s, const char *stream, const char *b64,
	const void *bytes, size_t n)
{
	if (s->ctx->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "stream", json_object_new_string(stream));
		json_object_object_add(o, "data", json_object_new_string(b64));
		exec_print_json_line(s->ctx, o);
	} else
		/* Raw by design. Blocking writes: a slow reader of our stdout
		 * slows the guest process down through the agent's back-pressure. */
		session_write_all(strcmp(stream, "stderr") == 0 ? STDERR_FILENO : STDOUT_FILENO,
			bytes, n);
}

static int exec_on_exit(struct session *s, const struct session_exit *x)
{
	struct exec_run *e = s->userdata;

	if (s->ctx->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "exit_status", json_object_new_int(x->status));
		json_object_object_add(o, "code",
			x->has_code && !x->has_signal ? json_object_new_int(x->code) : NULL);
		json_object_object_add(o, "signal",
			x->has_signal ? json_object_new_int(x->signal) : NULL);
		json_object_object_add(o, "timed_out", json_object_new_boolean(x->timed_out));
		exec_print_json_line(s->ctx, o);
	} else if (x->timed_out)
		cmd_error(s->ctx, 0, "%s: timed out and was killed", e->argv0);
	return x->status;
}

static void exec_forward_signal(struct exec_run *e, int sig)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "id", json_object_new_int64(e->s.id));
	json_object_object_add(p, "signal", json_object_new_int(sig));
	session_notify(&e->s, "exec.signal", p);
}

/* Leave the command to itself: its agent did not end it after SIGTERM or
 * SIGHUP (the agent may be hung), so we exit as that signal would. */
static void exec_leave(struct exec_run *e, int sig)
{
	session_finish(&e->s, cmd_error(e->s.ctx, 128 + sig,
				      "%s: still running in the guest after %s; leaving it",
				      e->argv0, sig == SIGTERM ? "SIGTERM" : "SIGHUP"));
}

static void exec_on_leave_timer(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_run *e = userdata;

	exec_leave(e, e->term_signal);
}

/* Every SIGINT, and the first SIGTERM or SIGHUP, goes to the command. After
 * a SIGTERM or SIGHUP we wait for its end no longer than -t (the agent's
 * answer timeout), and a second one leaves at once: `timeout`, systemd or a
 * closing terminal can always stop us, as they can stop ssh. */
static void exec_on_signal(evutil_socket_t sig, short what, void *userdata)
{
	struct exec_run *e = userdata;

	if (sig != SIGINT) {
		if (e->term_signal) {
			exec_leave(e, (int)sig);
			return;
		}
		struct timeval tv = { .tv_sec = e->s.ctx->timeout_ms / 1000,
			.tv_usec = e->s.ctx->timeout_ms % 1000 * 1000 };

		e->term_signal = (int)sig;
		e->leave_timer = evtimer_new(e->s.base, exec_on_leave_timer, e);
		if (e->leave_timer)
			evtimer_add(e->leave_timer, &tv);
	}
	if (e->s.id > 0)
		exec_forward_signal(e, (int)sig);
	else
		e->pending_signal = (int)sig; /* sent once exec.start answered */
}

static void exec_on_started(struct session *s)
{
	struct exec_run *e = s->userdata;

	if (e->pending_signal)
		exec_forward_signal(e, e->pending_signal);
}

static const struct session_ops exec_session_ops = {
	.write_window = EXEC_STDIN_WINDOW,
	.read_chunk = EXEC_STDIN_CHUNK,
	.output = exec_on_output,
	.exit = exec_on_exit,
	.started = exec_on_started,
	.start_failed = exec_start_error,
};

static int exec_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "env", required_argument, NULL, 'e' },
		{ "cwd", required_argument, NULL, 'C' }, { "stdin", no_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 'T' }, { "tty", no_argument, NULL, 't' }, {} };
	struct json_object *params = json_object_new_object(), *env = json_object_new_array();
	struct json_object *args = json_object_new_array();
	struct exec_run e = {};
	struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
	const char *cwd = NULL;
	bool stdin_forward = false;
	long timeout_s = 0;
	int c, r, tty = 0;

	optind = 0; /* glibc: restart option parsing on our own arguments */
	while ((c = getopt_long(argc + 1, argv - 1, "+e:C:iT:t", options, NULL)) >= 0) {
		char *end;
		switch (c) {
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				r = cmd_error(ctx, CMD_EXIT_USAGE,
					"--env needs KEY=VALUE, not '%s'", optarg);
				goto out;
			}
			json_object_array_add(env, json_object_new_string(optarg));
			break;
		case 'C':
			cwd = optarg;
			break;
		case 'i':
			stdin_forward = true;
			break;
		case 't':
			tty++; /* -tt: even when stdin is not a terminal, as ssh */
			break;
		case 'T':
			errno = 0;
			timeout_s = strtol(optarg, &end, 10);
			if (errno || *end || timeout_s <= 0 || timeout_s > 7 * 24 * 3600) {
				r = cmd_error(ctx, CMD_EXIT_USAGE, "invalid --timeout '%s'", optarg);
				goto out;
			}
			break;
		default:
			r = cmd_error(ctx, CMD_EXIT_USAGE, "usage: guestlink exec %s",
				cmd_exec_entry.usage);
			goto out;
		}
	}
	/* getopt saw argv - 1: its index 1 is our argv[0]. */
	if (optind > argc) {
		r = cmd_error(ctx, CMD_EXIT_USAGE, "exec: no command given");
		goto out;
	}
	for (int i = optind - 1; i < argc; i++)
		json_object_array_add(args, json_object_new_string(argv[i]));
	e.argv0 = optind - 1 < argc ? argv[optind - 1] : NULL;
	e.cwd = cwd;
	if (json_object_array_length(args) == 0) {
		r = cmd_error(ctx, CMD_EXIT_USAGE, "exec: no command given");
		goto out;
	}

	if (tty > 0) {
		/* On a guest terminal: see term.c. */
		json_object_object_add(params, "argv", json_object_get(args));
		if (json_object_array_length(env) > 0)
			json_object_object_add(params, "env", json_object_get(env));
		if (cwd)
			json_object_object_add(params, "cwd", json_object_new_string(cwd));
		if (timeout_s > 0)
			json_object_object_add(params, "timeout_ms",
				json_object_new_int64(timeout_s * 1000));
		r = term_session_run(ctx, params, tty > 1);
		params = NULL; /* taken */
		goto out;
	}

	r = session_open(&e.s, ctx, &exec_session_ops, &e);
	if (r)
		goto out;
	if (stdin_forward) {
		struct stat st;
		if (fstat(STDIN_FILENO, &st) < 0) {
			r = cmd_error(ctx, CMD_EXIT_USAGE, "--stdin: stdin is closed");
			goto out;
		}
		/* epoll refuses regular files and most devices (/dev/null): those are
		 * read directly, as the window allows. */
		r = session_forward_stdin(&e.s,
			S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
				(S_ISCHR(st.st_mode) && isatty(STDIN_FILENO)));
		if (r)
			goto out;
	}
	sigint = evsignal_new(e.s.base, SIGINT, exec_on_signal, &e);
	sigterm = evsignal_new(e.s.base, SIGTERM, exec_on_signal, &e);
	sighup = evsignal_new(e.s.base, SIGHUP, exec_on_signal, &e);
	if (sigint)
		evsignal_add(sigint, NULL);
	if (sigterm)
		evsignal_add(sigterm, NULL);
	if (sighup)
		evsignal_add(sighup, NULL);

	json_object_object_add(params, "argv", json_object_get(args));
	if (json_object_array_length(env) > 0)
		json_object_object_add(params, "env", json_object_get(env));
	if (cwd)
		json_object_object_add(params, "cwd", json_object_new_string(cwd));
	if (stdin_forward)
		json_object_object_add(params, "stdin", json_object_new_string("stream"));
	if (timeout_s > 0)
		json_object_object_add(params, "timeout_ms", json_object_new_int64(timeout_s * 1000));
	json_object_object_add(params, "stream", json_object_new_boolean(true));
	r = session_run(&e.s, params, ctx->timeout_ms);
	params = NULL; /* taken */
out:
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (sighup)
		event_free(sighup);
	if (e.leave_timer)
		event_free(e.leave_timer);
	session_close(&e.s);
	json_object_put(params);
	json_object_put(env);
	json_object_put(args);
	return r;
}

const struct cmd_entry cmd_exec_entry = {
	.name = "exec",
	.usage = "[--env K=V] [--cwd DIR] [--stdin] [--timeout S] [-t[t]] -- CMD ARGS...",
	.summary = "run a command in the guest, streaming its output; exit with its status",
	.options = "  -e, --env=K=V      set an environment variable (repeatable)\n"
		   "  -C, --cwd=DIR      working directory in the guest (default /)\n"
		   "  -i, --stdin        forward our stdin to the command\n"
		   "  -T, --timeout=S    kill the command after S seconds\n"
		   "  -t, --tty          run it on a terminal (raw mode; -tt even without one)\n"
		   "With --json: one JSON line per output chunk {\"stream\", \"data\" (base64)}, "
		   "then\n"
		   "{\"exit_status\", \"code\", \"signal\", \"timed_out\"}.\n"
		   "Exit status: the command's (128+N for signal N); 127 not found, 126 not\n"
		   "executable, 255 guestlink could not reach the agent or run the command.\n",
	.example = "  guestlink -m vm1 exec -- uname -a\n"
		   "  tar c . | guestlink -m vm1 exec --stdin --cwd /srv -- tar x\n",
	.min_args = 1,
	.max_args = -1,
	.exec = exec_exec,
};
