/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Addresses (vsock:CID:PORT, unix:PATH, hybrid:PATH:PORT, exec:COMMAND):
 * parse, format, connect with a deadline (or start the command), listen; and
 * the client half of the hybrid CONNECT handshake. */
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <linux/vm_sockets.h>

#include "guestlink/address.h"
#include "deadline.h"
#include "macro.h"

/* Longest answer line accepted from a backend ("OK 1073741824\n" is 14). */
#define ADDRESS_MAX_ANSWER 64

/* Decimal digits only, no sign or space, fits in uint32. */
static int address_parse_u32(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int address_set_path(struct gl_address *a, const char *p, size_t len)
{
	if (len == 0 || len >= sizeof(a->path) || memchr(p, 0, len))
		return -EINVAL;
	memcpy(a->path, p, len);
	a->path[len] = 0;
	return 0;
}

static int address_parse_vsock(const char *s, struct gl_address *a)
{
	const char *colon = strchr(s, ':');

	if (!colon)
		return -EINVAL;
	if (colon == s)
		a->cid = GL_VSOCK_CID_ANY;
	else if (address_parse_u32(s, (size_t)(colon - s), &a->cid) < 0 || a->cid == GL_VSOCK_CID_ANY)
		return -EINVAL;
	/* VMADDR_PORT_ANY is not a port one can name. */
	if (address_parse_u32(colon + 1, strlen(colon + 1), &a->port) < 0 || a->port == UINT32_MAX)
		return -EINVAL;
	return 0;
}

static int address_parse_unix(const char *s, struct gl_address *a)
{
	return address_set_path(a, s, strlen(s));
}

static int address_parse_hybrid(const char *s, struct gl_address *a)
{
	const char *colon = strrchr(s, ':');

	if (!colon || address_parse_u32(colon + 1, strlen(colon + 1), &a->port) < 0 ||
		a->port == UINT32_MAX)
		return -EINVAL;
	return address_set_path(a, s, (size_t)(colon - s));
}

static int address_parse_exec(const char *s, struct gl_address *a)
{
	size_t len;

	s += strspn(s, " \t");
	len = strlen(s);
	if (len == 0 || len >= sizeof(a->command))
		return -EINVAL;
	memcpy(a->command, s, len + 1);
	return 0;
}

static const struct address_scheme {
	const char *prefix;
	enum gl_address_type type;
	int (*parse)(const char *rest, struct gl_address *a);
} address_schemes[] = {
	{ "vsock:", GL_ADDRESS_VSOCK, address_parse_vsock },
	{ "unix:", GL_ADDRESS_UNIX, address_parse_unix },
	{ "hybrid:", GL_ADDRESS_HYBRID, address_parse_hybrid },
	{ "exec:", GL_ADDRESS_EXEC, address_parse_exec },
};

int gl_address_parse(const char *s, struct gl_address *ret)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(address_schemes); i++) {
		const struct address_scheme *sc = &address_schemes[i];
		size_t n = strlen(sc->prefix);
		struct gl_address a = { .type = sc->type };
		int r;

		if (strncmp(s, sc->prefix, n) != 0)
			continue;
		r = sc->parse(s + n, &a);
		if (r < 0)
			return r;
		*ret = a;
		return 0;
	}
	return -EINVAL;
}

int gl_address_from_machine(const char *name, struct gl_address *ret)
{
	struct gl_address a = { .type = GL_ADDRESS_HYBRID, .port = GL_DEFAULT_PORT };
	int n;

	if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	n = snprintf(a.path, sizeof(a.path), "%s/%s.vsock", GL_RUNDIR, name);
	if (n < 0 || (size_t)n >= sizeof(a.path))
		return -EINVAL;
	*ret = a;
	return 0;
}

int gl_address_format(const struct gl_address *a, char *buf, size_t size)
{
	int n;

	switch (a->type) {
	case GL_ADDRESS_VSOCK:
		if (a->cid == GL_VSOCK_CID_ANY)
			n = snprintf(buf, size, "vsock::%" PRIu32, a->port);
		else
			n = snprintf(buf, size, "vsock:%" PRIu32 ":%" PRIu32, a->cid, a->port);
		break;
	case GL_ADDRESS_UNIX:
		n = snprintf(buf, size, "unix:%s", a->path);
		break;
	case GL_ADDRESS_HYBRID:
		n = snprintf(buf, size, "hybrid:%s:%" PRIu32, a->path, a->port);
		break;
	case GL_ADDRESS_EXEC:
		n = snprintf(buf, size, "exec:%s", a->command);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENOSPC;
	return n;
}

static int address_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	if (fcntl(fd, F_SETFL, fl) < 0)
		return -errno;
	return 0;
}

