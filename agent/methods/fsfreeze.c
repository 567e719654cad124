/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fs.freeze / fs.thaw / fs.status / fs.trim: FIFREEZE, FITHAW and FITRIM on
 * the guest's writable filesystems for consistent host snapshots. A freeze
 * always carries a timeout after which the agent thaws by itself, so a lost
 * client can never leave the guest frozen. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <mntent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "fsfreeze.h"
#include "log.h"
#include "macro.h"
#include "methods.h"
#include "worker.h"

#define FSFREEZE_MAX_TIMEOUT_S 3600
#define FSFREEZE_MAX_MOUNTS 256
/* At exit, how long to wait for a FIFREEZE still running on a worker: the
 * worker undoes it once it returns, which it cannot once the process is
 * gone (systemd's stop timeout is 90 s by default). */
#define FSFREEZE_EXIT_WAIT_S 30

struct fsfreeze_mount {
	char *path;
	dev_t dev;
	int fd;
};

/* The frozen mounts belong to this module, under fsfreeze_lock: a freeze
 * running on a worker adds to them. fsfreeze_gen changes with every thaw. */
static pthread_mutex_t fsfreeze_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fsfreeze_mount fsfreeze_mounts[FSFREEZE_MAX_MOUNTS];
static size_t fsfreeze_n;
static uint64_t fsfreeze_gen;
static unsigned fsfreeze_in_ioctl;                              /* FIFREEZEs running on a worker */
static pthread_cond_t fsfreeze_cond = PTHREAD_COND_INITIALIZER; /* fsfreeze_in_ioctl fell */
/* Loop only: */
static bool fsfreeze_busy; /* a freeze job is on a worker */
static struct event *fsfreeze_timer;
static struct timespec fsfreeze_deadline;
static bool fsfreeze_atexit_done;

/* Filesystems without a block device or without freeze support: never tried
 * when the caller did not name mount points. */
static const char *const fsfreeze_skip_types[] = {
	"proc",
	"sysfs",
	"devtmpfs",
	"devpts",
	"tmpfs",
	"ramfs",
	"cgroup",
	"cgroup2",
	"securityfs",
	"debugfs",
	"tracefs",
	"pstore",
	"bpf",
	"mqueue",
	"hugetlbfs",
	"configfs",
	"fusectl",
	"autofs",
	"binfmt_misc",
	"efivarfs",
	"overlay",
	"squashfs",
	"iso9660",
	"9p",
	"nfs",
	"nfs4",
	"cifs",
	"smb3",
	"fuse",
	"nsfs",
	"rpc_pipefs",
	"selinuxfs",
	"virtiofs",
};

/* Under fsfreeze_lock: a freeze that finishes on a worker adds its mounts
 * here while the loop may read them or thaw. */
static bool fsfreeze_dev_frozen(dev_t dev)
{
	bool frozen = false;

	pthread_mutex_lock(&fsfreeze_lock);
	for (size_t i = 0; i < fsfreeze_n && !frozen; i++)
		frozen = fsfreeze_mounts[i].dev == dev;
	pthread_mutex_unlock(&fsfreeze_lock);
	return frozen;
}

static size_t fsfreeze_count(void)
{
	size_t n;

	pthread_mutex_lock(&fsfreeze_lock);
	n = fsfreeze_n;
	pthread_mutex_unlock(&fsfreeze_lock);
	return n;
}

bool fsfreeze_active(void)
{
	return fsfreeze_count() > 0;
}

int fsfreeze_check_path(const char *path)
{
	char buf[PATH_MAX];
	struct stat st;

	if (fsfreeze_count() == 0)
		return 0;
	/* The entry itself: a symlink on a frozen filesystem pointing elsewhere
	 * passes the check below, yet unlinking, renaming or replacing it
	 * writes the frozen filesystem and would block the agent until a thaw
	 * that only the agent itself can do. */
	if (lstat(path, &st) == 0 && fsfreeze_dev_frozen(st.st_dev))
		return -EBUSY;
	/* A path to be created: its nearest existing parent decides. */
	snprintf(buf, sizeof(buf), "%s", path);
	while (stat(buf, &st) < 0) {
		char *slash = strrchr(buf, '/');
		if (!slash)
			return stat(".", &st) == 0 ? fsfreeze_check_path(".") : 0;
		if (slash == buf) {
			buf[1] = 0;
			if (stat(buf, &st) < 0)
				return 0;
			break;
		}
		*slash = 0;
	}
	return fsfreeze_dev_frozen(st.st_dev) ? -EBUSY : 0;
}

