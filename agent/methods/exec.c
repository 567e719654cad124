/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* exec.*: child processes with live output streams, stdin, signals, and
 * results kept for any client until released or expired. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "base64.h"
#include "config.h"
#include "exec.h"
#include "log.h"
#include "macro.h"
#include "methods.h"

/* Running children at once, and results kept (running or not). */
#define EXEC_MAX_RUNNING 1024
#define EXEC_MAX_PROCS 4096
/* Bytes read from a pipe per wakeup; also the size of one exec.output chunk. */
#define EXEC_READ_CHUNK (64u * 1024)
/* Chunks the linger timer still reads from a pipe before closing it. */
#define EXEC_LINGER_DRAIN 64
/* Data queued for a child's stdin beyond which exec.write waits for the pipe. */
#define EXEC_STDIN_HIGH (1024u * 1024)
/* Data queued for stdin past which exec.write is refused (-32003), for one
 * process and for all: a client that waits for its answers stays near
 * EXEC_STDIN_HIGH, one that does not must not fill the agent's memory. */
#define EXEC_STDIN_MAX (16u * 1024 * 1024)
#define EXEC_STDIN_MAX_TOTAL (256u * 1024 * 1024)
/* After the child exited, how long a grandchild may keep the output pipes open. */
#define EXEC_LINGER_MS 2000
#define EXEC_MAX_ENV 4096
/* Output bytes per stream inside one answer: two streams in base64 stay well
 * under a client's 16 MiB message limit. The rest is read with exec.read. */
#define EXEC_INLINE_MAX (4u * 1024 * 1024)
#define EXEC_MAX_ARGV 65536
/* Output kept by all processes together, in units of max_output_bytes: each
 * result may be kept for result_ttl_s, and EXEC_MAX_PROCS of them at their
 * own cap would be far more than any guest has. */
#define EXEC_TOTAL_OUTPUT_FACTOR 16

static const char *const exec_stream_names[_EXEC_STREAM_MAX] = { "stdout", "stderr" };

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

static struct exec_proc *exec_procs;
static unsigned exec_n_procs, exec_n_running;
static uint64_t exec_next_id = 1;
static struct event *exec_sigchld_ev;
static size_t exec_captured_total; /* bytes in all out[].buf */
static size_t exec_stdin_total;    /* bytes in all stdin_buf */

static void exec_out_cb(evutil_socket_t fd, short what, void *userdata);
static void exec_proc_finish(struct exec_proc *p);

