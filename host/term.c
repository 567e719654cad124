/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Interactive terminal sessions: see term.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "base64.h"
#include "session.h"
#include "term.h"

#define TERM_READ_CHUNK 4096
/* exec.write calls in flight; the agent answers once the terminal took the
 * bytes, so this bounds what waits on its side (back-pressure on typing). */
#define TERM_WRITE_WINDOW 16

/* The local terminal's settings before raw mode, for every way out (atexit,
 * fatal signals): only async-signal-safe tcsetattr() touches them there. */
static struct termios term_saved;
static volatile sig_atomic_t term_is_raw;

static void term_restore(void)
{
	if (term_is_raw) {
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &term_saved);
		term_is_raw = 0;
	}
}

static void term_fatal_signal(int sig)
{
	term_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int term_make_raw(void)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGQUIT };
	static bool installed;
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &term_saved) < 0)
		return -errno;
	if (!installed) {
		atexit(term_restore);
		for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			signal(fatal[i], term_fatal_signal);
		installed = true;
	}
	raw = term_saved;
	cfmakeraw(&raw);
	term_is_raw = 1;
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0) {
		term_is_raw = 0;
		return -errno;
	}
	return 0;
}

struct term_session {
	struct cmd_ctx *ctx;
	struct event_base *base;
	struct gl_client *client;
	int64_t id;
	int status;
	bool done;
	bool stdin_eof;
	bool stdin_pollable; /* else (a file, /dev/null) read directly as the window allows */
	unsigned writes_inflight;
	struct event *stdin_ev, *sigwinch, *sigterm, *sighup;
	/* "~." escape: at the start of a line, and whether a '~' is held back. */
	bool line_start, tilde;
};

static void term_finish(struct term_session *t, int status)
{
	if (t->done)
		return;
	t->done = true;
	t->status = status;
	event_base_loopbreak(t->base);
}

static void term_write_out(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDOUT_FILENO, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			fd_set set;
			FD_ZERO(&set);
			FD_SET(STDOUT_FILENO, &set);
			select(STDOUT_FILENO + 1, NULL, &set, NULL, NULL);
			continue;
		}
		if (w < 0)
			return; /* our terminal is gone: the hangup ends the session */
		p += w;
		n -= (size_t)w;
	}
}

static void term_on_notification(struct gl_client *c, const char *method,
	struct json_object *params, void *userdata)
{
	struct term_session *t = userdata;

	if (!session_is_ours(params, t->id))
		return;
	if (strcmp(method, "exec.output") == 0) {
		const char *data = cmd_get_string(params, "data");
		void *bytes;
		size_t n;

		if (!data || gl_base64_decode(data, strlen(data), &bytes, &n) < 0)
			return;
		/* Blocking: a slow terminal slows the guest program (agent back-pressure). */
		term_write_out(bytes, n);
		free(bytes);
	} else if (strcmp(method, "exec.exit") == 0) {
		struct session_exit x;

		session_exit_parse(params, &x);
		term_finish(t, x.status);
	}
}

static void term_on_close(struct gl_client *c, int error, void *userdata)
{
	struct term_session *t = userdata;

	if (!t->done) {
		term_restore();
		cmd_error(t->ctx, 0, "%s: connection lost before the command ended", t->ctx->address);
		term_finish(t, CMD_EXIT_UNREACHABLE);
	}
}

static void term_pump(struct term_session *t);

static void term_on_write(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct term_session *t = userdata;

	t->writes_inflight--;
	if (status < 0) {
		/* The program ended or closed the terminal: its exec.exit follows. */
		t->stdin_eof = true;
		if (t->stdin_ev)
			event_del(t->stdin_ev);
		return;
	}
	term_pump(t);
}

static void term_send(struct term_session *t, const char *buf, size_t n)
{
	struct json_object *p;
	char *b64;

	if (n == 0)
		return;
	if (gl_base64_encode(buf, n, &b64, NULL) < 0) {
		term_restore();
		term_finish(t, cmd_error(t->ctx, CMD_EXIT_FAILED, "out of memory"));
		return;
	}
	p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_int64(t->id));
	json_object_object_add(p, "data", json_object_new_string(b64));
	free(b64);
	if (gl_client_call_async(t->client, "exec.write", p, -1, term_on_write, t) == 0)
		t->writes_inflight++;
}

