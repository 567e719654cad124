/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file.channel and file.attach: a whole file's bytes raw on a second
 * connection, an upload renamed into place when complete, a download sent
 * from a mapping of the file by write()s on workers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "config.h"
#include "file_internal.h"
#include "log.h"
#include "methods.h"
#include "worker.h"

/* --- raw data side channel ---
 * file.channel {path, direction, size?, mode?} -> {token, size, mode?}
 * (mode: a download's permission bits; only a regular file opens for a
 * download, so a client needs no file.stat before it); then on a
 * second connection file.attach {token} -> {size}, after which that
 * connection carries the file's bytes raw: exactly `size` bytes from the
 * client for an upload (the agent then answers one JSON line and closes), or
 * from the agent for a download. Tokens are random, single-use and expire. */

#define FILE_CHANNEL_TTL_S 30
#define FILE_CHANNEL_VSOCK_BUF (4u << 20) /* the channel's vsock receive buffer */

/* An attached channel that moves nothing for this long is dropped. */
#define FILE_CHANNEL_IDLE_S 60
#define FILE_MAX_CHANNELS 64
#define FILE_CHANNEL_BUF (1024u * 1024)
/* A download sends from a mapping of the file, this much at a time. */
#define FILE_CHANNEL_WINDOW (4u << 20)
/* The first window is small: its bytes leave after a short MAP_POPULATE, and
 * the next window's read overlaps their trip to the client. */
#define FILE_CHANNEL_FIRST_WINDOW (256u << 10)
/* How long a download's job waits for room in its socket before it hands the
 * wait back to the loop. */
#define FILE_CHANNEL_WAIT_MS 20

struct file_channel {
	struct file_channel *next;
	char token[33];
	bool upload;
	bool attached;
	struct file_tmp tmp; /* upload */
	int fd;              /* download: the file */
	uint64_t size, done;
	struct event_base *base;
	struct event *expire;
	int sock;
	struct event *ev;
	struct evbuffer *early; /* upload: bytes that came behind file.attach */
	/* upload: buf holds file bytes [done, done + len); download: [done - off, done + len - off) */
	char *buf;
	size_t off, len;
	/* upload: a worker job moves buf to the file while the socket waits.
	 * download: a worker job reads the next chunk into `ahead` (file bytes
	 * [rd - ahead_len, rd) once ready) while buf goes to the socket. */
	bool busy, ran;
	ssize_t res; /* the job's bytes read, or 0, or -errno */
	char *ahead;
	size_t ahead_len;
	uint64_t rd;    /* download: where the next chunk read starts */
	bool ahead_end; /* download: the file ended or failed at `rd` */
	/* download from a mapping: file bytes [map_off, map_off + map_len) at
	 * map, which only the kernel reads (write() on a worker); a file that
	 * cannot be mapped goes through buf and ahead (pread) instead. */
	void *map;
	uint64_t map_off;
	size_t map_len;
	bool pread;  /* download: read, not mapped */
	int job_err; /* download from a mapping: how the job stopped (-EAGAIN: the socket is full) */
	bool dying;  /* freed when the running job returns */
};

static struct file_channel *file_channels;
static unsigned file_n_channels;

static void file_channel_unlink(struct file_channel *ch);

/* Pending and attached channels alike are on the list (and count against the limit). */
static void file_channel_free(struct file_channel *ch)
{
	if (ch->busy) {
		/* A download's read-ahead holds ch: it goes when that returns. */
		ch->dying = true;
		if (ch->ev)
			event_del(ch->ev);
		evtimer_del(ch->expire);
		return;
	}
	file_channel_unlink(ch);
	if (ch->ev)
		event_free(ch->ev);
	if (ch->expire)
		event_free(ch->expire);
	if (ch->sock >= 0)
		close(ch->sock);
	/* The file (a download's) or what is left of an upload is closed and
	 * unlinked on a worker: on a hung filesystem even close() can block. */
	if (ch->fd >= 0) {
		file_tmp_discard(&ch->tmp); /* a download's: memory only */
		ch->tmp = (struct file_tmp){ .fd = ch->fd };
		ch->fd = -1;
	}
	file_tmp_discard_later(ch->base, &ch->tmp);
	/* On the loop: a clean read-only mapping is dropped without I/O, and the
	 * mmap_lock it takes is not held by a thread whose fault waits for a hung
	 * filesystem (mm/filemap.c: filemap_fault() drops it before it waits,
	 * maybe_unlock_mmap_for_io(), lock_folio_maybe_drop_mmap()) -- the same
	 * lock any large malloc() on the loop takes. */
	if (ch->map)
		(void)munmap(ch->map, ch->map_len);
	if (ch->early)
		evbuffer_free(ch->early);
	free(ch->buf);
	free(ch->ahead);
	free(ch);
}