static void exec_waiter_unlink(struct exec_waiter *w)
{
	for (struct exec_waiter **pp = &w->proc->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

/* After w was unlinked and its call answered. */
static void exec_waiter_free(struct exec_waiter *w);

static void exec_waiter_conn_cb(struct conn *c, void *userdata)
{
	struct exec_waiter *w = userdata;

	/* Without this, exec.wait on a process that never ends kept the call,
	 * its request and the closed connection for good. */
	if (!conn_closed(c))
		return;
	exec_waiter_unlink(w);
	call_error(w->call, GL_RPC_INTERNAL_ERROR, "the client went away", NULL);
	exec_waiter_free(w);
}

static void exec_waiter_free(struct exec_waiter *w)
{
	if (w->conn) {
		conn_remove_drain_watch(w->conn, exec_waiter_conn_cb, w);
		conn_unref(w->conn);
	}
	call_unref(w->call);
	event_free(w->timer);
	free(w);
}

/* --- signals --- */

static const struct {
	const char *name;
	int sig;
} exec_signals[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL },
	{ "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "BUS", SIGBUS }, { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "PWR", SIGPWR }, { "SYS", SIGSYS },
};

int exec_signal_from_json(struct json_object *v)
{
	if (json_object_is_type(v, json_type_int)) {
		int64_t n = json_object_get_int64(v);
		if (n < 1 || n > SIGRTMAX)
			return -EINVAL;
		return (int)n;
	}
	if (json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v);
		if (strncmp(s, "SIG", 3) == 0)
			s += 3;
		for (size_t i = 0; i < ELEMENTSOF(exec_signals); i++)
			if (strcmp(exec_signals[i].name, s) == 0)
				return exec_signals[i].sig;
	}
	return -EINVAL;
}

/* --- the process table --- */

static struct exec_proc *exec_find(uint64_t id)
{
	for (struct exec_proc *p = exec_procs; p; p = p->next)
		if (p->id == id && !p->internal && !p->freeing)
			return p;
	return NULL;
}

static void exec_proc_free_now(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_proc *p = userdata;

	for (int s = 0; s < _EXEC_STREAM_MAX; s++) {
		if (p->out[s].ev)
			event_free(p->out[s].ev);
		if (p->out[s].fd >= 0)
			close(p->out[s].fd);
		if (p->out[s].buf) {
			exec_captured_total -= evbuffer_get_length(p->out[s].buf);
			evbuffer_free(p->out[s].buf);
		}
	}
	if (p->stdin_ev)
		event_free(p->stdin_ev);
	if (p->stdin_fd >= 0)
		close(p->stdin_fd);
	if (p->stdin_buf) {
		exec_stdin_total -= evbuffer_get_length(p->stdin_buf);
		evbuffer_free(p->stdin_buf);
	}
	while (p->writes) {
		struct exec_write *w = p->writes;
		p->writes = w->next;
		call_os_error(w->call, EPIPE, "process released");
		call_unref(w->call);
		free(w);
	}
	while (p->waiters) {
		struct exec_waiter *w = p->waiters;
		p->waiters = w->next;
		call_error(w->call, GL_RPC_NO_SUCH_OBJECT, "process released", NULL);
		exec_waiter_free(w);
	}
	if (p->stream_conn)
		p->stream_conn = conn_unref(p->stream_conn);
	if (p->timeout_ev)
		event_free(p->timeout_ev);
	if (p->linger_ev)
		event_free(p->linger_ev);
	if (p->ttl_ev)
		event_free(p->ttl_ev);
	free(p);
}

/* Unlink now (invisible to lookups), free after the current callback: the
 * caller may be inside one of p's own events. */
static void exec_proc_free_deferred(struct exec_proc *p)
{
	if (!p || p->freeing)
		return;
	p->freeing = true;
	if (p->prev)
		p->prev->next = p->next;
	else
		exec_procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	exec_n_procs--;
	if (event_base_once(p->base, -1, EV_TIMEOUT, exec_proc_free_now, p, NULL) < 0)
		log_error("Failed to schedule freeing process %llu, leaking it",
			(unsigned long long)p->id);
}

struct exec_proc *exec_proc_release(struct exec_proc *p)
{
	if (!p)
		return NULL;
	if (p->finished)
		exec_proc_free_deferred(p);
	else
		/* Still running: detach from the owner, the process is freed when it ends. */
		p->done = NULL;
	return NULL;
}

uint64_t exec_proc_id(const struct exec_proc *p)
{
	return p->id;
}

pid_t exec_proc_pid(const struct exec_proc *p)
{
	return p->pid;
}

int exec_proc_result(const struct exec_proc *p, bool *ret_timed_out)
{
	if (ret_timed_out)
		*ret_timed_out = p->timed_out;
	if (WIFSIGNALED(p->wstatus))
		return -WTERMSIG(p->wstatus);
	return WEXITSTATUS(p->wstatus);
}

const char *exec_proc_output(struct exec_proc *p, enum exec_stream s, size_t *ret_len,
	bool *ret_truncated)
{
	struct exec_out *o = &p->out[s];
	size_t n = o->buf ? evbuffer_get_length(o->buf) : 0;

	*ret_len = n;
	if (ret_truncated)
		*ret_truncated = o->truncated;
	if (!o->buf)
		return "";
	return (const char *)evbuffer_pullup(o->buf, -1) ?: "";
}

/* --- output --- */

static void exec_pause(struct exec_proc *p, bool pause)
{
	if (p->paused == pause)
		return;
	p->paused = pause;
	for (int s = 0; s < _EXEC_STREAM_MAX; s++) {
		if (!p->out[s].ev)
			continue;
		if (pause)
			event_del(p->out[s].ev);
		else
			event_add(p->out[s].ev, NULL);
	}
}

/* The streaming connection went away: keep the output as a result instead. */
static void exec_stop_streaming(struct exec_proc *p)
{
	exec_pause(p, false);
}

static void exec_drain_cb(struct conn *c, void *userdata)
{
	struct exec_proc *p = userdata;

	if (conn_closed(c))
		exec_stop_streaming(p);
	else
		exec_pause(p, false);
}

static bool exec_streaming(struct exec_proc *p)
{
	return p->stream_conn && !conn_closed(p->stream_conn);
}

static size_t exec_total_budget(void)
{
	const struct config *cfg = config_get();
	size_t each = cfg ? cfg->exec_max_output_bytes : 16u * 1024 * 1024, total;

	if (__builtin_mul_overflow(each, (size_t)EXEC_TOTAL_OUTPUT_FACTOR, &total))
		return SIZE_MAX;
	return total;
}

static void exec_capture(struct exec_out *o, const char *data, size_t n)
{
	size_t have = evbuffer_get_length(o->buf), budget = exec_total_budget(), room;

	room = have < o->proc->max_output ? o->proc->max_output - have : 0;
	/* The budget shared by all results: past it, output is cut like past the cap. */
	if (exec_captured_total >= budget)
		room = 0;
	else if (budget - exec_captured_total < room)
		room = budget - exec_captured_total;
	if (n > room) {
		o->truncated = true;
		n = room;
	}
	if (n > 0 && evbuffer_add(o->buf, data, n) < 0)
		o->truncated = true;
	else
		exec_captured_total += n;
}

static void exec_out_close(struct exec_out *o)
{
	if (o->ev)
		o->ev = (event_free(o->ev), NULL);
	if (o->fd >= 0)
		o->fd = (close(o->fd), -1);
}

static bool exec_outputs_closed(struct exec_proc *p)
{
	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		if (p->out[s].fd >= 0)
			return false;
	return true;
}

static void exec_maybe_finish(struct exec_proc *p)
{
	if (p->exited && !p->finished && exec_outputs_closed(p))
		exec_proc_finish(p);
}

static void exec_notify_output(struct exec_proc *p, enum exec_stream s, const char *data, size_t n)
{
	struct json_object *params;
	char *b64;
	int r;

	r = gl_base64_encode(data, n, &b64, NULL);
	if (r < 0) {
		exec_capture(&p->out[s], data, n);
		return;
	}
	params = json_object_new_object();
	json_object_object_add(params, "id", json_object_new_int64((int64_t)p->id));
	json_object_object_add(params, "stream", json_object_new_string(exec_stream_names[s]));
	json_object_object_add(params, "data", json_object_new_string(b64));
	free(b64);
	r = conn_notify(p->stream_conn, "exec.output", params); /* takes params */
	if (r < 0)
		/* The client left: from now on the output is a result for exec.status. */
		exec_capture(&p->out[s], data, n);
}

static void exec_out_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_out *o = userdata;
	struct exec_proc *p = o->proc;
	char buf[EXEC_READ_CHUNK];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		exec_out_close(o);
		exec_maybe_finish(p);
		return;
	}
	if (exec_streaming(p)) {
		exec_notify_output(p, o->stream, buf, (size_t)n);
		/* Back-pressure: stop reading the child until the client catches up. */
		if (exec_streaming(p) && conn_output_full(p->stream_conn))
			exec_pause(p, true);
	} else
		exec_capture(o, buf, (size_t)n);
}

/* --- stdin --- */

static void exec_stdin_close(struct exec_proc *p, int error)
{
	if (p->stdin_ev)
		p->stdin_ev = (event_free(p->stdin_ev), NULL);
	if (p->stdin_fd >= 0)
		p->stdin_fd = (close(p->stdin_fd), -1);
	exec_stdin_total -= evbuffer_get_length(p->stdin_buf);
	evbuffer_drain(p->stdin_buf, evbuffer_get_length(p->stdin_buf));
	while (p->writes) {
		struct exec_write *w = p->writes;
		p->writes = w->next;
		if (error)
			call_os_error(w->call, error, "cannot write to the process's stdin");
		else
			call_reply(w->call, json_object_new_object());
		call_unref(w->call);
		free(w);
	}
	p->writes_tail = &p->writes;
}

