/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Blocking syscalls off the event loop: a small pool of threads.
 *
 * A call whose work can block in the kernel (stat, open, read, readdir,
 * statvfs on a hung NFS or FUSE mount, FIFREEZE, NSS lookups) hands that work
 * to a worker as a plain function on copied arguments. The function runs on
 * a pool thread and touches nothing but its job (no json-c, no libevent, no
 * agent state); its completion comes back on the loop (an eventfd), where the
 * call is answered. A call whose job is not done within its timeout is
 * answered -32004 at once; the stuck thread costs only its own job. The pool
 * is bounded: WORKER_THREADS threads, WORKER_QUEUE waiting jobs, beyond that
 * worker_call() refuses (-EAGAIN: answer -32003). */
#pragma once

struct call;
struct event_base;

#define WORKER_THREADS 8
#define WORKER_QUEUE 256

/* On a worker thread: do the blocking part, store results in job. */
typedef void (*worker_run_fn)(void *job);
/* On the loop, once run() returned, the call is still unanswered and its
 * connection open: answer it. (A call whose client left is answered
 * -32000 ENOTCONN instead, unseen; free_fn() undoes what run() did.) */
typedef void (*worker_done_fn)(struct call *call, void *job);
/* Frees a job (on the loop), whether done() ran or not. */
typedef void (*worker_free_fn)(void *job);

/* Run run(job) on a worker, then done(call, job) on the loop, then
 * free_fn(job). timeout_ms < 0: the configured fs_timeout_s. Keeps a
 * reference on call until the job is freed. Takes job in every case (frees
 * it on failure). Returns 0, or -EAGAIN (queue full, or no thread at all
 * could start: answered -32003 here),
 * -ENOMEM / -errno (not answered: the handler returns it). */
int worker_call(struct call *call, int timeout_ms, worker_run_fn run, worker_done_fn done,
	void *job, worker_free_fn free_fn);

/* Run run(job) on a worker for no call (clean-up that may block: closing or
 * unlinking a file left on a hung filesystem), then free_fn(job) on the loop.
 * Not bounded by WORKER_QUEUE: callers bound their own jobs (one per upload
 * handle or channel). Takes job in every case. Returns 0 or -ENOMEM (then
 * job was freed without running: the caller may do the work itself). */
int worker_submit(struct event_base *base, worker_run_fn run, void *job, worker_free_fn free_fn);