static int fsfreeze_thaw_one(struct fsfreeze_mount *m)
{
	int r = 0;

	if (ioctl(m->fd, FITHAW, 0) < 0 && errno != EINVAL) /* EINVAL: not frozen any more */
		r = log_error_errno(-errno, "Failed to thaw %s: %m", m->path);
	close(m->fd);
	free(m->path);
	return r;
}

/* Thaw in reverse order of freezing; returns how many were thawed. A freeze
 * still running on a worker sees the new generation and undoes what it
 * freezes after this. */
static size_t fsfreeze_thaw_list(void)
{
	size_t n;

	pthread_mutex_lock(&fsfreeze_lock);
	n = fsfreeze_n;
	while (fsfreeze_n > 0)
		fsfreeze_thaw_one(&fsfreeze_mounts[--fsfreeze_n]);
	fsfreeze_gen++;
	pthread_mutex_unlock(&fsfreeze_lock);
	if (fsfreeze_timer)
		event_del(fsfreeze_timer);
	return n;
}

/* At exit: thaw, then wait for a FIFREEZE still running on a worker, which
 * sees the new generation and thaws what it froze: a freeze that completed
 * after the process ended would stay until someone runs fsfreeze -u. */
void fsfreeze_thaw_all(void)
{
	size_t n = fsfreeze_count();
	struct timespec deadline;
	bool waited = false;

	if (n > 0)
		log_notice("Thawing %zu filesystem(s)", n);
	fsfreeze_thaw_list();
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += FSFREEZE_EXIT_WAIT_S;
	pthread_mutex_lock(&fsfreeze_lock);
	while (fsfreeze_in_ioctl > 0) {
		if (!waited)
			log_notice("Waiting up to %ds for a freeze still running, to thaw it",
				FSFREEZE_EXIT_WAIT_S);
		waited = true;
		if (pthread_cond_timedwait(&fsfreeze_cond, &fsfreeze_lock, &deadline) == ETIMEDOUT) {
			log_error("A freeze still runs after %ds: its filesystem may stay frozen "
				  "(fsfreeze -u)",
				FSFREEZE_EXIT_WAIT_S);
			break;
		}
	}
	pthread_mutex_unlock(&fsfreeze_lock);
}

static void fsfreeze_timeout_cb(evutil_socket_t fd, short what, void *userdata)
{
	log_warning("Freeze timeout reached without fs.thaw, thawing by ourselves");
	fsfreeze_thaw_list();
}

/* The writable mounts, in mount order, one per device. */
struct fsfreeze_candidate {
	char *path;
	char *type;
	dev_t dev;
	bool writable;
};

static void fsfreeze_candidates_free(struct fsfreeze_candidate *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].path);
		free(c[i].type);
	}
	free(c);
}

/* An answer decided on a worker, given on the loop. */
struct fsfreeze_error {
	int code;   /* a GL_RPC_* code, or 0 */
	int errnum; /* with code 0: -32000 with this errno; 0 and 0: no error */
	char msg[PATH_MAX + 64];
};

static bool fsfreeze_failed(const struct fsfreeze_error *e)
{
	return e->code || e->errnum;
}

static void fsfreeze_error_answer(struct call *call, const struct fsfreeze_error *e)
{
	if (e->code)
		call_error(call, e->code, e->msg, NULL);
	else
		call_os_error(call, e->errnum, e->msg);
}