static void exec_stdin_answer(struct exec_proc *p)
{
	uint64_t pending = p->stdin_queued - p->stdin_written;

	/* Hold callers while much is queued: the pipe throttles the client. */
	while (p->writes && (p->writes->until <= p->stdin_written || pending < EXEC_STDIN_HIGH)) {
		struct exec_write *w = p->writes;
		p->writes = w->next;
		if (!p->writes)
			p->writes_tail = &p->writes;
		call_reply(w->call, json_object_new_object());
		call_unref(w->call);
		free(w);
	}
}

static void exec_stdin_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_proc *p = userdata;
	int n;

	if (evbuffer_get_length(p->stdin_buf) > 0) {
		n = evbuffer_write(p->stdin_buf, fd);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			exec_stdin_close(p, errno);
			return;
		}
		if (n > 0) {
			p->stdin_written += (uint64_t)n;
			exec_stdin_total -= (size_t)n;
		}
		exec_stdin_answer(p);
	}
	if (evbuffer_get_length(p->stdin_buf) == 0) {
		if (p->stdin_eof)
			exec_stdin_close(p, 0);
		else
			event_del(p->stdin_ev);
	}
}

static int exec_stdin_queue(struct exec_proc *p, const void *data, size_t len, bool eof)
{
	if (p->stdin_fd < 0)
		return -EPIPE;
	if (len > 0 && evbuffer_add(p->stdin_buf, data, len) < 0)
		return -ENOMEM;
	exec_stdin_total += len;
	p->stdin_queued += len;
	if (eof)
		p->stdin_eof = true;
	event_add(p->stdin_ev, NULL);
	return 0;
}

/* --- life cycle --- */

static struct json_object *exec_proc_json(struct exec_proc *p, bool with_output)
{
	struct json_object *o = json_object_new_object();
	bool truncated = false;

	json_object_object_add(o, "id", json_object_new_int64((int64_t)p->id));
	json_object_object_add(o, "pid", json_object_new_int(p->pid));
	json_object_object_add(o, "running", json_object_new_boolean(!p->finished));
	if (p->finished) {
		int r = exec_proc_result(p, NULL);
		if (r >= 0)
			json_object_object_add(o, "code", json_object_new_int(r));
		else
			json_object_object_add(o, "signal", json_object_new_int(-r));
		json_object_object_add(o, "timed_out", json_object_new_boolean(p->timed_out));
	}
	if (!with_output)
		return o;
	for (int s = 0; s < _EXEC_STREAM_MAX; s++) {
		size_t n;
		bool t;
		const char *data = exec_proc_output(p, s, &n, &t);
		size_t inline_n = n < EXEC_INLINE_MAX ? n : EXEC_INLINE_MAX;
		char *b64;
		char key[32];

		if (gl_base64_encode(data, inline_n, &b64, NULL) < 0) {
			json_object_put(o);
			return NULL;
		}
		json_object_object_add(o, exec_stream_names[s], json_object_new_string(b64));
		free(b64);
		snprintf(key, sizeof(key), "%s_truncated", exec_stream_names[s]);
		json_object_object_add(o, key, json_object_new_boolean(t));
		/* Size of all that was captured: beyond the inline part, use exec.read. */
		snprintf(key, sizeof(key), "%s_size", exec_stream_names[s]);
		json_object_object_add(o, key, json_object_new_int64((int64_t)n));
		truncated = truncated || t;
	}
	json_object_object_add(o, "truncated", json_object_new_boolean(truncated));
	return o;
}

static void exec_ttl_cb(evutil_socket_t fd, short what, void *userdata)
{
	exec_proc_free_deferred(userdata);
}

static void exec_proc_finish(struct exec_proc *p)
{
	p->finished = true;
	exec_n_running--;
	if (p->timeout_ev)
		event_del(p->timeout_ev);
	if (p->linger_ev)
		event_del(p->linger_ev);
	if (p->stdin_fd >= 0)
		exec_stdin_close(p, EPIPE);

	if (exec_streaming(p)) {
		struct json_object *params = exec_proc_json(p, false);
		json_object_object_del(params, "running");
		json_object_object_del(params, "pid");
		conn_notify(p->stream_conn, "exec.exit", params); /* takes params */
	}
	if (p->stream_conn) {
		conn_remove_drain_watch(p->stream_conn, exec_drain_cb, p);
		p->stream_conn = conn_unref(p->stream_conn);
	}

	while (p->waiters) {
		struct exec_waiter *w = p->waiters;
		struct json_object *r = exec_proc_json(p, true);
		p->waiters = w->next;
		if (r)
			call_reply(w->call, r);
		else
			call_os_error(w->call, ENOMEM, "cannot encode the output");
		exec_waiter_free(w);
	}

	if (p->internal) {
		if (p->done)
			p->done(p, p->done_data);
		else
			exec_proc_free_deferred(p);
		return;
	}

	const struct config *cfg = config_get();
	struct timeval tv = { .tv_sec = cfg ? cfg->exec_result_ttl_s : 600 };
	p->ttl_ev = evtimer_new(p->base, exec_ttl_cb, p);
	if (!p->ttl_ev || evtimer_add(p->ttl_ev, &tv) < 0)
		log_warning("Cannot expire the result of process %llu, keeping it until released",
			(unsigned long long)p->id);
}

static void exec_linger_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_proc *p = userdata;
	struct timeval tv = { .tv_sec = EXEC_LINGER_MS / 1000,
		.tv_usec = EXEC_LINGER_MS % 1000 * 1000 };

	/* Paused output is the client's delay, not a lingering grandchild. */
	if (p->paused) {
		evtimer_add(p->linger_ev, &tv);
		return;
	}
	/* What the child wrote before it exited may still sit in the pipe: a busy
	 * loop (libevent's cached time, a partial epoll batch) can run this timer
	 * before the pipe's read event. Take it first, a bounded amount. */
	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		for (int i = 0; i < EXEC_LINGER_DRAIN && p->out[s].fd >= 0 && !p->paused; i++) {
			int avail = 0;

			if (ioctl(p->out[s].fd, FIONREAD, &avail) < 0 || avail <= 0)
				break;
			exec_out_cb(p->out[s].fd, EV_READ, &p->out[s]);
		}
	if (p->paused) {
		evtimer_add(p->linger_ev, &tv);
		return;
	}
	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		exec_out_close(&p->out[s]);
	exec_maybe_finish(p);
}

