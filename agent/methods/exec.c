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
#include "exec_proc.h"
#include "log.h"
#include "worker.h"
#include "macro.h"
#include "methods.h"

const char *const exec_stream_names[_EXEC_STREAM_MAX] = { "stdout", "stderr" };

static void exec_waiter_unlink(struct exec_waiter *w)
{
	for (struct exec_waiter **pp = &w->proc->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

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

/* After w was unlinked and its call answered. */
void exec_waiter_free(struct exec_waiter *w)
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
	{ "HUP", SIGHUP },
	{ "INT", SIGINT },
	{ "QUIT", SIGQUIT },
	{ "ILL", SIGILL },
	{ "TRAP", SIGTRAP },
	{ "ABRT", SIGABRT },
	{ "BUS", SIGBUS },
	{ "FPE", SIGFPE },
	{ "KILL", SIGKILL },
	{ "USR1", SIGUSR1 },
	{ "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE },
	{ "ALRM", SIGALRM },
	{ "TERM", SIGTERM },
	{ "CHLD", SIGCHLD },
	{ "CONT", SIGCONT },
	{ "STOP", SIGSTOP },
	{ "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN },
	{ "TTOU", SIGTTOU },
	{ "URG", SIGURG },
	{ "XCPU", SIGXCPU },
	{ "XFSZ", SIGXFSZ },
	{ "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF },
	{ "WINCH", SIGWINCH },
	{ "IO", SIGIO },
	{ "PWR", SIGPWR },
	{ "SYS", SIGSYS },
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

/* --- methods --- */

static void exec_ttl_cb(evutil_socket_t fd, short what, void *userdata)
{
	exec_proc_free_deferred(userdata);
}

/* Keep an ended process's result for exec_result_ttl_s, or until exec.release. */
static void exec_keep_result(struct exec_proc *p)
{
	const struct config *cfg = config_get();
	struct timeval tv = { .tv_sec = cfg ? cfg->exec_result_ttl_s : 600 };

	p->ttl_ev = evtimer_new(p->base, exec_ttl_cb, p);
	if (!p->ttl_ev || evtimer_add(p->ttl_ev, &tv) < 0)
		log_warning("Cannot expire the result of process %llu, keeping it until released",
			(unsigned long long)p->id);
}

/* An exec.start process ended: exec.exit to its streaming client, answers to
 * its exec.wait callers, and the result kept for exec.status/exec.read. */
static void exec_start_done(struct exec_proc *p, void *userdata)
{
	if (exec_streaming(p)) {
		struct json_object *params = exec_proc_json(p, false);
		json_object_object_del(params, "running");
		json_object_object_del(params, "pid");
		conn_notify(p->stream_conn, "exec.exit", params); /* takes params */
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
	p->done = NULL;
	exec_keep_result(p);
}

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
	struct json_object *pty;
};

#define EXEC_START_PARAMS                                                                           \
	{ "argv", PARAM_STRING_ARRAY, offsetof(struct exec_start_params, argv), PARAM_MANDATORY,    \
		0, EXEC_MAX_ARGV, 0, NULL, "program and arguments; argv[0] is looked up in PATH" }, \
		{ "env", PARAM_STRING_ARRAY, offsetof(struct exec_start_params, env), 0, 0,         \
			EXEC_MAX_ENV, 0, NULL,                                                      \
			"\"KEY=VALUE\" entries added to the agent's environment" },                 \
		{ "cwd", PARAM_STRING, offsetof(struct exec_start_params, cwd), 0, 0, PATH_MAX, 0,  \
			NULL, "working directory (default /)" },                                    \
		{ "stdin", PARAM_STRING, offsetof(struct exec_start_params, stdin_), 0, 0, 0, 0,    \
			NULL, "base64 data for stdin, or \"stream\" to feed it with exec.write" },  \
		{ "capture", PARAM_STRING, offsetof(struct exec_start_params, capture), 0, 0, 0,    \
			0, exec_capture_choices,                                                    \
			"separate (default), merged (stderr into stdout), none" },                  \
		{ "timeout_ms", PARAM_INT, offsetof(struct exec_start_params, timeout_ms), 0, 0,    \
			INT64_C(7) * 24 * 3600 * 1000, 0, NULL,                                     \
			"kill the process group after this long (0 = never)" },                     \
		{ "user", PARAM_STRING, offsetof(struct exec_start_params, user), 0, 0, 256, 0,     \
			NULL, "run as this user (name or uid; the agent must be root)" },           \
	{                                                                                           \
		"pty", PARAM_OBJECT, offsetof(struct exec_start_params, pty), 0, 0, 0, 0, NULL,     \
			"run on a new terminal, {\"rows\": 1-65535 (24), \"cols\": 1-65535 (80), "  \
			"\"term\": TERM (xterm-256color)}: output raw as stdout, stdin feeds its "  \
			"input; "                                                                   \
			"see exec.resize"                                                           \
	}

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
	gid_t *groups;
	const char *why;  /* after a failed exec_prepare() */
	char *term_env;   /* "TERM=..." for a terminal */
	const char *user; /* to look up on a worker (exec_lookup_user()); borrowed */
};

static int exec_prepare_fail(struct exec_prepared *e, int r, const char *why)
{
	e->why = why;
	return r;
}

static void exec_prepared_done(struct exec_prepared *e)
{
	free(e->argv);
	free(e->env);
	free(e->stdin_data);
	free(e->pwbuf);
	free(e->groups);
	free(e->term_env);
}

/* The supplementary groups of e->pw, as initgroups() would set them: looked
 * up before the fork (on a worker, see exec_lookup_user()), because the child
 * of a threaded process may only call async-signal-safe functions
 * (setgroups() is one, NSS is not). */
static int exec_prepare_groups(struct exec_prepared *e)
{
	int n = 16;

	for (int tries = 0; tries < 8; tries++) {
		gid_t *g = realloc(e->groups, (size_t)n * sizeof(*g));
		int want = n;

		if (!g)
			return -ENOMEM;
		e->groups = g;
		if (getgrouplist(e->pw.pw_name, e->pw.pw_gid, g, &want) >= 0) {
			e->spec.groups = g;
			e->spec.n_groups = (size_t)want;
			return 0;
		}
		n = want > n ? want : n * 2; /* want: the size it needs */
	}
	return -E2BIG;
}

/* An optional int member of a pty object, in [1, 65535]. */
static int exec_pty_dim(struct json_object *pty, const char *key, unsigned short def,
	unsigned short *ret)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(pty, key, &v)) {
		*ret = def;
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 1 || n > 65535)
		return -EINVAL;
	*ret = (unsigned short)n;
	return 0;
}

/* pty {rows, cols, term}: checks it and adds TERM to the environment unless
 * the caller's env sets it. Unknown keys are refused like unknown params. */
static int exec_prepare_pty(struct json_object *pty, struct exec_prepared *e)
{
	const char *term = "xterm-256color";
	struct json_object *v;
	size_t n = 0;
	char **env;

	json_object_object_foreach (pty, key, val) {
		(void)val;
		if (strcmp(key, "rows") != 0 && strcmp(key, "cols") != 0 && strcmp(key, "term") != 0)
			return exec_prepare_fail(e, -EINVAL, "pty takes only rows, cols and term");
	}
	if (exec_pty_dim(pty, "rows", 24, &e->spec.rows) < 0 ||
		exec_pty_dim(pty, "cols", 80, &e->spec.cols) < 0)
		return exec_prepare_fail(e, -EINVAL, "pty rows and cols must be integers 1-65535");
	if (json_object_object_get_ex(pty, "term", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return exec_prepare_fail(e, -EINVAL, "pty term must be a string");
		term = json_object_get_string(v);
		if (*term == 0 || strlen(term) > 64 ||
			strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678"
				     "9+-._") != strlen(term))
			return exec_prepare_fail(e, -EINVAL,
				"pty term must be 1-64 letters, digits or +-._");
	}
	e->spec.pty = true;
	for (char **k = e->env; *k; k++, n++)
		if (strncmp(*k, "TERM=", 5) == 0)
			return 0;
	if (asprintf(&e->term_env, "TERM=%s", term) < 0) {
		e->term_env = NULL;
		return exec_prepare_fail(e, -ENOMEM, "out of memory");
	}
	env = realloc(e->env, (n + 2) * sizeof(char *));
	if (!env)
		return exec_prepare_fail(e, -ENOMEM, "out of memory");
	env[n] = e->term_env;
	env[n + 1] = NULL;
	e->env = env;
	e->spec.env = env;
	return 0;
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

/* Fills e from the checked params. Returns 0, or a negative errno with
 * e->why naming the cause: -EINVAL bad input (-32602), -ESRCH no such user
 * (-32002), -EPERM switching users needs root, -ENOMEM. The caller answers
 * with exec_prepare_error(). */
static int exec_prepare(const struct exec_start_params *a, bool run, struct exec_prepared *e)
{
	const struct config *cfg = config_get();
	int r;

	memset(e, 0, sizeof(*e));
	if (json_object_array_length(a->argv) == 0)
		return exec_prepare_fail(e, -EINVAL, "argv must have at least one element");
	if (exec_strv(a->argv, &e->argv) < 0 || exec_strv(a->env, &e->env) < 0)
		return exec_prepare_fail(e, -EINVAL, "argv and env must be strings without NUL");
	if (strlen(e->argv[0]) == 0)
		return exec_prepare_fail(e, -EINVAL, "argv[0] must not be empty");
	for (char **k = e->env; *k; k++)
		if (**k == '=' || !strchr(*k, '='))
			return exec_prepare_fail(e, -EINVAL, "env entries must be KEY=VALUE");
	e->spec.argv = e->argv;
	e->spec.env = e->env;
	e->spec.scope = true; /* exec.* children outlive an agent restart */
	e->spec.cwd = a->cwd;
	if (a->stdin_ && strcmp(a->stdin_, "stream") == 0) {
		if (run)
			return exec_prepare_fail(e, -EINVAL, "exec.run cannot stream stdin");
		e->spec.stdin_stream = true;
	} else if (a->stdin_) {
		r = gl_base64_decode(a->stdin_, strlen(a->stdin_), &e->stdin_data,
			&e->spec.stdin_len);
		if (r < 0)
			return exec_prepare_fail(e, -EINVAL, "stdin is not valid base64");
		e->spec.stdin_data = e->stdin_data;
	}
	e->spec.capture = !a->capture || strcmp(a->capture, "separate") == 0 ? EXEC_CAPTURE_SEPARATE
			  : strcmp(a->capture, "merged") == 0                ? EXEC_CAPTURE_MERGED
									     : EXEC_CAPTURE_NONE;
	if (a->pty) {
		r = exec_prepare_pty(a->pty, e);
		if (r < 0)
			return r;
	}
	e->spec.timeout_ms = (uint64_t)a->timeout_ms;
	e->spec.max_output = cfg ? cfg->exec_max_output_bytes : 16u * 1024 * 1024;
	if (a->user) {
		if (geteuid() != 0)
			return exec_prepare_fail(e, -EPERM,
				"only an agent running as root can switch users");
		e->user = a->user; /* looked up by exec_lookup_user() */
	}
	return 0;
}

/* On a worker: NSS can block (LDAP, sssd, a hung NFS home of /etc), so the
 * user and its groups are looked up off the loop. Fills e->pw, e->spec.uid,
 * gid and groups, or sets e->why and returns -ESRCH (no such user) or -errno. */
static int exec_lookup_user(struct exec_prepared *e)
{
	struct passwd *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	char *end;
	unsigned long uid;
	int r;

	if (sz < 16384)
		sz = 16384;
	e->pwbuf = malloc((size_t)sz);
	if (!e->pwbuf)
		return exec_prepare_fail(e, -ENOMEM, "out of memory");
	errno = 0;
	uid = strtoul(e->user, &end, 10);
	if (*e->user && !*end && uid < UINT32_MAX)
		r = getpwuid_r((uid_t)uid, &e->pw, e->pwbuf, (size_t)sz, &res);
	else
		r = getpwnam_r(e->user, &e->pw, e->pwbuf, (size_t)sz, &res);
	if (r != 0 || !res)
		return exec_prepare_fail(e, -ESRCH, "no such user");
	r = exec_prepare_groups(e);
	if (r < 0)
		return exec_prepare_fail(e, r, "cannot look up the user's groups");
	e->spec.has_user = true;
	e->spec.uid = e->pw.pw_uid;
	e->spec.gid = e->pw.pw_gid;
	return 0;
}

/* The answer for a failed exec_prepare(). */
static void exec_prepare_error(struct call *call, int r, const struct exec_prepared *e)
{
	if (r == -EINVAL)
		call_error(call, GL_RPC_INVALID_PARAMS, e->why, NULL);
	else if (r == -ESRCH)
		call_error(call, GL_RPC_NO_SUCH_OBJECT, e->why, NULL);
	else
		call_os_error(call, -r, e->why);
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
		p->internal = false;
		p->done = NULL;
		exec_keep_result(p);
		return;
	}
	exec_proc_release(p);
}

/* exec.start (run false) or exec.run (run true) once e is complete: fork
 * and exec on the loop, then answer (exec.start) or wait (exec.run). */
static void exec_launch(struct call *call, struct exec_prepared *e, bool run, bool stream)
{
	struct exec_proc *p;
	struct json_object *res;
	int r;

	e->spec.internal = run;
	r = exec_spawn(call_event_base(call), &e->spec, run ? exec_run_done : exec_start_done,
		run ? call : NULL, &p);
	if (r < 0) {
		exec_spawn_error(call, r);
		return;
	}
	if (run) {
		call_ref(call); /* answered by exec_run_done() */
		return;
	}
	if (stream && call_conn(call)) {
		p->stream_conn = conn_ref(call_conn(call));
		/* Without the watch a full output buffer would stop the child's
		 * output for good: collect it for exec.wait instead. */
		if (conn_add_drain_watch(p->stream_conn, exec_drain_cb, p) < 0) {
			log_warning(
				"Out of memory watching a stream, collecting the output instead");
			p->stream_conn = conn_unref(p->stream_conn);
		}
	}
	res = json_object_new_object();
	json_object_object_add(res, "id", json_object_new_int64((int64_t)p->id));
	json_object_object_add(res, "pid", json_object_new_int(p->pid));
	call_reply(call, res);
}

/* A launch waiting for its user lookup on a worker. e borrows from the
 * call's request, which the worker's reference on the call keeps alive. */
struct exec_pending {
	struct exec_prepared e;
	bool run, stream;
	int r; /* of exec_lookup_user() */
};

static void exec_pending_free(void *p)
{
	struct exec_pending *x = p;

	exec_prepared_done(&x->e);
	free(x);
}

static void exec_pending_run(void *p)
{
	struct exec_pending *x = p;

	x->r = exec_lookup_user(&x->e);
}

static void exec_pending_done(struct call *call, void *p)
{
	struct exec_pending *x = p;

	if (x->r < 0)
		exec_prepare_error(call, x->r, &x->e);
	else
		exec_launch(call, &x->e, x->run, x->stream);
}

static int exec_start_or_run(struct call *call, const struct exec_start_params *a, bool run)
{
	struct exec_pending *x;
	struct exec_prepared e;
	int r;

	r = exec_prepare(a, run, &e);
	if (r < 0) {
		exec_prepare_error(call, r, &e);
		exec_prepared_done(&e);
		return 0;
	}
	if (!e.user) {
		exec_launch(call, &e, run, a->stream);
		exec_prepared_done(&e);
		return 0;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		exec_prepared_done(&e);
		return -ENOMEM;
	}
	x->e = e;
	x->run = run;
	x->stream = a->stream;
	r = worker_call(call, -1, exec_pending_run, exec_pending_done, x, exec_pending_free);
	return r == -EAGAIN ? 0 : r;
}

static int exec_start(struct call *call, void *params)
{
	return exec_start_or_run(call, params, false);
}

static int exec_run(struct call *call, void *params)
{
	return exec_start_or_run(call, params, true);
}

struct exec_id_params {
	int64_t id;
};

/* Returns 0 and the process, or -ESRCH after answering -32002. */
static int exec_lookup(struct call *call, int64_t id, struct exec_proc **ret)
{
	struct exec_proc *p = exec_find((uint64_t)id);

	if (!p) {
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such process id", NULL);
		return -ESRCH;
	}
	*ret = p;
	return 0;
}

static int exec_status(struct call *call, void *params)
{
	struct exec_id_params *a = params;
	struct exec_proc *p;
	struct json_object *res;

	if (exec_lookup(call, a->id, &p) < 0)
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
	struct exec_proc *p;

	if (exec_lookup(call, a->id, &p) < 0)
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
	struct exec_proc *p;
	enum exec_stream s;
	struct json_object *res;
	const char *data;
	size_t n, from, len;
	char *b64;

	if (exec_lookup(call, a->id, &p) < 0)
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
	struct exec_proc *p;
	struct exec_waiter *w;

	if (exec_lookup(call, a->id, &p) < 0)
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
	if (w->conn && conn_add_drain_watch(w->conn, exec_waiter_conn_cb, w) < 0) {
		event_free(w->timer);
		call_unref(w->call);
		conn_unref(w->conn);
		free(w);
		return -ENOMEM;
	}
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
	struct exec_proc *p;
	_cleanup_free_ void *data = NULL;
	size_t len = 0;
	struct exec_write *w;
	int r;

	if (exec_lookup(call, a->id, &p) < 0)
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
	if (exec_lookup(call, a->id, &p) < 0)
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

struct exec_resize_params {
	int64_t id;
	int64_t rows, cols;
};

static int exec_resize(struct call *call, void *params)
{
	struct exec_resize_params *a = params;
	struct exec_proc *p;
	int r;

	if (exec_lookup(call, a->id, &p) < 0)
		return 0;
	r = exec_proc_resize(p, (unsigned)a->rows, (unsigned)a->cols);
	if (r == -ENOTTY)
		call_error(call, GL_RPC_INVALID_PARAMS, "the process was not started with a pty",
			NULL);
	else if (r < 0)
		call_os_error(call, -r, "cannot resize the terminal");
	else
		call_reply(call, json_object_new_object());
	return 0;
}

static const struct method_param exec_resize_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_resize_params, id), PARAM_MANDATORY, 1, INT64_MAX,
		0, NULL, "process id from exec.start with pty" },
	{ "rows", PARAM_INT, offsetof(struct exec_resize_params, rows), PARAM_MANDATORY, 1, 65535,
		0, NULL, "terminal rows" },
	{ "cols", PARAM_INT, offsetof(struct exec_resize_params, cols), PARAM_MANDATORY, 1, 65535,
		0, NULL, "terminal columns" },
	{},
};

