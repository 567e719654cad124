/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Addresses: vsock:CID:PORT, unix:PATH, hybrid:PATH:PORT. */
#pragma once

#include <stdint.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GL_DEFAULT_PORT 9731
#define GL_RUNDIR "/run/guestlink"
#define GL_VSOCK_CID_ANY UINT32_MAX

enum gl_address_type {
	GL_ADDRESS_VSOCK,
	GL_ADDRESS_UNIX,
	GL_ADDRESS_HYBRID,
};

struct gl_address {
	enum gl_address_type type;
	uint32_t cid;  /* vsock; GL_VSOCK_CID_ANY for "vsock::PORT" */
	uint32_t port; /* vsock and hybrid */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix and hybrid */
};

/* Parse an address. -EINVAL for a malformed one (unknown scheme, empty or
 * overlong path, non-numeric or out-of-range cid/port). */
int gl_address_parse(const char *s, struct gl_address *ret);
/* "hybrid:/run/guestlink/NAME.vsock:9731" for a machine name; -EINVAL if
 * NAME is empty, contains '/', or makes the path too long. */
int gl_address_from_machine(const char *name, struct gl_address *ret);
/* Format back into the canonical text; returns snprintf-like length or -ENOSPC. */
int gl_address_format(const struct gl_address *a, char *buf, size_t size);

/* Connect, including the CONNECT handshake for hybrid addresses. Returns a
 * connected SOCK_CLOEXEC stream fd in blocking mode, or a negative errno:
 * -ETIMEDOUT when timeout_ms (< 0 = no limit) passes, -ECONNREFUSED when the
 * backend or guest refused, -EPROTO for a garbled handshake answer. */
int gl_address_connect(const struct gl_address *a, int timeout_ms);

/* Listen (vsock or unix; hybrid is -EINVAL). Unix sockets are created 0600,
 * replacing a stale socket file. Returns a SOCK_NONBLOCK|SOCK_CLOEXEC fd. */
int gl_address_listen(const struct gl_address *a, int backlog);

/* The client half of the hybrid handshake on an already connected Unix
 * socket: write "CONNECT <port>\n", read one line without reading past it,
 * accept any line starting "OK " (Firecracker, Cloud Hypervisor and
 * vhost-device-vsock all differ after that). On success returns 0 and stores
 * the host port when the line carries one (else 0). */
int gl_hybrid_handshake(int fd, uint32_t port, int timeout_ms, uint32_t *ret_host_port);

#ifdef __cplusplus
}
#endif
