/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink connect PORT: stdin/stdout <-> guest port PORT through the
 * backend's CONNECT handshake (or a vsock address), with half-close both ways:
 * our stdin's EOF becomes shutdown(SHUT_WR) after the bytes before it, the
 * guest's EOF closes our stdout after the bytes before it. Usable as ssh's
 * ProxyCommand. Exit 0 once both directions ended cleanly. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "guestlink/address.h"

#define CONNECT_BUF (256 * 1024)

/* One direction: bytes read from `from`, not yet written to `to`. */
struct connect_pipe {
	int from, to;
	char *buf;
	size_t len, off;
	bool eof, done;
};

/* Read when empty, write what is held; at EOF with nothing held, end the
 * direction (half-close). Returns 0 or a negative errno. */
static int connect_step(struct connect_pipe *p, short rev_from, short rev_to, bool to_is_sock)
{
	if (p->done)
		return 0;
	if (p->len == 0 && !p->eof && (rev_from & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = read(p->from, p->buf, CONNECT_BUF);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (n < 0)
			return -errno;
		if (n == 0)
			p->eof = true;
		p->len = (size_t)n;
		p->off = 0;
	} else if (p->len > 0 && (rev_to & (POLLOUT | POLLERR | POLLHUP))) {
		ssize_t n = write(p->to, p->buf + p->off, p->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		if (n < 0)
			return -errno;
		p->off += (size_t)n;
		p->len -= (size_t)n;
	}
	if (p->eof && p->len == 0) {
		p->done = true;
		if (to_is_sock)
			(void)shutdown(p->to, SHUT_WR);
		else
			(void)close(p->to); /* our reader sees EOF */
	}
	return 0;
}

static int connect_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct connect_pipe up = { .from = STDIN_FILENO }, down = { .to = STDOUT_FILENO };
	struct gl_address a;
	unsigned long port;
	char *end;
	int fd, r, status = CMD_EXIT_OK;

	errno = 0;
	port = strtoul(argv[0], &end, 10);
	if (errno || *end || end == argv[0] || port > UINT32_MAX - 1)
		return cmd_error(ctx, CMD_EXIT_USAGE, "connect: invalid port '%s'", argv[0]);
	if (gl_address_parse(ctx->address, &a) < 0)
		return cmd_error(ctx, CMD_EXIT_USAGE, "invalid address '%s'", ctx->address);
	if (a.type == GL_ADDRESS_UNIX)
		return cmd_error(ctx, CMD_EXIT_USAGE,
			"connect needs a machine (-m) or a hybrid:/vsock: address, not '%s'",
			ctx->address);
	a.port = (uint32_t)port;

	fd = gl_address_connect(&a, ctx->timeout_ms);
	if (fd == -ECONNREFUSED)
		return cmd_error(ctx, CMD_EXIT_FAILED,
			"%s: guest port %lu refused the connection (nothing listens there?)",
			ctx->address, port);
	if (fd == -ETIMEDOUT)
		return cmd_error(ctx, CMD_EXIT_UNREACHABLE,
			"%s: no answer from guest port %lu within the timeout", ctx->address, port);
	if (fd < 0)
		return cmd_error(ctx, CMD_EXIT_UNREACHABLE,
			"%s: cannot connect to guest port %lu: %s", ctx->address, port,
			strerror(-fd));

	/* A reader of our stdout that left is an error of ours, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	up.to = down.from = fd;
	up.buf = malloc(CONNECT_BUF);
	down.buf = malloc(CONNECT_BUF);
	if (!up.buf || !down.buf) {
		status = cmd_error(ctx, CMD_EXIT_FAILED, "out of memory");
		goto out;
	}
	while (!up.done || !down.done) {
		struct pollfd pfd[3] = {
			{ .fd = up.done || up.eof || up.len ? -1 : STDIN_FILENO, .events = POLLIN },
			{ .fd = fd,
				.events = (short)((!down.eof && !down.len ? POLLIN : 0) |
						  (up.len ? POLLOUT : 0)) },
			{ .fd = down.len ? STDOUT_FILENO : -1, .events = POLLOUT },
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			status = cmd_error(ctx, CMD_EXIT_FAILED, "poll: %m");
			goto out;
		}
		/* POLLHUP: the guest closed both ways, so nothing more can reach it
		 * (and poll would report it again at once, forever). */
		if (down.done && !up.len && (pfd[1].revents & (POLLHUP | POLLERR)))
			up.done = true;
		r = connect_step(&up, pfd[0].revents, pfd[1].revents, true);
		if (r < 0) {
			status = cmd_error(ctx, CMD_EXIT_FAILED, "%s: sending to guest port %lu: %s",
				ctx->address, port, strerror(-r));
			goto out;
		}
		r = connect_step(&down, pfd[1].revents, pfd[2].revents, false);
		if (r < 0) {
			status = cmd_error(ctx, CMD_EXIT_FAILED,
				"%s: receiving from guest port %lu: %s", ctx->address, port,
				strerror(-r));
			goto out;
		}
	}
out:
	close(fd);
	free(up.buf);
	free(down.buf);
	return status;
}

const struct cmd_entry cmd_connect_entry = {
	.name = "connect",
	.usage = "PORT",
	.summary = "bridge stdin/stdout to a guest port (e.g. ssh -o ProxyCommand)",
	.example = "  guestlink -m vm1 connect 22\n"
		   "  ssh -o ProxyCommand='guestlink -m vm1 connect 22' root@vm1\n"
		   "  rsync -e \"ssh -o ProxyCommand='guestlink -m vm1 connect 22'\" -a dir/ "
		   "root@vm1:dir/\n",
	.min_args = 1,
	.max_args = 1,
	.exec = connect_exec,
};
