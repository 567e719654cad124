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
	struct cmd_ctx *ctx;
	struct event_base *base;
	struct gl_client *client;
	int64_t id;
	int status;
	bool done;

	bool stdin_forward, stdin_pollable, stdin_eof;
	unsigned writes_inflight;
	struct event *stdin_ev;
	int pending_signal;
	const char *argv0, *cwd; /* for messages */
};

static void exec_finish(struct exec_run *e, int status)
{
	if (e->done)
		return;
	e->done = true;
	e->status = status;
	event_base_loopbreak(e->base);
}

/* exec.start failed: name the program and the cause, and exit as a shell
 * would (127 not found, 126 not executable), else 255 (could not run). */
static int exec_start_error(struct exec_run *e, int status, const struct gl_error *error)
{
	const char *ename = status == -EREMOTEIO ? cmd_get_string(error->data, "errno") : NULL;

	if (status == -EREMOTEIO && error->code == GL_RPC_NO_SUCH_OBJECT && e->ctx->json) {
		cmd_report_call_error(e->ctx, "exec.start", e->argv0, status, error);
		return CMD_EXIT_NOT_FOUND;
	}
	if (status == -EREMOTEIO && error->code == GL_RPC_NO_SUCH_OBJECT) {
		if (e->cwd)
			return cmd_error(e->ctx, CMD_EXIT_NOT_FOUND, "%s (or --cwd %s): %s",
				e->argv0, e->cwd, strerror(ENOENT));
		return cmd_error(e->ctx, CMD_EXIT_NOT_FOUND, "%s: %s", e->argv0, strerror(ENOENT));
	}
	if (ename && (strcmp(ename, "EACCES") == 0 || strcmp(ename, "ENOEXEC") == 0 ||
			     strcmp(ename, "EISDIR") == 0 || strcmp(ename, "ENOTDIR") == 0)) {
		cmd_report_call_error(e->ctx, "exec.start", e->argv0, status, error);
		return CMD_EXIT_CANNOT_EXECUTE;
	}
	cmd_report_call_error(e->ctx, "exec.start", e->argv0, status, error);
	return CMD_EXIT_UNREACHABLE;
}

static int exec_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			fd_set set;
			FD_ZERO(&set);
			FD_SET(fd, &set);
			select(fd + 1, NULL, &set, NULL, NULL);
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* --json: one JSON text per line, for each output chunk and the exit. */
static void exec_print_json_line(struct cmd_ctx *ctx, struct json_object *o)
{
	cmd_print_json(ctx, o);
	fflush(stdout);
	json_object_put(o);
}

static void exec_on_notification(struct gl_client *c, const char *method,
	struct json_object *params, void *userdata)
{
	struct exec_run *e = userdata;

	if (!session_is_ours(params, e->id))
		return;
	if (strcmp(method, "exec.output") == 0) {
		const char *stream = cmd_get_string(params, "stream") ?: "stdout";
		const char *data = cmd_get_string(params, "data");
		void *bytes;
		size_t n;

		if (!data || gl_base64_decode(data, strlen(data), &bytes, &n) < 0)
			return;
		if (e->ctx->json) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "stream",
				json_object_new_string(
					strcmp(stream, "stderr") == 0 ? "stderr" : "stdout"));
			json_object_object_add(o, "data", json_object_new_string(data));
			exec_print_json_line(e->ctx, o);
		} else
			/* Raw by design. Blocking writes: a slow reader of our stdout
			 * slows the guest process down through the agent's back-pressure. */
			exec_write_all(strcmp(stream, "stderr") == 0 ? STDERR_FILENO : STDOUT_FILENO,
				bytes, n);
		free(bytes);
	} else if (strcmp(method, "exec.exit") == 0) {
		struct session_exit x;

		session_exit_parse(params, &x);
		if (e->ctx->json) {
			struct json_object *o = json_object_new_object();
			json_object_object_add(o, "exit_status", json_object_new_int(x.status));
			json_object_object_add(o, "code",
				x.has_code && !x.has_signal ? json_object_new_int(x.code) : NULL);
			json_object_object_add(o, "signal",
				x.has_signal ? json_object_new_int(x.signal) : NULL);
			json_object_object_add(o, "timed_out", json_object_new_boolean(x.timed_out));
			exec_print_json_line(e->ctx, o);
		} else if (x.timed_out)
			cmd_error(e->ctx, 0, "%s: timed out and was killed", e->argv0);
		exec_finish(e, x.status);
	}
}