static void file_channel_unlink(struct file_channel *ch)
{
	for (struct file_channel **pp = &file_channels; *pp; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			file_n_channels--;
			return;
		}
}

static void file_channel_expire_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct file_channel *ch = userdata;

	if (ch->attached)
		log_debug("Dropping a file channel idle for %ds", FILE_CHANNEL_IDLE_S);
	file_channel_free(ch); /* an upload leaves no file */
}

static void file_channel_progress(struct file_channel *ch)
{
	struct timeval idle = { .tv_sec = FILE_CHANNEL_IDLE_S };

	evtimer_add(ch->expire, &idle);
}

/* The upload's last word: one JSON line, then close. */
static void file_channel_status(struct file_channel *ch, int r)
{
	char line[160];
	int n;

	if (r < 0)
		n = snprintf(line, sizeof(line), "{\"ok\":false,\"errno\":\"%s\",\"size\":%llu}\n",
			gl_errno_name(-r) ?: "EIO", (unsigned long long)ch->done);
	else
		n = snprintf(line, sizeof(line), "{\"ok\":true,\"size\":%llu}\n",
			(unsigned long long)ch->done);
	(void)!write(ch->sock, line, (size_t)n); /* small: fits the socket buffer */
}

/* The end of an upload, on a worker: the freeze check and the rename into
 * place, or (failed) the close and unlink of the temporary file. The status
 * line goes out on the loop once that returned, and the channel is freed
 * then; until then it stays on the list (counted against FILE_MAX_CHANNELS,
 * which bounds these jobs) with its socket and timers quiet. */
struct file_channel_commit {
	struct file_channel *ch;
	struct file_tmp tmp; /* taken from the channel */
	int r;               /* the upload's outcome so far, then the commit's */
	bool ran;
};

static void file_channel_commit_run(void *p)
{
	struct file_channel_commit *j = p;

	if (j->r >= 0 && file_frozen_at(j->tmp.path))
		j->r = -EBUSY;
	if (j->r >= 0)
		j->r = file_tmp_commit(&j->tmp);
	if (j->tmp.fd >= 0 || j->tmp.tmpname) {
		/* Not committed: drop the temporary file here (the paths are freed on the loop). */
		if (j->tmp.fd >= 0)
			j->tmp.fd = (close(j->tmp.fd), -1);
		if (j->tmp.tmpname)
			(void)unlink(j->tmp.tmpname);
		free(j->tmp.tmpname);
		j->tmp.tmpname = NULL;
	}
	j->ran = true;
}

static void file_channel_commit_free(void *p)
{
	struct file_channel_commit *j = p;

	if (!j->ran && j->r >= 0)
		j->r = -ENOMEM;    /* worker_submit() could not take it */
	file_tmp_discard(&j->tmp); /* memory, or the whole file when it never ran */
	file_channel_status(j->ch, j->r);
	file_channel_free(j->ch);
	free(j);
}

/* The upload is over (r < 0: it failed): commit or discard on a worker, then
 * the status line and the channel freed. */
static void file_channel_finish(struct file_channel *ch, int r)
{
	struct file_channel_commit *j = calloc(1, sizeof(*j));

	if (!j) {
		file_channel_status(ch, -ENOMEM);
		file_channel_free(ch); /* the file is discarded on a worker */
		return;
	}
	if (ch->ev)
		event_del(ch->ev);
	if (ch->expire)
		evtimer_del(ch->expire);
	j->ch = ch;
	j->r = r;
	j->tmp = ch->tmp;
	ch->tmp = (struct file_tmp){ .fd = -1 };
	(void)worker_submit(ch->base, file_channel_commit_run, j, file_channel_commit_free);
}