static void exec_sigchld_cb(evutil_socket_t fd, short what, void *userdata)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct exec_proc *p;

		for (p = exec_procs; p; p = p->next)
			if (p->pid == pid && !p->exited)
				break;
		if (!p) {
			log_debug("Reaped unknown child %d", (int)pid);
			continue;
		}
		p->exited = true;
		p->wstatus = st;
		exec_maybe_finish(p);
		if (!p->finished && p->linger_ev) {
			struct timeval tv = { .tv_sec = EXEC_LINGER_MS / 1000,
				.tv_usec = EXEC_LINGER_MS % 1000 * 1000 };
			evtimer_add(p->linger_ev, &tv);
		}
	}
}

static void exec_timeout_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_proc *p = userdata;

	if (p->exited)
		return;
	p->timed_out = true;
	(void)kill(-p->pid, SIGKILL);
	(void)kill(p->pid, SIGKILL);
}

static int exec_init(struct event_base *base)
{
	if (exec_sigchld_ev)
		return 0;
	/* A child closing its stdin must give us EPIPE, not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	exec_sigchld_ev = evsignal_new(base, SIGCHLD, exec_sigchld_cb, NULL);
	if (!exec_sigchld_ev)
		return -ENOMEM;
	if (evsignal_add(exec_sigchld_ev, NULL) < 0) {
		exec_sigchld_ev = (event_free(exec_sigchld_ev), NULL);
		return -EIO;
	}
	return 0;
}

/* The agent's environment minus what systemd handed to the agent itself. */
static bool exec_env_inherited(const char *kv)
{
	static const char *const drop[] = { "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=",
		"LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID=", "INVOCATION_ID=" };

	for (size_t i = 0; i < ELEMENTSOF(drop); i++)
		if (strncmp(kv, drop[i], strlen(drop[i])) == 0)
			return false;
	return true;
}

static char **exec_build_env(char *const *overrides)
{
	extern char **environ;
	size_t n = 0, m = 0, k = 0;
	char **env;

	for (char **e = environ; e && *e; e++)
		n++;
	for (char *const *o = overrides; o && *o; o++)
		m++;
	env = calloc(n + m + 2, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (exec_env_inherited(environ[i]))
			env[k++] = environ[i];
	for (size_t i = 0; i < m; i++) {
		size_t klen = strcspn(overrides[i], "=") + 1;
		size_t j;
		for (j = 0; j < k; j++)
			if (strncmp(env[j], overrides[i], klen) == 0)
				break;
		env[j] = overrides[i];
		if (j == k)
			k++;
	}
	bool has_path = false;
	for (size_t j = 0; j < k; j++)
		has_path = has_path || strncmp(env[j], "PATH=", 5) == 0;
	if (!has_path)
		env[k++] = (char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[k] = NULL;
	return env;
}

static void exec_child_fail(int errfd, int error)
{
	ssize_t r _unused_ = write(errfd, &error, sizeof(error));
	_exit(127);
}

/* In the child, after fork(): only the child's own state changes here. */
_Noreturn static void exec_child(const struct exec_spec *spec, char **env, int fds[3], int errfd)
{
	extern char **environ;
	sigset_t all;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL); /* ignored signals would stay ignored across exec */
	if (setsid() < 0)
		exec_child_fail(errfd, errno);

	/* Move our ends above 2 first so that dup2() cannot clobber one with another. */
	for (int i = 0; i < 3; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			exec_child_fail(errfd, errno);
		fds[i] = fd;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			exec_child_fail(errfd, errno);

	if (chdir(spec->cwd ?: "/") < 0)
		exec_child_fail(errfd, errno);
	if (spec->has_user) {
		if (initgroups(spec->user_name, spec->gid) < 0)
			exec_child_fail(errfd, errno);
		if (setgid(spec->gid) < 0 || setuid(spec->uid) < 0)
			exec_child_fail(errfd, errno);
	}
	environ = env;
	execvp(spec->argv[0], spec->argv);
	exec_child_fail(errfd, errno);
	_exit(127);
}

static int exec_pipe(int fds[2], bool parent_reads)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* Only our end is non-blocking: the child gets ordinary blocking pipes. */
	if (fcntl(fds[parent_reads ? 0 : 1], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	return 0;
}

static void exec_close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			fds[i] = (close(fds[i]), -1);
}

int exec_spawn(struct event_base *base, const struct exec_spec *spec, exec_done_fn done,
	void *userdata, struct exec_proc **ret)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	int child_fds[3], r, error = 0;
	_cleanup_free_ char **env = NULL;
	struct exec_proc *p;
	pid_t pid;
	ssize_t n;

	if (exec_n_running >= EXEC_MAX_RUNNING || exec_n_procs >= EXEC_MAX_PROCS)
		return -EAGAIN;
	r = exec_init(base);
	if (r < 0)
		return r;
	env = exec_build_env(spec->env);
	if (!env)
		return -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->base = base;
	p->stdin_fd = -1;
	p->writes_tail = &p->writes;
	p->max_output = spec->max_output;
	p->internal = spec->internal;
	for (int s = 0; s < _EXEC_STREAM_MAX; s++) {
		p->out[s].proc = p;
		p->out[s].stream = s;
		p->out[s].fd = -1;
		p->out[s].buf = evbuffer_new();
		if (!p->out[s].buf) {
			r = -ENOMEM;
			goto fail;
		}
	}
	p->stdin_buf = evbuffer_new();
	if (!p->stdin_buf) {
		r = -ENOMEM;
		goto fail;
	}

	/* stdin */
	if (spec->stdin_stream || spec->stdin_data) {
		r = exec_pipe(in, false);
		if (r < 0)
			goto fail;
		child_fds[0] = in[0];
	} else {
		in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in[0] < 0) {
			r = -errno;
			goto fail;
		}
		child_fds[0] = in[0];
	}
	/* stdout and stderr */
	if (spec->capture == EXEC_CAPTURE_NONE) {
		out[1] = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (out[1] < 0) {
			r = -errno;
			goto fail;
		}
		child_fds[1] = child_fds[2] = out[1];
	} else {
		r = exec_pipe(out, true);
		if (r < 0)
			goto fail;
		child_fds[1] = out[1];
		if (spec->capture == EXEC_CAPTURE_MERGED)
			child_fds[2] = out[1]; /* one pipe keeps the order of both */
		else {
			r = exec_pipe(err, true);
			if (r < 0)
				goto fail;
			child_fds[2] = err[1];
		}
	}
	if (pipe2(status, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}

	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto fail;
	}
	if (pid == 0) {
		close(status[0]);
		exec_child(spec, env, child_fds, status[1]);
	}

	/* The exec status pipe closes on a successful exec (O_CLOEXEC) or carries errno. */
	status[1] = (close(status[1]), -1);
	do
		n = read(status[0], &error, sizeof(error));
	while (n < 0 && errno == EINTR);
	status[0] = (close(status[0]), -1);
	p->pid = pid;
	p->id = exec_next_id++;
	/* Linked before anything can fail: the exit of the child is reaped as ours. */
	p->next = exec_procs;
	if (exec_procs)
		exec_procs->prev = p;
	exec_procs = p;
	exec_n_procs++;
	exec_n_running++;

	if (in[0] >= 0)
		in[0] = (close(in[0]), -1);
	if (out[1] >= 0)
		out[1] = (close(out[1]), -1);
	if (err[1] >= 0)
		err[1] = (close(err[1]), -1);

	if (n == (ssize_t)sizeof(error) && error > 0) {
		/* exec failed: the child exits 127 at once; reap it through SIGCHLD. */
		p->internal = true;
		p->done = NULL;
		exec_close_pair(in);
		exec_close_pair(out);
		exec_close_pair(err);
		p->out[0].fd = p->out[1].fd = -1;
		return -error;
	}

	p->out[EXEC_STDOUT].fd = TAKE_FD(out[0]);
	p->out[EXEC_STDERR].fd = TAKE_FD(err[0]);
	for (int s = 0; s < _EXEC_STREAM_MAX; s++) {
		struct exec_out *o = &p->out[s];
		if (o->fd < 0)
			continue;
		o->ev = event_new(base, o->fd, EV_READ | EV_PERSIST, exec_out_cb, o);
		if (!o->ev || event_add(o->ev, NULL) < 0)
			log_error("Cannot watch the output of process %d, dropping it", (int)pid);
	}
	p->stdin_fd = TAKE_FD(in[1]);
	if (p->stdin_fd >= 0) {
		p->stdin_ev = event_new(base, p->stdin_fd, EV_WRITE | EV_PERSIST, exec_stdin_cb, p);
		p->stdin_stream = spec->stdin_stream;
		if (!p->stdin_ev)
			exec_stdin_close(p, ENOMEM);
		else if (spec->stdin_data)
			exec_stdin_queue(p, spec->stdin_data, spec->stdin_len, !spec->stdin_stream);
	}
	p->linger_ev = evtimer_new(base, exec_linger_cb, p);
	if (spec->timeout_ms > 0) {
		struct timeval tv = { .tv_sec = (time_t)(spec->timeout_ms / 1000),
			.tv_usec = (suseconds_t)(spec->timeout_ms % 1000 * 1000) };
		p->timeout_ev = evtimer_new(base, exec_timeout_cb, p);
		if (!p->timeout_ev || evtimer_add(p->timeout_ev, &tv) < 0)
			log_error("Cannot arm the timeout of process %d", (int)pid);
	}
	p->done = done;
	p->done_data = userdata;
	*ret = p;
	return 0;

fail:
	exec_close_pair(in);
	exec_close_pair(out);
	exec_close_pair(err);
	exec_close_pair(status);
	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		if (p->out[s].buf)
			evbuffer_free(p->out[s].buf);
	if (p->stdin_buf)
		evbuffer_free(p->stdin_buf);
	free(p);
	return r;
}

/* --- methods --- */

static const char *const exec_capture_choices[] = { "separate", "merged", "none", NULL };

struct exec_start_params {
	struct json_object *argv;
	struct json_object *env;
	const char *cwd;
	const char *stdin_;
	const char *capture;
	bool stream;
	int64_t timeout_ms;
	const char *user;
};

#define EXEC_START_PARAMS                                                                          \
	{ "argv", PARAM_STRING_ARRAY, offsetof(struct exec_start_params, argv), PARAM_MANDATORY,   \
		0, EXEC_MAX_ARGV, 0, NULL, "program and arguments; argv[0] is looked up in PATH" }, \
	{ "env", PARAM_STRING_ARRAY, offsetof(struct exec_start_params, env), 0, 0, EXEC_MAX_ENV,   \
		0, NULL, "\"KEY=VALUE\" entries added to the agent's environment" },                \
	{ "cwd", PARAM_STRING, offsetof(struct exec_start_params, cwd), 0, 0, PATH_MAX, 0, NULL,   \
		"working directory (default /)" },                                                   \
	{ "stdin", PARAM_STRING, offsetof(struct exec_start_params, stdin_), 0, 0, 0, 0, NULL,     \
		"base64 data for stdin, or \"stream\" to feed it with exec.write" },               \
	{ "capture", PARAM_STRING, offsetof(struct exec_start_params, capture), 0, 0, 0, 0,        \
		exec_capture_choices, "separate (default), merged (stderr into stdout), none" },   \
	{ "timeout_ms", PARAM_INT, offsetof(struct exec_start_params, timeout_ms), 0, 0,           \
		INT64_C(7) * 24 * 3600 * 1000, 0, NULL,                                              \
		"kill the process group after this long (0 = never)" },                             \
	{ "user", PARAM_STRING, offsetof(struct exec_start_params, user), 0, 0, 256, 0, NULL,      \
		"run as this user (name or uid; the agent must be root)" }

static const struct method_param exec_start_params_table[] = {
	EXEC_START_PARAMS,
	{ "stream", PARAM_BOOL, offsetof(struct exec_start_params, stream), 0, 0, 1, 0, NULL,
		"send exec.output and exec.exit notifications to this connection" },
	{},
};

static const struct method_param exec_run_params_table[] = {
	EXEC_START_PARAMS,
	{},
};

struct exec_prepared {
	struct exec_spec spec;
	char **argv;
	char **env;
	void *stdin_data;
	struct passwd pw;
	char *pwbuf;
};

static void exec_prepared_done(struct exec_prepared *e)
{
	free(e->argv);
	free(e->env);
	free(e->stdin_data);
	free(e->pwbuf);
}

/* A NULL-terminated vector borrowing the array's strings; NUL inside is refused. */
static int exec_strv(struct json_object *a, char ***ret)
{
	size_t n = a ? json_object_array_length(a) : 0;
	char **v = calloc(n + 1, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string) ||
			strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
			free(v);
			return -EINVAL;
		}
		v[i] = (char *)json_object_get_string(e);
	}
	*ret = v;
	return 0;
}