static void exec_on_close(struct gl_client *c, int error, void *userdata)
{
	struct exec_run *e = userdata;

	if (!e->done) {
		cmd_error(e->ctx, 0, "%s: connection lost before the command ended: %s",
			e->ctx->address, strerror(error ? abs(error) : ECONNRESET));
		exec_finish(e, CMD_EXIT_UNREACHABLE);
	}
}

static void exec_pump_stdin(struct exec_run *e);

static void exec_on_write(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct exec_run *e = userdata;

	e->writes_inflight--;
	if (status < 0) {
		/* The command closed its stdin or ended: stop forwarding, quietly. */
		e->stdin_forward = false;
		if (e->stdin_ev)
			event_del(e->stdin_ev);
		return;
	}
	exec_pump_stdin(e);
}

static void exec_send_stdin(struct exec_run *e, const char *buf, size_t n, bool eof)
{
	struct json_object *p = json_object_new_object();
	char *b64;

	if (gl_base64_encode(buf, n, &b64, NULL) < 0) {
		json_object_put(p);
		exec_finish(e, cmd_error(e->ctx, CMD_EXIT_UNREACHABLE, "out of memory"));
		return;
	}
	json_object_object_add(p, "id", json_object_new_int64(e->id));
	json_object_object_add(p, "data", json_object_new_string(b64));
	free(b64);
	if (eof)
		json_object_object_add(p, "eof", json_object_new_boolean(true));
	if (gl_client_call_async(e->client, "exec.write", p, -1, exec_on_write, e) == 0)
		e->writes_inflight++;
}

/* Read one chunk of our stdin and forward it. */
static void exec_read_stdin(struct exec_run *e)
{
	char buf[EXEC_STDIN_CHUNK];
	ssize_t n;

	do
		n = read(STDIN_FILENO, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		e->stdin_eof = true;
		if (e->stdin_ev)
			event_del(e->stdin_ev);
		exec_send_stdin(e, "", 0, true);
		return;
	}
	exec_send_stdin(e, buf, (size_t)n, false);
}

static void exec_pump_stdin(struct exec_run *e)
{
	if (!e->stdin_forward || e->stdin_eof || e->id <= 0)
		return;
	if (e->stdin_pollable) {
		if (e->writes_inflight >= EXEC_STDIN_WINDOW)
			event_del(e->stdin_ev);
		else if (event_add(e->stdin_ev, NULL) < 0)
			e->stdin_pollable = false; /* not pollable after all: read directly */
		if (e->stdin_pollable)
			return;
	}
	/* A regular file cannot be polled: read while the window has room. */
	while (!e->stdin_eof && e->stdin_forward && e->writes_inflight < EXEC_STDIN_WINDOW)
		exec_read_stdin(e);
}

static void exec_on_stdin(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_run *e = userdata;

	exec_read_stdin(e);
	exec_pump_stdin(e);
}

static void exec_on_signal_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
}

static void exec_forward_signal(struct exec_run *e, int sig)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "id", json_object_new_int64(e->id));
	json_object_object_add(p, "signal", json_object_new_int(sig));
	gl_client_call_async(e->client, "exec.signal", p, -1, exec_on_signal_reply, e);
}

static void exec_on_signal(evutil_socket_t sig, short what, void *userdata)
{
	struct exec_run *e = userdata;

	if (e->id > 0)
		exec_forward_signal(e, (int)sig);
	else
		e->pending_signal = (int)sig; /* sent once exec.start answered */
}

