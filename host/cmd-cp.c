/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink cp [-r] [--verify] [--quiet] SRC DST, with guest:PATH on one side.
 * Chunks travel as base64 with several requests in flight: uploads through
 * file.open / file.write {handle, offset} / file.close (the file appears in
 * the guest only when complete), downloads through file.read {offset,
 * length} into a temporary file renamed into place; or raw over a side
 * channel (file.channel + file.attach). The mode is kept; -r copies trees
 * (directories, files, symlinks as links) both ways; --verify compares
 * SHA-256 of both ends (file.sha256 in the guest, nettle here). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <nettle/sha2.h>

#include "base64.h"
#include "cmd.h"
#include "deadline.h"
#include "guestlink/address.h"
#include "guestlink/jsonrpc.h"
#include "guestlink/stream.h"
#include "macro.h"
#include "cp.h"
#include "progress.h"

#define CP_CHUNK (1024 * 1024)
#define CP_WINDOW 8
#define CP_TICK_MS 250

struct cp {
	struct cp_total *tot;
	struct cmd_ctx *ctx;
	struct event_base *base;
	struct gl_client *client;
	bool upload, exact;
	char *local, *remote, *tmp;
	int fd;
	mode_t mode;
	uint64_t size;     /* bytes to move (download: as stat said; 0 = read to eof) */
	uint64_t next_off; /* next chunk to request */
	uint64_t moved;    /* bytes acknowledged */
	uint64_t end;      /* download: where eof was seen */
	bool eof, failed, done;
	unsigned inflight;
	int64_t handle;
	bool channel; /* raw side channel (file.channel + file.attach) */
	char token[65];
	/* The side channel's connection, dialed on a thread while file.stat
	 * and file.channel are answered: dial_fd (-errno if it failed) and
	 * dial_pid once dial_thread is joined. */
	bool dialing;
	pthread_t dial_thread;
	struct gl_address dial_addr;
	int dial_fd;
	pid_t dial_pid;
	int status;
};

struct cp_req {
	struct cp *cp;
	uint64_t off;
	size_t len;
};

static void cp_draw(struct cp *cp, bool final)
{
	progress_update(&cp->tot->prog, cp->tot->base + cp->moved, final);
}

/* Report once. `what` is the method for a call about the guest file (then
 * the message names guest:PATH), or a local path or step for a local failure. */
static void cp_fail(struct cp *cp, int status, const char *what, int r, const struct gl_error *e)
{
	if (!cp->failed) {
		progress_clear(&cp->tot->prog);
		if ((r == -EREMOTEIO && e) || strncmp(what, "file.", 5) == 0) {
			char object[4096];

			snprintf(object, sizeof(object), CP_PREFIX "%s", cp->remote);
			cmd_report_call_error(cp->ctx, what, object, r, e);
		} else
			cmd_error_errno(cp->ctx, status, r, what);
	}
	cp->failed = true;
	cp->status = cp->status ?: status;
}

static void cp_stop(struct cp *cp)
{
	cp->done = true;
	event_base_loopbreak(cp->base);
}

static void cp_complete(struct cp *cp)
{
	cp_stop(cp);
}

/* --- upload --- */

static void cp_upload_pump(struct cp *cp);
static int cp_channel_call(struct cp *cp, struct json_object *params, bool quiet);
static void cp_dial_start(struct cp *cp);

static void cp_on_close(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct cp *cp = userdata;

	if (status < 0) {
		cp_fail(cp, CMD_EXIT_FAILED, "file.close", status, error);
		cp_stop(cp);
		return;
	}
	if (cp->failed) {
		cp_stop(cp);
		return;
	}
	cp_draw(cp, true);
	cp_complete(cp);
}

static void cp_upload_close(struct cp *cp)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "handle", json_object_new_int64(cp->handle));
	if (cp->failed)
		json_object_object_add(p, "abort", json_object_new_boolean(true));
	if (gl_client_call_async(cp->client, "file.close", p, cp->ctx->timeout_ms, cp_on_close, cp) <
		0) {
		cp_fail(cp, CMD_EXIT_UNREACHABLE, "file.close", -ECONNRESET, NULL);
		cp_stop(cp);
	}
}

static void cp_on_write(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct cp_req *req = userdata;
	struct cp *cp = req->cp;

	cp->inflight--;
	if (status < 0)
		cp_fail(cp, status == -EREMOTEIO ? CMD_EXIT_FAILED : CMD_EXIT_UNREACHABLE,
			"file.write", status, error);
	else
		cp->moved += req->len;
	free(req);
	if (status < 0 && status != -EREMOTEIO) {
		if (cp->inflight == 0)
			cp_stop(cp); /* the connection is gone: nothing to close */
		return;
	}
	cp_draw(cp, false);
	cp_upload_pump(cp);
}