/* Answers the call itself on bad input and returns -1; 0 when e is ready. */
static int exec_prepare(struct call *call, const struct exec_start_params *a, bool run,
	struct exec_prepared *e)
{
	const struct config *cfg = config_get();
	int r;

	memset(e, 0, sizeof(*e));
	if (json_object_array_length(a->argv) == 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "argv must have at least one element", NULL);
		return -1;
	}
	if (exec_strv(a->argv, &e->argv) < 0 || exec_strv(a->env, &e->env) < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "argv and env must be strings without NUL",
			NULL);
		return -1;
	}
	if (strlen(e->argv[0]) == 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "argv[0] must not be empty", NULL);
		return -1;
	}
	for (char **k = e->env; *k; k++)
		if (**k == '=' || !strchr(*k, '=')) {
			call_error(call, GL_RPC_INVALID_PARAMS, "env entries must be KEY=VALUE", NULL);
			return -1;
		}
	e->spec.argv = e->argv;
	e->spec.env = e->env;
	e->spec.cwd = a->cwd;
	if (a->stdin_ && strcmp(a->stdin_, "stream") == 0) {
		if (run) {
			call_error(call, GL_RPC_INVALID_PARAMS, "exec.run cannot stream stdin", NULL);
			return -1;
		}
		e->spec.stdin_stream = true;
	} else if (a->stdin_) {
		r = gl_base64_decode(a->stdin_, strlen(a->stdin_), &e->stdin_data,
			&e->spec.stdin_len);
		if (r < 0) {
			call_error(call, GL_RPC_INVALID_PARAMS, "stdin is not valid base64", NULL);
			return -1;
		}
		e->spec.stdin_data = e->stdin_data;
	}
	e->spec.capture = !a->capture || strcmp(a->capture, "separate") == 0 ? EXEC_CAPTURE_SEPARATE
		: strcmp(a->capture, "merged") == 0                         ? EXEC_CAPTURE_MERGED
									    : EXEC_CAPTURE_NONE;
	e->spec.timeout_ms = (uint64_t)a->timeout_ms;
	e->spec.max_output = cfg ? cfg->exec_max_output_bytes : 16u * 1024 * 1024;
	if (a->user) {
		struct passwd *res = NULL;
		long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
		char *end;
		unsigned long uid;

		if (geteuid() != 0) {
			call_os_error(call, EPERM, "only an agent running as root can switch users");
			return -1;
		}
		if (sz < 16384)
			sz = 16384;
		e->pwbuf = malloc((size_t)sz);
		if (!e->pwbuf) {
			call_os_error(call, ENOMEM, "out of memory");
			return -1;
		}
		errno = 0;
		uid = strtoul(a->user, &end, 10);
		if (*a->user && !*end && uid < UINT32_MAX)
			r = getpwuid_r((uid_t)uid, &e->pw, e->pwbuf, (size_t)sz, &res);
		else
			r = getpwnam_r(a->user, &e->pw, e->pwbuf, (size_t)sz, &res);
		if (r != 0 || !res) {
			call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such user", NULL);
			return -1;
		}
		e->spec.has_user = true;
		e->spec.uid = e->pw.pw_uid;
		e->spec.gid = e->pw.pw_gid;
		e->spec.user_name = e->pw.pw_name;
	}
	return 0;
}