static socklen_t address_sockaddr_un(const char *path, struct sockaddr_un *sa)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* Non-blocking connect, waiting for completion until the deadline. Unix
 * sockets answer EAGAIN (not EINPROGRESS) while the listener's backlog is full:
 * retry shortly then, as a blocking connect would have waited. */
static int address_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	for (;;) {
		int r;

		if (connect(fd, sa, len) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS)
			break;
		if (errno != EAGAIN)
			return -errno;
		if (deadline_remaining(deadline) == 0)
			return -ETIMEDOUT;
		r = poll(NULL, 0, 10);
		(void)r;
	}
	err = deadline_poll(fd, POLLOUT, deadline);
	if (err < 0)
		return err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	return err ? -err : 0;
}

int gl_address_connect(const struct gl_address *a, int timeout_ms)
{
	_cleanup_close_ int fd = -1;
	int64_t deadline = deadline_from_timeout(timeout_ms);
	int r;

	if (a->type == GL_ADDRESS_EXEC)
		return -EOPNOTSUPP; /* a child process to reap: gl_address_open() */
	if (a->type == GL_ADDRESS_VSOCK) {
		struct sockaddr_vm vm = {
			.svm_family = AF_VSOCK,
			.svm_cid = a->cid,
			.svm_port = a->port,
		};

		if (a->cid == GL_VSOCK_CID_ANY)
			return -EINVAL;
		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		r = address_connect_fd(fd, (struct sockaddr *)&vm, sizeof(vm), deadline);
	} else {
		struct sockaddr_un sa;
		socklen_t len = address_sockaddr_un(a->path, &sa);

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		r = address_connect_fd(fd, (struct sockaddr *)&sa, len, deadline);
	}
	if (r < 0)
		return r;

	if (a->type == GL_ADDRESS_HYBRID) {
		int left = deadline_remaining(deadline);

		if (left == 0)
			return -ETIMEDOUT;
		r = gl_hybrid_handshake(fd, a->port, left, NULL);
		if (r < 0)
			return r;
	}
	r = address_set_nonblock(fd, false);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}

/* --- exec: the protocol over a command's stdin and stdout --- */

extern char **environ;

static int address_spawn(const char *command, pid_t *ret_pid)
{
	_cleanup_close_ int mine = -1, theirs = -1;
	_cleanup_free_ char *script = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	pid_t pid;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	mine = sv[0];
	theirs = sv[1];
	if (asprintf(&script, "exec %s", command) < 0) {
		script = NULL;
		return -ENOMEM;
	}
	/* dup2 clears FD_CLOEXEC on 0 and 1; the pair's own fds close at exec. */
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGCHLD);
	r = posix_spawn_file_actions_adddup2(&fa, theirs, STDIN_FILENO);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, theirs, STDOUT_FILENO);
	if (!r)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&attr, &dfl);
	/* Its own session (setsid): the keys that signal the terminal's
	 * foreground process group (^C, ^\, ^Z) are ours to forward, not the
	 * transport's to die of. Without a controlling terminal it cannot prompt
	 * on it either (ssh: keys, an agent, or SSH_ASKPASS) rather than stop
	 * in the background or fight the raw terminal of a session. */
	if (!r)
		r = posix_spawnattr_setflags(&attr,
			POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
	if (!r)
		r = posix_spawn(&pid, "/bin/sh", &fa, &attr, (char *[]){ "sh", "-c", script, NULL },
			environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r)
		return -r;
	*ret_pid = pid;
	return TAKE_FD(mine);
}

int gl_address_open(const struct gl_address *a, int timeout_ms, pid_t *ret_pid)
{
	pid_t pid = 0;
	int fd;

	if (a->type == GL_ADDRESS_EXEC)
		fd = address_spawn(a->command, &pid);
	else
		fd = gl_address_connect(a, timeout_ms);
	if (fd < 0)
		return fd;
	*ret_pid = pid;
	return fd;
}