static void cp_upload_pump(struct cp *cp)
{
	static char buf[CP_CHUNK];
	static char b64[GL_BASE64_ENCODED_LEN(CP_CHUNK) + 1];

	while (!cp->failed && cp->inflight < CP_WINDOW && cp->next_off < cp->size) {
		size_t want = cp->size - cp->next_off < CP_CHUNK ? (size_t)(cp->size - cp->next_off)
								 : CP_CHUNK;
		struct cp_req *req;
		struct json_object *p;
		ssize_t n;

		n = pread(cp->fd, buf, want, (off_t)cp->next_off);
		if (n <= 0) {
			cp_fail(cp, CMD_EXIT_FAILED, cp->local, n < 0 ? -errno : -EIO, NULL);
			break;
		}
		req = calloc(1, sizeof(*req));
		if (!req) {
			cp_fail(cp, CMD_EXIT_FAILED, "cp", -ENOMEM, NULL);
			break;
		}
		req->cp = cp;
		req->off = cp->next_off;
		req->len = (size_t)n;
		gl_base64_encode_to(buf, (size_t)n, b64);
		p = json_object_new_object();
		json_object_object_add(p, "handle", json_object_new_int64(cp->handle));
		json_object_object_add(p, "offset", json_object_new_int64((int64_t)req->off));
		json_object_object_add(p, "data",
			json_object_new_string_len(b64, (int)GL_BASE64_ENCODED_LEN((size_t)n)));
		if (gl_client_call_async(cp->client, "file.write", p, cp->ctx->timeout_ms,
			    cp_on_write, req) < 0) {
			free(req);
			cp_fail(cp, CMD_EXIT_UNREACHABLE, "file.write", -ECONNRESET, NULL);
			break;
		}
		cp->inflight++;
		cp->next_off += (uint64_t)n;
	}
	if (cp->inflight == 0 && (cp->failed || cp->next_off >= cp->size))
		cp_upload_close(cp);
}

/* --- download --- */

static void cp_download_pump(struct cp *cp);

/* Size, mode and rename into place; on failure the temporary file goes. */
static void cp_download_finish_sync(struct cp *cp)
{
	uint64_t size = cp->eof ? cp->end : cp->next_off;

	if (!cp->failed && ftruncate(cp->fd, (off_t)size) < 0)
		cp_fail(cp, CMD_EXIT_FAILED, cp->tmp, -errno, NULL);
	if (!cp->failed && fchmod(cp->fd, cp->mode) < 0)
		cp_fail(cp, CMD_EXIT_FAILED, cp->tmp, -errno, NULL);
	if (!cp->failed && rename(cp->tmp, cp->local) < 0)
		cp_fail(cp, CMD_EXIT_FAILED, cp->local, -errno, NULL);
	if (cp->failed)
		return; /* the caller unlinks cp->tmp */
	free(cp->tmp);
	cp->tmp = NULL;
}

static void cp_download_finish(struct cp *cp)
{
	cp_download_finish_sync(cp);
	if (cp->failed) {
		unlink(cp->tmp);
		cp_stop(cp);
		return;
	}
	cp_draw(cp, true);
	cp_complete(cp);
}

static void cp_on_read(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct cp_req *req = userdata;
	struct cp *cp = req->cp;

	cp->inflight--;
	if (status < 0)
		cp_fail(cp, status == -EREMOTEIO ? CMD_EXIT_FAILED : CMD_EXIT_UNREACHABLE,
			"file.read", status, error);
	else if (!cp->failed) {
		long n;
		size_t len;
		const char *text = cmd_get_string(result, "data");
		bool eof = false;

		if (!text || !cmd_get_bool(result, "eof", &eof)) {
			cp_fail(cp, CMD_EXIT_FAILED, "file.read", -EPROTO, NULL);
			goto next;
		}
		len = strlen(text);
		{
			static char buf[CP_CHUNK + 3];
			n = len / 4 * 3 <= sizeof(buf) ? gl_base64_decode_to(text, len, buf)
						       : -EINVAL;
			if (n < 0 || (size_t)n > req->len) {
				cp_fail(cp, CMD_EXIT_FAILED, "file.read", -EPROTO, NULL);
				goto next;
			}
			if (n > 0 && pwrite(cp->fd, buf, (size_t)n, (off_t)req->off) != n) {
				cp_fail(cp, CMD_EXIT_FAILED, cp->tmp, -errno, NULL);
				goto next;
			}
		}
		cp->moved += (uint64_t)n;
		if (eof || (size_t)n < req->len) {
			uint64_t end = req->off + (uint64_t)n;
			if (!cp->eof || end < cp->end)
				cp->end = end;
			cp->eof = true;
		} else if (cp->size == 0 && req->off + (uint64_t)n >= cp->next_off)
			cp->next_off = req->off + (uint64_t)n; /* sequential: read on */
	}
next:
	free(req);
	cp_draw(cp, false);
	cp_download_pump(cp);
}

static void cp_download_pump(struct cp *cp)
{
	/* Without a size (e.g. /proc files) read one chunk at a time until eof. */
	unsigned window = cp->size > 0 ? CP_WINDOW : 1;

	while (!cp->failed && !cp->eof && cp->inflight < window &&
		(cp->size == 0 || cp->next_off < cp->size)) {
		struct cp_req *req = calloc(1, sizeof(*req));
		struct json_object *p;

		if (!req) {
			cp_fail(cp, CMD_EXIT_FAILED, "cp", -ENOMEM, NULL);
			break;
		}
		req->cp = cp;
		req->off = cp->next_off;
		req->len = CP_CHUNK;
		p = json_object_new_object();
		json_object_object_add(p, "path", json_object_new_string(cp->remote));
		json_object_object_add(p, "offset", json_object_new_int64((int64_t)req->off));
		json_object_object_add(p, "length", json_object_new_int64(CP_CHUNK));
		if (gl_client_call_async(cp->client, "file.read", p, cp->ctx->timeout_ms,
			    cp_on_read, req) < 0) {
			free(req);
			cp_fail(cp, CMD_EXIT_UNREACHABLE, "file.read", -ECONNRESET, NULL);
			break;
		}
		cp->inflight++;
		if (cp->size > 0)
			cp->next_off += CP_CHUNK;
		else
			break; /* the answer moves next_off */
	}
	if (cp->inflight == 0 && !cp->done)
		cp_download_finish(cp);
}