/* The data phase: the loop moves bytes between the socket and ch->buf, a
 * worker between ch->buf and the file (which may sit on a hung NFS or FUSE
 * mount): one job of at most FILE_CHANNEL_BUF bytes at a time per channel.
 * While it runs, the channel's socket event and idle timer are off and
 * nothing frees the channel; the job's free_fn is its completion, on the loop.
 * Downloads too use read+write, never sendfile(): sendfile() reads the file on
 * the loop, and into AF_VSOCK it goes through the kernel's sock_no_sendpage(),
 * one 4 KiB virtio-vsock packet per page, where a write() of a large buffer
 * makes packets of up to 64 KiB (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE; see
 * net/vmw_vsock/af_vsock.c, virtio_transport_common.c). */

static void file_channel_upload_pump(struct file_channel *ch);

static void file_channel_upload_run(void *p)
{
	struct file_channel *ch = p;

	/* A freeze may have come since file.channel: writing would block this thread
	 * until a thaw, and the commit with it. */
	ch->res = file_frozen_at(ch->tmp.path)
			  ? -EBUSY
			  : file_write_all(ch->tmp.fd, ch->buf, ch->len, (int64_t)ch->done);
	ch->ran = true;
}

static void file_channel_upload_done(void *p)
{
	struct file_channel *ch = p;
	int r = ch->ran ? (int)ch->res : -ENOMEM; /* worker_submit() could not take it */

	ch->busy = ch->ran = false;
	if (ch->dying) {
		file_channel_free(ch);
		return;
	}
	if (r < 0) {
		file_channel_finish(ch, r);
		return;
	}
	ch->done += ch->len;
	ch->len = 0;
	file_channel_progress(ch);
	file_channel_upload_pump(ch);
}

/* Fill ch->buf from the early bytes, then the socket; once it is full or holds
 * the rest of the upload, a worker writes it. More than announced is refused
 * (EFBIG) rather than guessed at; an end before `size` bytes leaves no file. */
static void file_channel_upload_pump(struct file_channel *ch)
{
	uint64_t left = ch->size - ch->done;
	int r = 0;

	while (ch->len < FILE_CHANNEL_BUF && ch->len < left) {
		size_t room = FILE_CHANNEL_BUF - ch->len;
		ssize_t n;

		if (ch->early && evbuffer_get_length(ch->early) > 0) {
			n = evbuffer_remove(ch->early, ch->buf + ch->len, room);
			if (n <= 0) {
				r = -ENOMEM;
				break;
			}
		} else {
			n = read(ch->sock, ch->buf + ch->len, room);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (event_add(ch->ev, NULL) < 0)
					file_channel_finish(ch, -ENOMEM);
				return;
			}
			if (n <= 0) {
				r = n < 0 ? -errno : -EPIPE;
				break;
			}
			file_channel_progress(ch);
		}
		if ((uint64_t)n > left - ch->len) {
			r = -EFBIG;
			break;
		}
		ch->len += (size_t)n;
	}
	if (r < 0 || ch->len == 0) {
		file_channel_finish(ch, r); /* failed, or every byte is written */
		return;
	}
	event_del(ch->ev);
	evtimer_del(ch->expire);
	ch->busy = true;
	(void)worker_submit(ch->base, file_channel_upload_run, ch, file_channel_upload_done);
}

static void file_channel_upload_cb(evutil_socket_t fd, short what, void *userdata)
{
	file_channel_upload_pump(userdata);
}

static void file_channel_download_run(void *p)
{
	struct file_channel *ch = p;
	uint64_t left = ch->size - ch->rd;
	ssize_t n = pread(ch->fd, ch->ahead,
		left < FILE_CHANNEL_BUF ? (size_t)left : FILE_CHANNEL_BUF, (off_t)ch->rd);

	ch->res = n < 0 ? -errno : n;
	ch->ran = true;
}

static void file_channel_download_done(void *p);

/* Read the next chunk on a worker unless one is read or waiting already, or
 * the file is all read. 1: a read runs; 0: none needed; < 0: the read could
 * not start, and its done step already ran (ch may be gone). */
static int file_channel_download_read(struct file_channel *ch)
{
	if (ch->busy || ch->ahead_len > 0 || ch->ahead_end || ch->rd == ch->size)
		return 0;
	ch->busy = true;
	return worker_submit(ch->base, file_channel_download_run, ch, file_channel_download_done) < 0
		       ? -ENOMEM
		       : 1;
}

/* buf was all written: the chunk read ahead goes next, the download is over,
 * or the socket waits for the read still running. */
