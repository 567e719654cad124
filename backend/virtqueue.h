/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Split virtqueues in guest memory, read as hostile input. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest_memory.h"

#define VIRTQUEUE_MAX_SIZE 32768u
/* iovecs one chain may span; Linux sends a header plus at most 17 fragments. */
#define VIRTQUEUE_MAX_IOV 256u

struct vring_desc;
struct vring_avail;
struct vring_used;

struct virtqueue {
	unsigned index;
	const char *name;
	/* Set by the front-end. */
	uint16_t num;
	uint64_t desc_uva, avail_uva, used_uva;
	bool addr_set;
	int kick_fd, call_fd, err_fd;
	bool enabled;
	bool event_idx, notify_on_empty;
	/* Translated ring pointers; valid while `ready`. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	bool ready;
	/* Our indices. */
	uint16_t last_avail, used_idx;
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool broken;
	struct guest_memory *mem;
};

/* One popped chain: readable (out) iovecs first, then writable (in) ones. */
struct virtqueue_elem {
	uint16_t head;
	unsigned n_out, n_in;
	size_t out_len, in_len;
	struct iovec iov[VIRTQUEUE_MAX_IOV];
};

enum virtqueue_dir {
	VIRTQUEUE_ANY,
	VIRTQUEUE_READABLE, /* device reads only: a writable descriptor breaks the ring */
	VIRTQUEUE_WRITABLE, /* device writes only */
};

void virtqueue_init(struct virtqueue *vq, unsigned index, const char *name, struct guest_memory *mem);
/* Forget everything the front-end set (closes the fds). */
void virtqueue_reset(struct virtqueue *vq);

/* Translate the ring addresses; -EFAULT if any ring is outside memory or
 * misaligned, -EINVAL if size or addresses are missing. */
int virtqueue_map(struct virtqueue *vq);
void virtqueue_unmap(struct virtqueue *vq);

/* Pop the next chain. 1 with *elem filled, 0 if the ring is empty, -EIO if
 * the ring is (now) broken, -ENODEV if it is not ready. */
int virtqueue_pop(struct virtqueue *vq, enum virtqueue_dir dir, struct virtqueue_elem *elem);
/* Give back the chain popped last (nothing was written to it). */
void virtqueue_unpop(struct virtqueue *vq);
/* Return a chain with `len` bytes written into it. */
void virtqueue_push(struct virtqueue *vq, const struct virtqueue_elem *elem, uint32_t len);
/* The same, by the chain's head index (a chain held past its element's reuse). */
void virtqueue_push_head(struct virtqueue *vq, uint16_t head, uint32_t len);
/* Signal the call fd if the driver wants to hear about used buffers. */
void virtqueue_notify(struct virtqueue *vq);
/* Ask for (or stop asking for) a kick when new buffers arrive. With
 * EVENT_IDX, re-checks afterwards: returns true if buffers arrived meanwhile. */
bool virtqueue_enable_kick(struct virtqueue *vq);
bool virtqueue_empty(struct virtqueue *vq);
/* Mark broken, log once (rate-limited across queues), signal the err fd. */
void virtqueue_set_broken(struct virtqueue *vq, const char *why);