static const struct method_param exec_id_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_id_params, id), PARAM_MANDATORY, 1, INT64_MAX, 0,
		NULL, "process id from exec.start" },
	{},
};

static const struct method_param exec_wait_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_wait_params, id), PARAM_MANDATORY, 1, INT64_MAX, 0,
		NULL, "process id from exec.start" },
	{ "timeout_ms", PARAM_INT, offsetof(struct exec_wait_params, timeout_ms), 0, 0,
		INT64_C(7) * 24 * 3600 * 1000, 0, NULL,
		"answer -32004 after this long if still running (0 = wait forever)" },
	{},
};

static const struct method_param exec_read_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_read_params, id), PARAM_MANDATORY, 1, INT64_MAX, 0,
		NULL, "process id from exec.start or exec.run" },
	{ "stream", PARAM_STRING, offsetof(struct exec_read_params, stream), PARAM_MANDATORY, 0, 0,
		0, exec_stream_choices, "stdout or stderr" },
	{ "offset", PARAM_INT, offsetof(struct exec_read_params, offset), 0, 0, INT64_MAX / 2, 0,
		NULL, "byte offset in the captured output" },
	{ "length", PARAM_INT, offsetof(struct exec_read_params, length), 0, 1, EXEC_INLINE_MAX,
		EXEC_INLINE_MAX, NULL, "bytes at most (default and maximum 4 MiB)" },
	{},
};