static void file_channel_download_turn(struct file_channel *ch)
{
	char *t;

	if (ch->ahead_len == 0) {
		if (ch->busy) {
			event_del(ch->ev);
			return;
		}
		/* All sent, or the file shrank or failed: the client sees the count. */
		file_channel_free(ch);
		return;
	}
	t = ch->buf;
	ch->buf = ch->ahead;
	ch->ahead = t;
	ch->off = 0;
	ch->len = ch->ahead_len;
	ch->ahead_len = 0;
	if (event_add(ch->ev, NULL) < 0) {
		file_channel_free(ch);
		return;
	}
	file_channel_progress(ch);
	(void)file_channel_download_read(ch);
}

static void file_channel_download_done(void *p)
{
	struct file_channel *ch = p;
	ssize_t n = ch->ran ? ch->res : -ENOMEM;

	ch->busy = ch->ran = false;
	if (ch->dying) {
		file_channel_free(ch);
		return;
	}
	if (n <= 0)
		ch->ahead_end = true;
	else {
		ch->rd += (uint64_t)n;
		ch->ahead_len = (size_t)n;
	}
	if (ch->off == ch->len) /* the socket was waiting for this chunk */
		file_channel_download_turn(ch);
	else
		(void)file_channel_download_read(ch);
}

/* The first chunk of the file is read on a worker. */
static void file_channel_download_next(struct file_channel *ch)
{
	event_del(ch->ev);
	if (file_channel_download_read(ch) == 0)
		file_channel_free(ch); /* an empty file */
}

static void file_channel_map_next(struct file_channel *ch);

static void file_channel_download_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct file_channel *ch = userdata;
	ssize_t n;

	if (!ch->pread) {
		file_channel_map_next(ch);
		return;
	}
	n = write(fd, ch->buf + ch->off, ch->len - ch->off);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		file_channel_free(ch); /* the client left */
		return;
	}
	ch->off += (size_t)n;
	ch->done += (uint64_t)n;
	file_channel_progress(ch);
	if (ch->off == ch->len)
		file_channel_download_turn(ch);
}

/* --- download from a mapping ---
 * A pread() costs the guest one copy per byte (page cache -> buf) before the
 * write() copies it again (buf -> socket buffer); a write() from a mapping of
 * the file has the kernel copy each byte once, page cache -> skb, and under
 * TCG a guest's copy is most of what a MiB costs.
 * That write() reads the file through page faults, which on a hung NFS or
 * FUSE mount wait forever: it runs on a worker, one job per window (or until
 * the non-blocking socket has had no room for FILE_CHANNEL_WAIT_MS), and the
 * loop only waits for EV_WRITE and hands out the next job. mmap() and
 * madvise() are on the worker too. The agent never reads the mapping itself:
 * a file that shrank under it faults past its end, and a kernel-mode copy
 * then gets no SIGBUS but its exception fixup (arch/x86/mm/fault.c: do_sigbus() ->
 * kernelmode_fixup_or_oops()), so the write() returns short and the next one
 * fails (EFAULT; ENOMEM from virtio-vsock, whose packet allocation fails,
 * net/vmw_vsock/virtio_transport_common.c): the channel ends short, as with
 * pread(). The part of the last page the file fills is pread() instead: a
 * mapping shows zeros past a file's end within its last page where a read
 * shows the end. A file that cannot be mapped (ENODEV: sysfs and other
 * special filesystems) falls back to pread() (file_channel_download_*). */

static void file_channel_map_run(void *p);
static void file_channel_map_done(void *p);

static void file_channel_map_next(struct file_channel *ch)
{
	event_del(ch->ev);
	ch->busy = true;
	/* On failure map_done() ran with ran = false: it freed ch. */
	(void)worker_submit(ch->base, file_channel_map_run, ch, file_channel_map_done);
}

/* Writes file bytes [from + at, from + end) to the non-blocking socket until
 * it is all sent, or the socket has had no room for FILE_CHANNEL_WAIT_MS: the
 * bytes sent. *r is how it stopped: 0 (all sent), -EAGAIN (the socket is
 * full), -errno. Waiting here for the peer's credit, not on the loop, saves
 * the guest two thread switches per credit update, each dear under TCG while
 * the window is small; the wait is short so that a stalled client frees the
 * worker soon. */
static size_t file_channel_map_write(int sock, const char *from, size_t at, size_t end, int *r)
{
	size_t sent = 0;

	*r = 0;
	while (at < end) {
		ssize_t n = write(sock, from + at, end - at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = sock, .events = POLLOUT };
			int k = poll(&pfd, 1, FILE_CHANNEL_WAIT_MS);

			if (k > 0 || (k < 0 && errno == EINTR))
				continue;
			errno = k < 0 ? errno : EAGAIN;
		}
		if (n <= 0) {
			*r = n < 0 ? -errno : -EPIPE;
			break;
		}
		at += (size_t)n;
		sent += (size_t)n;
	}
	return sent;
}