/* ssh's escape: "~." at the start of a line drops the session, "~~" sends
 * one '~'; any other '~' goes through with the byte after it. Everything
 * else is sent unchanged (^C, ^Z, ^D are bytes for the remote terminal).
 * Returns the bytes to send in out (at most 2 * n). */
static size_t term_escape(struct term_session *t, const char *in, size_t n, char *out, bool *ret_drop)
{
	size_t k = 0;

	*ret_drop = false;
	for (size_t i = 0; i < n; i++) {
		char ch = in[i];

		if (t->tilde) {
			t->tilde = false;
			if (ch == '.') {
				*ret_drop = true;
				return k;
			}
			if (ch != '~')
				out[k++] = '~';
			out[k++] = ch;
			t->line_start = ch == '\r' || ch == '\n';
			continue;
		}
		if (t->line_start && ch == '~') {
			t->tilde = true;
			continue;
		}
		out[k++] = ch;
		t->line_start = ch == '\r' || ch == '\n';
	}
	return k;
}

static void term_read_stdin(struct term_session *t)
{
	char buf[TERM_READ_CHUNK], out[2 * TERM_READ_CHUNK];
	bool drop;
	ssize_t n;
	size_t k;

	do
		n = read(STDIN_FILENO, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		/* A terminal knows no end of input but the byte for it: with -tt
		 * and a pipe or file as stdin, its end is sent as one ^D (VEOF), so
		 * that `printf 'cmd\n' | guestlink exec -tt -- sh` ends. */
		t->stdin_eof = true;
		event_del(t->stdin_ev);
		if (!isatty(STDIN_FILENO))
			term_send(t, "\x04", 1);
		return;
	}
	k = term_escape(t, buf, (size_t)n, out, &drop);
	term_send(t, out, k);
	if (drop) {
		term_restore();
		fprintf(stderr, "\r\nguestlink: session dropped (~.)\r\n");
		term_finish(t, TERM_EXIT_DROPPED);
	}
}

static void term_pump(struct term_session *t)
{
	if (t->stdin_eof || t->id <= 0 || !t->stdin_ev || t->done)
		return;
	if (!t->stdin_pollable) {
		while (!t->stdin_eof && !t->done && t->writes_inflight < TERM_WRITE_WINDOW)
			term_read_stdin(t);
		return;
	}
	if (t->writes_inflight >= TERM_WRITE_WINDOW)
		event_del(t->stdin_ev);
	else
		event_add(t->stdin_ev, NULL);
}

static void term_on_stdin(evutil_socket_t fd, short what, void *userdata)
{
	struct term_session *t = userdata;

	term_read_stdin(t);
	term_pump(t);
}

static void term_on_ignored_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
}

static bool term_window(unsigned *ret_rows, unsigned *ret_cols)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 || ws.ws_col == 0)
		return false;
	*ret_rows = ws.ws_row;
	*ret_cols = ws.ws_col;
	return true;
}

static void term_on_sigwinch(evutil_socket_t sig, short what, void *userdata)
{
	struct term_session *t = userdata;
	struct json_object *p;
	unsigned rows, cols;

	if (t->id <= 0 || !term_window(&rows, &cols))
		return;
	p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_int64(t->id));
	json_object_object_add(p, "rows", json_object_new_int((int)rows));
	json_object_object_add(p, "cols", json_object_new_int((int)cols));
	gl_client_call_async(t->client, "exec.resize", p, -1, term_on_ignored_reply, t);
}

static void term_on_sigterm(evutil_socket_t sig, short what, void *userdata)
{
	struct term_session *t = userdata;

	/* Leaving closes the connection; the agent hangs up the terminal. */
	term_restore();
	term_finish(t, 128 + (int)sig);
}

static void term_on_started(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct term_session *t = userdata;

	if (status < 0) {
		term_restore();
		if (status == -EREMOTEIO)
			cmd_error(t->ctx, 0, "exec.start: %s (%d)", error->message, error->code);
		else
			cmd_error(t->ctx, 0, "exec.start: %s", strerror(-status));
		term_finish(t, CMD_EXIT_FAILED);
		return;
	}
	if (!session_start_id(result, &t->id)) {
		term_restore();
		cmd_error(t->ctx, 0,
			"exec.start: answer without a valid process id (protocol error)");
		term_finish(t, CMD_EXIT_UNREACHABLE);
		return;
	}
	/* The window may have changed while we waited. */
	term_on_sigwinch(SIGWINCH, 0, t);
	term_pump(t);
}

