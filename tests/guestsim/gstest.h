/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helpers around guestsim: the real back-end binary started per test in its
 * own temporary directory and stopped by PID, and host-side Unix clients. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "guestsim.h"

struct gt_backend {
	pid_t pid;
	char dir[256];
	char socket_path[300];
	char uds_path[300];
	char log_path[300];
};

/* Path of the back-end binary, or NULL when it is not built yet. */
const char *gt_backend_binary(void);
/* Start `vhost-user-vsock --socket-path --uds-path --guest-cid=3 [args...]` (NULL-ended). */
int gt_backend_start(struct gt_backend *b, const char *const *args);
bool gt_backend_alive(struct gt_backend *b);
/* SIGTERM, wait (SIGKILL after 5 s); returns the exit status, -1 when killed by a signal,
 * -2 when the log holds a sanitizer report; removes the dir.
 * ret_ms: how long the exit took. */
int gt_backend_stop(struct gt_backend *b, long *ret_ms);
long gt_backend_rss_kb(const struct gt_backend *b);
/* Does the log contain this string? */
bool gt_backend_log_contains(const struct gt_backend *b, const char *s);
void gt_options(struct gs_options *o, const struct gt_backend *b);

/* Host side: a non-blocking Unix client to the hybrid socket (no handshake yet). */
int gt_host_open(const struct gt_backend *b, int *ret_fd);
/* Write "CONNECT <port>\n" and wait for "OK ", driving gs meanwhile (gs may be NULL).
 * Returns 0 with the fd in blocking-free non-blocking mode; -ECONNREFUSED on close. */
int gt_host_connect(const struct gt_backend *b, struct gs *gs, uint32_t port, int timeout_ms,
	int *ret_fd);
/* A new guestsim on b (buf_alloc bytes of receive buffer per connection, 0: the
 * default) listening on port, and one host client connected to it through the hybrid
 * socket and accepted by the guest within 5 s each: the guest's side, with the guestsim
 * in *ret_gs (when it started) and the host's fd in *ret_fd (when it connected); NULL on
 * any failure. */
struct gs_conn *gt_guest_conn(const struct gt_backend *b, uint32_t buf_alloc, uint32_t port,
	struct gs **ret_gs, int *ret_fd);
/* Read the handshake answer line on fd (driving gs). 0 on "OK ..", -ECONNREFUSED on EOF. */
int gt_host_wait_ok(int fd, struct gs *gs, int timeout_ms);
/* A listening Unix socket at path (non-blocking). */
int gt_unix_listen(const char *path, int *ret_fd);
/* The same for another socket type (SOCK_SEQPACKET). */
int gt_unix_listen_type(const char *path, int type, int *ret_fd);
int gt_set_nonblock(int fd);
/* Read from fd until EOF (driving gs), appending into buf (cap bytes); returns length. */
ssize_t gt_read_to_eof(int fd, struct gs *gs, void *buf, size_t cap, int timeout_ms);
void gt_random(void *buf, size_t len, uint64_t *seed);
void gt_sha256_hex(const void *data, size_t len, char out[65]);
/* A fresh host->guest connection to `port` (the guest must listen there) carries
 * `len` bytes each way intact. 0 or a negative errno. */
int gt_check_service(const struct gt_backend *b, struct gs *gs, uint32_t port, size_t len);
/* How many times s occurs in the back-end's log so far. */
unsigned gt_backend_log_count(const struct gt_backend *b, const char *s);
/* User+system CPU time the back-end has used so far, in ms (-1 on error). */
long gt_backend_cpu_ms(const struct gt_backend *b);
