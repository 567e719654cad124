/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What `guestlink exec` and terminal sessions (term.c) share about a command
 * the agent runs for them (exec.start with stream: true): the process id in
 * the answer and the exit status in exec.exit (a guest may send anything:
 * both are checked here, once), and the loop that streams exec.output, feeds
 * stdin as exec.write within a window of calls in flight (back-pressure) and
 * ends at exec.exit or when the connection is lost. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "cmd.h"

struct event;
struct event_base;

struct session_exit {
	int status;      /* as a shell reports it: see session_exit_parse() */
	bool has_code;   /* code: 0..255, the command exited */
	bool has_signal; /* signal: 1..127, a signal ended it (wins over code) */
	int code, signal;
	bool timed_out; /* the agent killed it after its timeout_ms */
};

/* exec.exit params {id, code, signal, timed_out} into *ret. status is
 * 128 + signal, else code, else CMD_EXIT_UNREACHABLE (255: the agent's
 * report holds neither in range, e.g. code 256 or signal 300, which must not
 * pass for a success or another signal). */
void session_exit_parse(struct json_object *params, struct session_exit *ret);

/* The process id in exec.start's answer {id}. false when it is missing, not
 * an integer or not positive: a protocol error by the agent (the caller
 * reports it and exits CMD_EXIT_UNREACHABLE); *ret_id is then untouched. */
bool session_start_id(struct json_object *result, int64_t *ret_id);

/* Does a notification's params.id name our process? */
bool session_is_ours(struct json_object *params, int64_t id);

/* --- the streaming loop both run --- */

struct session;

/* What differs between `exec` (pipes, --json) and a terminal session. Hooks
 * may be NULL where a default is said. */
struct session_ops {
	unsigned write_window; /* exec.write calls in flight at most (back-pressure) */
	size_t read_chunk;     /* bytes of stdin per exec.write, <= SESSION_READ_MAX */
	/* exec.output: stream "stdout"/"stderr", data as base64 and decoded. */
	void (*output)(struct session *s, const char *stream, const char *b64, const void *bytes,
		size_t n);
	/* exec.exit: the status to finish with (NULL: x->status). */
	int (*exit)(struct session *s, const struct session_exit *x);
	/* exec.start answered with a process id (before stdin is pumped). */
	void (*started)(struct session *s);
	/* exec.start failed (-EREMOTEIO with error, or a transport errno): report
	 * it and return the exit status. */
	int (*start_failed)(struct session *s, int status, const struct gl_error *error);
	/* 0 < n <= read_chunk bytes read from stdin (NULL: sent as they are). */
	void (*input)(struct session *s, const char *buf, size_t n);
	/* stdin ended (NULL: exec.write with eof: true). */
	void (*input_end)(struct session *s);
	/* Before the session prints an error (a terminal back in cooked mode). */
	void (*leave)(struct session *s);
};

#define SESSION_READ_MAX (64 * 1024)

struct session {
	struct cmd_ctx *ctx;
	const struct session_ops *ops;
	void *userdata;
	struct event_base *base;
	struct gl_client *client; /* ctx->client, attached to base */
	int64_t id;               /* the process, once exec.start answered; else 0 */
	int status;
	bool done;
	bool stdin_forward, stdin_eof;
	unsigned writes_inflight;
	struct event *stdin_ev; /* NULL when stdin is read directly (files, /dev/null) */
};

/* Connect (cmd_connect), make an event loop and attach the client to it.
 * 0, or the exit status after the error was printed. */
int session_open(struct session *s, struct cmd_ctx *ctx, const struct session_ops *ops,
	void *userdata);
/* Forward stdin once the command runs: polled when pollable (a pipe, socket
 * or terminal), else read directly as the window allows. 0 or an exit status. */
int session_forward_stdin(struct session *s, bool pollable);
/* exec.start with params (takes them), then run the loop until exec.exit,
 * the connection's loss or session_finish(). Returns the exit status. */
int session_run(struct session *s, struct json_object *params, int timeout_ms);
/* End the loop with status (the first call wins). */
void session_finish(struct session *s, int status);
/* Send n bytes as exec.write (eof: also close the command's stdin); nothing
 * for n == 0 without eof. */
void session_send(struct session *s, const char *buf, size_t n, bool eof);
/* A call whose answer does not matter (exec.signal, exec.resize); takes params. */
void session_notify(struct session *s, const char *method, struct json_object *params);
/* Write all n bytes to fd, waiting when it is non-blocking and full: a slow
 * reader of our output slows the guest program (the agent's back-pressure).
 * 0, or -errno of write(2). */
int session_write_all(int fd, const void *buf, size_t n);
/* Stop reading stdin. */
void session_stop_input(struct session *s);
/* Free what session_open() made (the client first: it is attached to the
 * base); for a session never opened too. */
void session_close(struct session *s);
