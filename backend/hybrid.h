/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hybrid host sockets (Firecracker-compatible): the listener at
 * --uds-path, the "CONNECT <port>\n" line, and guest-initiated connects to
 * "<uds-path>_<port>". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HYBRID_LINE_MAX 32 /* bytes, newline included */

struct hybrid_line {
	char buf[HYBRID_LINE_MAX];
	size_t len;
};

/* Feed bytes of the CONNECT line. Consumes at most up to and including the
 * newline (*ret_consumed), so bytes after it stay with the caller.
 * 0: complete, *ret_port set. -EAGAIN: need more. -EBADMSG: bad line (overlong,
 * unknown keyword, non-numeric or out-of-range port). */
int hybrid_line_feed(struct hybrid_line *l, const void *data, size_t n, size_t *ret_consumed,
	uint32_t *ret_port);

/* Parse one complete line (newline included). */
int hybrid_line_parse(const char *line, size_t len, uint32_t *ret_port);

/* Create the listening socket at path with the given mode and group (gid -1:
 * keep), replacing a stale socket file. Returns a non-blocking fd. */
int hybrid_listen(const char *path, mode_t mode, gid_t gid, int backlog);
/* The same with a socket type (SOCK_STREAM or SOCK_SEQPACKET). */
int hybrid_listen_type(const char *path, int type, mode_t mode, gid_t gid, int backlog);

/* Non-blocking connect to "<uds_path>_<port>". Returns the fd; *ret_pending is
 * true while the connect is in progress (wait for writability). */
int hybrid_connect_guest_port(const char *uds_path, uint32_t port, bool *ret_pending);
/* The same with a socket type (SOCK_STREAM or SOCK_SEQPACKET). */
int hybrid_connect_guest_port_type(const char *uds_path, uint32_t port, int type, bool *ret_pending);