/* On a worker, with the channel's socket event off: sends what the socket
 * takes from ch->done on, mapping the next window once the last one is sent.
 * ch->res: the bytes sent; ch->job_err: how it stopped (0: the window or
 * the file's last page is sent); ch->pread: the file cannot be mapped. */
static void file_channel_map_run(void *p)
{
	struct file_channel *ch = p;
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t pos = ch->done, paged = ch->size & ~(page - 1);
	size_t sent = 0;
	int r = 0;

	if (ch->map && pos == ch->map_off + ch->map_len) {
		(void)munmap(ch->map, ch->map_len);
		ch->map = NULL;
	}
	if (!ch->map && pos < paged) {
		size_t window = pos == 0 ? FILE_CHANNEL_FIRST_WINDOW : FILE_CHANNEL_WINDOW;
		size_t len = paged - pos < window ? (size_t)(paged - pos) : window;
		void *m = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, ch->fd, (off_t)pos);

		if (m == MAP_FAILED) {
			ch->job_err = -errno;
			ch->pread = true;
			ch->res = 0;
			ch->ran = true;
			return;
		}
		/* MAP_POPULATE read the window and filled its page table in one
		 * pass, not by a fault per 64 KiB inside the copies (in 512 KiB
		 * steps of MADV_POPULATE_READ between the writes it measured
		 * slower in the VM bench); a file that shrank meanwhile is no
		 * harm, see above. Pages behind go sooner. */
		(void)madvise(m, len, MADV_SEQUENTIAL);
		ch->map = m;
		ch->map_off = pos;
		ch->map_len = len;
	}
	if (ch->map)
		sent = file_channel_map_write(ch->sock, ch->map, (size_t)(pos - ch->map_off),
			ch->map_len, &r);
	else {
		/* The file's last partial page, read into buf (then file bytes
		 * [size - len, size)); a short read: the file shrank. */
		if (ch->len == 0) {
			ssize_t n = pread(ch->fd, ch->buf, (size_t)(ch->size - pos), (off_t)pos);

			if (n < 0)
				r = -errno;
			else if ((uint64_t)n < ch->size - pos)
				r = -ENODATA;
			else {
				ch->len = (size_t)n;
				ch->off = 0;
			}
		}
		if (r == 0) {
			sent = file_channel_map_write(ch->sock, ch->buf, ch->off, ch->len, &r);
			ch->off += sent;
		}
	}
	ch->res = (ssize_t)sent;
	ch->job_err = r;
	ch->ran = true;
}

/* A file that cannot be mapped is read into buf and ahead from where its
 * download stands. */
static void file_channel_map_fallback(struct file_channel *ch)
{
	log_debug_errno(ch->job_err, "Cannot map a file to download, reading it: %m");
	ch->ahead = malloc(FILE_CHANNEL_BUF);
	if (!ch->ahead) {
		file_channel_free(ch);
		return;
	}
	ch->rd = ch->done;
	ch->off = ch->len = 0;
	file_channel_download_next(ch);
}

static void file_channel_map_done(void *p)
{
	struct file_channel *ch = p;
	int r = ch->ran ? ch->job_err : -ENOMEM; /* worker_submit() could not take it */

	if (ch->ran)
		ch->done += (uint64_t)ch->res;
	ch->busy = ch->ran = false;
	if (ch->dying) {
		file_channel_free(ch);
		return;
	}
	if (ch->res > 0)
		file_channel_progress(ch);
	ch->res = 0;
	if (ch->pread) {
		file_channel_map_fallback(ch);
		return;
	}
	if (ch->done == ch->size) {
		file_channel_free(ch); /* every byte is sent */
		return;
	}
	if (r == -EAGAIN) {
		if (event_add(ch->ev, NULL) < 0)
			file_channel_free(ch);
		return;
	}
	if (r < 0) {
		/* The client left, or the file shrank or failed: it sees the count. */
		log_debug_errno(r, "A download ends at byte %llu of %llu: %m",
			(unsigned long long)ch->done, (unsigned long long)ch->size);
		file_channel_free(ch);
		return;
	}
	file_channel_map_next(ch); /* the window is sent; the socket may take more */
}

