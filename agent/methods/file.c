/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file.*: stat, list, read, write, remove, mkdir, rename, and handles for
 * chunked uploads (file.open / file.write {handle} / file.close). Data travels
 * as base64. Whole-file writes go to an unnamed temporary file (O_TMPFILE, or
 * a hidden temporary name where that is unsupported) that is renamed over the
 * target only when complete: a dropped connection leaves no partial file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>
#include <guestlink/jsonrpc.h>
#include <nettle/sha2.h>

#include "config.h"
#include "base64.h"
#include "file.h"
#include "file_internal.h"
#include "fsfreeze.h"
#include "log.h"
#include "macro.h"
#include "methods.h"
#include "worker.h"

#define FILE_MAX_READ (8u * 1024 * 1024)
#define FILE_DEFAULT_READ (1u * 1024 * 1024)
#define FILE_MAX_LIST 100000
#define FILE_MAX_HANDLES 256
#define FILE_MAX_HANDLES_PER_CONN 32

/* --- errors --- */

void file_error(struct call *call, int errnum, const char *what)
{
	struct json_object *data;
	const char *name;

	errnum = abs(errnum);
	if (errnum != ENOENT) {
		call_os_error(call, errnum, what);
		return;
	}
	/* A missing path is "no such object", still with the errno name for scripts. */
	data = json_object_new_object();
	name = gl_errno_name(errnum);
	json_object_object_add(data, "errno", json_object_new_string(name ?: "ENOENT"));
	json_object_object_add(data, "message", json_object_new_string(strerror(errnum)));
	call_error(call, GL_RPC_NO_SUCH_OBJECT, what, data);
}

/* Whether path lies on a filesystem the agent froze (writing there would
 * block until a thaw only the agent can do). It stat()s the path, which can
 * block on a hung mount: called on a worker, at the start of each writing
 * job. */
bool file_frozen_at(const char *path)
{
	return fsfreeze_check_path(path) < 0;
}

/* --- syscalls on a worker thread ---
 * Each blocking part below is a plain function on a struct file_job (copied
 * arguments in, results and errno out) run by agent/worker.c; the answer is
 * built on the loop. A path on a hung filesystem then costs only its call,
 * which answers -32004 after fs_timeout_s. */

struct file_entry {
	char *name;
	bool has_stat;
	struct stat st;
};

struct file_job {
	/* arguments */
	char *path, *path2;
	bool follow, parents, append, create, truncate;
	mode_t umask;
	int64_t mode, offset, length, limit;
	/* results */
	int err;          /* errno of the step that failed, 0 on success */
	const char *what; /* that step, for the error message */
	struct stat st;
	char *target; /* file.stat of a symlink */
	char *buf;    /* file.read */
	size_t got;
	bool eof, chmod_failed;
	struct file_entry *entries; /* file.list */
	size_t n_entries;
	bool truncated;
};

static void file_job_free(void *p)
{
	struct file_job *j = p;

	if (!j)
		return;
	for (size_t i = 0; i < j->n_entries; i++)
		free(j->entries[i].name);
	free(j->entries);
	free(j->path);
	free(j->path2);
	free(j->target);
	free(j->buf);
	free(j);
}

static struct file_job *file_job_new(const char *path, const char *path2)
{
	struct file_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->path = strdup(path);
	j->path2 = path2 ? strdup(path2) : NULL;
	if (!j->path || (path2 && !j->path2))
		j = (file_job_free(j), NULL);
	return j;
}

static void file_job_fail(struct file_job *j, int err, const char *what)
{
	j->err = err;
	j->what = what;
}

/* Hand j to a worker; answers -32003 itself when the pool is full. */
static int file_job_submit(struct call *call, struct file_job *j, worker_run_fn run,
	worker_done_fn done)
{
	int r;

	if (!j)
		return -ENOMEM;
	r = worker_call(call, -1, run, done, j, file_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* The answer of a job that only reports success: {} or the error. */
static void file_job_done_empty(struct call *call, void *p)
{
	struct file_job *j = p;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	if (j->chmod_failed)
		log_debug("Cannot set the mode of a new directory, ignoring");
	call_reply(call, json_object_new_object());
}

/* --- stat --- */

static const struct {
	mode_t type;
	const char *name;
} file_types[] = {
	{ S_IFREG, "file" },
	{ S_IFDIR, "directory" },
	{ S_IFLNK, "symlink" },
	{ S_IFCHR, "char" },
	{ S_IFBLK, "block" },
	{ S_IFIFO, "fifo" },
	{ S_IFSOCK, "socket" },
};

static const char *file_type_name(mode_t mode)
{
	for (size_t i = 0; i < ELEMENTSOF(file_types); i++)
		if ((mode & S_IFMT) == file_types[i].type)
			return file_types[i].name;
	return "unknown";
}

static double file_timespec(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

/* Valid UTF-8 (no overlongs, no surrogates): file names are bytes, JSON is not. */
static bool file_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, n;
		uint32_t cp;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
			(cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

/* A file name as JSON: "name" when it is UTF-8, else "name_base64". */
static void file_add_name(struct json_object *o, const char *key, const char *name)
{
	char k[32];

	if (file_utf8_valid(name)) {
		json_object_object_add(o, key, json_object_new_string(name));
		return;
	}
	char *b64;
	if (gl_base64_encode(name, strlen(name), &b64, NULL) < 0)
		return;
	snprintf(k, sizeof(k), "%s_base64", key);
	json_object_object_add(o, k, json_object_new_string(b64));
	free(b64);
}

static struct json_object *file_stat_json(const struct stat *st)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(file_type_name(st->st_mode)));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)st->st_size));
	json_object_object_add(o, "mode", json_object_new_int((int)(st->st_mode & 07777)));
	json_object_object_add(o, "uid", json_object_new_int64(st->st_uid));
	json_object_object_add(o, "gid", json_object_new_int64(st->st_gid));
	json_object_object_add(o, "nlink", json_object_new_int64((int64_t)st->st_nlink));
	json_object_object_add(o, "inode", json_object_new_int64((int64_t)st->st_ino));
	json_object_object_add(o, "mtime", json_object_new_double(file_timespec(&st->st_mtim)));
	json_object_object_add(o, "atime", json_object_new_double(file_timespec(&st->st_atim)));
	json_object_object_add(o, "ctime", json_object_new_double(file_timespec(&st->st_ctim)));
	return o;
}

