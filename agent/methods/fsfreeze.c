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

struct fsfreeze_mount {
	char *path;
	dev_t dev;
	int fd;
};

static struct fsfreeze_mount *fsfreeze_mounts;
static size_t fsfreeze_n;
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

bool fsfreeze_active(void)
{
	return fsfreeze_n > 0;
}

int fsfreeze_check_path(const char *path)
{
	char buf[PATH_MAX];
	struct stat st;

	if (fsfreeze_n == 0)
		return 0;
	/* The entry itself: a symlink on a frozen filesystem pointing elsewhere
	 * passes the check below, yet unlinking, renaming or replacing it
	 * writes the frozen filesystem and would block the agent until a thaw
	 * that only the agent itself can do. */
	if (lstat(path, &st) == 0)
		for (size_t i = 0; i < fsfreeze_n; i++)
			if (fsfreeze_mounts[i].dev == st.st_dev)
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
	for (size_t i = 0; i < fsfreeze_n; i++)
		if (fsfreeze_mounts[i].dev == st.st_dev)
			return -EBUSY;
	return 0;
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

/* Thaw in reverse order of freezing; returns how many were thawed. */
static size_t fsfreeze_thaw_list(void)
{
	size_t n = fsfreeze_n;

	while (fsfreeze_n > 0)
		fsfreeze_thaw_one(&fsfreeze_mounts[--fsfreeze_n]);
	free(fsfreeze_mounts);
	fsfreeze_mounts = NULL;
	if (fsfreeze_timer)
		event_del(fsfreeze_timer);
	return n;
}

void fsfreeze_thaw_all(void)
{
	if (fsfreeze_n > 0)
		log_notice("Thawing %zu filesystem(s)", fsfreeze_n);
	fsfreeze_thaw_list();
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

/* Pick the mounts to act on: the named ones (each must be a mount point), or
 * every writable one of a freezable type. Deduplicated by device (bind
 * mounts). Answers the call and returns -1 on bad input. */
static int fsfreeze_select(struct call *call, struct json_object *names, bool writable_only,
	struct fsfreeze_candidate **ret, size_t *ret_n)
{
	struct fsfreeze_candidate *all = NULL, *sel;
	size_t n_all = 0, n_sel = 0;
	int r;

	r = fsfreeze_list_mounts(&all, &n_all);
	if (r < 0) {
		call_os_error(call, -r, "cannot read the mount table");
		return -1;
	}
	sel = calloc(n_all + 1, sizeof(*sel));
	if (!sel) {
		fsfreeze_candidates_free(all, n_all);
		call_os_error(call, ENOMEM, "out of memory");
		return -1;
	}
	if (names) {
		size_t k = json_object_array_length(names);
		for (size_t i = 0; i < k; i++) {
			const char *want =
				json_object_get_string(json_object_array_get_idx(names, i));
			size_t j, found = SIZE_MAX;
			char msg[PATH_MAX + 64], esc[128];

			if (*want != '/') {
				call_error(call, GL_RPC_INVALID_PARAMS,
					"mountpoints must be absolute paths", NULL);
				goto fail;
			}
			/* The last mount on a path is the visible one. */
			for (j = 0; j < n_all; j++)
				if (strcmp(all[j].path, want) == 0)
					found = j;
			if (found == SIZE_MAX) {
				snprintf(msg, sizeof(msg), "not a mount point: %s",
					log_escape(esc, sizeof(esc), want, strlen(want)));
				call_error(call, GL_RPC_NO_SUCH_OBJECT, msg, NULL);
				goto fail;
			}
			if (writable_only && !all[found].writable) {
				snprintf(msg, sizeof(msg), "mounted read-only: %s",
					log_escape(esc, sizeof(esc), want, strlen(want)));
				call_error(call, GL_RPC_INVALID_PARAMS, msg, NULL);
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
		call_error(call, GL_RPC_LIMIT, "too many filesystems", NULL);
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

	for (size_t i = 0; i < fsfreeze_n; i++)
		json_object_array_add(a, json_object_new_string(fsfreeze_mounts[i].path));
	json_object_object_add(o, "frozen", json_object_new_boolean(fsfreeze_n > 0));
	json_object_object_add(o, "mountpoints", a);
	if (fsfreeze_n > 0) {
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

static int fsfreeze_freeze(struct call *call, void *params)
{
	struct fsfreeze_params *a = params;
	struct fsfreeze_candidate *sel;
	size_t n_sel;
	struct timeval tv = { .tv_sec = (time_t)a->timeout_s };

	if (fsfreeze_n > 0) {
		call_os_error(call, EBUSY, "already frozen: call fs.thaw first");
		return 0;
	}
	if (fsfreeze_select(call, a->mountpoints, true, &sel, &n_sel) < 0)
		return 0;
	if (!fsfreeze_timer) {
		fsfreeze_timer = evtimer_new(call_event_base(call), fsfreeze_timeout_cb, NULL);
		if (!fsfreeze_timer) {
			fsfreeze_candidates_free(sel, n_sel);
			return -ENOMEM;
		}
	}
	if (!fsfreeze_atexit_done) {
		/* Whatever way the agent exits, it does not leave the guest frozen. */
		atexit(fsfreeze_thaw_all);
		fsfreeze_atexit_done = true;
	}
	fsfreeze_mounts = calloc(n_sel + 1, sizeof(*fsfreeze_mounts));
	if (!fsfreeze_mounts) {
		fsfreeze_candidates_free(sel, n_sel);
		return -ENOMEM;
	}
	/* The timer runs before the first freeze: even a freeze that hangs half way
	 * through cannot outlive it. */
	clock_gettime(CLOCK_MONOTONIC, &fsfreeze_deadline);
	fsfreeze_deadline.tv_sec += a->timeout_s;
	evtimer_add(fsfreeze_timer, &tv);

	/* Innermost mounts first: reverse mount order. */
	for (size_t i = n_sel; i-- > 0;) {
		int fd = open(sel[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, FIFREEZE, 0) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			if (!a->mountpoints && (e == EOPNOTSUPP || e == ENOTTY))
				continue; /* not freezable; only named mounts must be */
			char msg[PATH_MAX + 64], esc[128];
			snprintf(msg, sizeof(msg), "cannot freeze %s",
				log_escape(esc, sizeof(esc), sel[i].path, strlen(sel[i].path)));
			fsfreeze_thaw_list();
			fsfreeze_candidates_free(sel, n_sel);
			call_os_error(call, e, msg);
			return 0;
		}
		fsfreeze_mounts[fsfreeze_n].path = TAKE_PTR(sel[i].path);
		fsfreeze_mounts[fsfreeze_n].dev = sel[i].dev;
		fsfreeze_mounts[fsfreeze_n].fd = fd;
		fsfreeze_n++;
	}
	fsfreeze_candidates_free(sel, n_sel);
	if (fsfreeze_n == 0)
		fsfreeze_thaw_list();
	else
		log_notice("Froze %zu filesystem(s) for at most %llds", fsfreeze_n,
			(long long)a->timeout_s);
	call_reply(call, fsfreeze_status_json());
	return 0;
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

/* FITRIM on a worker thread (agent/worker.h): it can take long, and a hung
 * filesystem must not stop the agent. */
struct fsfreeze_trim_job {
	struct fsfreeze_candidate *sel;
	size_t n_sel;
	uint64_t minimum;
	int *err;          /* per mount: errno, 0 when trimmed */
	uint64_t *trimmed; /* per mount: bytes */
};

static void fsfreeze_trim_job_free(void *p)
{
	struct fsfreeze_trim_job *j = p;

	fsfreeze_candidates_free(j->sel, j->n_sel);
	free(j->err);
	free(j->trimmed);
	free(j);
}

static void fsfreeze_trim_run(void *p)
{
	struct fsfreeze_trim_job *j = p;

	for (size_t i = 0; i < j->n_sel; i++) {
		struct fstrim_range range = { .start = 0, .len = UINT64_MAX, .minlen = j->minimum };
		int fd = open(j->sel[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || ioctl(fd, FITRIM, &range) < 0)
			j->err[i] = errno ?: EIO;
		else
			j->trimmed[i] = range.len;
		if (fd >= 0)
			close(fd);
	}
}

static void fsfreeze_trim_done(struct call *call, void *p)
{
	struct fsfreeze_trim_job *j = p;
	struct json_object *res, *list = json_object_new_array();

	for (size_t i = 0; i < j->n_sel; i++) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "mountpoint", json_object_new_string(j->sel[i].path));
		if (j->err[i]) {
			const char *name = gl_errno_name(j->err[i]);
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

	if (fsfreeze_n > 0) {
		call_os_error(call, EBUSY, "filesystems are frozen");
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	if (fsfreeze_select(call, a->mountpoints, true, &j->sel, &j->n_sel) < 0) {
		free(j);
		return 0;
	}
	j->minimum = (uint64_t)a->minimum;
	j->err = calloc(j->n_sel + 1, sizeof(*j->err));
	j->trimmed = calloc(j->n_sel + 1, sizeof(*j->trimmed));
	if (!j->err || !j->trimmed) {
		fsfreeze_trim_job_free(j);
		return -ENOMEM;
	}
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
	"{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"thaw_in_s\":{\"type\":"           \
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