/* --- setup --- */

static char *cp_join(const char *dir, const char *path)
{
	const char *base = strrchr(path, '/');
	char *r;

	base = base ? base + 1 : path;
	if (asprintf(&r, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", base) < 0)
		return NULL;
	return r;
}

static void cp_on_conn_close(struct gl_client *c, int error, void *userdata)
{
	struct cp *cp = userdata;

	if (!cp->done) {
		cp_fail(cp, CMD_EXIT_UNREACHABLE, cp->ctx->address,
			error ? -abs(error) : -ECONNRESET, NULL);
		cp_stop(cp);
	}
}

static int cp_sync_call(struct cp *cp, const char *method, struct json_object *params,
	struct json_object **ret, bool quiet_enoent)
{
	struct gl_error e = { 0 };
	int r;

	r = gl_client_call(cp->client, method, params, cp->ctx->timeout_ms, ret, &e);
	if (r == -EREMOTEIO && quiet_enoent && e.code == GL_RPC_NO_SUCH_OBJECT)
		return -ENOENT;
	if (r < 0) {
		cp_fail(cp, r == -EREMOTEIO ? CMD_EXIT_FAILED : CMD_EXIT_UNREACHABLE, method, r, &e);
		return r;
	}
	return 0;
}

static int cp_prepare_upload(struct cp *cp)
{
	struct json_object *p, *res = NULL;
	struct stat st;
	int r;

	cp->fd = open(cp->local, O_RDONLY | O_CLOEXEC);
	if (cp->fd < 0 || fstat(cp->fd, &st) < 0) {
		cp_fail(cp, CMD_EXIT_FAILED, cp->local, -errno, NULL);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		cmd_error(cp->ctx, CMD_EXIT_USAGE,
			"%s: Is a directory (use -r to copy directories)", cp->local);
		cp->failed = true;
		cp->status = CMD_EXIT_USAGE;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		cp_fail(cp, CMD_EXIT_USAGE, cp->local, -EINVAL, NULL);
		return -1;
	}
	cp->size = (uint64_t)st.st_size;
	cp->mode = st.st_mode & 07777;

	cp_dial_start(cp);
	/* A directory as destination gets the source's name inside it (not for
	 * the files of a tree: their paths are exact). */
	p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(cp->remote));
	json_object_object_add(p, "follow", json_object_new_boolean(true));
	r = cp->exact ? -ENOENT : cp_sync_call(cp, "file.stat", p, &res, true);
	if (cp->exact)
		json_object_put(p);
	if (r < 0 && r != -ENOENT)
		return -1;
	if (!cp->exact && ((r == 0 && cmd_get_string(res, "type") &&
				   strcmp(cmd_get_string(res, "type"), "directory") == 0) ||
				  cp->remote[strlen(cp->remote) - 1] == '/')) {
		char *joined = cp_join(cp->remote, cp->local);
		free(cp->remote);
		cp->remote = joined;
	}
	json_object_put(res);
	res = NULL;

	if (cp->channel) {
		p = json_object_new_object();
		json_object_object_add(p, "path", json_object_new_string(cp->remote));
		json_object_object_add(p, "direction", json_object_new_string("upload"));
		json_object_object_add(p, "size", json_object_new_int64((int64_t)cp->size));
		json_object_object_add(p, "mode", json_object_new_int((int)cp->mode));
		r = cp_channel_call(cp, p, false);
		if (r != -EOPNOTSUPP)
			return r < 0 ? -1 : 0;
	}

	p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(cp->remote));
	json_object_object_add(p, "mode", json_object_new_int((int)cp->mode));
	if (cp_sync_call(cp, "file.open", p, &res, false) < 0)
		return -1;
	if (!cmd_get_int64(res, "handle", &cp->handle)) {
		json_object_put(res);
		cp_fail(cp, CMD_EXIT_FAILED, "file.open", -EPROTO, NULL);
		return -1;
	}
	json_object_put(res);
	return 0;
}

static struct json_object *cp_download_params(struct cp *cp)
{
	struct json_object *p = json_object_new_object();

	json_object_object_add(p, "path", json_object_new_string(cp->remote));
	json_object_object_add(p, "direction", json_object_new_string("download"));
	return p;
}

