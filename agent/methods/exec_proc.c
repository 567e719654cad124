/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The child-process engine: the process table, spawning, SIGCHLD reaping,
 * output and stdin pumping (see exec_proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "base64.h"
#include "config.h"
#include "exec_proc.h"
#include "exec_scope.h"
#include "log.h"
#include "macro.h"
#include "methods.h"

static struct exec_proc *exec_procs;
static unsigned exec_n_procs, exec_n_running;
static uint64_t exec_next_id = 1;
static struct event *exec_sigchld_ev;
static size_t exec_captured_total; /* bytes in all out[].buf */
size_t exec_stdin_total;           /* bytes in all stdin_buf */

static void exec_out_cb(evutil_socket_t fd, short what, void *userdata);
static void exec_proc_finish(struct exec_proc *p);

/* --- the process table --- */

struct exec_proc *exec_find(uint64_t id)
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
	if (p->pty_fd >= 0)
		close(p->pty_fd);
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
void exec_proc_free_deferred(struct exec_proc *p)
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

void exec_drain_cb(struct conn *c, void *userdata)
{
	struct exec_proc *p = userdata;

	if (conn_closed(c)) {
		/* A terminal whose client left is hung up, as sshd does when the
		 * connection drops: an interactive shell would wait for input forever. */
		if (p->pty_fd >= 0 && !p->exited)
			(void)kill(-p->pid, SIGHUP);
		exec_stop_streaming(p);
	} else
		exec_pause(p, false);
}

bool exec_streaming(struct exec_proc *p)
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
	/* A terminal hands out at most its line buffer (4 KiB) per read: gather
	 * what is there into one chunk, so that bulk output costs one message per
	 * 64 KiB as on a pipe. A single keystroke's echo still goes at once (the
	 * next read finds nothing), and an end found here is seen on the next call. */
	while (p->pty_fd >= 0 && (size_t)n < sizeof(buf)) {
		ssize_t more = read(fd, buf + n, sizeof(buf) - (size_t)n);
		if (more <= 0)
			break;
		n += more;
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

void exec_stdin_answer(struct exec_proc *p)
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

int exec_stdin_queue(struct exec_proc *p, const void *data, size_t len, bool eof)
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

	/* The owner's turn (exec.exit, exec.wait callers, keeping the result; a
	 * plugin's answer): it may release p, which is freed after this callback. */
	if (p->done)
		p->done(p, p->done_data);
	else if (p->internal)
		exec_proc_free_deferred(p);
	if (p->stream_conn) {
		conn_remove_drain_watch(p->stream_conn, exec_drain_cb, p);
		p->stream_conn = conn_unref(p->stream_conn);
	}
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

/* The agent's environment minus what systemd handed to the agent itself
 * (sd_notify(3), sd_listen_fds(3), sd_watchdog_enabled(3), systemd.exec(5)
 * $JOURNAL_STREAM): a child that inherited them would talk to the agent's
 * notify socket or take the agent's stderr for the journal. Prefixes. */
static bool exec_env_inherited(const char *kv)
{
	static const char *const drop[] = { "NOTIFY_SOCKET=", "LISTEN_", "WATCHDOG_",
		"JOURNAL_STREAM=", "INVOCATION_ID=" };

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
		env[k++] =
			(char *)"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	env[k] = NULL;
	return env;
}

static void exec_child_fail(int errfd, int error)
{
	ssize_t r _unused_ = write(errfd, &error, sizeof(error));
	_exit(127);
}

/* Everything from fd `from` up closes at exec: the child gets exactly 0, 1, 2,
 * whatever the agent inherited from whoever started it (issue: a shell's stray
 * fds reached every command). close_range(2) since Linux 5.11; else every fd
 * below max_fd, the RLIMIT_NOFILE soft limit read before fork(): the child of
 * a threaded process may not allocate (no opendir() of /proc/self/fd). */
static void exec_child_cloexec_from(int from, int max_fd)
{
	if (close_range((unsigned)from, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	for (int fd = from; fd < max_fd; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* EBADF for most: nothing there */
}

/* The kernel's struct sigaction for SIG_DFL (see exec_child()), roomy enough
 * for every architecture's layout. */
static const unsigned long exec_child_kernel_dfl[16];

/* In the child, after fork(): only the child's own state changes here, with
 * async-signal-safe calls only. The child starts with every signal blocked
 * (exec_spawn() blocks them across fork()), so none of the agent's handlers
 * can run in it: every disposition goes back to SIG_DFL (ignored signals
 * would stay ignored across exec, caught ones would run agent code until the
 * exec) BEFORE the mask is emptied. */
_Noreturn static void exec_child(const struct exec_spec *spec, char **env, int fds[3], int errfd,
	int max_fd)
{
	extern char **environ;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	sigemptyset(&dfl.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (sigaction(s, &dfl, NULL) < 0 && s != SIGKILL && s != SIGSTOP)
			/* libc refuses the signals it keeps for itself (32 and 33 in
			 * glibc), yet one ignored by whoever started the agent stays
			 * ignored across exec: reset it through the kernel. All zero
			 * is SIG_DFL, no flags and an empty mask in every
			 * architecture's struct layout. */
			(void)syscall(SYS_rt_sigaction, s, exec_child_kernel_dfl, NULL,
				(size_t)(_NSIG / 8));
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		exec_child_fail(errfd, errno);
	/* The new session's controlling terminal (tty_ioctl(4)): job control,
	 * ^C/^Z as signals to the foreground group, SIGHUP when it hangs up. */
	if (spec->pty && ioctl(fds[0], TIOCSCTTY, 0) < 0)
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
	exec_child_cloexec_from(3, max_fd);

	if (chdir(spec->cwd ?: "/") < 0)
		exec_child_fail(errfd, errno);
	if (spec->has_user) {
		if (setgroups(spec->n_groups, spec->groups) < 0)
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

/* A pseudo-terminal pair (pty(7)): the master for the agent (non-blocking), the
 * slave for the child, both O_CLOEXEC and O_NOCTTY (the child takes it as its
 * controlling terminal itself), with the window size of the spec. */
static int exec_pty_open(const struct exec_spec *spec, int *ret_master, int *ret_slave)
{
	struct winsize ws = { .ws_row = spec->rows, .ws_col = spec->cols };
	char name[64];
	int m, s, r;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
		r = -errno ?: -EIO;
		close(m);
		return r;
	}
	s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0 || ioctl(s, TIOCSWINSZ, &ws) < 0) {
		r = -errno;
		if (s >= 0)
			close(s);
		close(m);
		return r;
	}
	*ret_master = m;
	*ret_slave = s;
	return 0;
}

int exec_proc_resize(struct exec_proc *p, unsigned rows, unsigned cols)
{
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };

	if (p->pty_fd < 0)
		return -ENOTTY;
	if (p->exited)
		return -ESRCH;
	/* The kernel sends SIGWINCH to the terminal's foreground process group. */
	if (ioctl(p->pty_fd, TIOCSWINSZ, &ws) < 0)
		return -errno;
	return 0;
}

int exec_spawn(struct event_base *base, const struct exec_spec *spec, exec_done_fn done,
	void *userdata, struct exec_proc **ret)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, status[2] = { -1, -1 };
	int child_fds[3], r, error = 0;
	_cleanup_free_ char **env = NULL;
	struct exec_proc *p;
	sigset_t all, old_mask;
	struct rlimit rl;
	int max_fd, e;
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
	p->pty_fd = -1;
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

	if (spec->pty) {
		/* One terminal for all three: the slave end goes to the child (in[0],
		 * closed here after fork), the master is read as "stdout" and written as
		 * stdin through two duplicates, and kept for exec.resize. */
		r = exec_pty_open(spec, &p->pty_fd, &in[0]);
		if (r < 0)
			goto fail;
		out[0] = fcntl(p->pty_fd, F_DUPFD_CLOEXEC, 3);
		in[1] = fcntl(p->pty_fd, F_DUPFD_CLOEXEC, 3);
		if (out[0] < 0 || in[1] < 0) {
			r = -errno;
			goto fail;
		}
		child_fds[0] = child_fds[1] = child_fds[2] = in[0];
	} else if (spec->stdin_stream || spec->stdin_data) {
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
	if (spec->pty)
		; /* the terminal, above */
	else if (spec->capture == EXEC_CAPTURE_NONE) {
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

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > INT_MAX)
		max_fd = INT_MAX; /* not reached: the kernel caps it at fs.nr_open */
	else
		max_fd = (int)rl.rlim_cur;
	/* Every signal blocked across fork(): the child resets the handlers before
	 * it unblocks (exec_child()); the parent gets its mask back at once. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old_mask);
	pid = fork();
	if (pid == 0) {
		close(status[0]);
		exec_child(spec, env, child_fds, status[1], max_fd);
	}
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (pid < 0) {
		r = -e;
		goto fail;
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
		return -error;
	}

	if (spec->scope)
		(void)exec_scope_move(base, pid, p->id, spec->argv[0]); /* logs its failures */
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
		/* A terminal's input stays open until the process ends: end of input
		 * is a byte (^D) there, not a close. */
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
	if (p->pty_fd >= 0)
		close(p->pty_fd);
	for (int s = 0; s < _EXEC_STREAM_MAX; s++)
		if (p->out[s].buf)
			evbuffer_free(p->out[s].buf);
	if (p->stdin_buf)
		evbuffer_free(p->stdin_buf);
	free(p);
	return r;
}
