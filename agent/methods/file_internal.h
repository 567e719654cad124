/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the file.* methods share between agent/methods/file.c (stat, list,
 * read, write, handles) and file_channel.c (file.channel, file.attach): the
 * temporary file renamed into place, the open job, errors. Internal to the
 * file family. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "method.h"

struct event_base;

#define FILE_FROZEN_MSG "the filesystem is frozen"

#define FILE_PATH_PARAM(st, req)                                                              \
	{                                                                                     \
		"path", PARAM_STRING, offsetof(st, path), req, 0, PATH_MAX, 0, NULL, "a path" \
	}

struct file_tmp {
	int fd;
	char *path;    /* final name */
	char *tmpname; /* hidden name when O_TMPFILE was not available */
	mode_t mode;
	bool chown;
	uid_t uid;
	gid_t gid;
};

/* file.open and file.channel: the file opened on a worker. */
struct file_open_job {
	struct event_base *base;
	char *path;
	int mode;
	bool create, upload;
	mode_t umask;
	int64_t size; /* upload channel: announced */
	/* results */
	int err;
	bool frozen;
	struct file_tmp tmp; /* upload; a download's file is tmp.fd */
	struct stat st;      /* download */
};

/* Answers the errno errnum (either sign) as -32000, or -32002 for ENOENT,
 * with `what` as the message. */
void file_error(struct call *call, int errnum, const char *what);

/* Whether path lies on a filesystem the agent froze. stat()s the path: on a worker only. */
bool file_frozen_at(const char *path);

/* The process's umask, read once at start-up. */
mode_t file_umask(void);

/* Closes and unlinks what is left of t, frees its names (blocking: on a worker
 * or where t holds only memory). */
void file_tmp_discard(struct file_tmp *t);

/* Close and unlink what is left of t (taken) on a worker. */
void file_tmp_discard_later(struct event_base *base, struct file_tmp *t);

/* Opens a temporary file beside path that file_tmp_commit() renames over it.
 * mode < 0: keep the replaced file's mode and owner, or 0666 & ~um for a new
 * one. -EISDIR, -EINVAL (not a regular file), -ENOENT (!create), -errno. */
int file_tmp_open(const char *path, int mode, bool create, mode_t um, struct file_tmp *ret);

/* Mode, owner, then the rename into place; -errno of the step that failed. */
int file_tmp_commit(struct file_tmp *t);

/* All of len bytes at offset (< 0: at the file position), retrying EINTR; -errno. */
int file_write_all(int fd, const char *data, size_t len, int64_t offset);

struct file_open_job *file_open_job_new(struct call *call, const char *path);

/* worker_call()'s free function: what done() did not take is discarded on a worker. */
void file_open_job_free(void *p);

extern const struct method file_channel_methods[];