static int cp_prepare_download(struct cp *cp)
{
	struct json_object *p, *res = NULL;
	int64_t size, mode;
	const char *type;
	struct stat st;
	uint64_t rnd = 0;
	char *dir, *slash;
	bool known = false;
	int r;

	cp_dial_start(cp);
	/* A single file asks for its channel first: the agent opens only a
	 * regular file for one, and its answer has the size and mode file.stat
	 * would give, one round trip fewer. Any error answer goes the way
	 * below, file.stat first, so that the user sees the same errors. (Not
	 * for the files of a tree: one that turns out empty would leave an
	 * unused channel open on the agent until it expires.) */
	if (cp->channel && !cp->exact) {
		r = cp_channel_call(cp, cp_download_params(cp), true);
		if (r == 1)
			known = true;
		else if (r < 0 && r != -EREMOTEIO && r != -EOPNOTSUPP)
			return -1;
	}
	if (known)
		goto local;

	p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(cp->remote));
	json_object_object_add(p, "follow", json_object_new_boolean(true));
	if (cp_sync_call(cp, "file.stat", p, &res, false) < 0)
		return -1;
	type = cmd_get_string(res, "type") ?: "";
	if (strcmp(type, "directory") == 0) {
		json_object_put(res);
		cmd_error(cp->ctx, CMD_EXIT_USAGE,
			CP_PREFIX "%s: Is a directory (use -r to copy directories)", cp->remote);
		cp->failed = true;
		cp->status = CMD_EXIT_USAGE;
		return -1;
	}
	if (strcmp(type, "file") != 0 || !cmd_get_int64(res, "size", &size) || size < 0 ||
		!cmd_get_int64(res, "mode", &mode)) {
		json_object_put(res);
		cmd_error(cp->ctx, CMD_EXIT_USAGE, CP_PREFIX "%s: not a regular file", cp->remote);
		cp->failed = true;
		cp->status = CMD_EXIT_USAGE;
		return -1;
	}
	cp->size = (uint64_t)size;
	/* A guest's mode, never its setuid/setgid bits (cp without -p drops them). */
	cp->mode = (mode_t)mode & 0777;
	json_object_put(res);

local:
	if (!cp->exact && ((stat(cp->local, &st) == 0 && S_ISDIR(st.st_mode)) ||
				  cp->local[strlen(cp->local) - 1] == '/')) {
		char *joined = cp_join(cp->local, cp->remote);
		free(cp->local);
		cp->local = joined;
	}
	dir = strdup(cp->local);
	slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir ? 1 : 0] = 0;
	/* Only a name unlikely to collide (the file is created O_EXCL): when
	 * getrandom() has nothing yet, the pid and the clock do. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = ((unsigned long long)getpid() << 32) ^ (unsigned long long)time(NULL);
	if (asprintf(&cp->tmp, "%s/.%s.guestlink-%016llx", slash ? dir : ".",
		    strrchr(cp->local, '/') ? strrchr(cp->local, '/') + 1 : cp->local,
		    (unsigned long long)rnd) < 0)
		cp->tmp = NULL;
	free(dir);
	if (!cp->tmp) {
		cp_fail(cp, CMD_EXIT_FAILED, "cp", -ENOMEM, NULL);
		return -1;
	}
	cp->fd = open(cp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (cp->fd < 0) {
		/* The user named the destination, not our temporary file. */
		cp_fail(cp, CMD_EXIT_FAILED, cp->local, -errno, NULL);
		free(cp->tmp);
		cp->tmp = NULL;
		return -1;
	}
	/* Files that report no size (/proc) are read by chunks until eof (a
	 * channel asked for above then expires unused on the agent). */
	if (cp->channel && cp->size > 0) {
		r = known ? 0 : cp_channel_call(cp, cp_download_params(cp), false);
		if (r != -EOPNOTSUPP)
			return r < 0 ? -1 : 0;
	}
	cp->channel = false;
	return 0;
}

/* --- raw side channel --- */

static void *cp_dial_run(void *userdata)
{
	struct cp *cp = userdata;

	cp->dial_fd = gl_address_open(&cp->dial_addr, cp->ctx->timeout_ms, &cp->dial_pid);
	return NULL;
}

/* Dial the side channel's connection on a thread (all signals blocked: they
 * stay the main thread's), so that its connect and CONNECT handshake overlap
 * the round trips of file.stat and file.channel instead of adding one. Not
 * for exec: addresses, whose transport command would be started for nothing
 * whenever no channel follows. Without a thread the channel dials later. */
