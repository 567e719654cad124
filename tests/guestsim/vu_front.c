/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The raw vhost-user front-end side: messages with SCM_RIGHTS fds over the
 * back-end's Unix socket, replies read with a timeout. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "guestsim.h"
#include "macro.h"

#define VU_MAX_PAYLOAD 4096

int gs_vu_open(const char *socket_path, int *ret_fd)
{
	return gs_unix_connect(socket_path, ret_fd);
}

int gs_unix_connect(const char *socket_path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int vu_sendmsg(int fd, struct iovec *iov, unsigned niov, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} control;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = niov };
	ssize_t n;

	if (nfds > 16)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The rest of a partially sent message goes without fds. */
	for (size_t done = (size_t)n;;) {
		size_t total = 0;

		for (unsigned i = 0; i < niov; i++)
			total += iov[i].iov_len;
		if (done >= total)
			break;
		while (niov > 0 && done >= iov[0].iov_len) {
			done -= iov[0].iov_len;
			iov++;
			niov--;
		}
		iov[0].iov_base = (char *)iov[0].iov_base + done;
		iov[0].iov_len -= done;
		mh = (struct msghdr){ .msg_iov = iov, .msg_iovlen = niov };
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR)
			return -errno;
		done = n < 0 ? 0 : (size_t)n;
	}
	return 0;
}

int gs_vu_send(int fd, uint32_t request, uint32_t flags, const void *payload, size_t size,
	const int *fds, unsigned nfds)
{
	struct vu_hdr h = { request, flags | VU_FLAG_VERSION, (uint32_t)size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };

	return vu_sendmsg(fd, iov, size > 0 ? 2 : 1, fds, nfds);
}

int gs_vu_send_bytes(int fd, const void *data, size_t size)
{
	struct iovec iov = { (void *)data, size };

	return vu_sendmsg(fd, &iov, 1, NULL, 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int vu_read_full(int fd, void *buf, size_t size, long long deadline)
{
	size_t got = 0;

	while (got < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = recv(fd, (char *)buf + got, size - got, MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int gs_vu_recv(int fd, struct vu_hdr *ret_hdr, void *payload, size_t max, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	char buf[VU_MAX_PAYLOAD];
	struct vu_hdr h;
	int r;

	r = vu_read_full(fd, &h, sizeof(h), deadline);
	if (r < 0)
		return r;
	if (h.size > sizeof(buf))
		return -EMSGSIZE;
	r = vu_read_full(fd, buf, h.size, deadline);
	if (r < 0)
		return r;
	if (payload)
		memcpy(payload, buf, h.size < max ? h.size : max);
	if (ret_hdr)
		*ret_hdr = h;
	return (int)h.size;
}

/* Requests answered with a payload of their own (the rest only with NEED_REPLY). */
static bool vu_has_reply(uint32_t request)
{
	static const uint32_t with_reply[] = {
		VU_GET_FEATURES,
		VU_GET_PROTOCOL_FEATURES,
		VU_GET_VRING_BASE,
		VU_GET_QUEUE_NUM,
		VU_GET_CONFIG,
		VU_GET_MAX_MEM_SLOTS,
	};

	for (size_t i = 0; i < ELEMENTSOF(with_reply); i++)
		if (with_reply[i] == request)
			return true;
	return false;
}

int gs_vu_call(int fd, uint32_t request, uint32_t flags, const void *payload, size_t size,
	const int *fds, unsigned nfds, void *reply, size_t reply_max, int timeout_ms)
{
	struct vu_hdr h;
	int r;

	r = gs_vu_send(fd, request, flags, payload, size, fds, nfds);
	if (r < 0)
		return r;
	if (!vu_has_reply(request) && !(flags & VU_FLAG_NEED_REPLY))
		return 0;
	if (!vu_has_reply(request)) {
		uint64_t status = UINT64_MAX;

		r = gs_vu_recv(fd, &h, &status, sizeof(status), timeout_ms);
		if (r < 0)
			return r;
		if (h.request != request || !(h.flags & VU_FLAG_REPLY) || r != sizeof(status))
			return -EBADMSG;
		return status == 0 ? 0 : -EREMOTEIO;
	}
	r = gs_vu_recv(fd, &h, reply, reply_max, timeout_ms);
	if (r < 0)
		return r;
	if (h.request != request || !(h.flags & VU_FLAG_REPLY) || (h.flags & 0x3) != 1)
		return -EBADMSG;
	return r;
}
