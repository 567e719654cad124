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
	/* Every signal whose default action ends us, but those the loop
	 * handles (SIGTERM, SIGHUP, SIGWINCH) and SIGPIPE (ignored): raw mode
	 * makes ^C a byte, yet kill(1) can still send SIGINT. */
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGQUIT, SIGINT,
		SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGTRAP, SIGSYS };
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
	struct session s;
	struct event *sigwinch, *sigterm, *sighup;
	/* "~." escape: at the start of a line, and whether a '~' is held back. */
	bool line_start, tilde;
};

static void term_on_output(struct session *s, const char *stream, const char *b64,
	const void *bytes, size_t n)
{
	/* Blocking: a slow terminal slows the guest program (agent back-pressure).
	 * A failure means our terminal is gone: the hangup ends the session. */
	(void)session_write_all(STDOUT_FILENO, bytes, n);
}

static void term_leave(struct session *s)
{
	term_restore();
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

static void term_on_input(struct session *s, const char *buf, size_t n)
{
	struct term_session *t = s->userdata;
	char out[2 * TERM_READ_CHUNK];
	bool drop;
	size_t k;

	k = term_escape(t, buf, n, out, &drop);
	session_send(s, out, k, false);
	if (drop) {
		term_restore();
		fprintf(stderr, "\r\nguestlink: session dropped (~.)\r\n");
		session_finish(s, TERM_EXIT_DROPPED);
	}
}

/* A terminal knows no end of input but the byte for it: with -tt and a pipe
 * or file as stdin, its end is sent as one ^D (VEOF), so that
 * `printf 'cmd\n' | guestlink exec -tt -- sh` ends. */
static void term_on_input_end(struct session *s)
{
	if (!isatty(STDIN_FILENO))
		session_send(s, "\x04", 1, false);
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

	if (t->s.id <= 0 || !term_window(&rows, &cols))
		return;
	p = json_object_new_object();
	json_object_object_add(p, "id", json_object_new_int64(t->s.id));
	json_object_object_add(p, "rows", json_object_new_int((int)rows));
	json_object_object_add(p, "cols", json_object_new_int((int)cols));
	session_notify(&t->s, "exec.resize", p);
}

static void term_on_sigterm(evutil_socket_t sig, short what, void *userdata)
{
	struct term_session *t = userdata;

	/* Leaving closes the connection; the agent hangs up the terminal. */
	term_restore();
	session_finish(&t->s, 128 + (int)sig);
}

static int term_on_start_failed(struct session *s, int status, const struct gl_error *error)
{
	if (status == -EREMOTEIO)
		cmd_error(s->ctx, 0, "exec.start: %s (%d)", error->message, error->code);
	else
		cmd_error(s->ctx, 0, "exec.start: %s", strerror(-status));
	return CMD_EXIT_FAILED;
}

static void term_on_started(struct session *s)
{
	/* The window may have changed while we waited. */
	term_on_sigwinch(SIGWINCH, 0, s->userdata);
}

static const struct session_ops term_session_ops = {
	.write_window = TERM_WRITE_WINDOW,
	.read_chunk = TERM_READ_CHUNK,
	.output = term_on_output,
	.started = term_on_started,
	.start_failed = term_on_start_failed,
	.input = term_on_input,
	.input_end = term_on_input_end,
	.leave = term_leave,
};

int term_session_run(struct cmd_ctx *ctx, struct json_object *params, bool force)
{
	struct term_session t = { .line_start = true };
	struct json_object *pty = json_object_new_object();
	bool tty = isatty(STDIN_FILENO), pollable = tty;
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
		pollable = fstat(STDIN_FILENO, &st) == 0 &&
			   (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
	}
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

	r = session_open(&t.s, ctx, &term_session_ops, &t);
	if (!r)
		r = session_forward_stdin(&t.s, pollable);
	if (r) {
		json_object_put(params);
		goto out;
	}
	t.sigwinch = evsignal_new(t.s.base, SIGWINCH, term_on_sigwinch, &t);
	t.sigterm = evsignal_new(t.s.base, SIGTERM, term_on_sigterm, &t);
	t.sighup = evsignal_new(t.s.base, SIGHUP, term_on_sigterm, &t);
	if (!t.sigwinch || !t.sigterm || !t.sighup || evsignal_add(t.sigwinch, NULL) < 0 ||
		evsignal_add(t.sigterm, NULL) < 0 || evsignal_add(t.sighup, NULL) < 0) {
		json_object_put(params);
		r = cmd_error(ctx, CMD_EXIT_FAILED, "cannot watch signals");
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
	r = session_run(&t.s, params, ctx->timeout_ms); /* takes params */
out:
	term_restore();
	if (t.sigwinch)
		event_free(t.sigwinch);
	if (t.sigterm)
		event_free(t.sigterm);
	if (t.sighup)
		event_free(t.sighup);
	session_close(&t.s);
	return r;
}