static void cp_dial_start(struct cp *cp)
{
	sigset_t all, old;

	if (!cp->channel || cp->dialing || gl_address_parse(cp->ctx->address, &cp->dial_addr) < 0 ||
		cp->dial_addr.type == GL_ADDRESS_EXEC)
		return;
	sigfillset(&all);
	if (pthread_sigmask(SIG_BLOCK, &all, &old) != 0)
		return;
	cp->dialing = pthread_create(&cp->dial_thread, NULL, cp_dial_run, cp) == 0;
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Whether a connection was dialed early; if so, its fd (or -errno) and pid. */
static bool cp_dial_join(struct cp *cp, int *ret_fd, pid_t *ret_pid)
{
	if (!cp->dialing)
		return false;
	(void)pthread_join(cp->dial_thread, NULL);
	cp->dialing = false;
	*ret_fd = cp->dial_fd;
	*ret_pid = cp->dial_pid;
	return true;
}

/* An early connection no channel uses: closed without a request. */
static void cp_dial_drop(struct cp *cp)
{
	int fd;
	pid_t pid;

	if (cp_dial_join(cp, &fd, &pid) && fd >= 0)
		(void)gl_address_close(fd, pid);
}

/* file.channel (takes params): 0 with cp->token set, 1 for a download whose
 * answer also gave the file's size and mode (cp->size, cp->mode set),
 * -EOPNOTSUPP when the agent has no channels (then chunks are used), or
 * another error (reported; when quiet, an error answer is -EREMOTEIO and not
 * reported). */
static int cp_channel_call(struct cp *cp, struct json_object *params, bool quiet)
{
	bool size = false, mode = false;
	struct json_object *res = NULL;
	const char *token;
	int64_t v;
	struct gl_error e = { 0 };
	int r;

	r = gl_client_call(cp->client, "file.channel", params, cp->ctx->timeout_ms, &res, &e);
	if (r == -EREMOTEIO && e.code == GL_RPC_METHOD_NOT_FOUND) {
		cp->channel = false;
		return -EOPNOTSUPP;
	}
	if (r == -EREMOTEIO && quiet)
		return r;
	if (r < 0) {
		cp_fail(cp, r == -EREMOTEIO ? CMD_EXIT_FAILED : CMD_EXIT_UNREACHABLE,
			"file.channel", r, &e);
		return r;
	}
	token = cmd_get_string(res, "token");
	if (!token || strlen(token) >= sizeof(cp->token)) {
		json_object_put(res);
		cp_fail(cp, CMD_EXIT_FAILED, "file.channel", -EPROTO, NULL);
		return -EPROTO;
	}
	snprintf(cp->token, sizeof(cp->token), "%s", token);
	if (!cp->upload && cmd_get_int64(res, "size", &v) && v >= 0) {
		cp->size = (uint64_t)v;
		size = true;
	}
	if (!cp->upload && cmd_get_int64(res, "mode", &v)) {
		cp->mode = (mode_t)v & 0777; /* no setuid/setgid from a guest */
		mode = true;
	}
	json_object_put(res);
	return size && mode ? 1 : 0;
}

/* Wait until the side channel fd is ready for events, for at most -t
 * (ctx->timeout_ms) from now: a peer that stops sending or reading without
 * closing must not hold us forever. Each wait starts its own -t, so a
 * transfer of any length that keeps moving never times out. Redraws the
 * progress line on its ticks. 0, -ETIMEDOUT or -errno. */
static int cp_channel_wait(struct cp *cp, int fd, short events)
{
	int64_t deadline = deadline_from_timeout(cp->ctx->timeout_ms);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int r = poll(&p, 1, deadline_remaining(deadline));

		if (r > 0)
			return 0;
		if (r < 0 && errno == EINTR) {
			cp_draw(cp, false); /* the progress tick: maybe "stalled" */
			continue;
		}
		if (r < 0)
			return -errno;
		if (deadline_remaining(deadline) == 0)
			return -ETIMEDOUT;
	}
}

/* One line from fd, byte by byte: what follows it is raw data, not ours to read. */
static int cp_read_line(struct cp *cp, int fd, char *buf, size_t size)
{
	size_t n = 0;

	while (n + 1 < size) {
		int r = cp_channel_wait(cp, fd, POLLIN);
		ssize_t k;

		if (r < 0)
			return r;
		k = read(fd, buf + n, 1);
		if (k < 0 && errno == EINTR) {
			cp_draw(cp, false); /* the progress tick: maybe "stalled" */
			continue;
		}
		if (k <= 0)
			return k < 0 ? -errno : -ECONNRESET;
		if (buf[n] == '\n') {
			buf[n] = 0;
			return 0;
		}
		n++;
	}
	return -EPROTO;
}

/* A second connection, presented with the token: from its answer on, raw
 * bytes. For an exec: address a second run of the command (*ret_pid, for
 * gl_address_close). */