struct file_path_params {
	const char *path;
	bool follow;
};

static void file_stat_run(void *p)
{
	struct file_job *j = p;

	if ((j->follow ? stat(j->path, &j->st) : lstat(j->path, &j->st)) < 0) {
		file_job_fail(j, errno, "cannot stat");
		return;
	}
	if (S_ISLNK(j->st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(j->path, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = 0;
			j->target = strdup(target);
		}
	}
}

static void file_stat_done(struct call *call, void *p)
{
	struct file_job *j = p;
	struct json_object *res;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	res = file_stat_json(&j->st);
	if (j->target)
		file_add_name(res, "target", j->target);
	call_reply(call, res);
}

static int file_stat(struct call *call, void *params)
{
	struct file_path_params *a = params;
	struct file_job *j = file_job_new(a->path, NULL);

	if (j)
		j->follow = a->follow;
	return file_job_submit(call, j, file_stat_run, file_stat_done);
}

struct file_list_params {
	const char *path;
	int64_t limit;
};

static void file_list_run(void *p)
{
	struct file_job *j = p;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd;

	fd = open(j->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		file_job_fail(j, errno, "cannot open the directory");
		return;
	}
	d = fdopendir(fd);
	if (!d) {
		file_job_fail(j, errno, "cannot read the directory");
		close(fd);
		return;
	}
	while ((de = readdir(d))) {
		struct file_entry *e;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((int64_t)j->n_entries >= j->limit) {
			j->truncated = true;
			break;
		}
		if (j->n_entries == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct file_entry *v = realloc(j->entries, ncap * sizeof(*v));

			if (!v) {
				file_job_fail(j, ENOMEM, "out of memory");
				break;
			}
			j->entries = v;
			cap = ncap;
		}
		e = &j->entries[j->n_entries];
		e->name = strdup(de->d_name);
		if (!e->name) {
			file_job_fail(j, ENOMEM, "out of memory");
			break;
		}
		/* Vanished meanwhile, or not ours to stat: listed by name only. */
		e->has_stat = fstatat(dirfd(d), de->d_name, &e->st, AT_SYMLINK_NOFOLLOW) == 0;
		j->n_entries++;
	}
	closedir(d);
}

static void file_list_done(struct call *call, void *p)
{
	struct file_job *j = p;
	struct json_object *entries, *res;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	entries = json_object_new_array();
	for (size_t i = 0; i < j->n_entries; i++) {
		const struct file_entry *fe = &j->entries[i];
		struct json_object *e = json_object_new_object();

		file_add_name(e, "name", fe->name);
		if (fe->has_stat) {
			json_object_object_add(e, "type",
				json_object_new_string(file_type_name(fe->st.st_mode)));
			json_object_object_add(e, "size",
				json_object_new_int64((int64_t)fe->st.st_size));
			json_object_object_add(e, "mode",
				json_object_new_int((int)(fe->st.st_mode & 07777)));
			json_object_object_add(e, "mtime",
				json_object_new_double(file_timespec(&fe->st.st_mtim)));
		} else
			json_object_object_add(e, "type", json_object_new_string("unknown"));
		json_object_array_add(entries, e);
	}
	res = json_object_new_object();
	json_object_object_add(res, "entries", entries);
	json_object_object_add(res, "truncated", json_object_new_boolean(j->truncated));
	call_reply(call, res);
}

static int file_list(struct call *call, void *params)
{
	struct file_list_params *a = params;
	struct file_job *j = file_job_new(a->path, NULL);

	if (j)
		j->limit = a->limit;
	return file_job_submit(call, j, file_list_run, file_list_done);
}

/* --- read --- */

struct file_read_params {
	const char *path;
	int64_t offset;
	int64_t length;
};

static void file_read_run(void *p)
{
	struct file_job *j = p;
	_cleanup_close_ int fd = -1;
	size_t want = (size_t)j->length;
	bool seekable;

	/* O_NONBLOCK: a FIFO or a terminal must not stall the worker either. */
	fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		file_job_fail(j, errno, "cannot open");
		return;
	}
	if (fstat(fd, &j->st) < 0) {
		file_job_fail(j, errno, "cannot stat");
		return;
	}
	if (S_ISDIR(j->st.st_mode)) {
		file_job_fail(j, EISDIR, "cannot read a directory");
		return;
	}
	seekable = S_ISREG(j->st.st_mode) || S_ISBLK(j->st.st_mode);
	if (!seekable && j->offset > 0) {
		file_job_fail(j, ESPIPE, "this file cannot be read at an offset");
		return;
	}
	j->buf = malloc(want ?: 1);
	if (!j->buf) {
		file_job_fail(j, ENOMEM, "out of memory");
		return;
	}
	while (j->got < want) {
		/* FIFOs, sockets and character devices cannot seek: read them in order. */
		ssize_t n = seekable ? pread(fd, j->buf + j->got, want - j->got,
					       (off_t)j->offset + (off_t)j->got)
				     : read(fd, j->buf + j->got, want - j->got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			file_job_fail(j, errno, "cannot read");
			return;
		}
		if (n == 0) {
			j->eof = true;
			break;
		}
		j->got += (size_t)n;
	}
	/* Save the client a round trip when a regular file ends right here. */
	if (S_ISREG(j->st.st_mode) && j->st.st_size > 0 &&
		j->offset + (int64_t)j->got >= j->st.st_size)
		j->eof = true;
}