static void exec_spawn_error(struct call *call, int r)
{
	if (r == -EAGAIN)
		call_error(call, GL_RPC_LIMIT, "too many processes", NULL);
	else if (r == -ENOENT)
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such program or directory", NULL);
	else
		call_os_error(call, -r, "cannot start the process");
}

static int exec_start(struct call *call, void *params)
{
	struct exec_start_params *a = params;
	struct exec_prepared e;
	struct exec_proc *p;
	struct json_object *res;
	int r;

	if (exec_prepare(call, a, false, &e) < 0) {
		exec_prepared_done(&e);
		return 0;
	}
	r = exec_spawn(call_event_base(call), &e.spec, NULL, NULL, &p);
	exec_prepared_done(&e);
	if (r < 0) {
		exec_spawn_error(call, r);
		return 0;
	}
	if (a->stream && call_conn(call)) {
		p->stream_conn = conn_ref(call_conn(call));
		conn_add_drain_watch(p->stream_conn, exec_drain_cb, p);
	}
	res = json_object_new_object();
	json_object_object_add(res, "id", json_object_new_int64((int64_t)p->id));
	json_object_object_add(res, "pid", json_object_new_int(p->pid));
	call_reply(call, res);
	return 0;
}

static void exec_run_done(struct exec_proc *p, void *userdata)
{
	struct call *call = userdata;
	struct json_object *res = exec_proc_json(p, true);
	bool more = false;

	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		more = more || evbuffer_get_length(p->out[s].buf) > EXEC_INLINE_MAX;
	if (res) {
		json_object_object_del(res, "running");
		/* What did not fit stays readable with exec.read until exec.release
		 * or the result's expiry, like an exec.start result. */
		json_object_object_add(res, "released", json_object_new_boolean(!more));
		call_reply(call, res);
	} else
		call_os_error(call, ENOMEM, "cannot encode the output");
	call_unref(call);
	if (more) {
		const struct config *cfg = config_get();
		struct timeval tv = { .tv_sec = cfg ? cfg->exec_result_ttl_s : 600 };
		p->internal = false;
		p->done = NULL;
		p->ttl_ev = evtimer_new(p->base, exec_ttl_cb, p);
		if (!p->ttl_ev || evtimer_add(p->ttl_ev, &tv) < 0)
			log_warning("Cannot expire the result of process %llu, keeping it",
				(unsigned long long)p->id);
		return;
	}
	exec_proc_release(p);
}