static void fsfreeze_error_set(struct fsfreeze_error *e, int code, int errnum, const char *what,
	const char *path)
{
	char esc[128];

	e->code = code;
	e->errnum = errnum;
	if (path)
		snprintf(e->msg, sizeof(e->msg), "%s: %s", what,
			log_escape(esc, sizeof(esc), path, strlen(path)));
	else
		snprintf(e->msg, sizeof(e->msg), "%s", what);
}

/* On a worker: stat()s every mount point, which blocks on a hung one. */
static int fsfreeze_list_mounts(struct fsfreeze_candidate **ret, size_t *ret_n)
{
	struct fsfreeze_candidate *c = NULL;
	size_t n = 0;
	struct mntent me, *m;
	char buf[4 * PATH_MAX];
	FILE *f;

	f = setmntent("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	while ((m = getmntent_r(f, &me, buf, sizeof(buf)))) {
		struct fsfreeze_candidate *nc;
		struct stat st;

		if (stat(m->mnt_dir, &st) < 0)
			continue;
		nc = realloc(c, (n + 1) * sizeof(*c));
		if (!nc) {
			fsfreeze_candidates_free(c, n);
			endmntent(f);
			return -ENOMEM;
		}
		c = nc;
		c[n].path = strdup(m->mnt_dir);
		c[n].type = strdup(m->mnt_type);
		c[n].dev = st.st_dev;
		c[n].writable = !hasmntopt(m, "ro");
		if (!c[n].path || !c[n].type) {
			fsfreeze_candidates_free(c, n + 1);
			endmntent(f);
			return -ENOMEM;
		}
		n++;
	}
	endmntent(f);
	*ret = c;
	*ret_n = n;
	return 0;
}

static bool fsfreeze_skipped_type(const char *type)
{
	for (size_t i = 0; i < ELEMENTSOF(fsfreeze_skip_types); i++)
		if (strcmp(type, fsfreeze_skip_types[i]) == 0)
			return true;
	return strncmp(type, "fuse.", 5) == 0;
}

/* The mount points a call named, copied on the loop (json-c objects stay
 * there): names == NULL means "every suitable one". */
struct fsfreeze_names {
	char **names;
	size_t n;
};

static void fsfreeze_names_free(struct fsfreeze_names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->names[i]);
	free(nm->names);
	*nm = (struct fsfreeze_names){ 0 };
}

static int fsfreeze_names_copy(struct json_object *names, struct fsfreeze_names *ret)
{
	struct fsfreeze_names nm = { 0 };
	size_t k;

	if (!names) {
		*ret = nm;
		return 0;
	}
	k = json_object_array_length(names);
	nm.names = calloc(k + 1, sizeof(*nm.names));
	if (!nm.names)
		return -ENOMEM;
	for (; nm.n < k; nm.n++) {
		nm.names[nm.n] =
			strdup(json_object_get_string(json_object_array_get_idx(names, nm.n)));
		if (!nm.names[nm.n]) {
			fsfreeze_names_free(&nm);
			return -ENOMEM;
		}
	}
	*ret = nm;
	return 0;
}

/* On a worker: pick the mounts to act on, the named ones (each must be a
 * mount point), or every writable one of a freezable type. Deduplicated by
 * device (bind mounts). Returns -1 with *err set on bad input. */
static int fsfreeze_select(const struct fsfreeze_names *nm, bool writable_only,
	struct fsfreeze_candidate **ret, size_t *ret_n, struct fsfreeze_error *err)
{
	struct fsfreeze_candidate *all = NULL, *sel;
	size_t n_all = 0, n_sel = 0;
	int r;

