/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hybrid.h"
#include "log.h"
#include "macro.h"

int hybrid_line_parse(const char *line, size_t len, uint32_t *ret_port)
{
	static const char keyword[] = "CONNECT";
	const size_t klen = sizeof(keyword) - 1;
	uint64_t port = 0;
	size_t i;

	if (len < 2 || len > HYBRID_LINE_MAX || line[len - 1] != '\n')
		return -EBADMSG;
	len--;
	if (line[len - 1] == '\r')
		len--;
	if (len <= klen || strncasecmp(line, keyword, klen) != 0 || line[klen] != ' ')
		return -EBADMSG;
	i = klen;
	while (i < len && line[i] == ' ')
		i++;
	if (i == len)
		return -EBADMSG;
	for (; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
		port = port * 10 + (uint64_t)(line[i] - '0');
		/* VMADDR_PORT_ANY (2^32-1) is not a port one can connect to. */
		if (port >= UINT32_MAX)
			return -EBADMSG;
	}
	*ret_port = (uint32_t)port;
	return 0;
}

int hybrid_line_feed(struct hybrid_line *l, const void *data, size_t n, size_t *ret_consumed,
	uint32_t *ret_port)
{
	const char *nl = memchr(data, '\n', n);
	size_t take = nl ? (size_t)(nl - (const char *)data) + 1 : n;

	if (take > HYBRID_LINE_MAX - l->len) {
		*ret_consumed = 0;
		return -EBADMSG;
	}
	memcpy(l->buf + l->len, data, take);
	l->len += take;
	*ret_consumed = take;
	if (!nl)
		return l->len == HYBRID_LINE_MAX ? -EBADMSG : -EAGAIN;
	return hybrid_line_parse(l->buf, l->len, ret_port);
}

static int hybrid_sockaddr(const char *path, struct sockaddr_un *sa, socklen_t *ret_len)
{
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	memcpy(sa->sun_path, path, n);
	*ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int hybrid_listen(const char *path, mode_t mode, gid_t gid, int backlog)
{
	return hybrid_listen_type(path, SOCK_STREAM, mode, gid, backlog);
}

int hybrid_listen_type(const char *path, int type, mode_t mode, gid_t gid, int backlog)
{
	_cleanup_close_ int fd = -1;
	struct sockaddr_un sa;
	socklen_t sl;
	struct stat st;
	mode_t old;
	int r;

	r = hybrid_sockaddr(path, &sa, &sl);
	if (r < 0)
		return log_error_errno(r, "Socket path %s is too long or empty", path);
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_error_errno(-errno, "Failed to create socket: %m");
	/* Only replace a socket: never delete a file someone mistyped. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	/* Create the file with no more access than asked, then set it exactly. */
	old = umask(0777 & ~mode);
	r = bind(fd, (struct sockaddr *)&sa, sl);
	umask(old);
	if (r < 0)
		return log_error_errno(-errno, "Failed to bind %s: %m", path);
	if (chmod(path, mode) < 0)
		return log_error_errno(-errno, "Failed to set the mode of %s: %m", path);
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) < 0)
		return log_error_errno(-errno, "Failed to set the group of %s: %m", path);
	if (listen(fd, backlog) < 0)
		return log_error_errno(-errno, "Failed to listen on %s: %m", path);
	return TAKE_FD(fd);
}

int hybrid_connect_guest_port(const char *uds_path, uint32_t port, bool *ret_pending)
{
	return hybrid_connect_guest_port_type(uds_path, port, SOCK_STREAM, ret_pending);
}

int hybrid_connect_guest_port_type(const char *uds_path, uint32_t port, int type, bool *ret_pending)
{
	_cleanup_close_ int fd = -1;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un sa;
	socklen_t sl;
	int r;

	r = snprintf(path, sizeof(path), "%s_%u", uds_path, port);
	if (r < 0 || (size_t)r >= sizeof(path))
		return -ENAMETOOLONG;
	r = hybrid_sockaddr(path, &sa, &sl);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sl) < 0) {
		if (errno != EINPROGRESS)
			return -errno; /* EAGAIN: the listener's backlog is full */
		*ret_pending = true;
	} else
		*ret_pending = false;
	return TAKE_FD(fd);
}
