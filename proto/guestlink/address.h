/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Addresses: vsock:CID:PORT, unix:PATH, hybrid:PATH:PORT, exec:COMMAND. */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GL_DEFAULT_PORT 9731
#define GL_RUNDIR "/run/guestlink"
#define GL_VSOCK_CID_ANY UINT32_MAX
/* Longest exec: COMMAND, bytes including the NUL. */
#define GL_ADDRESS_COMMAND_MAX 4096
/* How long a closed exec: command may take to exit by itself, then after
 * SIGTERM, before SIGKILL; milliseconds. */
#define GL_ADDRESS_EXEC_GRACE_MS 2000

enum gl_address_type {
	GL_ADDRESS_VSOCK,
	GL_ADDRESS_UNIX,
	GL_ADDRESS_HYBRID,
	GL_ADDRESS_EXEC,
};

struct gl_address {
	enum gl_address_type type;
	uint32_t cid;  /* vsock; GL_VSOCK_CID_ANY for "vsock::PORT" */
	uint32_t port; /* vsock and hybrid */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix and hybrid */
	char command[GL_ADDRESS_COMMAND_MAX];                   /* exec */
};

/* Parse an address. -EINVAL for a malformed one (unknown scheme, empty or
 * overlong path or command, non-numeric or out-of-range cid/port).
 * exec:COMMAND keeps COMMAND as written (leading blanks dropped); it runs as
 * `/bin/sh -c 'exec COMMAND'`, the way OpenSSH runs a ProxyCommand, so
 * `exec:ssh hv1 guestlink -m vm1 connect 9731` splits at blanks and shell
 * quoting works. */
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

/* Like gl_address_connect, and for exec: addresses (for which
 * gl_address_connect answers -EOPNOTSUPP) start COMMAND with one end of a
 * Unix socket pair as its stdin and stdout, the other end returned; its
 * stderr stays the caller's, so that ssh's complaints reach the user. It runs
 * in a session of its own (setsid), so the terminal's ^C, ^\ and ^Z signal
 * the caller, never the transport; it has no controlling terminal and cannot
 * prompt on one (ssh needs keys, an agent or SSH_ASKPASS). Stores
 * the command's pid (0 for sockets) for gl_address_close(). -errno of
 * socketpair(2) or posix_spawn(3); a command that cannot run shows as EOF
 * (exit status 127) on the first read. */
int gl_address_open(const struct gl_address *a, int timeout_ms, pid_t *ret_pid);

/* Close fd and, when pid > 0, reap that command: it gets
 * GL_ADDRESS_EXEC_GRACE_MS to exit after its stdin closed, as long again
 * after SIGTERM, then SIGKILL. Returns its wait status (0 when pid <= 0), or
 * -errno of waitpid(2). Never leaves a zombie. */
int gl_address_close(int fd, pid_t pid);

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