/* A bulk channel asks its kernel for a large vsock receive buffer (the buf_alloc
 * it advertises to the host), so host->guest has a window: MAX_SIZE first, the
 * kernel clamps SIZE to it. AF_VSOCK sockets only; says whether fd is one. */
static bool file_channel_vsock_buffer(int fd)
{
	uint64_t size = FILE_CHANNEL_VSOCK_BUF;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != AF_VSOCK)
		return false;
	if (setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &size, sizeof(size)) < 0 ||
		setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof(size)) < 0)
		log_debug_errno(-errno, "Failed to enlarge a channel's vsock buffer, ignoring: %m");
	return true;
}

static void file_channel_start(int fd, struct evbuffer *early, void *userdata)
{
	struct file_channel *ch = userdata;
	bool ok = true;

	ch->sock = fd;
	if (fd < 0) {
		file_channel_free(ch);
		return;
	}
	(void)file_channel_vsock_buffer(fd);
	ch->ev = event_new(ch->base, fd, (ch->upload ? EV_READ : EV_WRITE) | EV_PERSIST,
		ch->upload ? file_channel_upload_cb : file_channel_download_cb, ch);
	/* Bytes the client sent right behind file.attach are the first ones. */
	if (ch->upload && early && evbuffer_get_length(early) > 0) {
		ch->early = evbuffer_new();
		ok = ch->early && evbuffer_add_buffer(ch->early, early) == 0;
	}
	if (!ch->ev || !ok) {
		log_error("Cannot watch a file channel, dropping it");
		file_channel_free(ch);
		return;
	}
	file_channel_progress(ch);
	if (ch->upload)
		file_channel_upload_pump(ch);
	else if (ch->size == 0)
		file_channel_free(ch);
	else
		file_channel_map_next(ch);
}

static const char *const file_channel_directions[] = { "upload", "download", NULL };

struct file_channel_params {
	const char *path;
	const char *direction;
	int64_t size;
	int64_t mode;
};

static void file_channel_open_run(void *p)
{
	struct file_open_job *j = p;

	if (j->upload) {
		j->frozen = file_frozen_at(j->path);
		j->err = j->frozen ? EBUSY
				   : -file_tmp_open(j->path, j->mode, true, j->umask, &j->tmp);
		return;
	}
	j->tmp.fd = open(j->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (j->tmp.fd < 0 || fstat(j->tmp.fd, &j->st) < 0)
		j->err = errno;
}

static void file_channel_open_done(struct call *call, void *p)
{
	struct file_open_job *j = p;
	struct file_channel *ch;
	struct json_object *res;
	uint8_t rnd[16];

	if (j->err) {
		file_error(call, j->err,
			j->frozen   ? FILE_FROZEN_MSG
			: j->upload ? "cannot create the file"
				    : "cannot open");
		return;
	}
	if (!j->upload && !S_ISREG(j->st.st_mode)) {
		call_os_error(call, EINVAL, "only regular files go through a channel");
		return;
	}
	if (file_n_channels >= FILE_MAX_CHANNELS) {
		call_error(call, GL_RPC_LIMIT, "too many open file channels", NULL);
		return;
	}
	ch = calloc(1, sizeof(*ch));
	if (!ch) {
		call_os_error(call, ENOMEM, "out of memory");
		return;
	}
	ch->fd = ch->sock = ch->tmp.fd = -1;
	ch->upload = j->upload;
	ch->base = call_event_base(call);
	if (ch->upload) {
		ch->tmp = j->tmp;
		ch->size = (uint64_t)j->size;
	} else {
		ch->fd = j->tmp.fd;
		ch->size = (uint64_t)j->st.st_size;
		ch->tmp.mode = j->st.st_mode & 07777;
	}
	j->tmp = (struct file_tmp){ .fd = -1 }; /* the channel's now */
	ch->buf = malloc(FILE_CHANNEL_BUF);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd) || !ch->buf) {
		call_os_error(call, errno ?: ENOMEM, "cannot set up the channel");
		file_channel_free(ch);
		return;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(ch->token + 2 * i, 3, "%02x", rnd[i]);
	struct timeval ttl = { .tv_sec = FILE_CHANNEL_TTL_S };
	ch->expire = evtimer_new(ch->base, file_channel_expire_cb, ch);
	if (!ch->expire || evtimer_add(ch->expire, &ttl) < 0) {
		call_os_error(call, ENOMEM, "out of memory");
		file_channel_free(ch);
		return;
	}
	ch->next = file_channels;
	file_channels = ch;
	file_n_channels++;
	res = json_object_new_object();
	json_object_object_add(res, "token", json_object_new_string(ch->token));
	json_object_object_add(res, "size", json_object_new_int64((int64_t)ch->size));
	if (!ch->upload)
		json_object_object_add(res, "mode", json_object_new_int((int)ch->tmp.mode));
	call_reply(call, res);
}