static void file_read_done(struct call *call, void *p)
{
	struct file_job *j = p;
	_cleanup_free_ char *b64 = NULL;
	struct json_object *res;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	if (gl_base64_encode(j->buf, j->got, &b64, NULL) < 0) {
		call_os_error(call, ENOMEM, NULL);
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "data", json_object_new_string(b64));
	json_object_object_add(res, "eof", json_object_new_boolean(j->eof));
	json_object_object_add(res, "size", json_object_new_int64((int64_t)j->st.st_size));
	json_object_object_add(res, "mode", json_object_new_int((int)(j->st.st_mode & 07777)));
	call_reply(call, res);
}

static int file_read(struct call *call, void *params)
{
	struct file_read_params *a = params;
	struct file_job *j = file_job_new(a->path, NULL);

	if (j) {
		j->offset = a->offset;
		j->length = a->length;
	}
	return file_job_submit(call, j, file_read_run, file_read_done);
}

/* --- temporary files renamed into place --- */

void file_tmp_discard(struct file_tmp *t)
{
	if (t->fd >= 0)
		t->fd = (close(t->fd), -1);
	if (t->tmpname)
		(void)unlink(t->tmpname);
	free(t->tmpname);
	free(t->path);
	t->tmpname = t->path = NULL;
}

static char *file_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int file_tmp_name(const char *path, char **ret)
{
	_cleanup_free_ char *dir = file_dirname(path);
	const char *base = strrchr(path, '/');
	uint64_t rnd = 0;
	char *name;

	if (!dir)
		return -ENOMEM;
	base = base ? base + 1 : path;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
		rnd = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	if (asprintf(&name, "%s/.%.64s.guestlink-%016llx", dir, base, (unsigned long long)rnd) < 0)
		return -ENOMEM;
	*ret = name;
	return 0;
}

/* mode < 0: keep the existing file's mode and owner, or 0666 & ~umask for a new one. */
/* The process's umask, read once at start-up (methods_file_register()),
 * before any worker thread exists: umask() can only be read by setting it,
 * and for that moment a file or directory created on a worker would get the
 * umask 0 (world-writable). The agent never changes its umask afterwards. */
static mode_t file_process_umask = 022;

mode_t file_umask(void)
{
	return file_process_umask;
}

/* um: the umask for a new file's mode (file_umask(), taken on the loop). */
int file_tmp_open(const char *path, int mode, bool create, mode_t um, struct file_tmp *ret)
{
	_cleanup_free_ char *dir = file_dirname(path);
	struct file_tmp t = { .fd = -1 };
	struct stat st;
	int r;

	if (!dir)
		return -ENOMEM;
	if (!*path || path[strlen(path) - 1] == '/')
		return -EISDIR;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return -EISDIR;
		if (!S_ISREG(st.st_mode))
			return -EINVAL; /* renaming over a device or FIFO is never what was meant */
		t.mode = mode >= 0 ? (mode_t)mode : st.st_mode & 07777;
		t.chown = mode < 0 && geteuid() == 0;
		t.uid = st.st_uid;
		t.gid = st.st_gid;
	} else if (errno == ENOENT) {
		if (!create)
			return -ENOENT;
		t.mode = mode >= 0 ? (mode_t)mode : 0666 & ~um;
	} else
		return -errno;

	t.path = strdup(path);
	if (!t.path)
		return -ENOMEM;
	t.fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (t.fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		r = file_tmp_name(path, &t.tmpname);
		if (r < 0) {
			file_tmp_discard(&t);
			return r;
		}
		t.fd = open(t.tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (t.fd < 0) {
			r = -errno;
			free(t.tmpname);
			t.tmpname = NULL;
			file_tmp_discard(&t);
			return r;
		}
	} else if (t.fd < 0) {
		r = -errno;
		file_tmp_discard(&t);
		return r;
	}
	*ret = t;
	return 0;
}

int file_tmp_commit(struct file_tmp *t)
{
	int r;

	if (fchmod(t->fd, t->mode) < 0)
		return -errno;
	if (t->chown && fchown(t->fd, t->uid, t->gid) < 0)
		log_debug_errno(-errno, "Cannot keep the owner of %s, ignoring: %m", t->path);
	if (!t->tmpname) {
		/* Give the unnamed file a hidden name, then rename it over the target:
		 * linkat() alone cannot replace an existing file. */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
		for (int tries = 0;; tries++) {
			r = file_tmp_name(t->path, &t->tmpname);
			if (r < 0)
				return r;
			if (linkat(AT_FDCWD, proc, AT_FDCWD, t->tmpname, AT_SYMLINK_FOLLOW) == 0)
				break;
			r = -errno;
			free(t->tmpname);
			t->tmpname = NULL;
			if (r != -EEXIST || tries > 8)
				return r;
		}
	}
	if (rename(t->tmpname, t->path) < 0)
		return -errno;
	free(t->tmpname);
	t->tmpname = NULL;
	if (close(t->fd) < 0) {
		t->fd = -1;
		return -errno;
	}
	t->fd = -1;
	return 0;
}

int file_write_all(int fd, const char *data, size_t len, int64_t offset)
{
	while (len > 0) {
		ssize_t n = offset >= 0 ? pwrite(fd, data, len, (off_t)offset) : write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		data += n;
		len -= (size_t)n;
		if (offset >= 0)
			offset += n;
	}
	return 0;
}

/* --- handles (chunked uploads) ---
 * The syscalls of a handle (the open, each write, the fsync and rename of
 * file.close) run on a worker like every other file call. A handle is
 * reference-counted: the handle list holds one reference and each job on a
 * worker holds one, so a handle closed, aborted or orphaned by its connection
 * while a write is still running is freed only after that write returned.
 * Writes with their own offsets may run side by side (pwrite); file.close
 * while writes on the handle are still running answers -32003 (the client
 * closes after their answers, or aborts: an abort never waits). While its
 * close runs a handle stays on the list, refusing writes, closes and aborts
 * (-32003); a close refused because the filesystem is frozen keeps the
 * handle, for a retry after the thaw, any other outcome drops it. What is left
 * of a dropped upload (the temporary file) is closed and unlinked on a worker
 * too: on a hung filesystem even close() can block. */