/* waitpid until the deadline; 1 with *status once reaped, 0 still running. */
static int address_wait(pid_t pid, int64_t deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (deadline_remaining(deadline) == 0)
			return 0;
		(void)poll(NULL, 0, 10);
	}
}

int gl_address_close(int fd, pid_t pid)
{
	static const int signals[] = { 0, SIGTERM, SIGKILL };
	int status = 0;

	if (fd >= 0)
		close(fd);
	if (pid <= 0)
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
		int r;

		if (signals[i])
			(void)kill(pid, signals[i]);
		if (signals[i] == SIGKILL) {
			while (waitpid(pid, &status, 0) < 0)
				if (errno != EINTR)
					return -errno;
			return status;
		}
		r = address_wait(pid, deadline_from_timeout(GL_ADDRESS_EXEC_GRACE_MS), &status);
		if (r < 0)
			return r;
		if (r > 0)
			return status;
	}
	return status;
}

/* A socket file at path: remove it when nobody listens any more; keep
 * anything else. */
static int address_unlink_stale(const char *path)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	socklen_t len;
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	len = address_sockaddr_un(path, &sa);
	if (connect(fd, (struct sockaddr *)&sa, len) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	if (errno != ECONNREFUSED)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int gl_address_listen(const struct gl_address *a, int backlog)
{
	_cleanup_close_ int fd = -1;
	int r;

	if (backlog <= 0)
		backlog = SOMAXCONN;

	if (a->type == GL_ADDRESS_VSOCK) {
		struct sockaddr_vm vm = {
			.svm_family = AF_VSOCK,
			.svm_cid = a->cid == GL_VSOCK_CID_ANY ? VMADDR_CID_ANY : a->cid,
			.svm_port = a->port,
		};

		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&vm, sizeof(vm)) < 0)
			return -errno;
	} else if (a->type == GL_ADDRESS_UNIX) {
		struct sockaddr_un sa;
		socklen_t len = address_sockaddr_un(a->path, &sa);

		r = address_unlink_stale(a->path);
		if (r < 0)
			return r;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -errno;
		/* The socket inode's mode becomes the file's at bind(): 0600 from
		 * the first moment, whatever the umask, with no window. */
		if (fchmod(fd, 0600) < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&sa, len) < 0)
			return -errno;
		if (chmod(a->path, 0600) < 0) {
			r = -errno;
			(void)unlink(a->path);
			return r;
		}
	} else
		return -EINVAL;

	if (listen(fd, backlog) < 0)
		return -errno;
	return TAKE_FD(fd);
}

/* --- hybrid CONNECT handshake --- */

static int address_write_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return errno == EPIPE ? -ECONNRESET : -errno;
		r = deadline_poll(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

int gl_hybrid_handshake(int fd, uint32_t port, int timeout_ms, uint32_t *ret_host_port)
{
	int64_t deadline = deadline_from_timeout(timeout_ms);
	char line[ADDRESS_MAX_ANSWER + 1];
	uint32_t host_port = 0;
	size_t len = 0, digits = 0;
	int r;

	r = snprintf(line, sizeof(line), "CONNECT %" PRIu32 "\n", port);
	r = address_write_all(fd, line, (size_t)r, deadline);
	if (r < 0)
		return r;

	/* One byte at a time: what follows the newline is the guest's. */
	for (;;) {
		ssize_t n;
		char c;

		n = recv(fd, &c, 1, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return errno == ECONNRESET && len == 0 ? -ECONNREFUSED : -errno;
			r = deadline_poll(fd, POLLIN, deadline);
			if (r < 0)
				return r;
			continue;
		}
		/* The backend closes without a word when the guest refused. */
		if (n == 0)
			return len == 0 ? -ECONNREFUSED : -ECONNRESET;
		if (c == '\n')
			break;
		if (len == ADDRESS_MAX_ANSWER)
			return -EPROTO;
		line[len++] = c;
	}
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = 0;

	/* "OK <port>" from every known backend; tolerate a bare "OK" and
	 * anything after the port. */
	if (strncmp(line, "OK", 2) != 0 || (line[2] != ' ' && line[2] != 0))
		return -EPROTO;
	if (line[2] == ' ') {
		while (line[3 + digits] >= '0' && line[3 + digits] <= '9')
			digits++;
		if (address_parse_u32(line + 3, digits, &host_port) < 0)
			host_port = 0;
	}
	if (ret_host_port)
		*ret_host_port = host_port;
	return 0;
}