/* The file is opened (and a download's stat()ed) on a worker; the channel is
 * set up on the loop when that returned. */
static int file_channel(struct call *call, void *params)
{
	struct file_channel_params *a = params;
	const struct config *cfg = config_get();
	struct file_open_job *j;
	bool upload = strcmp(a->direction, "upload") == 0;
	int r;

	if (file_n_channels >= FILE_MAX_CHANNELS) {
		call_error(call, GL_RPC_LIMIT, "too many open file channels", NULL);
		return 0;
	}
	/* The channel moves what file.write or file.read would: same policy. */
	if (cfg && !config_method_allowed(cfg, upload ? "file.write" : "file.read")) {
		call_error(call, GL_RPC_DENIED, "Method denied by policy", NULL);
		return 0;
	}
	if (upload && a->size < 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "an upload needs its size", NULL);
		return 0;
	}
	j = file_open_job_new(call, a->path);
	if (!j)
		return -ENOMEM;
	j->upload = upload;
	j->mode = (int)a->mode;
	j->umask = file_umask();
	j->size = a->size;
	r = worker_call(call, -1, file_channel_open_run, file_channel_open_done, j,
		file_open_job_free);
	return r == -EAGAIN ? 0 : r;
}

struct file_attach_params {
	const char *token;
};

static int file_attach(struct call *call, void *params)
{
	struct file_attach_params *a = params;
	struct conn *conn = call_conn(call);
	struct file_channel *ch;
	struct json_object *res;

	for (ch = file_channels; ch; ch = ch->next)
		if (!ch->attached && strcmp(ch->token, a->token) == 0)
			break;
	if (!ch || !conn) {
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "no such channel token", NULL);
		return 0;
	}
	ch->attached = true; /* single use */
	/* The connection owes us exactly one file_channel_start() (with -1 if it
	 * fails), however long its queued answers take to flush: freeing the
	 * channel on expiry before that would hand the socket to freed memory.
	 * The idle timer starts with the transfer. */
	evtimer_del(ch->expire);
	res = json_object_new_object();
	json_object_object_add(res, "size", json_object_new_int64((int64_t)ch->size));
	call_reply(call, res);
	if (conn_take_over(conn, file_channel_start, ch) < 0)
		file_channel_free(ch);
	return 0;
}

/* --- the table --- */

static const struct method_param file_channel_params_table[] = {
	FILE_PATH_PARAM(struct file_channel_params, PARAM_MANDATORY),
	{ "direction", PARAM_STRING, offsetof(struct file_channel_params, direction),
		PARAM_MANDATORY, 0, 0, 0, file_channel_directions, "upload or download" },
	{ "size", PARAM_INT, offsetof(struct file_channel_params, size), 0, 0, INT64_MAX / 2, -1,
		NULL, "upload: the exact number of bytes that will follow" },
	{ "mode", PARAM_INT, offsetof(struct file_channel_params, mode), 0, 0, 07777, -1, NULL,
		"upload: permission bits (default: those of the file replaced)" },
	{},
};

static const struct method_param file_attach_params_table[] = {
	{ "token", PARAM_STRING, offsetof(struct file_attach_params, token), PARAM_MANDATORY, 0, 64,
		0, NULL, "token from file.channel" },
	{},
};

const struct method file_channel_methods[] = {
	{ "file.channel", "Prepare a raw transfer of a whole file on a second connection",
		file_channel_params_table, sizeof(struct file_channel_params), file_channel, 0,
		"{\"type\":\"object\",\"properties\":{\"token\":{\"type\":\"string\"},"
		"\"size\":{\"type\":\"integer\"},\"mode\":{\"type\":\"integer\"}}}" },
	{ "file.attach", "Turn this connection into the raw data channel of a token",
		file_attach_params_table, sizeof(struct file_attach_params), file_attach, 0,
		"{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\"}}}" },
	{},
};
