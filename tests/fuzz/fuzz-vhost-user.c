/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer: the vhost-user message stream as a front-end would send it.
 * The input is a sequence of records: one byte giving how many fds to attach
 * (low 2 bits: 0-3; bit 2: eventfds instead of a memfd), then a 12-byte
 * header and its payload (size clamped to what is left). */
#include <errno.h>
#include <event2/event.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "vhost_user.h"

static uint8_t fuzz_config[8] = { 3 };
static int fuzz_kicks;

static void fuzz_kick(void *u, struct virtqueue *vq)
{
	struct virtqueue_elem *e = u;

	fuzz_kicks++;
	/* Walk whatever the rings hold, as the device would. */
	for (int i = 0; i < 64 && virtqueue_pop(vq, VIRTQUEUE_ANY, e) > 0; i++)
		virtqueue_push(vq, e, 0);
	virtqueue_notify(vq);
}

static void fuzz_reset(void *u)
{
}

static const struct vhost_user_device_ops fuzz_ops = {
	.queue_kick = fuzz_kick,
	.reset = fuzz_reset,
	.config = fuzz_config,
	.config_size = sizeof(fuzz_config),
};

static int fuzz_memfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_max_level(LOG_CRIT); /* the log is not what is being tested */
	fuzz_memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (fuzz_memfd < 0 || ftruncate(fuzz_memfd, 1 << 20) < 0)
		abort();
	return 0;
}

static void fuzz_drain(int fd)
{
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtqueue_elem elem;
	struct event_base *base = event_base_new();
	struct vhost_user *vu = NULL;
	int sv[2];

	if (!base || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	if (vhost_user_new(base, sv[0], &fuzz_ops, &elem, &vu) < 0)
		abort();
	while (size > 0) {
		uint8_t ctl = data[0];
		size_t len = size - 1 < 12 ? size - 1 : 12;
		uint32_t psize = 0;
		int fds[3], nfds = ctl & 3;

		data++;
		size--;
		if (len == 12) {
			memcpy(&psize, data + 8, 4);
			if (psize > size - 12)
				psize = (uint32_t)(size - 12);
			/* Keep the header consistent with what follows. */
			len = 12 + psize;
		}
		uint8_t msg[12 + VHOST_USER_MAX_PAYLOAD + 64];
		if (len > sizeof(msg))
			len = sizeof(msg);
		memcpy(msg, data, len);
		if (len >= 12) {
			uint32_t s = (uint32_t)(len - 12);
			memcpy(msg + 8, &s, 4);
		}
		for (int i = 0; i < nfds; i++)
			fds[i] = (ctl & 4) ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : dup(fuzz_memfd);
		struct iovec iov = { msg, len };
		union {
			struct cmsghdr c;
			char buf[CMSG_SPACE(sizeof(int) * 3)];
		} cbuf;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (nfds) {
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		}
		ssize_t n = sendmsg(sv[1], &mh, MSG_NOSIGNAL);
		for (int i = 0; i < nfds; i++) {
			/* Kick eventfds: make them readable so started rings get walked. */
			if (ctl & 4) {
				uint64_t one = 1;
				if (write(fds[i], &one, sizeof(one)) < 0)
					abort();
			}
			close(fds[i]);
		}
		if (n < 0)
			break;
		data += len;
		size -= len;
		for (int i = 0; i < 4; i++)
			event_base_loop(base, EVLOOP_NONBLOCK);
		fuzz_drain(sv[1]);
		if (!vhost_user_connected(vu))
			break;
	}
	close(sv[1]);
	for (int i = 0; i < 4 && vhost_user_connected(vu); i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	vhost_user_free(vu);
	event_base_free(base);
	return 0;
}