static void exec_on_started(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct exec_run *e = userdata;

	if (status < 0) {
		exec_finish(e, exec_start_error(e, status, error));
		return;
	}
	if (!session_start_id(result, &e->id)) {
		cmd_error(e->ctx, 0,
			"exec.start: answer without a valid process id (protocol error)");
		exec_finish(e, CMD_EXIT_UNREACHABLE);
		return;
	}
	if (e->pending_signal)
		exec_forward_signal(e, e->pending_signal);
	exec_pump_stdin(e);
}

static int exec_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "env", required_argument, NULL, 'e' },
		{ "cwd", required_argument, NULL, 'C' }, { "stdin", no_argument, NULL, 'i' },
		{ "timeout", required_argument, NULL, 'T' }, { "tty", no_argument, NULL, 't' }, {} };
	struct json_object *params = json_object_new_object(), *env = json_object_new_array();
	struct json_object *args = json_object_new_array();
	struct exec_run e = { .ctx = ctx };
	struct event *sigint = NULL, *sigterm = NULL, *sighup = NULL;
	const char *cwd = NULL;
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
			e.stdin_forward = true;
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

	r = cmd_connect(ctx);
	if (r)
		goto out;
	e.base = event_base_new();
	if (!e.base) {
		r = cmd_error(ctx, CMD_EXIT_UNREACHABLE, "cannot create an event loop");
		goto out;
	}
	e.client = ctx->client;
	gl_client_set_notification_handler(e.client, exec_on_notification, &e);
	gl_client_set_close_handler(e.client, exec_on_close, &e);
	if (gl_client_attach(e.client, e.base) < 0) {
		r = cmd_error(ctx, CMD_EXIT_UNREACHABLE,
			"cannot attach the client to the event loop");
		goto out;
	}
	if (e.stdin_forward) {
		struct stat st;
		if (fstat(STDIN_FILENO, &st) < 0) {
			r = cmd_error(ctx, CMD_EXIT_USAGE, "--stdin: stdin is closed");
			goto out;
		}
		/* epoll refuses regular files and most devices (/dev/null): those are
		 * read directly, as the window allows. */
		e.stdin_pollable = S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) ||
				   (S_ISCHR(st.st_mode) && isatty(STDIN_FILENO));
		if (e.stdin_pollable) {
			e.stdin_ev = event_new(e.base, STDIN_FILENO, EV_READ | EV_PERSIST,
				exec_on_stdin, &e);
			if (!e.stdin_ev) {
				r = cmd_error(ctx, CMD_EXIT_UNREACHABLE, "cannot watch stdin");
				goto out;
			}
		}
	}
	sigint = evsignal_new(e.base, SIGINT, exec_on_signal, &e);
	sigterm = evsignal_new(e.base, SIGTERM, exec_on_signal, &e);
	sighup = evsignal_new(e.base, SIGHUP, exec_on_signal, &e);
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
	if (e.stdin_forward)
		json_object_object_add(params, "stdin", json_object_new_string("stream"));
	if (timeout_s > 0)
		json_object_object_add(params, "timeout_ms", json_object_new_int64(timeout_s * 1000));
	json_object_object_add(params, "stream", json_object_new_boolean(true));
	r = gl_client_call_async(e.client, "exec.start", params, ctx->timeout_ms, exec_on_started,
		&e);
	params = NULL; /* taken */
	if (r < 0) {
		r = cmd_error(ctx, CMD_EXIT_UNREACHABLE, "exec.start: %s", strerror(-r));
		goto out;
	}
	event_base_dispatch(e.base);
	r = e.done ? e.status : CMD_EXIT_UNREACHABLE;
out:
	/* The client belongs to ctx (freed by main) but is attached to our base:
	 * free it before the base. */
	if (e.base) {
		ctx->client = gl_client_free(ctx->client);
		if (e.stdin_ev)
			event_free(e.stdin_ev);
		if (sigint)
			event_free(sigint);
		if (sigterm)
			event_free(sigterm);
		if (sighup)
			event_free(sighup);
		event_base_free(e.base);
	}
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