struct file_upload {
	struct file_upload *next;
	unsigned refs;
	unsigned writes; /* file.write jobs on a worker */
	int64_t id;
	struct conn *conn;
	struct event_base *base;
	struct file_tmp tmp;
	int64_t size;     /* end of the furthest write that succeeded */
	int64_t next_off; /* where a write without an offset goes */
	bool dropped;     /* off the list: closed, aborted, or its connection left */
	bool closing;     /* a file.close job is on a worker */
};

static struct file_upload *file_handles;
static unsigned file_n_handles;
static int64_t file_next_handle = 1;

/* After a worker ran it this finds nothing left; when worker_submit() could
 * not take the job, it closes and unlinks here, on the loop. */
static void file_tmp_discard_free(void *p)
{
	file_tmp_discard(p);
	free(p);
}

static void file_tmp_discard_run(void *p)
{
	file_tmp_discard(p);
}

/* Close and unlink what is left of t (taken) on a worker. */
void file_tmp_discard_later(struct event_base *base, struct file_tmp *t)
{
	struct file_tmp *copy;

	if (t->fd < 0 && !t->tmpname) {
		file_tmp_discard(t); /* only memory */
		return;
	}
	copy = malloc(sizeof(*copy));
	if (!copy) {
		log_error("Out of memory discarding a temporary file, closing it here");
		file_tmp_discard(t);
		return;
	}
	*copy = *t;
	*t = (struct file_tmp){ .fd = -1 };
	(void)worker_submit(base, file_tmp_discard_run, copy, file_tmp_discard_free);
}

static void file_handle_unlink(struct file_upload *h)
{
	for (struct file_upload **pp = &file_handles; *pp; pp = &(*pp)->next)
		if (*pp == h) {
			*pp = h->next;
			file_n_handles--;
			return;
		}
}

static void file_handle_drop(struct file_upload *h);

static void file_handle_drain_cb(struct conn *c, void *userdata)
{
	struct file_upload *h = userdata;

	if (conn_closed(c))
		file_handle_drop(h); /* the client left mid-upload: no file appears */
}

static void file_handle_free_now(evutil_socket_t fd, short what, void *userdata)
{
	struct file_upload *h = userdata;

	conn_remove_drain_watch(h->conn, file_handle_drain_cb, h);
	conn_unref(h->conn);
	file_tmp_discard_later(h->base, &h->tmp);
	free(h);
}

static struct file_upload *file_handle_ref(struct file_upload *h)
{
	h->refs++;
	return h;
}

static void file_handle_unref(struct file_upload *h)
{
	if (!h || --h->refs > 0)
		return;
	/* Not inside the connection's callback: free after it returned. */
	if (event_base_once(h->base, -1, EV_TIMEOUT, file_handle_free_now, h, NULL) < 0)
		log_error("Cannot schedule freeing an upload handle, leaking it");
}

/* Off the list at once (no new calls reach it); freed with its last job. */
static void file_handle_drop(struct file_upload *h)
{
	if (h->dropped)
		return;
	file_handle_unlink(h);
	h->dropped = true;
	file_handle_unref(h);
}

static struct file_upload *file_handle_get(struct call *call, int64_t id)
{
	for (struct file_upload *h = file_handles; h; h = h->next)
		if (h->id == id && h->conn == call_conn(call))
			return h;
	call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such file handle on this connection", NULL);
	return NULL;
}

/* Whether conn may open one more handle; answers -32003 when not. */
static bool file_handle_room(struct call *call, struct conn *conn)
{
	unsigned mine = 0;

	for (struct file_upload *h = file_handles; h; h = h->next)
		mine += h->conn == conn;
	if (file_n_handles >= FILE_MAX_HANDLES || mine >= FILE_MAX_HANDLES_PER_CONN) {
		call_error(call, GL_RPC_LIMIT, "too many open file handles", NULL);
		return false;
	}
	return true;
}

struct file_open_params {
	const char *path;
	int64_t mode;
	bool create;
};

void file_open_job_free(void *p)
{
	struct file_open_job *j = p;

	file_tmp_discard_later(j->base, &j->tmp); /* not taken by done(): on a worker */
	free(j->path);
	free(j);
}

struct file_open_job *file_open_job_new(struct call *call, const char *path)
{
	struct file_open_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->base = call_event_base(call);
	j->tmp.fd = -1;
	j->path = strdup(path);
	if (!j->path) {
		free(j);
		return NULL;
	}
	return j;
}

static void file_open_run(void *p)
{
	struct file_open_job *j = p;

	j->frozen = file_frozen_at(j->path);
	if (j->frozen) {
		j->err = EBUSY;
		return;
	}
	j->err = -file_tmp_open(j->path, j->mode, j->create, j->umask, &j->tmp);
}

static void file_open_done(struct call *call, void *p)
{
	struct file_open_job *j = p;
	struct conn *conn = call_conn(call);
	struct file_upload *h;
	struct json_object *res;

	if (j->err) {
		file_error(call, j->err, j->frozen ? FILE_FROZEN_MSG : "cannot create the file");
		return;
	}
	if (!conn || !file_handle_room(call, conn))
		return; /* the file is discarded with the job */
	h = calloc(1, sizeof(*h));
	if (!h) {
		call_os_error(call, ENOMEM, "out of memory");
		return;
	}
	h->tmp = j->tmp;
	j->tmp = (struct file_tmp){ .fd = -1 };
	h->refs = 1; /* the list's */
	h->id = file_next_handle++;
	h->conn = conn_ref(conn);
	h->base = call_event_base(call);
	h->next = file_handles;
	file_handles = h;
	file_n_handles++;
	if (conn_add_drain_watch(conn, file_handle_drain_cb, h) < 0) {
		file_handle_drop(h);
		call_os_error(call, ENOMEM, "out of memory");
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "handle", json_object_new_int64(h->id));
	call_reply(call, res);
}