static int exec_run(struct call *call, void *params)
{
	struct exec_start_params *a = params;
	struct exec_prepared e;
	struct exec_proc *p;
	int r;

	if (exec_prepare(call, a, true, &e) < 0) {
		exec_prepared_done(&e);
		return 0;
	}
	e.spec.internal = true;
	r = exec_spawn(call_event_base(call), &e.spec, exec_run_done, call, &p);
	exec_prepared_done(&e);
	if (r < 0) {
		exec_spawn_error(call, r);
		return 0;
	}
	call_ref(call);
	return 0;
}

struct exec_id_params {
	int64_t id;
};

static struct exec_proc *exec_lookup(struct call *call, int64_t id)
{
	struct exec_proc *p = exec_find((uint64_t)id);

	if (!p)
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such process id", NULL);
	return p;
}

static int exec_status(struct call *call, void *params)
{
	struct exec_id_params *a = params;
	struct exec_proc *p = exec_lookup(call, a->id);
	struct json_object *res;

	if (!p)
		return 0;
	res = exec_proc_json(p, true);
	if (!res)
		return -ENOMEM;
	call_reply(call, res);
	return 0;
}

static int exec_release_method(struct call *call, void *params)
{
	struct exec_id_params *a = params;
	struct exec_proc *p = exec_lookup(call, a->id);

	if (!p)
		return 0;
	if (!p->finished) {
		call_os_error(call, EBUSY, "the process is still running; signal it first");
		return 0;
	}
	exec_proc_free_deferred(p);
	call_reply(call, json_object_new_object());
	return 0;
}

static const char *const exec_stream_choices[] = { "stdout", "stderr", NULL };

struct exec_read_params {
	int64_t id;
	const char *stream;
	int64_t offset;
	int64_t length;
};

static int exec_read(struct call *call, void *params)
{
	struct exec_read_params *a = params;
	struct exec_proc *p = exec_lookup(call, a->id);
	enum exec_stream s;
	struct json_object *res;
	const char *data;
	size_t n, from, len;
	char *b64;

	if (!p)
		return 0;
	s = strcmp(a->stream, "stderr") == 0 ? EXEC_STDERR : EXEC_STDOUT;
	data = exec_proc_output(p, s, &n, NULL);
	from = (uint64_t)a->offset < n ? (size_t)a->offset : n;
	len = n - from < (size_t)a->length ? n - from : (size_t)a->length;
	if (gl_base64_encode(data + from, len, &b64, NULL) < 0)
		return -ENOMEM;
	res = json_object_new_object();
	json_object_object_add(res, "data", json_object_new_string(b64));
	free(b64);
	/* eof only once the process ended: a running one may write more. */
	json_object_object_add(res, "eof", json_object_new_boolean(p->finished && from + len >= n));
	json_object_object_add(res, "size", json_object_new_int64((int64_t)n));
	call_reply(call, res);
	return 0;
}

struct exec_wait_params {
	int64_t id;
	int64_t timeout_ms;
};

static void exec_wait_timeout_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct exec_waiter *w = userdata;

	exec_waiter_unlink(w);
	call_error(w->call, GL_RPC_TIMEOUT, "the process is still running", NULL);
	exec_waiter_free(w);
}

static int exec_wait(struct call *call, void *params)
{
	struct exec_wait_params *a = params;
	struct exec_proc *p = exec_lookup(call, a->id);
	struct exec_waiter *w;

	if (!p)
		return 0;
	if (p->finished) {
		struct json_object *res = exec_proc_json(p, true);
		if (!res)
			return -ENOMEM;
		call_reply(call, res);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->proc = p;
	w->timer = evtimer_new(call_event_base(call), exec_wait_timeout_cb, w);
	if (!w->timer) {
		free(w);
		return -ENOMEM;
	}
	if (a->timeout_ms > 0) {
		struct timeval tv = { .tv_sec = (time_t)(a->timeout_ms / 1000),
			.tv_usec = (suseconds_t)(a->timeout_ms % 1000 * 1000) };
		evtimer_add(w->timer, &tv);
	}
	w->call = call_ref(call);
	w->conn = conn_ref(call_conn(call));
	if (w->conn)
		conn_add_drain_watch(w->conn, exec_waiter_conn_cb, w);
	w->next = p->waiters;
	p->waiters = w;
	return 0;
}

struct exec_write_params {
	int64_t id;
	const char *data;
	bool eof;
};

static int exec_write_method(struct call *call, void *params)
{
	struct exec_write_params *a = params;
	struct exec_proc *p = exec_lookup(call, a->id);
	_cleanup_free_ void *data = NULL;
	size_t len = 0;
	struct exec_write *w;
	int r;

	if (!p)
		return 0;
	if (!p->stdin_stream) {
		call_error(call, GL_RPC_INVALID_PARAMS,
			"the process was not started with stdin \"stream\"", NULL);
		return 0;
	}
	if (a->data && gl_base64_decode(a->data, strlen(a->data), &data, &len) < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "data is not valid base64", NULL);
		return 0;
	}
	if (p->stdin_fd < 0 || p->stdin_eof) {
		call_os_error(call, EPIPE, "stdin of the process is closed");
		return 0;
	}
	if (evbuffer_get_length(p->stdin_buf) >= EXEC_STDIN_MAX ||
		exec_stdin_total >= EXEC_STDIN_MAX_TOTAL) {
		call_error(call, GL_RPC_LIMIT,
			"too much data queued for stdin: wait for the answers of earlier writes",
			NULL);
		return 0;
	}
	r = exec_stdin_queue(p, data, len, a->eof);
	if (r < 0)
		return r;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->call = call_ref(call);
	w->until = p->stdin_queued;
	*p->writes_tail = w;
	p->writes_tail = &w->next;
	exec_stdin_answer(p);
	return 0;
}

