/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vhost-user back-end side: one front-end at a time. */
#pragma once

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_memory.h"
#include "virtqueue.h"

#define VHOST_USER_NUM_QUEUES 2 /* rx, tx: QEMU keeps the event queue */
#define VHOST_USER_MAX_PAYLOAD 4096
#define VHOST_USER_MAX_FDS 8

/* virtio feature bits we offer. */
#define VIRTIO_F_NOTIFY_ON_EMPTY_BIT 24
#define VIRTIO_RING_F_INDIRECT_DESC_BIT 28
#define VIRTIO_RING_F_EVENT_IDX_BIT 29
#define VHOST_USER_F_PROTOCOL_FEATURES_BIT 30
#define VIRTIO_F_VERSION_1_BIT 32

/* What the vhost-user layer asks of the device. */
struct vhost_user_device_ops {
	/* A queue has buffers (kick) or was just started. */
	void (*queue_kick)(void *userdata, struct virtqueue *vq);
	/* The ring is about to stop, be resized or moved or translated again, or
	 * guest memory to change: give back every chain still held (nothing may
	 * point into the memory or the ring afterwards). Also runs from
	 * vhost_user_free(), before the rings go. */
	void (*queue_release)(void *userdata, struct virtqueue *vq);
	/* Rings stopped or the front-end went away: drop every connection. */
	void (*reset)(void *userdata);
	/* Config space bytes (for vsock: le64 guest_cid). */
	const uint8_t *config;
	uint32_t config_size;
	/* Extra virtio feature bits the device offers. */
	uint64_t device_features;
	/* The front-end acked these features (0 when it went away); may be NULL. */
	void (*features_set)(void *userdata, uint64_t features);
};

struct vhost_user;

/* fd is a listening socket (each front-end is accepted in turn) or an
 * already connected one (the loop ends when it disconnects). Takes the fd. */
int vhost_user_new(struct event_base *base, int fd, const struct vhost_user_device_ops *ops,
	void *userdata, struct vhost_user **ret);
struct vhost_user *vhost_user_free(struct vhost_user *vu);
struct virtqueue *vhost_user_queue(struct vhost_user *vu, unsigned index);
bool vhost_user_connected(const struct vhost_user *vu);