	r = fsfreeze_list_mounts(&all, &n_all);
	if (r < 0) {
		fsfreeze_error_set(err, 0, -r, "cannot read the mount table", NULL);
		return -1;
	}
	sel = calloc(n_all + 1, sizeof(*sel));
	if (!sel) {
		fsfreeze_candidates_free(all, n_all);
		fsfreeze_error_set(err, 0, ENOMEM, "out of memory", NULL);
		return -1;
	}
	if (nm->names) {
		for (size_t i = 0; i < nm->n; i++) {
			const char *want = nm->names[i];
			size_t j, found = SIZE_MAX;

			if (*want != '/') {
				fsfreeze_error_set(err, GL_RPC_INVALID_PARAMS, 0,
					"mountpoints must be absolute paths", NULL);
				goto fail;
			}
			/* The last mount on a path is the visible one. */
			for (j = 0; j < n_all; j++)
				if (strcmp(all[j].path, want) == 0)
					found = j;
			if (found == SIZE_MAX) {
				fsfreeze_error_set(err, GL_RPC_NO_SUCH_OBJECT, 0,
					"not a mount point", want);
				goto fail;
			}
			if (writable_only && !all[found].writable) {
				fsfreeze_error_set(err, GL_RPC_INVALID_PARAMS, 0,
					"mounted read-only", want);
				goto fail;
			}
			for (j = 0; j < n_sel; j++)
				if (sel[j].dev == all[found].dev)
					break;
			if (j < n_sel)
				continue;
			sel[n_sel++] = all[found];
			all[found].path = all[found].type = NULL;
		}
	} else {
		for (size_t i = 0; i < n_all; i++) {
			size_t j;
			if (!all[i].writable || fsfreeze_skipped_type(all[i].type))
				continue;
			for (j = 0; j < n_sel; j++)
				if (sel[j].dev == all[i].dev)
					break;
			if (j < n_sel)
				continue;
			sel[n_sel++] = all[i];
			all[i].path = all[i].type = NULL;
		}
	}
	fsfreeze_candidates_free(all, n_all);
	if (n_sel > FSFREEZE_MAX_MOUNTS) {
		fsfreeze_candidates_free(sel, n_sel);
		fsfreeze_error_set(err, GL_RPC_LIMIT, 0, "too many filesystems", NULL);
		return -1;
	}
	*ret = sel;
	*ret_n = n_sel;
	return 0;
fail:
	fsfreeze_candidates_free(all, n_all);
	fsfreeze_candidates_free(sel, n_sel);
	return -1;
}

static struct json_object *fsfreeze_status_json(void)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	struct timespec now;
	size_t n;

	pthread_mutex_lock(&fsfreeze_lock);
	n = fsfreeze_n;
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(fsfreeze_mounts[i].path));
	pthread_mutex_unlock(&fsfreeze_lock);
	json_object_object_add(o, "frozen", json_object_new_boolean(n > 0));
	json_object_object_add(o, "mountpoints", a);
	if (fsfreeze_busy)
		json_object_object_add(o, "freezing", json_object_new_boolean(true));
	if (n > 0 || fsfreeze_busy) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		json_object_object_add(o, "thaw_in_s",
			json_object_new_int64(fsfreeze_deadline.tv_sec - now.tv_sec));
	}
	return o;
}

struct fsfreeze_params {
	struct json_object *mountpoints;
	int64_t timeout_s;
};

/* fs.freeze: the mount table, the stat()s and each FIFREEZE run on a worker
 * (FIFREEZE flushes the filesystem and can take long; a hung mount blocks
 * even the stat()). The freeze belongs to this module, not to the call: each
 * mount is added to the module's list the moment it is frozen, so a freeze
 * that finishes after its call answered -32004 shows in fs.status ("frozen",
 * and "freezing" while it still runs) and is thawed by fs.thaw, by the
 * auto-thaw timer (started before the first FIFREEZE) or at exit. A thaw that
 * comes while the freeze still runs thaws what is frozen so far, and the
 * worker undoes each freeze it completes after that (the list's generation
 * changed). A failed freeze thaws what it froze. */
struct fsfreeze_job {
	struct fsfreeze_names names;
	uint64_t gen;
	int64_t timeout_s;
	/* results */
	bool ran, cancelled, finished;
	struct fsfreeze_error err;
};

