/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The worker pool (see worker.h). Threads start on demand up to
 * WORKER_THREADS and then live as long as the process: a thread stuck in the
 * kernel cannot be cancelled anyway. Finished jobs go on a list and an
 * eventfd wakes the loop, which answers and frees them. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "config.h"
#include "log.h"
#include "method.h"
#include "worker.h"

struct worker_item {
	struct worker_item *next;
	worker_run_fn run;
	worker_done_fn done;
	worker_free_fn free_fn;
	void *job;
	struct call *call; /* a reference; NULL for worker_submit() */
	struct event *timer;
	bool timed_out; /* answered -32004: done() is skipped */
};

static pthread_mutex_t worker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cond = PTHREAD_COND_INITIALIZER;
/* Under worker_lock: */
static struct worker_item *worker_queue, **worker_queue_tail = &worker_queue;
static struct worker_item *worker_finished;
static unsigned worker_n_queued, worker_n_threads, worker_n_idle;
/* Loop side only: */
static int worker_efd = -1;
static struct event *worker_ev;

static void *worker_thread(void *arg)
{
	for (;;) {
		struct worker_item *it;
		uint64_t one = 1;
		ssize_t n;

		pthread_mutex_lock(&worker_lock);
		worker_n_idle++;
		while (!worker_queue)
			pthread_cond_wait(&worker_cond, &worker_lock);
		worker_n_idle--;
		it = worker_queue;
		worker_queue = it->next;
		if (!worker_queue)
			worker_queue_tail = &worker_queue;
		worker_n_queued--;
		pthread_mutex_unlock(&worker_lock);

		it->run(it->job);

		pthread_mutex_lock(&worker_lock);
		it->next = worker_finished;
		worker_finished = it;
		pthread_mutex_unlock(&worker_lock);
		do
			n = write(worker_efd, &one, sizeof(one));
		while (n < 0 && errno == EINTR);
	}
	return arg;
}

static void worker_item_free(struct worker_item *it)
{
	if (it->timer)
		event_free(it->timer);
	it->free_fn(it->job);
	call_unref(it->call);
	free(it);
}

/* On the loop: answer it. A call whose client left while the job ran is not
 * continued (an exec.start would start a process nobody knows of, a
 * file.open a handle nobody can close): free_fn() undoes what the job did. */
static void worker_done(struct worker_item *it)
{
	if (!call_conn(it->call)) {
		call_os_error(it->call, ENOTCONN, "the connection closed while the call ran");
		return;
	}
	it->done(it->call, it->job);
}

/* On the loop: answer and free what the threads finished. */
static void worker_finished_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_item *list, *rev = NULL;
	uint64_t v;

	if (read(worker_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug_errno(-errno, "Failed to read the worker eventfd, ignoring: %m");
	pthread_mutex_lock(&worker_lock);
	list = worker_finished;
	worker_finished = NULL;
	pthread_mutex_unlock(&worker_lock);
	/* The list is newest first: answer in the order the jobs finished. */
	while (list) {
		struct worker_item *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct worker_item *next = rev->next;

		if (rev->call && !rev->timed_out && !call_answered(rev->call))
			worker_done(rev);
		worker_item_free(rev);
		rev = next;
	}
}

static void worker_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_item *it = arg;

	it->timed_out = true;
	if (!call_answered(it->call))
		call_error(it->call, GL_RPC_TIMEOUT,
			"The filesystem did not answer in time (the operation goes on in the "
			"background)",
			NULL);
}

static int worker_setup(struct event_base *base)
{
	if (worker_ev)
		return 0;
	worker_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (worker_efd < 0)
		return -errno;
	worker_ev = event_new(base, worker_efd, EV_READ | EV_PERSIST, worker_finished_cb, NULL);
	if (!worker_ev || event_add(worker_ev, NULL) < 0) {
		if (worker_ev)
			event_free(worker_ev);
		worker_ev = NULL;
		close(worker_efd);
		worker_efd = -1;
		return -ENOMEM;
	}
	return 0;
}

/* Under worker_lock: start a thread when none is idle for the new job. */
static int worker_spawn_locked(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (worker_n_idle >= worker_n_queued || worker_n_threads >= WORKER_THREADS)
		return 0;
	/* Signals stay with the loop's thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = pthread_create(&t, &attr, worker_thread, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return worker_n_threads > 0 ? 0 : -r; /* the others will get to it */
	worker_n_threads++;
	return 0;
}

/* Queue it and wake (or start) a thread. On failure (no thread at all) it is freed. */
static int worker_enqueue(struct worker_item *it)
{
	int r;

	pthread_mutex_lock(&worker_lock);
	*worker_queue_tail = it;
	worker_queue_tail = &it->next;
	worker_n_queued++;
	r = worker_spawn_locked();
	if (r < 0) {
		/* No thread at all: take it back. */
		struct worker_item **p = &worker_queue;

		while (*p != it)
			p = &(*p)->next;
		*p = NULL;
		worker_queue_tail = p;
		worker_n_queued--;
		pthread_mutex_unlock(&worker_lock);
		worker_item_free(it);
		return r;
	}
	pthread_cond_signal(&worker_cond);
	pthread_mutex_unlock(&worker_lock);
	return 0;
}

int worker_call(struct call *call, int timeout_ms, worker_run_fn run, worker_done_fn done,
	void *job, worker_free_fn free_fn)
{
	struct worker_item *it;
	struct timeval tv;
	int r;

	r = worker_setup(call_event_base(call));
	if (r < 0) {
		free_fn(job);
		return r;
	}
	pthread_mutex_lock(&worker_lock);
	if (worker_n_queued >= WORKER_QUEUE) {
		pthread_mutex_unlock(&worker_lock);
		free_fn(job);
		call_error(call, GL_RPC_LIMIT, "Too many filesystem operations waiting", NULL);
		return -EAGAIN;
	}
	pthread_mutex_unlock(&worker_lock);

	it = calloc(1, sizeof(*it));
	if (!it) {
		free_fn(job);
		return -ENOMEM;
	}
	if (timeout_ms < 0)
		timeout_ms = (int)config_get()->fs_timeout_s * 1000; /* config: 1-86400 s */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	it->timer = evtimer_new(call_event_base(call), worker_timeout_cb, it);
	if (!it->timer || evtimer_add(it->timer, &tv) < 0) {
		if (it->timer)
			event_free(it->timer);
		free(it);
		free_fn(job);
		return -ENOMEM;
	}
	it->run = run;
	it->done = done;
	it->free_fn = free_fn;
	it->job = job;
	it->call = call_ref(call);
	r = worker_enqueue(it);
	if (r == -EAGAIN) /* not a single thread could start (RLIMIT_NPROC, memory) */
		call_error(call, GL_RPC_LIMIT, "No worker thread could be started", NULL);
	return r;
}

int worker_submit(struct event_base *base, worker_run_fn run, void *job, worker_free_fn free_fn)
{
	struct worker_item *it;
	int r;

	r = worker_setup(base);
	if (r < 0) {
		free_fn(job);
		return r;
	}
	it = calloc(1, sizeof(*it));
	if (!it) {
		free_fn(job);
		return -ENOMEM;
	}
	it->run = run;
	it->free_fn = free_fn;
	it->job = job;
	r = worker_enqueue(it);
	return r < 0 ? -ENOMEM : 0;
}