static int file_open(struct call *call, void *params)
{
	struct file_open_params *a = params;
	struct conn *conn = call_conn(call);
	struct file_open_job *j;
	int r;

	if (!conn)
		return -ENOTCONN;
	if (!file_handle_room(call, conn))
		return 0;
	j = file_open_job_new(call, a->path);
	if (!j)
		return -ENOMEM;
	j->mode = (int)a->mode;
	j->create = a->create;
	j->umask = file_umask();
	r = worker_call(call, -1, file_open_run, file_open_done, j, file_open_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* file.write into a handle and file.close, on a worker. */
struct file_handle_job {
	struct file_upload *h; /* a reference */
	bool close, sync;
	char *data; /* write */
	size_t len;
	int64_t off;
	/* results */
	bool ran, frozen;
	int err;
};

static void file_handle_job_free(void *p)
{
	struct file_handle_job *j = p;

	/* Whether or not the call was still waiting: a write that went through
	 * counts towards the size file.close reports. */
	if (!j->close) {
		if (j->ran && !j->err && j->off + (int64_t)j->len > j->h->size)
			j->h->size = j->off + (int64_t)j->len;
		j->h->writes--;
	} else {
		j->h->closing = false;
		/* Completed or failed: no handle left. Refused for a freeze, or never
		 * run (the pool was full): kept for a retry or an abort. */
		if (j->ran && !j->frozen)
			file_handle_drop(j->h);
	}
	file_handle_unref(j->h);
	free(j->data);
	free(j);
}

static void file_handle_write_run(void *p)
{
	struct file_handle_job *j = p;

	j->frozen = file_frozen_at(j->h->tmp.path);
	j->err = j->frozen ? EBUSY : -file_write_all(j->h->tmp.fd, j->data, j->len, j->off);
	j->ran = true;
}

static void file_handle_write_done(struct call *call, void *p)
{
	struct file_handle_job *j = p;

	if (j->err)
		file_error(call, j->err, j->frozen ? FILE_FROZEN_MSG : "cannot write");
	else
		call_reply(call, json_object_new_object());
}

static void file_handle_close_run(void *p)
{
	struct file_handle_job *j = p;

	/* No write runs on the handle any more (file.close refuses while one
	 * does, file.write while the close runs). The freeze check stat()s,
	 * which blocks on a hung mount: here, not on the loop. */
	j->ran = true;
	j->frozen = file_frozen_at(j->h->tmp.path);
	if (j->frozen) {
		j->err = EBUSY;
		return;
	}
	if (j->sync && fsync(j->h->tmp.fd) < 0)
		j->err = errno;
	if (!j->err)
		j->err = -file_tmp_commit(&j->h->tmp);
}

static void file_handle_close_done(struct call *call, void *p)
{
	struct file_handle_job *j = p;
	struct json_object *res;

	if (j->err) {
		file_error(call, j->err, j->frozen ? FILE_FROZEN_MSG : "cannot complete the file");
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "size", json_object_new_int64(j->h->size));
	call_reply(call, res);
}

struct file_close_params {
	int64_t handle;
	bool abort;
	bool sync;
};

static int file_close(struct call *call, void *params)
{
	struct file_close_params *a = params;
	struct file_upload *h = file_handle_get(call, a->handle);
	struct file_handle_job *j;
	struct json_object *res;
	int r;

	if (!h)
		return 0;
	if (h->closing) {
		call_error(call, GL_RPC_LIMIT, "a close of this handle is still running", NULL);
		return 0;
	}
	if (a->abort) {
		/* Never waits: the temporary file goes when the last write returned. */
		res = json_object_new_object();
		json_object_object_add(res, "size", json_object_new_int64(h->size));
		file_handle_drop(h);
		call_reply(call, res);
		return 0;
	}
	if (h->writes > 0) {
		call_error(call, GL_RPC_LIMIT,
			"writes on this handle are still running: close it after their answers, or "
			"abort it",
			NULL);
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->h = file_handle_ref(h);
	j->close = true;
	j->sync = a->sync;
	/* On the list until the job is freed (file_handle_job_free()). */
	h->closing = true;
	r = worker_call(call, -1, file_handle_close_run, file_handle_close_done, j,
		file_handle_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* --- write --- */

struct file_write_params {
	const char *path;
	int64_t handle;
	const char *data;
	int64_t offset;
	bool append;
	bool create;
	int64_t mode;
	bool truncate;
};

static int file_write_handle(struct call *call, struct file_write_params *a, char **data, size_t len)
{
	struct file_upload *h = file_handle_get(call, a->handle);
	struct file_handle_job *j;
	int64_t off, end;
	int r;

	if (!h)
		return 0;
	if (a->path || a->append || a->truncate) {
		call_error(call, GL_RPC_INVALID_PARAMS,
			"with a handle, only data and offset are allowed", NULL);
		return 0;
	}
	if (h->closing) {
		call_error(call, GL_RPC_LIMIT, "a close of this handle is running", NULL);
		return 0;
	}
	off = a->offset >= 0 ? a->offset : h->next_off;
	if (__builtin_add_overflow(off, (int64_t)len, &end)) {
		call_error(call, GL_RPC_INVALID_PARAMS, "offset too large", NULL);
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->h = file_handle_ref(h);
	h->writes++;
	j->data = TAKE_PTR(*data);
	j->len = len;
	j->off = off;
	if (end > h->next_off)
		h->next_off = end;
	r = worker_call(call, -1, file_handle_write_run, file_handle_write_done, j,
		file_handle_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* A write by path (not into an upload handle), on a worker thread: the
 * data (j->buf, j->got bytes) is already decoded. */
static void file_write_run(void *p)
{
	struct file_job *j = p;
	int r;

	if (file_frozen_at(j->path)) {
		file_job_fail(j, EBUSY, FILE_FROZEN_MSG);
		return;
	}
	if (!j->append && j->offset < 0) {
		/* The whole file: written aside, renamed into place when complete. */
		struct file_tmp t;

		r = file_tmp_open(j->path, (int)j->mode, j->create, j->umask, &t);
		if (r < 0) {
			file_job_fail(j, -r, "cannot create the file");
			return;
		}
		r = file_write_all(t.fd, j->buf, j->got, 0);
		if (r >= 0)
			r = file_tmp_commit(&t);
		file_tmp_discard(&t);
		if (r < 0)
			file_job_fail(j, -r, "cannot write the file");
	} else {
		int flags = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
		_cleanup_close_ int fd = -1;

		if (j->create)
			flags |= O_CREAT;
		if (j->append)
			flags |= O_APPEND;
		fd = open(j->path, flags, j->mode >= 0 ? (mode_t)j->mode : 0666);
		if (fd < 0) {
			file_job_fail(j, errno, "cannot open");
			return;
		}
		r = file_write_all(fd, j->buf, j->got, j->append ? -1 : j->offset);
		if (r >= 0 && j->truncate && !j->append &&
			ftruncate(fd, (off_t)(j->offset + (int64_t)j->got)) < 0)
			r = -errno;
		if (r < 0)
			file_job_fail(j, -r, "cannot write");
	}
}

static void file_write_done(struct call *call, void *p)
{
	struct file_job *j = p;
	struct json_object *res;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	res = json_object_new_object();
	json_object_object_add(res, "written", json_object_new_int64((int64_t)j->got));
	call_reply(call, res);
}

static int file_write(struct call *call, void *params)
{
	struct file_write_params *a = params;
	_cleanup_free_ char *data = NULL;
	struct file_job *j;
	int64_t end;
	size_t len;

	if (gl_base64_decode(a->data, strlen(a->data), (void **)&data, &len) < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "data is not valid base64", NULL);
		return 0;
	}
	if (a->handle > 0)
		return file_write_handle(call, a, &data, len);
	if (!a->path) {
		call_error(call, GL_RPC_INVALID_PARAMS, "path or handle is required", NULL);
		return 0;
	}
	if (a->append && a->offset >= 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "offset and append exclude each other", NULL);
		return 0;
	}
	if (a->offset >= 0 && __builtin_add_overflow(a->offset, (int64_t)len, &end)) {
		call_error(call, GL_RPC_INVALID_PARAMS, "offset too large", NULL);
		return 0;
	}
	j = file_job_new(a->path, NULL);
	if (!j)
		return -ENOMEM;
	j->buf = TAKE_PTR(data);
	j->got = len;
	j->offset = a->offset;
	j->mode = a->mode;
	j->append = a->append;
	j->create = a->create;
	j->truncate = a->truncate;
	j->umask = file_umask();
	return file_job_submit(call, j, file_write_run, file_write_done);
}

/* --- remove, mkdir, rename --- */

static void file_remove_run(void *p)
{
	struct file_job *j = p;

	if (file_frozen_at(j->path)) {
		file_job_fail(j, EBUSY, FILE_FROZEN_MSG);
		return;
	}
	if (unlink(j->path) < 0 && (errno != EISDIR || rmdir(j->path) < 0))
		file_job_fail(j, errno, "cannot remove");
}

static int file_remove(struct call *call, void *params)
{
	struct file_path_params *a = params;

	return file_job_submit(call, file_job_new(a->path, NULL), file_remove_run,
		file_job_done_empty);
}

struct file_mkdir_params {
	const char *path;
	int64_t mode;
	bool parents;
};

static void file_mkdir_run(void *p)
{
	struct file_job *j = p;
	mode_t mode = j->mode >= 0 ? (mode_t)j->mode : 0777;

	if (file_frozen_at(j->path)) {
		file_job_fail(j, EBUSY, FILE_FROZEN_MSG);
		return;
	}
	if (j->parents) {
		/* j->path is our own copy: cut it at each '/' in turn. */
		for (char *s = j->path + 1; *s; s++) {
			if (*s != '/')
				continue;
			*s = 0;
			if (mkdir(j->path, 0777) < 0 && errno != EEXIST) {
				file_job_fail(j, errno, "cannot create a parent directory");
				return;
			}
			*s = '/';
		}
	}
	if (mkdir(j->path, mode) < 0) {
		int e = errno;
		struct stat st;
		bool is_dir = e == EEXIST && stat(j->path, &st) == 0 && S_ISDIR(st.st_mode);
		if (!(is_dir && j->parents))
			file_job_fail(j, e, "cannot create the directory");
	} else if (j->mode >= 0 && chmod(j->path, mode) < 0)
		j->chmod_failed = true;
}

static int file_mkdir(struct call *call, void *params)
{
	struct file_mkdir_params *a = params;
	struct file_job *j;

	j = file_job_new(a->path, NULL);
	if (j) {
		j->mode = a->mode;
		j->parents = a->parents;
	}
	return file_job_submit(call, j, file_mkdir_run, file_job_done_empty);
}

struct file_rename_params {
	const char *from;
	const char *to;
};

static void file_rename_run(void *p)
{
	struct file_job *j = p;

	if (file_frozen_at(j->path) || file_frozen_at(j->path2)) {
		file_job_fail(j, EBUSY, FILE_FROZEN_MSG);
		return;
	}
	if (rename(j->path, j->path2) < 0)
		file_job_fail(j, errno, "cannot rename");
}

static int file_rename(struct call *call, void *params)
{
	struct file_rename_params *a = params;

	return file_job_submit(call, file_job_new(a->from, a->to), file_rename_run,
		file_job_done_empty);
}

/* --- symlink --- */

struct file_symlink_params {
	const char *path;
	const char *target;
};

/* A symbolic link at path pointing to target (stored as given, not resolved). */
static void file_symlink_run(void *p)
{
	struct file_job *j = p;

	if (file_frozen_at(j->path)) {
		file_job_fail(j, EBUSY, FILE_FROZEN_MSG);
		return;
	}
	if (symlink(j->path2, j->path) < 0)
		file_job_fail(j, errno, "cannot create the symbolic link");
}

static int file_symlink(struct call *call, void *params)
{
	struct file_symlink_params *a = params;

	return file_job_submit(call, file_job_new(a->path, a->target), file_symlink_run,
		file_job_done_empty);
}

/* --- sha256 --- */

/* file.sha256 hashes in steps of FILE_SHA256_STEP bytes, each step (the open
 * first) a job on a worker with its own fs_timeout_s: a large file never
 * stalls the other connections, a hung one costs only this call. */
#define FILE_SHA256_STEP (1u * 1024 * 1024)

struct file_sha256_job {
	char *path;
	int fd;
	uint64_t done;
	struct sha256_ctx ctx;
	char *buf;
	bool keep; /* handed to the next step: the next free is not the last */
	/* results of a step */
	int err;
	const char *what;
	bool eof;
};

static void file_sha256_free(void *p)
{
	struct file_sha256_job *j = p;

	if (j->keep) {
		j->keep = false; /* the step that ran is done with it, the next one is not */
		return;
	}
	if (j->fd >= 0)
		close(j->fd); /* read-only: no data to flush */
	free(j->path);
	free(j->buf);
	free(j);
}

static void file_sha256_run(void *p)
{
	struct file_sha256_job *j = p;
	struct stat st;
	ssize_t n;

	if (j->fd < 0) {
		j->fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (j->fd < 0 || fstat(j->fd, &st) < 0) {
			j->err = errno;
			j->what = "cannot open";
		} else if (!S_ISREG(st.st_mode)) {
			/* Regular files only: a FIFO or a device could stall or never end. */
			j->err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
			j->what = "only regular files can be hashed";
		}
		return;
	}
	do
		n = read(j->fd, j->buf, FILE_SHA256_STEP);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		j->err = errno;
		j->what = "cannot read";
		return;
	}
	if (n == 0) {
		j->eof = true;
		return;
	}
	sha256_update(&j->ctx, (size_t)n, (const uint8_t *)j->buf);
	j->done += (uint64_t)n;
}

static void file_sha256_done(struct call *call, void *p)
{
	struct file_sha256_job *j = p;
	uint8_t digest[SHA256_DIGEST_SIZE];
	char hex[2 * SHA256_DIGEST_SIZE + 1];
	struct json_object *res;
	int r;

	if (j->err) {
		file_error(call, j->err, j->what);
		return;
	}
	if (!j->eof) {
		if (!call_conn(call))
			return; /* the client went away: stop hashing */
		j->keep = true;
		r = worker_call(call, -1, file_sha256_run, file_sha256_done, j, file_sha256_free);
		if (r < 0 && r != -EAGAIN)
			call_os_error(call, -r, "cannot go on hashing");
		return;
	}
	sha256_digest(&j->ctx, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	res = json_object_new_object();
	json_object_object_add(res, "sha256", json_object_new_string(hex));
	json_object_object_add(res, "size", json_object_new_int64((int64_t)j->done));
	call_reply(call, res);
}

static int file_sha256(struct call *call, void *params)
{
	struct file_path_params *a = params;
	struct file_sha256_job *j;
	int r;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	j->path = strdup(a->path);
	j->buf = malloc(FILE_SHA256_STEP);
	if (!j->path || !j->buf) {
		file_sha256_free(j);
		return -ENOMEM;
	}
	sha256_init(&j->ctx);
	r = worker_call(call, -1, file_sha256_run, file_sha256_done, j, file_sha256_free);
	return r == -EAGAIN ? 0 : r;
}

/* --- the table --- */

static const struct method_param file_stat_params[] = {
	FILE_PATH_PARAM(struct file_path_params, PARAM_MANDATORY),
	{ "follow", PARAM_BOOL, offsetof(struct file_path_params, follow), 0, 0, 1, 0, NULL,
		"follow a final symlink" },
	{},
};

static const struct method_param file_path_only_params[] = {
	FILE_PATH_PARAM(struct file_path_params, PARAM_MANDATORY),
	{},
};

static const struct method_param file_list_params[] = {
	FILE_PATH_PARAM(struct file_list_params, PARAM_MANDATORY),
	{ "limit", PARAM_INT, offsetof(struct file_list_params, limit), 0, 1, FILE_MAX_LIST,
		FILE_MAX_LIST, NULL, "at most this many entries (then truncated is true)" },
	{},
};

static const struct method_param file_read_params[] = {
	FILE_PATH_PARAM(struct file_read_params, PARAM_MANDATORY),
	{ "offset", PARAM_INT, offsetof(struct file_read_params, offset), 0, 0, INT64_MAX / 2, 0,
		NULL, "byte offset" },
	{ "length", PARAM_INT, offsetof(struct file_read_params, length), 0, 0, FILE_MAX_READ,
		FILE_DEFAULT_READ, NULL, "bytes to read at most (default 1 MiB, at most 8 MiB)" },
	{},
};

static const struct method_param file_write_params[] = {
	FILE_PATH_PARAM(struct file_write_params, 0),
	{ "handle", PARAM_INT, offsetof(struct file_write_params, handle), 0, 1, INT64_MAX, 0, NULL,
		"write into a handle from file.open instead of a path" },
	{ "data", PARAM_STRING, offsetof(struct file_write_params, data), PARAM_MANDATORY, 0, 0, 0,
		NULL, "base64 bytes" },
	{ "offset", PARAM_INT, offsetof(struct file_write_params, offset), 0, 0, INT64_MAX / 2, -1,
		NULL, "write in place at this offset (default: replace the whole file)" },
	{ "append", PARAM_BOOL, offsetof(struct file_write_params, append), 0, 0, 1, 0, NULL,
		"append in place" },
	{ "create", PARAM_BOOL, offsetof(struct file_write_params, create), 0, 0, 1, 1, NULL,
		"create the file if missing (default true)" },
	{ "mode", PARAM_INT, offsetof(struct file_write_params, mode), 0, 0, 07777, -1, NULL,
		"permission bits of a created or replaced file" },
	{ "truncate", PARAM_BOOL, offsetof(struct file_write_params, truncate), 0, 0, 1, 0, NULL,
		"with offset: cut the file after the written bytes" },
	{},
};

static const struct method_param file_open_params[] = {
	FILE_PATH_PARAM(struct file_open_params, PARAM_MANDATORY),
	{ "mode", PARAM_INT, offsetof(struct file_open_params, mode), 0, 0, 07777, -1, NULL,
		"permission bits (default: those of the file replaced, or 0666 & ~umask)" },
	{ "create", PARAM_BOOL, offsetof(struct file_open_params, create), 0, 0, 1, 1, NULL,
		"create the file if missing (default true)" },
	{},
};

static const struct method_param file_close_params[] = {
	{ "handle", PARAM_INT, offsetof(struct file_close_params, handle), PARAM_MANDATORY, 1,
		INT64_MAX, 0, NULL, "handle from file.open" },
	{ "abort", PARAM_BOOL, offsetof(struct file_close_params, abort), 0, 0, 1, 0, NULL,
		"discard the upload instead of renaming it into place" },
	{ "sync", PARAM_BOOL, offsetof(struct file_close_params, sync), 0, 0, 1, 0, NULL,
		"fsync before renaming" },
	{},
};

static const struct method_param file_mkdir_params[] = {
	FILE_PATH_PARAM(struct file_mkdir_params, PARAM_MANDATORY),
	{ "mode", PARAM_INT, offsetof(struct file_mkdir_params, mode), 0, 0, 07777, -1, NULL,
		"permission bits (default 0777 & ~umask)" },
	{ "parents", PARAM_BOOL, offsetof(struct file_mkdir_params, parents), 0, 0, 1, 0, NULL,
		"create missing parents; an existing directory is fine" },
	{},
};

static const struct method_param file_rename_params[] = {
	{ "from", PARAM_STRING, offsetof(struct file_rename_params, from), PARAM_MANDATORY, 0,
		PATH_MAX, 0, NULL, "existing path" },
	{ "to", PARAM_STRING, offsetof(struct file_rename_params, to), PARAM_MANDATORY, 0, PATH_MAX,
		0, NULL, "new path (replaced if it exists)" },
	{},
};

static const struct method_param file_symlink_params_table[] = {
	FILE_PATH_PARAM(struct file_symlink_params, PARAM_MANDATORY),
	{ "target", PARAM_STRING, offsetof(struct file_symlink_params, target), PARAM_MANDATORY, 0,
		PATH_MAX, 0, NULL, "what the link points to, stored as given" },
	{},
};

#define FILE_EMPTY_RESULT "{\"type\":\"object\"}"

const struct method file_methods[] = {
	{ "file.stat", "Type, size, mode, owner and times of a path", file_stat_params,
		sizeof(struct file_path_params), file_stat, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"type\":{\"type\":\"string\"},\"size\":"
		"{\"type\":\"integer\"},\"mode\":{\"type\":\"integer\"}}}" },
	{ "file.list", "Entries of a directory with types and sizes", file_list_params,
		sizeof(struct file_list_params), file_list, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"entries\":{\"type\":\"array\"},"
		"\"truncated\":{\"type\":\"boolean\"}}}" },
	{ "file.read", "Read bytes of a file (base64)", file_read_params,
		sizeof(struct file_read_params), file_read, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"data\":{\"type\":\"string\","
		"\"contentEncoding\":\"base64\"},\"eof\":{\"type\":\"boolean\"}}}" },
	{ "file.write", "Write a whole file atomically, in place at an offset, or into a handle",
		file_write_params, sizeof(struct file_write_params), file_write, METHOD_WRITES,
		"{\"type\":\"object\",\"properties\":{\"written\":{\"type\":\"integer\"}}}" },
	{ "file.open", "Start a chunked upload; the file appears only at file.close",
		file_open_params, sizeof(struct file_open_params), file_open, METHOD_WRITES,
		"{\"type\":\"object\",\"properties\":{\"handle\":{\"type\":\"integer\"}}}" },
	{ "file.close", "Finish a chunked upload (rename into place) or abort it",
		file_close_params, sizeof(struct file_close_params), file_close, METHOD_WRITES,
		"{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\"}}}" },
	{ "file.remove", "Remove a file or an empty directory", file_path_only_params,
		sizeof(struct file_path_params), file_remove, METHOD_WRITES, FILE_EMPTY_RESULT },
	{ "file.mkdir", "Create a directory", file_mkdir_params, sizeof(struct file_mkdir_params),
		file_mkdir, METHOD_WRITES, FILE_EMPTY_RESULT },
	{ "file.rename", "Rename a path", file_rename_params, sizeof(struct file_rename_params),
		file_rename, METHOD_WRITES, FILE_EMPTY_RESULT },
	{ "file.symlink", "Create a symbolic link", file_symlink_params_table,
		sizeof(struct file_symlink_params), file_symlink, METHOD_WRITES, FILE_EMPTY_RESULT },
	{ "file.sha256", "SHA-256 of a regular file (hex), hashed without blocking the agent",
		file_path_only_params, sizeof(struct file_path_params), file_sha256, 0,
		"{\"type\":\"object\",\"properties\":{\"sha256\":{\"type\":\"string\"},"
		"\"size\":{\"type\":\"integer\"}}}" },
	{},
};

void methods_file_register(void)
{
	file_process_umask = umask(0);
	umask(file_process_umask);
	method_register(file_methods);
	method_register(file_channel_methods);
}