struct exec_signal_params {
	int64_t id;
	struct json_object *signal;
};

static int exec_signal_method(struct call *call, void *params)
{
	struct exec_signal_params *a = params;
	struct exec_proc *p;
	int sig = exec_signal_from_json(a->signal);

	if (sig < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS,
			"unknown signal: use a name like \"TERM\" or a number", NULL);
		return 0;
	}
	p = exec_lookup(call, a->id);
	if (!p)
		return 0;
	if (p->exited) {
		call_os_error(call, ESRCH, "the process has exited");
		return 0;
	}
	/* The whole process group: shells and their children alike. */
	if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0)
		return -errno;
	call_reply(call, json_object_new_object());
	return 0;
}

static const struct method_param exec_id_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_id_params, id), PARAM_MANDATORY, 1, INT64_MAX, 0,
		NULL, "process id from exec.start" },
	{},
};

static const struct method_param exec_wait_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_wait_params, id), PARAM_MANDATORY, 1, INT64_MAX,
		0, NULL, "process id from exec.start" },
	{ "timeout_ms", PARAM_INT, offsetof(struct exec_wait_params, timeout_ms), 0, 0,
		INT64_C(7) * 24 * 3600 * 1000, 0, NULL,
		"answer -32004 after this long if still running (0 = wait forever)" },
	{},
};

static const struct method_param exec_read_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_read_params, id), PARAM_MANDATORY, 1, INT64_MAX,
		0, NULL, "process id from exec.start or exec.run" },
	{ "stream", PARAM_STRING, offsetof(struct exec_read_params, stream), PARAM_MANDATORY, 0, 0,
		0, exec_stream_choices, "stdout or stderr" },
	{ "offset", PARAM_INT, offsetof(struct exec_read_params, offset), 0, 0, INT64_MAX / 2, 0,
		NULL, "byte offset in the captured output" },
	{ "length", PARAM_INT, offsetof(struct exec_read_params, length), 0, 1, EXEC_INLINE_MAX,
		EXEC_INLINE_MAX, NULL, "bytes at most (default and maximum 4 MiB)" },
	{},
};

static const struct method_param exec_write_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_write_params, id), PARAM_MANDATORY, 1, INT64_MAX,
		0, NULL, "process id from exec.start" },
	{ "data", PARAM_STRING, offsetof(struct exec_write_params, data), 0, 0, 0, 0, NULL,
		"base64 bytes for stdin" },
	{ "eof", PARAM_BOOL, offsetof(struct exec_write_params, eof), 0, 0, 1, 0, NULL,
		"close stdin after these bytes" },
	{},
};

static const struct method_param exec_signal_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_signal_params, id), PARAM_MANDATORY, 1, INT64_MAX,
		0, NULL, "process id from exec.start" },
	{ "signal", PARAM_ANY, offsetof(struct exec_signal_params, signal), PARAM_MANDATORY, 0, 0,
		0, NULL, "signal name (\"TERM\", \"SIGINT\") or number; sent to the process group" },
	{},
};

#define EXEC_RESULT_SCHEMA                                                                         \
	"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"pid\":{\"type\":"  \
	"\"integer\"},\"running\":{\"type\":\"boolean\"},\"code\":{\"type\":\"integer\"},"        \
	"\"signal\":{\"type\":\"integer\"},\"timed_out\":{\"type\":\"boolean\"},\"stdout\":"      \
	"{\"type\":\"string\",\"contentEncoding\":\"base64\"},\"stderr\":{\"type\":\"string\","   \
	"\"contentEncoding\":\"base64\"},\"truncated\":{\"type\":\"boolean\"}}}"

const struct method exec_methods[] = {
	{ "exec.start", "Start a process; optionally stream its output as notifications",
		exec_start_params_table, sizeof(struct exec_start_params), exec_start, 0,
		"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
		"\"pid\":{\"type\":\"integer\"}}}" },
	{ "exec.run", "Run a process to completion and return its status and output",
		exec_run_params_table, sizeof(struct exec_start_params), exec_run, 0,
		EXEC_RESULT_SCHEMA },
	{ "exec.status", "Status and captured output of a process (never blocks)",
		exec_id_params_table, sizeof(struct exec_id_params), exec_status, METHOD_READONLY,
		EXEC_RESULT_SCHEMA },
	{ "exec.wait", "Answer when the process has ended",
		exec_wait_params_table, sizeof(struct exec_wait_params), exec_wait, METHOD_READONLY,
		EXEC_RESULT_SCHEMA },
	{ "exec.read", "Read captured output by offset (beyond what status answers carry)",
		exec_read_params_table, sizeof(struct exec_read_params), exec_read, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"data\":{\"type\":\"string\","
		"\"contentEncoding\":\"base64\"},\"eof\":{\"type\":\"boolean\"},"
		"\"size\":{\"type\":\"integer\"}}}" },
	{ "exec.write", "Feed a process's stdin (started with stdin \"stream\")",
		exec_write_params_table, sizeof(struct exec_write_params), exec_write_method, 0,
		"{\"type\":\"object\"}" },
	{ "exec.signal", "Send a signal to a process's group",
		exec_signal_params_table, sizeof(struct exec_signal_params), exec_signal_method, 0,
		"{\"type\":\"object\"}" },
	{ "exec.release", "Forget a finished process and its output",
		exec_id_params_table, sizeof(struct exec_id_params), exec_release_method, 0,
		"{\"type\":\"object\"}" },
	{},
};

void methods_exec_register(void)
{
	method_register(exec_methods);
}
