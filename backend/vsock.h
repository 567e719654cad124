/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The virtio-vsock device: packets on the rx/tx queues, the connection table
 * and its state machine, credit, and the bridge to host Unix sockets. */
#pragma once

#include <event2/event.h>
#include <stdint.h>

#include "virtqueue.h"
#include "vsock_packet.h"

#define VSOCK_DEFAULT_BUF_ALLOC (4u << 20)
#define VSOCK_DEFAULT_MAX_CONNECTIONS 4096u
/* Bytes of guest data one VM's connections may make the backend hold. */
#define VSOCK_DEFAULT_MEMORY_BUDGET (32ull << 20)
#define VSOCK_MIN_BUF_FLOOR 1024u /* budget >= max_connections x 2 x this */
#define VSOCK_LINE_TIMEOUT_S 5
#define VSOCK_CONNECT_TIMEOUT_S 5
#define VSOCK_CLOSE_TIMEOUT_S 8

struct vsock_config {
	uint64_t guest_cid;
	uint32_t buf_alloc;
	unsigned max_connections;
	/* Every byte of guest data held for this VM's connections (the windows
	 * advertised to the guest) stays within this; 0: the default. */
	uint64_t memory_budget;
	const char *uds_path; /* NULL: no guest-initiated connections */
	int listen_fd;        /* the hybrid listener, taken; -1 for none */
};

struct vsock;

int vsock_new(struct event_base *base, const struct vsock_config *cfg, struct vsock **ret);
struct vsock *vsock_free(struct vsock *v);
/* The queues live in the vhost-user layer; rx = 0, tx = 1. */
void vsock_set_queues(struct vsock *v, struct virtqueue *rx, struct virtqueue *tx);
void vsock_queue_kick(struct vsock *v, struct virtqueue *vq);
/* Drop every connection (front-end gone or device reset). */
void vsock_reset(struct vsock *v);
/* The ring vq, or the guest memory its buffers are in, is about to be unmapped:
 * give back every chain still held (their bytes copied). */
void vsock_queue_release(struct vsock *v, struct virtqueue *vq);
/* The virtio features the driver acked (SEQPACKET is honoured only when acked). */
void vsock_set_features(struct vsock *v, uint64_t features);
/* The SOCK_SEQPACKET hybrid listener ("<uds-path>.seqpacket"); takes the fd, on
 * failure too. */
int vsock_set_seqpacket_listener(struct vsock *v, int fd);
unsigned vsock_connection_count(const struct vsock *v);