static const struct method_param exec_write_params_table[] = {
	{ "id", PARAM_INT, offsetof(struct exec_write_params, id), PARAM_MANDATORY, 1, INT64_MAX, 0,
		NULL, "process id from exec.start" },
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

#define EXEC_RESULT_SCHEMA                                                                      \
	"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"pid\":{\"type\":" \
	"\"integer\"},\"running\":{\"type\":\"boolean\"},\"code\":{\"type\":\"integer\"},"      \
	"\"signal\":{\"type\":\"integer\"},\"timed_out\":{\"type\":\"boolean\"},\"stdout\":"    \
	"{\"type\":\"string\",\"contentEncoding\":\"base64\"},\"stderr\":{\"type\":\"string\"," \
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
	{ "exec.wait", "Answer when the process has ended", exec_wait_params_table,
		sizeof(struct exec_wait_params), exec_wait, METHOD_READONLY, EXEC_RESULT_SCHEMA },
	{ "exec.read", "Read captured output by offset (beyond what status answers carry)",
		exec_read_params_table, sizeof(struct exec_read_params), exec_read, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"data\":{\"type\":\"string\","
		"\"contentEncoding\":\"base64\"},\"eof\":{\"type\":\"boolean\"},"
		"\"size\":{\"type\":\"integer\"}}}" },
	{ "exec.write", "Feed a process's stdin (started with stdin \"stream\")",
		exec_write_params_table, sizeof(struct exec_write_params), exec_write_method, 0,
		"{\"type\":\"object\"}" },
	{ "exec.signal", "Send a signal to a process's group", exec_signal_params_table,
		sizeof(struct exec_signal_params), exec_signal_method, 0, "{\"type\":\"object\"}" },
	{ "exec.resize", "Set the window size of a process's terminal (it gets SIGWINCH)",
		exec_resize_params_table, sizeof(struct exec_resize_params), exec_resize, 0,
		"{\"type\":\"object\"}" },
	{ "exec.release", "Forget a finished process and its output", exec_id_params_table,
		sizeof(struct exec_id_params), exec_release_method, 0, "{\"type\":\"object\"}" },
	{},
};

void methods_exec_register(void)
{
	method_register(exec_methods);
}