static int cp_channel_open(struct cp *cp, pid_t *ret_pid)
{
	struct gl_address a;
	struct json_object *ans, *req, *p;
	const char *text;
	char line[4096];
	size_t len;
	pid_t pid;
	int fd, r;

	if (!cp_dial_join(cp, &fd, &pid)) {
		r = gl_address_parse(cp->ctx->address, &a);
		if (r < 0)
			return r;
		fd = gl_address_open(&a, cp->ctx->timeout_ms, &pid);
	}
	if (fd < 0)
		return fd;
	p = json_object_new_object();
	json_object_object_add(p, "token", json_object_new_string(cp->token));
	req = gl_rpc_request_new("file.attach", p, json_object_new_int(1)); /* takes p and the id */
	text = req ? gl_encode_string(req, &len) : NULL;
	/* One write, newline included: from the agent's answer on, every byte
	 * on this socket is file data. */
	if (!text || len + 2 > sizeof(line))
		r = -ENOMEM;
	else {
		memcpy(line, text, len);
		line[len++] = '\n';
		r = send(fd, line, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
	}
	json_object_put(req);
	if (r < 0) {
		gl_address_close(fd, pid);
		return r;
	}
	r = cp_read_line(cp, fd, line, sizeof(line));
	if (r < 0) {
		gl_address_close(fd, pid);
		return r;
	}
	ans = json_tokener_parse(line);
	if (!cmd_get_object(ans, "result")) {
		json_object_put(ans);
		gl_address_close(fd, pid);
		return -EPROTO;
	}
	json_object_put(ans);
	*ret_pid = pid;
	return fd;
}

/* Download by splice(2): socket -> pipe -> file without copying through us.
 * Stops early (the read loop finishes) where splice is not supported. */
static void cp_channel_splice(struct cp *cp, int fd)
{
	int pp[2];

	if (pipe2(pp, O_CLOEXEC) < 0)
		return;
	(void)fcntl(pp[1], F_SETPIPE_SZ, CP_CHUNK); /* fewer round trips; optional */
	while (cp->moved < cp->size) {
		size_t want =
			cp->size - cp->moved < CP_CHUNK ? (size_t)(cp->size - cp->moved) : CP_CHUNK;
		int r = cp_channel_wait(cp, fd, POLLIN);
		ssize_t n;
		loff_t off = (loff_t)cp->moved;

		if (r < 0) {
			cp_fail(cp, CMD_EXIT_FAILED, "download", r, NULL);
			break;
		}
		n = splice(fd, NULL, pp[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_MORE);
		if (n < 0 && errno == EINTR) {
			cp_draw(cp, false); /* the progress tick: maybe "stalled" */
			continue;
		}
		if (n < 0 && cp->moved == 0 && (errno == EINVAL || errno == ENOSYS))
			break; /* not spliceable: plain reads */
		if (n <= 0) {
			cp_fail(cp, CMD_EXIT_FAILED, "download", n < 0 ? -errno : -EPIPE, NULL);
			break;
		}
		for (ssize_t left = n; left > 0;) {
			ssize_t k = splice(pp[0], NULL, cp->fd, &off, (size_t)left, SPLICE_F_MOVE);
			if (k < 0 && errno == EINTR) {
				cp_draw(cp, false); /* the progress tick: maybe "stalled" */
				continue;
			}
			if (k <= 0) {
				cp_fail(cp, CMD_EXIT_FAILED, cp->tmp, k < 0 ? -errno : -EIO, NULL);
				break;
			}
			left -= k;
		}
		if (cp->failed)
			break;
		cp->moved += (uint64_t)n;
		cp_draw(cp, false);
	}
	close(pp[0]);
	close(pp[1]);
}

static void cp_channel_run(struct cp *cp)
{
	static char buf[CP_CHUNK];
	pid_t pid = 0;
	int fd = cp_channel_open(cp, &pid);

	if (fd < 0) {
		cp_fail(cp, CMD_EXIT_UNREACHABLE, "file.attach", fd, NULL);
		return;
	}
	if (cp->upload) {
		char line[256];
		off_t off = 0;
		struct json_object *st;

		while ((uint64_t)off < cp->size) {
			int r = cp_channel_wait(cp, fd, POLLOUT);
			ssize_t n;

			if (r < 0) {
				cp_fail(cp, CMD_EXIT_FAILED, "upload", r, NULL);
				break;
			}
			n = sendfile(fd, cp->fd, &off, cp->size - (uint64_t)off);
			if (n < 0 && errno == EINTR) {
				cp_draw(cp, false); /* the progress tick: maybe "stalled" */
				continue;
			}
			if (n <= 0) {
				cp_fail(cp, CMD_EXIT_FAILED, "upload", n < 0 ? -errno : -EIO, NULL);
				break;
			}
			cp->moved = (uint64_t)off;
			cp_draw(cp, false);
		}
		if (!cp->failed) {
			int r = cp_read_line(cp, fd, line, sizeof(line));
			bool ok = false;

			st = r < 0 ? NULL : json_tokener_parse(line);
			if (!cmd_get_bool(st, "ok", &ok) || !ok)
				cp_fail(cp, CMD_EXIT_FAILED, "upload", -EIO, NULL);
			json_object_put(st);
		}
	} else {
		cp_channel_splice(cp, fd);
		while (!cp->failed && cp->moved < cp->size) {
			size_t want = cp->size - cp->moved < CP_CHUNK
					      ? (size_t)(cp->size - cp->moved)
					      : CP_CHUNK;
			int r = cp_channel_wait(cp, fd, POLLIN);
			ssize_t n;

			if (r < 0) {
				cp_fail(cp, CMD_EXIT_FAILED, "download", r, NULL);
				break;
			}
			n = read(fd, buf, want);
			if (n < 0 && errno == EINTR) {
				cp_draw(cp, false); /* the progress tick: maybe "stalled" */
				continue;
			}
			if (n <= 0) {
				cp_fail(cp, CMD_EXIT_FAILED, "download", n < 0 ? -errno : -EPIPE,
					NULL);
				break;
			}
			if (write(cp->fd, buf, (size_t)n) != n) {
				cp_fail(cp, CMD_EXIT_FAILED, cp->tmp, -errno, NULL);
				break;
			}
			cp->moved += (uint64_t)n;
			cp_draw(cp, false);
		}
		if (!cp->failed) {
			cp->eof = true;
			cp->end = cp->size;
		}
	}
	(void)gl_address_close(fd, pid);
}

/* --- one file --- */

/* SHA-256 of a local file, hex. */
static int cp_local_sha256(const char *path, char out[65])
{
	static uint8_t buf[CP_CHUNK];
	uint8_t digest[SHA256_DIGEST_SIZE];
	struct sha256_ctx h;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	sha256_init(&h);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		if (n == 0)
			break;
		sha256_update(&h, (size_t)n, buf);
	}
	close(fd);
	sha256_digest(&h, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
	return 0;
}

/* Both ends hashed: file.sha256 in the guest (no exec, no sha256sum there). */
static void cp_verify(struct cp *cp)
{
	struct json_object *p = json_object_new_object(), *res = NULL;
	char object[4096], local_sha[65];
	const char *remote_sha;
	int r;

	snprintf(object, sizeof(object), CP_PREFIX "%s", cp->remote);
	json_object_object_add(p, "path", json_object_new_string(cp->remote));
	r = cmd_call_on(cp->ctx, "file.sha256", object, p, &res);
	if (r) {
		cp->failed = true;
		cp->status = r;
		return;
	}
	remote_sha = cmd_get_string(res, "sha256");
	r = cp_local_sha256(cp->local, local_sha);
	if (r < 0)
		cp_fail(cp, CMD_EXIT_FAILED, cp->local, r, NULL);
	else if (!remote_sha || strlen(remote_sha) != 64) {
		progress_clear(&cp->tot->prog);
		cp->status =
			cmd_error(cp->ctx, CMD_EXIT_FAILED, "file.sha256: the answer has no hash");
		cp->failed = true;
	} else if (strcmp(local_sha, remote_sha) != 0) {
		progress_clear(&cp->tot->prog);
		cp->status = cmd_error(cp->ctx, CMD_EXIT_FAILED,
			"%s and " CP_PREFIX
			"%s differ after the copy (sha256 %s here, %s in the guest)",
			cp->local, cp->remote, local_sha, remote_sha);
		cp->failed = true;
	} else
		memcpy(cp->tot->last_sha, local_sha, sizeof(local_sha));
	json_object_put(res);
}

static void cp_on_tick(evutil_socket_t fd, short what, void *userdata)
{
	struct cp *cp = userdata;

	progress_tick(&cp->tot->prog);
}

void cp_file(struct cmd_ctx *ctx, struct cp_total *tot, const struct cp_opts *o, bool upload,
	const char *local, const char *remote, bool exact)
{
	struct cp cp = { .ctx = ctx,
		.tot = tot,
		.fd = -1,
		.channel = o->channel,
		.upload = upload,
		.exact = exact };
	struct event *tick = NULL;
	int r;

	cp.local = strdup(local);
	cp.remote = strdup(remote);
	if (!cp.local || !cp.remote) {
		cp_fail(&cp, CMD_EXIT_FAILED, "cp", -ENOMEM, NULL);
		goto out;
	}
	r = cmd_connect(ctx);
	if (r) {
		cp.failed = true;
		cp.status = r;
		goto out;
	}
	cp.client = ctx->client;
	if ((cp.upload ? cp_prepare_upload(&cp) : cp_prepare_download(&cp)) < 0)
		goto out;
	progress_set_name(&tot->prog,
		exact ? (upload ? cp.remote : cp.local) : (upload ? cp.local : cp.remote));
	if (!tot->prog.total && !o->recursive)
		tot->prog.total = cp.size;
	cp_draw(&cp, true);
	if (cp.channel) {
		progress_ticker_start(&tot->prog);
		cp_channel_run(&cp);
		progress_ticker_stop(&tot->prog);
		if (!cp.upload)
			cp_download_finish_sync(&cp);
		cp.done = true;
	} else {
		cp_dial_drop(&cp); /* dialed before the agent said no channel */
		cp.base = event_base_new();
		if (!cp.base || gl_client_attach(cp.client, cp.base) < 0) {
			cp_fail(&cp, CMD_EXIT_UNREACHABLE, "cannot set up the event loop", -ENOMEM,
				NULL);
			goto out;
		}
		gl_client_set_close_handler(cp.client, cp_on_conn_close, &cp);
		tick = event_new(cp.base, -1, EV_PERSIST, cp_on_tick, &cp);
		if (tick) {
			struct timeval tv = { 0, CP_TICK_MS * 1000 };
			event_add(tick, &tv);
		}
		if (cp.upload)
			cp_upload_pump(&cp);
		else
			cp_download_pump(&cp);
		if (!cp.done)
			event_base_dispatch(cp.base);
		if (!cp.done)
			cp_fail(&cp, CMD_EXIT_FAILED, "cp", -EIO, NULL);
		/* Attached clients take no synchronous calls: the next one reconnects. */
		ctx->client = gl_client_free(ctx->client);
		if (tick)
			event_free(tick);
		event_base_free(cp.base);
		cp.base = NULL;
	}
	if (!cp.failed && o->verify)
		cp_verify(&cp);
out:
	cp_dial_drop(&cp);
	if (cp.tmp)
		unlink(cp.tmp);
	if (cp.fd >= 0)
		close(cp.fd);
	if (cp.failed) {
		tot->failed = true;
		tot->status = tot->status ?: (cp.status ?: CMD_EXIT_FAILED);
	} else {
		tot->files++;
		tot->base += cp.moved;
		free(tot->last_path);
		tot->last_path = strdup(upload ? cp.remote : cp.local);
	}
	free(cp.tmp);
	free(cp.local);
	free(cp.remote);
}

static int cp_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option options[] = { { "recursive", no_argument, NULL, 'r' },
		{ "verify", no_argument, NULL, 'v' }, { "quiet", no_argument, NULL, 'q' },
		{ "no-channel", no_argument, NULL, 'J' }, {} };
	struct cp_opts o = { .channel = true };
	struct cp_total tot = { 0 };
	const char *src, *dst, *local, *remote;
	bool upload, isdir = false;
	char *root = NULL;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc + 1, argv - 1, "+rRvqJ", options, NULL)) >= 0) {
		if (c == 'v')
			o.verify = true;
		else if (c == 'J')
			o.channel = false;
		else if (c == 'q')
			o.quiet = true;
		else if (c == 'r' || c == 'R')
			o.recursive = true;
		else
			return cmd_error(ctx, CMD_EXIT_USAGE, "usage: guestlink cp %s (see --help)",
				cmd_cp_entry.usage);
	}
	if (argc - (optind - 1) != 2)
		return cmd_error(ctx, CMD_EXIT_USAGE, "usage: guestlink cp %s (see --help)",
			cmd_cp_entry.usage);
	src = argv[optind - 1];
	dst = argv[optind];
	if ((strncmp(src, CP_PREFIX, strlen(CP_PREFIX)) == 0) ==
		(strncmp(dst, CP_PREFIX, strlen(CP_PREFIX)) == 0))
		return cmd_error(ctx, CMD_EXIT_USAGE,
			"cp: exactly one of SRC and DST must be guest:PATH");
	upload = strncmp(dst, CP_PREFIX, strlen(CP_PREFIX)) == 0;
	local = upload ? src : dst;
	remote = (upload ? dst : src) + strlen(CP_PREFIX);
	if (!*local || !*remote)
		return cmd_error(ctx, CMD_EXIT_USAGE, "cp: empty path");

	progress_init(&tot.prog, !o.quiet && !ctx->json, 0);
	tot.t0 = tot.prog.t0;
	if (o.recursive) {
		/* -r with a file source is a plain copy. */
		if (upload) {
			struct stat st;
			isdir = stat(local, &st) == 0 && S_ISDIR(st.st_mode);
		} else {
			struct json_object *p = json_object_new_object(), *res = NULL;
			char object[4096];

			snprintf(object, sizeof(object), CP_PREFIX "%s", remote);
			json_object_object_add(p, "path", json_object_new_string(remote));
			json_object_object_add(p, "follow", json_object_new_boolean(true));
			r = cmd_call_on(ctx, "file.stat", object, p, &res);
			if (r)
				return r;
			isdir = cmd_get_string(res, "type") &&
				strcmp(cmd_get_string(res, "type"), "directory") == 0;
			json_object_put(res);
		}
	}
	if (isdir) {
		r = cp_tree_root(ctx, upload, upload ? local : remote, upload ? remote : local,
			&root);
		if (r < 0)
			return r == -ENOMEM ? cmd_error_errno(ctx, CMD_EXIT_FAILED, r, "cp") : -r;
		cp_tree(ctx, &tot, &o, upload, upload ? local : remote, root);
	} else
		cp_file(ctx, &tot, &o, upload, local, remote, false);

	if (!tot.failed) {
		progress_update(&tot.prog, tot.base, true);
		progress_finish(&tot.prog);
	} else
		progress_clear(&tot.prog);
	if (!tot.failed && ctx->json) {
		struct json_object *out = json_object_new_object();

		json_object_object_add(out, "bytes", json_object_new_int64((int64_t)tot.base));
		json_object_object_add(out, "seconds",
			cmd_json_rounded(progress_elapsed(&tot.prog), 3));
		json_object_object_add(out, "path",
			json_object_new_string(root ?: tot.last_path ?: (upload ? remote : local)));
		if (isdir) {
			json_object_object_add(out, "files", json_object_new_int((int)tot.files));
			json_object_object_add(out, "directories",
				json_object_new_int((int)tot.dirs));
			json_object_object_add(out, "symlinks", json_object_new_int((int)tot.links));
		}
		if (o.verify && !isdir)
			json_object_object_add(out, "sha256", json_object_new_string(tot.last_sha));
		else if (o.verify)
			json_object_object_add(out, "verified", json_object_new_int((int)tot.files));
		cmd_print_json(ctx, out);
		json_object_put(out);
	} else if (!tot.failed && o.verify && !o.quiet) {
		if (isdir)
			fprintf(stderr, "sha256 of %u files verified\n", tot.files);
		else
			fprintf(stderr, "sha256 %s verified\n", tot.last_sha);
	}
	free(root);
	free(tot.last_path);
	return tot.failed ? (tot.status ?: CMD_EXIT_FAILED) : CMD_EXIT_OK;
}

const struct cmd_entry cmd_cp_entry = {
	.name = "cp",
	.usage = "[-r] [--verify] [--quiet] [--no-channel] SRC DST  (one side guest:PATH)",
	.summary =
		"copy files or trees to or from the guest (modes kept; --verify compares SHA-256)",
	.options =
		"  -r, --recursive   copy directories: modes kept, symbolic links as links\n"
		"  -v, --verify      compare SHA-256 of both ends afterwards (file.sha256)\n"
		"  -q, --quiet       no progress on the terminal\n"
		"  -J, --no-channel  move data as JSON-RPC chunks, not over a raw side channel\n"
		"Progress (terminal only): name, percentage, bytes, current rate, elapsed, ETA.\n",
	.example = "  guestlink -m vm1 cp ./app.tar guest:/srv/\n"
		   "  guestlink -m vm1 cp -r --verify ./site guest:/var/www/\n"
		   "  guestlink -m vm1 cp -r guest:/var/log ./vm1-logs\n",
	.min_args = 2,
	.max_args = -1,
	.exec = cp_exec,
};
