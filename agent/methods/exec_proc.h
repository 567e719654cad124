/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The child-process engine behind exec.* and plugins: the process table,
 * spawning, SIGCHLD reaping, output and stdin pumping. Internal to the
 * exec family (exec.c, exec_proc.c); other code uses exec.h. */
#pragma once

#include <event2/event.h>

#include "exec.h"
#include "methods.h"

/* Running children at once, and results kept (running or not). */
#define EXEC_MAX_RUNNING 1024
#define EXEC_MAX_PROCS 4096
/* Bytes read from a pipe per wakeup; also the size of one exec.output chunk. */
#define EXEC_READ_CHUNK (64u * 1024)
/* Data queued for a child's stdin beyond which exec.write waits for the pipe. */
#define EXEC_STDIN_HIGH (1024u * 1024)
/* Data queued for stdin past which exec.write is refused (-32003), for one
 * process and for all: a client that waits for its answers stays near
 * EXEC_STDIN_HIGH, one that does not must not fill the agent's memory. */
#define EXEC_STDIN_MAX (16u * 1024 * 1024)
#define EXEC_STDIN_MAX_TOTAL (256u * 1024 * 1024)
/* After the child exited, how long a grandchild may keep the output pipes open. */
#define EXEC_LINGER_MS 2000
/* Chunks the linger timer still reads from a pipe before closing it. */
#define EXEC_LINGER_DRAIN 64
#define EXEC_MAX_ENV 4096
/* Output bytes per stream inside one answer: two streams in base64 stay well
 * under a client's 16 MiB message limit. The rest is read with exec.read. */
#define EXEC_INLINE_MAX (4u * 1024 * 1024)
#define EXEC_MAX_ARGV 65536
/* Output kept by all processes together, in units of max_output_bytes: each
 * result may be kept for result_ttl_s, and EXEC_MAX_PROCS of them at their
 * own cap would be far more than any guest has. */
#define EXEC_TOTAL_OUTPUT_FACTOR 16

extern const char *const exec_stream_names[_EXEC_STREAM_MAX];

struct exec_waiter {
	struct exec_waiter *next;
	struct exec_proc *proc;
	struct call *call;
	struct event *timer;
	struct conn *conn; /* watched: a waiter whose client left is dropped */
};

/* An exec.write answered once the pipe took its bytes. */
struct exec_write {
	struct exec_write *next;
	struct call *call;
	uint64_t until; /* answered when stdin_written reaches this */
};

struct exec_out {
	struct exec_proc *proc;
	enum exec_stream stream;
	int fd;
	struct event *ev;
	struct evbuffer *buf;
	bool truncated;
};

struct exec_proc {
	struct exec_proc *prev, *next;
	struct event_base *base;
	uint64_t id;
	pid_t pid;
	bool internal, exited, finished, timed_out, freeing;
	int wstatus;
	size_t max_output;
	struct exec_out out[_EXEC_STREAM_MAX];

	int stdin_fd;
	int pty_fd; /* the terminal's master, or -1 */
	struct event *stdin_ev;
	struct evbuffer *stdin_buf;
	bool stdin_stream, stdin_eof;
	uint64_t stdin_queued, stdin_written;
	struct exec_write *writes, **writes_tail;

	struct conn *stream_conn;
	bool paused;

	struct event *timeout_ev, *linger_ev, *ttl_ev;
	struct exec_waiter *waiters;
	exec_done_fn done;
	void *done_data;
};

extern size_t exec_stdin_total; /* bytes in all stdin_buf */

/* exec_proc.c */
struct exec_proc *exec_find(uint64_t id);
void exec_proc_free_deferred(struct exec_proc *p);
void exec_drain_cb(struct conn *c, void *userdata);
bool exec_streaming(struct exec_proc *p);
void exec_stdin_answer(struct exec_proc *p);
int exec_stdin_queue(struct exec_proc *p, const void *data, size_t len, bool eof);

/* exec.c: freeing a process answers its exec.wait callers. */
void exec_waiter_free(struct exec_waiter *w);