static void fsfreeze_freeze_run(void *p)
{
	struct fsfreeze_job *j = p;
	struct fsfreeze_candidate *sel;
	size_t n_sel;

	j->ran = true;
	if (fsfreeze_select(&j->names, true, &sel, &n_sel, &j->err) < 0)
		return;
	/* Innermost mounts first: reverse mount order. */
	for (size_t i = n_sel; i-- > 0;) {
		int fd = open(sel[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r, e;

		if (fd < 0) {
			r = -1;
			e = errno;
		} else {
			/* Counted until recorded or undone: exit waits for it
			 * (fsfreeze_thaw_all()). */
			pthread_mutex_lock(&fsfreeze_lock);
			fsfreeze_in_ioctl++;
			pthread_mutex_unlock(&fsfreeze_lock);
			r = ioctl(fd, FIFREEZE, 0);
			e = errno;
			pthread_mutex_lock(&fsfreeze_lock);
		}
		if (r < 0) {
			if (fd >= 0) {
				fsfreeze_in_ioctl--;
				pthread_cond_broadcast(&fsfreeze_cond);
				pthread_mutex_unlock(&fsfreeze_lock);
				close(fd);
			}
			if (!j->names.names && (e == EOPNOTSUPP || e == ENOTTY))
				continue; /* not freezable; only named mounts must be */
			fsfreeze_error_set(&j->err, 0, e, "cannot freeze", sel[i].path);
			break;
		}
		if (fsfreeze_gen != j->gen || fsfreeze_n >= FSFREEZE_MAX_MOUNTS) {
			/* Thawed (fs.thaw, the auto-thaw, exit) while this ran: undo,
			 * before exit may go on. */
			(void)ioctl(fd, FITHAW, 0);
			fsfreeze_in_ioctl--;
			pthread_cond_broadcast(&fsfreeze_cond);
			pthread_mutex_unlock(&fsfreeze_lock);
			log_notice("Thawed %s again: a thaw came while the freeze ran", sel[i].path);
			close(fd);
			j->cancelled = true;
			break;
		}
		fsfreeze_mounts[fsfreeze_n++] =
			(struct fsfreeze_mount){ .path = TAKE_PTR(sel[i].path),
				.dev = sel[i].dev,
				.fd = fd };
		fsfreeze_in_ioctl--;
		pthread_cond_broadcast(&fsfreeze_cond);
		pthread_mutex_unlock(&fsfreeze_lock);
	}
	fsfreeze_candidates_free(sel, n_sel);
}

/* On the loop, once, whether or not the call still waits. */
static void fsfreeze_freeze_finish(struct fsfreeze_job *j, bool late)
{
	bool same;
	size_t n;

	if (j->finished)
		return;
	j->finished = true;
	fsfreeze_busy = false;
	pthread_mutex_lock(&fsfreeze_lock);
	same = fsfreeze_gen == j->gen;
	n = fsfreeze_n;
	pthread_mutex_unlock(&fsfreeze_lock);
	if (!same)
		return; /* thawed meanwhile; the worker undid what came after */
	if (!j->ran || fsfreeze_failed(&j->err) || n == 0) {
		if (late && fsfreeze_failed(&j->err))
			log_warning("A freeze whose call had ended failed (%s), thawing", j->err.msg);
		fsfreeze_thaw_list(); /* what a failed freeze froze, and the timer */
		return;
	}
	log_notice("Froze %zu filesystem(s) for at most %llds%s", n, (long long)j->timeout_s,
		late ? ", after its call had timed out or its client left (fs.status shows them)"
		     : "");
}

static void fsfreeze_job_free(void *p)
{
	struct fsfreeze_job *j = p;

	fsfreeze_freeze_finish(j, true);
	fsfreeze_names_free(&j->names);
	free(j);
}

static void fsfreeze_freeze_done(struct call *call, void *p)
{
	struct fsfreeze_job *j = p;

	fsfreeze_freeze_finish(j, false);
	if (fsfreeze_failed(&j->err))
		fsfreeze_error_answer(call, &j->err);
	else if (j->cancelled)
		call_os_error(call, ECANCELED, "thawed while the freeze ran");
	else
		call_reply(call, fsfreeze_status_json());
}

static int fsfreeze_freeze(struct call *call, void *params)
{
	struct fsfreeze_params *a = params;
	struct timeval tv = { .tv_sec = (time_t)a->timeout_s };
	struct fsfreeze_job *j;
	int r;

	if (fsfreeze_count() > 0 || fsfreeze_busy) {
		call_os_error(call, EBUSY, "already frozen: call fs.thaw first");
		return 0;
	}
	if (!fsfreeze_timer) {
		fsfreeze_timer = evtimer_new(call_event_base(call), fsfreeze_timeout_cb, NULL);
		if (!fsfreeze_timer)
			return -ENOMEM;
	}
	if (!fsfreeze_atexit_done) {
		/* Whatever way the agent exits, it does not leave the guest frozen. */
		atexit(fsfreeze_thaw_all);
		fsfreeze_atexit_done = true;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	r = fsfreeze_names_copy(a->mountpoints, &j->names);
	if (r < 0) {
		free(j);
		return r;
	}
	j->timeout_s = a->timeout_s;
	pthread_mutex_lock(&fsfreeze_lock);
	j->gen = fsfreeze_gen;
	pthread_mutex_unlock(&fsfreeze_lock);
	/* The timer runs before the first freeze: even a freeze that hangs half way
	 * through cannot outlive it. */
	clock_gettime(CLOCK_MONOTONIC, &fsfreeze_deadline);
	fsfreeze_deadline.tv_sec += a->timeout_s;
	evtimer_add(fsfreeze_timer, &tv);
	fsfreeze_busy = true;
	r = worker_call(call, -1, fsfreeze_freeze_run, fsfreeze_freeze_done, j, fsfreeze_job_free);
	return r == -EAGAIN ? 0 : r;
}

static int fsfreeze_thaw(struct call *call, void *params)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "thawed", json_object_new_int64((int64_t)fsfreeze_thaw_list()));
	call_reply(call, o);
	return 0;
}

static int fsfreeze_status(struct call *call, void *params)
{
	call_reply(call, fsfreeze_status_json());
	return 0;
}

struct fsfreeze_trim_params {
	struct json_object *mountpoints;
	int64_t minimum;
};

/* FITRIM on a worker thread (agent/worker.h), the choice of mounts too: it
 * can take long, and a hung filesystem must not stop the agent. */
struct fsfreeze_trim_job {
	struct fsfreeze_names names;
	struct fsfreeze_candidate *sel;
	size_t n_sel;
	uint64_t minimum;
	struct fsfreeze_error err;
	int *errs;         /* per mount: errno, 0 when trimmed */
	uint64_t *trimmed; /* per mount: bytes */
};

static void fsfreeze_trim_job_free(void *p)
{
	struct fsfreeze_trim_job *j = p;

	fsfreeze_names_free(&j->names);
	fsfreeze_candidates_free(j->sel, j->n_sel);
	free(j->errs);
	free(j->trimmed);
	free(j);
}

static void fsfreeze_trim_run(void *p)
{
	struct fsfreeze_trim_job *j = p;

	if (fsfreeze_select(&j->names, true, &j->sel, &j->n_sel, &j->err) < 0)
		return;
	j->errs = calloc(j->n_sel + 1, sizeof(*j->errs));
	j->trimmed = calloc(j->n_sel + 1, sizeof(*j->trimmed));
	if (!j->errs || !j->trimmed) {
		fsfreeze_error_set(&j->err, 0, ENOMEM, "out of memory", NULL);
		return;
	}
	for (size_t i = 0; i < j->n_sel; i++) {
		struct fstrim_range range = { .start = 0, .len = UINT64_MAX, .minlen = j->minimum };
		int fd = open(j->sel[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || ioctl(fd, FITRIM, &range) < 0)
			j->errs[i] = errno ?: EIO;
		else
			j->trimmed[i] = range.len;
		if (fd >= 0)
			close(fd);
	}
}

static void fsfreeze_trim_done(struct call *call, void *p)
{
	struct fsfreeze_trim_job *j = p;
	struct json_object *res, *list;

	if (fsfreeze_failed(&j->err)) {
		fsfreeze_error_answer(call, &j->err);
		return;
	}
	list = json_object_new_array();
	for (size_t i = 0; i < j->n_sel; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "mountpoint", json_object_new_string(j->sel[i].path));
		if (j->errs[i]) {
			const char *name = gl_errno_name(j->errs[i]);
			json_object_object_add(e, "error", json_object_new_string(name ?: "EIO"));
		} else
			json_object_object_add(e, "trimmed",
				json_object_new_int64((int64_t)j->trimmed[i]));
		json_object_array_add(list, e);
	}
	res = json_object_new_object();
	json_object_object_add(res, "filesystems", list);
	call_reply(call, res);
}

static int fsfreeze_trim(struct call *call, void *params)
{
	struct fsfreeze_trim_params *a = params;
	struct fsfreeze_trim_job *j;
	int r;

	if (fsfreeze_count() > 0 || fsfreeze_busy) {
		call_os_error(call, EBUSY, "filesystems are frozen");
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	r = fsfreeze_names_copy(a->mountpoints, &j->names);
	if (r < 0) {
		free(j);
		return r;
	}
	j->minimum = (uint64_t)a->minimum;
	r = worker_call(call, -1, fsfreeze_trim_run, fsfreeze_trim_done, j, fsfreeze_trim_job_free);
	return r == -EAGAIN ? 0 : r;
}

static const struct method_param fsfreeze_freeze_params[] = {
	{ "mountpoints", PARAM_STRING_ARRAY, offsetof(struct fsfreeze_params, mountpoints), 0, 0,
		FSFREEZE_MAX_MOUNTS, 0, NULL,
		"mount points to freeze (default: every writable freezable filesystem)" },
	{ "timeout_s", PARAM_INT, offsetof(struct fsfreeze_params, timeout_s), PARAM_MANDATORY, 1,
		FSFREEZE_MAX_TIMEOUT_S, 0, NULL,
		"thaw by ourselves after this many seconds unless fs.thaw came first" },
	{},
};

static const struct method_param fsfreeze_trim_params[] = {
	{ "mountpoints", PARAM_STRING_ARRAY, offsetof(struct fsfreeze_trim_params, mountpoints), 0,
		0, FSFREEZE_MAX_MOUNTS, 0, NULL, "mount points (default: every writable one)" },
	{ "minimum", PARAM_INT, offsetof(struct fsfreeze_trim_params, minimum), 0, 0,
		INT64_C(1) << 40, 0, NULL, "smallest free extent to discard, in bytes" },
	{},
};

#define FSFREEZE_STATUS_SCHEMA                                                                    \
	"{\"type\":\"object\",\"properties\":{\"frozen\":{\"type\":\"boolean\"},\"mountpoints\":" \
	"{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"freezing\":{\"type\":"            \
	"\"boolean\"},\"thaw_in_s\":{\"type\":"                                                   \
	"\"integer\"}}}"

const struct method fsfreeze_methods[] = {
	{ "fs.freeze", "Freeze filesystems (FIFREEZE) with a mandatory auto-thaw timeout",
		fsfreeze_freeze_params, sizeof(struct fsfreeze_params), fsfreeze_freeze, 0,
		FSFREEZE_STATUS_SCHEMA },
	{ "fs.thaw", "Thaw the filesystems frozen by fs.freeze", NULL, 0, fsfreeze_thaw, 0,
		"{\"type\":\"object\",\"properties\":{\"thawed\":{\"type\":\"integer\"}}}" },
	{ "fs.status", "Whether filesystems are frozen, which, and for how long yet", NULL, 0,
		fsfreeze_status, METHOD_READONLY, FSFREEZE_STATUS_SCHEMA },
	{ "fs.trim", "Discard unused blocks (FITRIM)", fsfreeze_trim_params,
		sizeof(struct fsfreeze_trim_params), fsfreeze_trim, METHOD_WRITES,
		"{\"type\":\"object\",\"properties\":{\"filesystems\":{\"type\":\"array\"}}}" },
	{},
};

void methods_fsfreeze_register(void)
{
	method_register(fsfreeze_methods);
}
