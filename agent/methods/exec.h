/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Child processes of the agent: exec.* methods and, through the same code,
 * plugins. Children run in their own session, are reaped from SIGCHLD with a
 * waitpid(-1) loop (no zombies), and their pipes are read on the event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "method.h"

struct event_base;
struct exec_proc;

enum exec_capture {
	EXEC_CAPTURE_SEPARATE,
	EXEC_CAPTURE_MERGED,
	EXEC_CAPTURE_NONE,
};

enum exec_stream {
	EXEC_STDOUT,
	EXEC_STDERR,
	_EXEC_STREAM_MAX,
};

struct exec_spec {
	char *const *argv;      /* argv[0] is looked up in PATH of the child's environment */
	char *const *env;       /* "K=V" overrides on top of the agent's cleaned environment */
	const char *cwd;        /* NULL = "/" */
	const void *stdin_data; /* written then closed; NULL and !stdin_stream = /dev/null */
	size_t stdin_len;
	bool stdin_stream; /* keep stdin open for exec.write */
	enum exec_capture capture;
	uint64_t timeout_ms; /* 0 = none; then the whole process group gets SIGKILL */
	size_t max_output;   /* per stream; beyond it output is read and dropped */
	bool has_user;
	uid_t uid;
	gid_t gid;
	const gid_t *groups;       /* the user's supplementary groups, resolved before */
	size_t n_groups;           /* fork(): NSS is not safe in a threaded child */
	bool internal;             /* not visible to exec.* (plugins, exec.run) */
	bool pty;                  /* 0, 1, 2 on a new pseudo-terminal: the controlling
				      terminal of the child's session; its output is
				      "stdout", stdin feeds its input; capture ignored */
	unsigned short rows, cols; /* its window size */
	bool scope;                /* in a transient systemd scope of its own (exec_scope.h) */
};

/* Called once when the process has exited and its output pipes are drained. */
typedef void (*exec_done_fn)(struct exec_proc *p, void *userdata);

/* Start a child. Returns 0, or a negative errno: the errno of a failed exec
 * (e.g. -ENOENT), -EAGAIN when the process limit is reached. */
int exec_spawn(struct event_base *base, const struct exec_spec *spec, exec_done_fn done,
	void *userdata, struct exec_proc **ret);
/* Forget an internal process once done (NULL-safe; freed after the current callback). */
struct exec_proc *exec_proc_release(struct exec_proc *p);

uint64_t exec_proc_id(const struct exec_proc *p);
pid_t exec_proc_pid(const struct exec_proc *p);
/* After done: exit code (>= 0) or -signal number. */
int exec_proc_result(const struct exec_proc *p, bool *ret_timed_out);
/* Captured output (borrowed until release); truncated tells the cap was hit. */
const char *exec_proc_output(struct exec_proc *p, enum exec_stream s, size_t *ret_len,
	bool *ret_truncated);

/* Set the window size of a process's terminal (TIOCSWINSZ; the foreground
 * process group gets SIGWINCH). -ENOTTY without a terminal, -ESRCH after exit. */
int exec_proc_resize(struct exec_proc *p, unsigned rows, unsigned cols);

/* "TERM", "SIGTERM" or a number as JSON -> signal number; -EINVAL if unknown. */
int exec_signal_from_json(struct json_object *v);

extern const struct method exec_methods[];