int term_session_run(struct cmd_ctx *ctx, struct json_object *params, bool force)
{
	struct term_session t = { .ctx = ctx, .line_start = true };
	struct json_object *pty = json_object_new_object();
	bool tty = isatty(STDIN_FILENO);
	const char *term = getenv("TERM");
	unsigned rows = 24, cols = 80;
	int r;

	if (!tty && !force) {
		json_object_put(params);
		json_object_put(pty);
		return cmd_error(ctx, CMD_EXIT_USAGE,
			"stdin is not a terminal: a terminal session needs one (-tt forces it)");
	}
	if (tty)
		term_window(&rows, &cols);
	else {
		struct stat st;
		/* epoll refuses regular files and /dev/null: those are read directly. */
		t.stdin_pollable = fstat(STDIN_FILENO, &st) == 0 &&
				   (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	}
	if (tty)
		t.stdin_pollable = true;
	json_object_object_add(pty, "rows", json_object_new_int((int)rows));
	json_object_object_add(pty, "cols", json_object_new_int((int)cols));
	if (term && *term && strlen(term) <= 64 &&
		strspn(term,
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._") ==
			strlen(term))
		json_object_object_add(pty, "term", json_object_new_string(term));
	json_object_object_add(params, "pty", pty);
	json_object_object_add(params, "stream", json_object_new_boolean(true));
	json_object_object_add(params, "stdin", json_object_new_string("stream"));

	r = cmd_connect(ctx);
	if (r) {
		json_object_put(params);
		return r;
	}
	t.base = event_base_new();
	if (!t.base) {
		json_object_put(params);
		return cmd_error(ctx, CMD_EXIT_FAILED, "cannot create an event loop");
	}
	t.client = ctx->client;
	gl_client_set_notification_handler(t.client, term_on_notification, &t);
	gl_client_set_close_handler(t.client, term_on_close, &t);
	if (gl_client_attach(t.client, t.base) < 0) {
		json_object_put(params);
		r = cmd_error(ctx, CMD_EXIT_FAILED, "cannot attach the client to the event loop");
		goto out;
	}
	t.stdin_ev = event_new(t.base, STDIN_FILENO, EV_READ | EV_PERSIST, term_on_stdin, &t);
	t.sigwinch = evsignal_new(t.base, SIGWINCH, term_on_sigwinch, &t);
	t.sigterm = evsignal_new(t.base, SIGTERM, term_on_sigterm, &t);
	t.sighup = evsignal_new(t.base, SIGHUP, term_on_sigterm, &t);
	if (!t.stdin_ev || !t.sigwinch || !t.sigterm || !t.sighup ||
		evsignal_add(t.sigwinch, NULL) < 0 || evsignal_add(t.sigterm, NULL) < 0 ||
		evsignal_add(t.sighup, NULL) < 0) {
		json_object_put(params);
		r = cmd_error(ctx, CMD_EXIT_FAILED, "cannot watch stdin and signals");
		goto out;
	}
	/* A reader of our stdout that goes away (`| head`) must not kill us by
	 * SIGPIPE with the terminal still raw: the write fails instead. */
	signal(SIGPIPE, SIG_IGN);
	if (tty) {
		r = term_make_raw();
		if (r < 0) {
			json_object_put(params);
			r = cmd_error(ctx, CMD_EXIT_FAILED,
				"cannot put the terminal in raw mode: %s", strerror(-r));
			goto out;
		}
	}
	r = gl_client_call_async(t.client, "exec.start", params, ctx->timeout_ms, term_on_started,
		&t); /* takes params */
	if (r < 0) {
		term_restore();
		r = cmd_error(ctx, CMD_EXIT_UNREACHABLE, "exec.start: %s", strerror(-r));
		goto out;
	}
	event_base_dispatch(t.base);
	term_restore();
	r = t.done ? t.status : CMD_EXIT_FAILED;
out:
	term_restore();
	/* The client belongs to ctx but is attached to our base: free it first. */
	ctx->client = gl_client_free(ctx->client);
	if (t.stdin_ev)
		event_free(t.stdin_ev);
	if (t.sigwinch)
		event_free(t.sigwinch);
	if (t.sigterm)
		event_free(t.sigterm);
	if (t.sighup)
		event_free(t.sighup);
	event_base_free(t.base);
	return r;
}
