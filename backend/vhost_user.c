/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vhost-user back-end: message framing, a request table checked before any
 * handler runs, and the ring start/stop rules (docs/interop/vhost-user.rst). */
#include <endian.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "vhost_user.h"

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_REPLY_FLAG (1u << 2)
#define VHOST_USER_NEED_REPLY_FLAG (1u << 3)
#define VHOST_USER_HDR_SIZE 12u
#define VHOST_USER_VRING_IDX_MASK 0xffu
#define VHOST_USER_VRING_NOFD_MASK (1u << 8)
#define VHOST_USER_MEM_BASELINE_REGIONS 8u
#define VHOST_USER_CONFIG_HDR_SIZE 12u
#define VHOST_USER_MAX_CONFIG_SIZE 256u

enum {
	VHOST_USER_PROTOCOL_F_MQ = 0,
	VHOST_USER_PROTOCOL_F_REPLY_ACK = 3,
	VHOST_USER_PROTOCOL_F_CONFIG = 9,
	VHOST_USER_PROTOCOL_F_RESET_DEVICE = 13,
	VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
};

#define VHOST_USER_PROTOCOL_FEATURES                                                      \
	((1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
		(1ull << VHOST_USER_PROTOCOL_F_CONFIG) |                                  \
		(1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |                            \
		(1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

#define VHOST_USER_VIRTIO_FEATURES                                                                   \
	((1ull << VIRTIO_F_VERSION_1_BIT) | (1ull << VIRTIO_RING_F_EVENT_IDX_BIT) |                  \
		(1ull << VIRTIO_RING_F_INDIRECT_DESC_BIT) | (1ull << VIRTIO_F_NOTIFY_ON_EMPTY_BIT) | \
		(1ull << VHOST_USER_F_PROTOCOL_FEATURES_BIT))

struct vhost_user_hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

struct vhost_user_state {
	uint32_t index, num;
};

struct vhost_user_addr {
	uint32_t index, flags;
	uint64_t desc, used, avail, log;
};

struct vhost_user_region {
	uint64_t gpa, size, uva, mmap_offset;
};

struct vhost_user_mem_table {
	uint32_t nregions, padding;
	struct vhost_user_region regions[VHOST_USER_MEM_BASELINE_REGIONS];
};

struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_region region;
};

struct vhost_user_config {
	uint32_t offset, size, flags;
	uint8_t region[VHOST_USER_MAX_CONFIG_SIZE];
};

struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union {
		uint64_t u64;
		struct vhost_user_state state;
		struct vhost_user_addr addr;
		struct vhost_user_mem_table mem;
		struct vhost_user_mem_reg memreg;
		struct vhost_user_config config;
		uint8_t raw[VHOST_USER_MAX_PAYLOAD];
	} payload;
	int fds[VHOST_USER_MAX_FDS];
	unsigned n_fds;
};

struct vhost_user {
	struct event_base *base;
	int listen_fd, fd;
	struct event *listen_ev, *ev;
	struct event *fault_ev; /* guest memory truncated under us */
	struct event *kick_ev[VHOST_USER_NUM_QUEUES];
	bool started[VHOST_USER_NUM_QUEUES];
	const struct vhost_user_device_ops *ops;
	void *userdata;

	uint64_t features, protocol_features;
	struct guest_memory mem;
	struct virtqueue vq[VHOST_USER_NUM_QUEUES];

	/* The message being read: bytes so far and the fds that came with them. */
	struct vhost_user_msg msg;
	size_t have;
};

/* Front-end message types (docs/interop/vhost-user.rst), the ones handled here. */
enum {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_LOG_BASE = 6,
	VHOST_USER_SET_LOG_FD = 7,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_RESET_DEVICE = 34,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
};

/* Where a request carries a queue index, checked by the dispatcher. */
enum vhost_user_queue_arg {
	VHOST_USER_QUEUE_NONE,
	VHOST_USER_QUEUE_STATE, /* struct vhost_user_state .index */
	VHOST_USER_QUEUE_ADDR,  /* struct vhost_user_addr .index */
	VHOST_USER_QUEUE_U64,   /* u64, bits VHOST_USER_VRING_IDX_MASK */
};

struct vhost_user_request {
	const char *name;
	int (*handler)(struct vhost_user *vu, struct vhost_user_msg *msg);
	uint32_t size;    /* payload size */
	bool size_is_min; /* size is a minimum, the handler checks the rest */
	uint8_t fds_min, fds_max;
	bool has_reply;                  /* the handler sends its own reply */
	enum vhost_user_queue_arg queue; /* index checked < VHOST_USER_NUM_QUEUES first */
};

static const char *const vhost_user_queue_names[VHOST_USER_NUM_QUEUES] = { "rx", "tx" };

static void vhost_user_close_fds(struct vhost_user_msg *msg)
{
	for (unsigned i = 0; i < msg->n_fds; i++)
		if (msg->fds[i] >= 0)
			close(msg->fds[i]);
	msg->n_fds = 0;
}

static int vhost_user_send(struct vhost_user *vu, uint32_t request, const void *payload, uint32_t size)
{
	struct vhost_user_hdr hdr = {
		.request = request,
		.flags = VHOST_USER_VERSION | VHOST_USER_REPLY_FLAG,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	n = sendmsg(vu->fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return log_error_errno(-errno, "Failed to send vhost-user reply: %m");
	/* Replies are small; a front-end that does not read them is gone. */
	if ((size_t)n != sizeof(hdr) + size)
		return log_error_errno(-EIO, "Short vhost-user reply write");
	return 0;
}

static int vhost_user_reply_u64(struct vhost_user *vu, const struct vhost_user_msg *msg, uint64_t v)
{
	return vhost_user_send(vu, msg->hdr.request, &v, sizeof(v));
}

/* The queue index a request carries (its table row says where). */
static uint32_t vhost_user_msg_queue(const struct vhost_user_msg *msg, enum vhost_user_queue_arg where)
{
	switch (where) {
	case VHOST_USER_QUEUE_STATE:
		return msg->payload.state.index;
	case VHOST_USER_QUEUE_ADDR:
		return msg->payload.addr.index;
	case VHOST_USER_QUEUE_U64:
		return (uint32_t)(msg->payload.u64 & VHOST_USER_VRING_IDX_MASK);
	case VHOST_USER_QUEUE_NONE:
		break;
	}
	return 0;
}

/* The request's queue; the dispatcher checked the index already. */
static struct virtqueue *vhost_user_vq(struct vhost_user *vu, uint32_t index)
{
	assert(index < VHOST_USER_NUM_QUEUES);
	return &vu->vq[index];
}

/* The kernel names an eventfd's inode "anon_inode:[eventfd]". Without /proc
 * (a sandbox hiding it) only the fstat() checks apply. */
static bool vhost_user_is_eventfd(int fd)
{
	char path[64], target[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return errno == ENOENT && access("/proc/self/fd", F_OK) < 0;
	target[n] = 0;
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static void vhost_user_kick_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct virtqueue *vq = userdata;
	struct vhost_user *vu =
		(struct vhost_user *)((char *)(vq - vq->index) - offsetof(struct vhost_user, vq));
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR)
		log_debug_errno(-errno, "Failed to read kick of queue %s: %m", vq->name);
	vu->ops->queue_kick(vu->userdata, vq);
}

static bool vhost_user_protocol_negotiated(const struct vhost_user *vu)
{
	return vu->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES_BIT);
}

/* Before a started ring is unmapped, resized, moved or translated again, or
 * the memory its buffers are in changes. */
static void vhost_user_queue_release(struct vhost_user *vu, unsigned i)
{
	if (vu->started[i] && vu->vq[i].ready && vu->ops->queue_release)
		vu->ops->queue_release(vu->userdata, &vu->vq[i]);
}

static void vhost_user_queue_stop(struct vhost_user *vu, unsigned i)
{
	if (!vu->started[i])
		return;
	vhost_user_queue_release(vu, i);
	event_del(vu->kick_ev[i]);
	virtqueue_unmap(&vu->vq[i]);
	vu->started[i] = false;
	log_debug("Queue %s stopped", vu->vq[i].name);
}

/* Start or stop a ring after anything it depends on changed: it runs once it
 * has memory, addresses and a kick fd, and (with protocol features) is enabled. */
static void vhost_user_queue_update(struct vhost_user *vu, unsigned i)
{
	struct virtqueue *vq = &vu->vq[i];
	bool want = vq->kick_fd >= 0 && vq->addr_set && vq->num > 0 && vu->mem.n_regions > 0 &&
		    (!vhost_user_protocol_negotiated(vu) || vq->enabled);
	int r;

	if (!want) {
		vhost_user_queue_stop(vu, i);
		return;
	}
	if (vu->started[i]) {
		/* Memory may have moved: translate again. Held chains go back first
		 * (a ring that no longer maps stops unready, nothing may stay held
		 * past that); the handlers changing its size or addresses did so
		 * before the change, through the rings they came from. */
		vhost_user_queue_release(vu, i);
		r = virtqueue_map(vq);
		if (r < 0) {
			log_error_errno(r, "Queue %s no longer inside guest memory, stopping: %m",
				vq->name);
			vhost_user_queue_stop(vu, i);
		}
		return;
	}
	r = virtqueue_map(vq);
	if (r < 0) {
		log_error_errno(r, "Queue %s rings are outside guest memory or misaligned: %m",
			vq->name);
		return;
	}
	event_assign(vu->kick_ev[i], vu->base, vq->kick_fd, EV_READ | EV_PERSIST,
		vhost_user_kick_cb, vq);
	if (event_add(vu->kick_ev[i], NULL) < 0) {
		log_error("Queue %s: cannot wait on its kick fd, not starting", vq->name);
		virtqueue_unmap(vq);
		return;
	}
	vu->started[i] = true;
	log_debug("Queue %s started (size %u, base %u)", vq->name, vq->num, vq->last_avail);
	/* Buffers may already be waiting. */
	vu->ops->queue_kick(vu->userdata, vq);
}

static void vhost_user_queues_update(struct vhost_user *vu)
{
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++)
		vhost_user_queue_update(vu, i);
}

static void vhost_user_reset_queues(struct vhost_user *vu)
{
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++) {
		vhost_user_queue_stop(vu, i);
		virtqueue_reset(&vu->vq[i]);
	}
	vu->ops->reset(vu->userdata);
}

/* ---- handlers ---- */

static int vhost_user_get_features(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return vhost_user_reply_u64(vu, msg, VHOST_USER_VIRTIO_FEATURES | vu->ops->device_features);
}

static int vhost_user_set_features(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	uint64_t offered = VHOST_USER_VIRTIO_FEATURES | vu->ops->device_features;

	if (msg->payload.u64 & ~offered)
		return log_error_errno(-EINVAL,
			"vhost-user: front-end acked unoffered features 0x%llx",
			(unsigned long long)(msg->payload.u64 & ~offered));
	vu->features = msg->payload.u64;
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++) {
		vu->vq[i].event_idx = vu->features & (1ull << VIRTIO_RING_F_EVENT_IDX_BIT);
		vu->vq[i].notify_on_empty = vu->features & (1ull << VIRTIO_F_NOTIFY_ON_EMPTY_BIT);
	}
	log_debug("Features 0x%llx", (unsigned long long)vu->features);
	if (vu->ops->features_set)
		vu->ops->features_set(vu->userdata, vu->features);
	vhost_user_queues_update(vu);
	return 0;
}

static int vhost_user_get_protocol_features(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return vhost_user_reply_u64(vu, msg, VHOST_USER_PROTOCOL_FEATURES);
}

static int vhost_user_set_protocol_features(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	if (msg->payload.u64 & ~VHOST_USER_PROTOCOL_FEATURES)
		return log_error_errno(-EINVAL,
			"vhost-user: front-end acked unoffered protocol features 0x%llx",
			(unsigned long long)(msg->payload.u64 & ~VHOST_USER_PROTOCOL_FEATURES));
	vu->protocol_features = msg->payload.u64;
	return 0;
}

static int vhost_user_set_owner(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return 0;
}

static int vhost_user_reset_owner(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	vhost_user_reset_queues(vu);
	vu->features = 0;
	return 0;
}

static int vhost_user_reset_device(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	vhost_user_reset_queues(vu);
	return 0;
}

static int vhost_user_add_region(struct vhost_user *vu, const struct vhost_user_region *r, int fd)
{
	return guest_memory_add(&vu->mem, r->gpa, r->size, r->uva, r->mmap_offset, fd);
}

static int vhost_user_set_mem_table(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	const struct vhost_user_mem_table *t = &msg->payload.mem;
	int r;

	if (t->nregions == 0 || t->nregions > VHOST_USER_MEM_BASELINE_REGIONS)
		return log_error_errno(-EINVAL, "vhost-user: %u memory regions (1..%u allowed)",
			t->nregions, VHOST_USER_MEM_BASELINE_REGIONS);
	if (msg->hdr.size != 8 + t->nregions * sizeof(struct vhost_user_region))
		return log_error_errno(-EINVAL, "vhost-user: memory table size %u for %u regions",
			msg->hdr.size, t->nregions);
	if (msg->n_fds != t->nregions)
		return log_error_errno(-EINVAL, "vhost-user: %u memory regions but %u fds",
			t->nregions, msg->n_fds);
	/* Replace the whole table: stop rings pointing into the old one first. */
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++)
		if (vu->started[i]) {
			vhost_user_queue_release(vu, i);
			virtqueue_unmap(&vu->vq[i]);
		}
	guest_memory_clear(&vu->mem);
	for (unsigned i = 0; i < t->nregions; i++) {
		r = vhost_user_add_region(vu, &t->regions[i], msg->fds[i]);
		if (r < 0) {
			guest_memory_clear(&vu->mem);
			vhost_user_queues_update(vu);
			return r;
		}
	}
	log_debug("Memory table with %u regions", t->nregions);
	vhost_user_queues_update(vu);
	return 0;
}

static int vhost_user_get_max_mem_slots(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return vhost_user_reply_u64(vu, msg, GUEST_MEMORY_MAX_REGIONS);
}

static int vhost_user_add_mem_reg(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	int r;

	r = vhost_user_add_region(vu, &msg->payload.memreg.region, msg->fds[0]);
	if (r < 0)
		return r;
	vhost_user_queues_update(vu);
	return 0;
}

static int vhost_user_rem_mem_reg(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	const struct vhost_user_region *reg = &msg->payload.memreg.region;
	int r;

	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++)
		if (vu->started[i]) {
			vhost_user_queue_release(vu, i);
			virtqueue_unmap(&vu->vq[i]);
		}
	r = guest_memory_remove(&vu->mem, reg->gpa, reg->size, reg->uva);
	if (r < 0)
		log_error_errno(r, "vhost-user: no memory region 0x%llx+0x%llx to remove",
			(unsigned long long)reg->gpa, (unsigned long long)reg->size);
	vhost_user_queues_update(vu);
	return r;
}

static int vhost_user_set_vring_num(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq = vhost_user_vq(vu, msg->payload.state.index);
	uint32_t num = msg->payload.state.num;

	if (num == 0 || num > VIRTQUEUE_MAX_SIZE || (num & (num - 1)))
		return log_error_errno(-EINVAL,
			"vhost-user: ring size %u is not a power of two <= %u", num,
			VIRTQUEUE_MAX_SIZE);
	/* Held chains go back through the ring as it is mapped now. */
	vhost_user_queue_release(vu, vq->index);
	vq->num = (uint16_t)(num == VIRTQUEUE_MAX_SIZE ? 32768 : num);
	vhost_user_queue_update(vu, vq->index);
	return 0;
}

static int vhost_user_set_vring_addr(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	const struct vhost_user_addr *a = &msg->payload.addr;
	struct virtqueue *vq = vhost_user_vq(vu, a->index);
	struct virtqueue saved;
	int r;

	/* Held chains go back through the rings they came from. */
	vhost_user_queue_release(vu, vq->index);
	saved = *vq;
	vq->desc_uva = a->desc;
	vq->avail_uva = a->avail;
	vq->used_uva = a->used;
	vq->addr_set = true;
	/* With memory and a size known, reject rings outside memory right away. */
	if (vu->mem.n_regions > 0 && vq->num > 0) {
		r = virtqueue_map(vq);
		if (r < 0) {
			*vq = saved;
			if (vu->started[vq->index])
				virtqueue_map(vq);
			return log_error_errno(r, "vhost-user: queue %u rings outside guest memory",
				a->index);
		}
		if (!vu->started[vq->index])
			virtqueue_unmap(vq);
	}
	vhost_user_queue_update(vu, vq->index);
	return 0;
}

static int vhost_user_set_vring_base(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq = vhost_user_vq(vu, msg->payload.state.index);

	if (msg->payload.state.num > UINT16_MAX)
		return log_error_errno(-EINVAL, "vhost-user: ring base %u out of range",
			msg->payload.state.num);
	vq->last_avail = vq->used_idx = (uint16_t)msg->payload.state.num;
	vq->signalled_used_valid = false;
	vq->broken = false;
	return 0;
}

static int vhost_user_get_vring_base(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq = vhost_user_vq(vu, msg->payload.state.index);
	struct vhost_user_state st;

	/* GET_VRING_BASE stops the ring; it restarts with a new kick fd. */
	vhost_user_queue_stop(vu, vq->index);
	if (vq->kick_fd >= 0) {
		close(vq->kick_fd);
		vq->kick_fd = -1;
	}
	st = (struct vhost_user_state){ .index = vq->index, .num = vq->last_avail };
	return vhost_user_send(vu, msg->hdr.request, &st, sizeof(st));
}

/* SET_VRING_KICK/CALL/ERR: u64 with the index and a "no fd" bit. */
static int vhost_user_vring_fd(struct vhost_user *vu, struct vhost_user_msg *msg,
	struct virtqueue **ret_vq, int *ret_fd)
{
	uint64_t v = msg->payload.u64;
	bool nofd = v & VHOST_USER_VRING_NOFD_MASK;
	struct virtqueue *vq;

	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
		return log_error_errno(-EINVAL, "vhost-user: unknown bits in vring fd message");
	vq = vhost_user_vq(vu, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));
	if (msg->n_fds != (nofd ? 0u : 1u))
		return log_error_errno(-EINVAL, "vhost-user: vring fd message with %u fds, nofd=%d",
			msg->n_fds, nofd);
	if (!nofd) {
		struct stat st;
		int flags;

		/* Must be an eventfd: a file would never wait, and a pipe or socket
		 * the front-end keeps full would stay readable (a busy loop). */
		if (fstat(msg->fds[0], &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ||
			!vhost_user_is_eventfd(msg->fds[0]))
			return log_error_errno(-EINVAL, "vhost-user: vring fd is not an eventfd");
		/* A kick fd we read from must never block the loop. */
		flags = fcntl(msg->fds[0], F_GETFL);
		if (flags < 0 || fcntl(msg->fds[0], F_SETFL, flags | O_NONBLOCK) < 0)
			return log_error_errno(-errno, "vhost-user: bad vring fd: %m");
	}
	*ret_vq = vq;
	*ret_fd = nofd ? -1 : msg->fds[0];
	if (!nofd)
		msg->fds[0] = -1; /* taken */
	return 0;
}

static int vhost_user_set_vring_kick(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq;
	int r, fd;

	r = vhost_user_vring_fd(vu, msg, &vq, &fd);
	if (r < 0)
		return r;
	vhost_user_queue_stop(vu, vq->index);
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	vq->kick_fd = fd;
	vhost_user_queue_update(vu, vq->index);
	return 0;
}

static int vhost_user_set_vring_call(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq;
	int r, fd;

	r = vhost_user_vring_fd(vu, msg, &vq, &fd);
	if (r < 0)
		return r;
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq->call_fd = fd;
	/* The driver may have missed a signal while we had no fd. */
	vq->signalled_used_valid = false;
	return 0;
}

static int vhost_user_set_vring_err(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq;
	int r, fd;

	r = vhost_user_vring_fd(vu, msg, &vq, &fd);
	if (r < 0)
		return r;
	if (vq->err_fd >= 0)
		close(vq->err_fd);
	vq->err_fd = fd;
	return 0;
}

static int vhost_user_set_vring_enable(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct virtqueue *vq = vhost_user_vq(vu, msg->payload.state.index);

	if (msg->payload.state.num > 1)
		return log_error_errno(-EINVAL, "vhost-user: vring enable value %u",
			msg->payload.state.num);
	vq->enabled = msg->payload.state.num;
	vhost_user_queue_update(vu, vq->index);
	return 0;
}

static int vhost_user_get_queue_num(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return vhost_user_reply_u64(vu, msg, VHOST_USER_NUM_QUEUES);
}

static int vhost_user_config_check(struct vhost_user *vu, const struct vhost_user_msg *msg)
{
	const struct vhost_user_config *c = &msg->payload.config;

	if (c->size > VHOST_USER_MAX_CONFIG_SIZE ||
		msg->hdr.size != VHOST_USER_CONFIG_HDR_SIZE + c->size ||
		c->offset > vu->ops->config_size || c->size > vu->ops->config_size - c->offset)
		return log_error_errno(-EINVAL, "vhost-user: bad config access offset %u size %u",
			c->offset, c->size);
	return 0;
}

static int vhost_user_get_config(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	struct vhost_user_config *c = &msg->payload.config;
	int r;

	r = vhost_user_config_check(vu, msg);
	if (r < 0)
		return r;
	memcpy(c->region, vu->ops->config + c->offset, c->size);
	return vhost_user_send(vu, msg->hdr.request, c, VHOST_USER_CONFIG_HDR_SIZE + c->size);
}

static int vhost_user_set_config(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	int r;

	r = vhost_user_config_check(vu, msg);
	if (r < 0)
		return r;
	/* The vsock config space (guest_cid) is read-only for the driver. */
	return log_warning_errno(-EPERM,
		"vhost-user: SET_CONFIG on read-only config space, refusing");
}

static int vhost_user_unsupported(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	return log_error_errno(-EOPNOTSUPP, "vhost-user: request %u not supported (never offered)",
		msg->hdr.request);
}

static const struct vhost_user_request vhost_user_requests[] = {
	[VHOST_USER_GET_FEATURES] = { .name = "GET_FEATURES",
		.handler = vhost_user_get_features,
		.has_reply = true },
	[VHOST_USER_SET_FEATURES] = { .name = "SET_FEATURES",
		.handler = vhost_user_set_features,
		.size = sizeof(uint64_t) },
	[VHOST_USER_SET_OWNER] = { .name = "SET_OWNER", .handler = vhost_user_set_owner },
	[VHOST_USER_RESET_OWNER] = { .name = "RESET_OWNER", .handler = vhost_user_reset_owner },
	[VHOST_USER_SET_MEM_TABLE] = { .name = "SET_MEM_TABLE",
		.handler = vhost_user_set_mem_table,
		.size = 8,
		.size_is_min = true,
		.fds_min = 1,
		.fds_max = VHOST_USER_MEM_BASELINE_REGIONS },
	[VHOST_USER_SET_LOG_BASE] = { .name = "SET_LOG_BASE",
		.handler = vhost_user_unsupported,
		.size_is_min = true,
		.fds_max = VHOST_USER_MAX_FDS },
	[VHOST_USER_SET_LOG_FD] = { .name = "SET_LOG_FD",
		.handler = vhost_user_unsupported,
		.size_is_min = true,
		.fds_max = VHOST_USER_MAX_FDS },
	[VHOST_USER_SET_VRING_NUM] = { .name = "SET_VRING_NUM",
		.handler = vhost_user_set_vring_num,
		.size = sizeof(struct vhost_user_state),
		.queue = VHOST_USER_QUEUE_STATE },
	[VHOST_USER_SET_VRING_ADDR] = { .name = "SET_VRING_ADDR",
		.handler = vhost_user_set_vring_addr,
		.size = sizeof(struct vhost_user_addr),
		.queue = VHOST_USER_QUEUE_ADDR },
	[VHOST_USER_SET_VRING_BASE] = { .name = "SET_VRING_BASE",
		.handler = vhost_user_set_vring_base,
		.size = sizeof(struct vhost_user_state),
		.queue = VHOST_USER_QUEUE_STATE },
	[VHOST_USER_GET_VRING_BASE] = { .name = "GET_VRING_BASE",
		.handler = vhost_user_get_vring_base,
		.size = sizeof(struct vhost_user_state),
		.has_reply = true,
		.queue = VHOST_USER_QUEUE_STATE },
	[VHOST_USER_SET_VRING_KICK] = { .name = "SET_VRING_KICK",
		.handler = vhost_user_set_vring_kick,
		.size = sizeof(uint64_t),
		.fds_max = 1,
		.queue = VHOST_USER_QUEUE_U64 },
	[VHOST_USER_SET_VRING_CALL] = { .name = "SET_VRING_CALL",
		.handler = vhost_user_set_vring_call,
		.size = sizeof(uint64_t),
		.fds_max = 1,
		.queue = VHOST_USER_QUEUE_U64 },
	[VHOST_USER_SET_VRING_ERR] = { .name = "SET_VRING_ERR",
		.handler = vhost_user_set_vring_err,
		.size = sizeof(uint64_t),
		.fds_max = 1,
		.queue = VHOST_USER_QUEUE_U64 },
	[VHOST_USER_GET_PROTOCOL_FEATURES] = { .name = "GET_PROTOCOL_FEATURES",
		.handler = vhost_user_get_protocol_features,
		.has_reply = true },
	[VHOST_USER_SET_PROTOCOL_FEATURES] = { .name = "SET_PROTOCOL_FEATURES",
		.handler = vhost_user_set_protocol_features,
		.size = sizeof(uint64_t) },
	[VHOST_USER_GET_QUEUE_NUM] = { .name = "GET_QUEUE_NUM",
		.handler = vhost_user_get_queue_num,
		.has_reply = true },
	[VHOST_USER_SET_VRING_ENABLE] = { .name = "SET_VRING_ENABLE",
		.handler = vhost_user_set_vring_enable,
		.size = sizeof(struct vhost_user_state),
		.queue = VHOST_USER_QUEUE_STATE },
	[VHOST_USER_GET_CONFIG] = { .name = "GET_CONFIG",
		.handler = vhost_user_get_config,
		.size = VHOST_USER_CONFIG_HDR_SIZE,
		.size_is_min = true,
		.has_reply = true },
	[VHOST_USER_SET_CONFIG] = { .name = "SET_CONFIG",
		.handler = vhost_user_set_config,
		.size = VHOST_USER_CONFIG_HDR_SIZE,
		.size_is_min = true },
	[VHOST_USER_RESET_DEVICE] = { .name = "RESET_DEVICE", .handler = vhost_user_reset_device },
	[VHOST_USER_GET_MAX_MEM_SLOTS] = { .name = "GET_MAX_MEM_SLOTS",
		.handler = vhost_user_get_max_mem_slots,
		.has_reply = true },
	[VHOST_USER_ADD_MEM_REG] = { .name = "ADD_MEM_REG",
		.handler = vhost_user_add_mem_reg,
		.size = sizeof(struct vhost_user_mem_reg),
		.fds_min = 1,
		.fds_max = 1 },
	[VHOST_USER_REM_MEM_REG] = { .name = "REM_MEM_REG",
		.handler = vhost_user_rem_mem_reg,
		.size = sizeof(struct vhost_user_mem_reg),
		.fds_max = 1 },
};

static void vhost_user_disconnect(struct vhost_user *vu);

/* Run one complete message. Returns < 0 when the connection must end. */
static int vhost_user_dispatch(struct vhost_user *vu, struct vhost_user_msg *msg)
{
	const struct vhost_user_request *req = NULL;
	bool need_reply;
	int r;

	if (msg->hdr.request < ELEMENTSOF(vhost_user_requests) &&
		vhost_user_requests[msg->hdr.request].handler)
		req = &vhost_user_requests[msg->hdr.request];
	need_reply = (msg->hdr.flags & VHOST_USER_NEED_REPLY_FLAG) &&
		     (vu->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));

	if (!req) {
		log_warning("vhost-user: unknown request %u, refusing", msg->hdr.request);
		r = -EOPNOTSUPP;
	} else if (req->size_is_min ? msg->hdr.size < req->size : msg->hdr.size != req->size) {
		log_error("vhost-user: %s with payload of %u bytes (expected %s%u)", req->name,
			msg->hdr.size, req->size_is_min ? ">= " : "", req->size);
		r = -EBADMSG;
	} else if (msg->n_fds < req->fds_min || msg->n_fds > req->fds_max) {
		log_error("vhost-user: %s with %u fds (expected %u..%u)", req->name, msg->n_fds,
			req->fds_min, req->fds_max);
		r = -EBADMSG;
	} else if (req->queue != VHOST_USER_QUEUE_NONE &&
		   vhost_user_msg_queue(msg, req->queue) >= VHOST_USER_NUM_QUEUES) {
		log_error("vhost-user: %s for queue %u, out of range (%u queues)", req->name,
			vhost_user_msg_queue(msg, req->queue), VHOST_USER_NUM_QUEUES);
		r = -ERANGE;
		if (req->has_reply) {
			/* The front-end waits for an answer we cannot give. */
			vhost_user_close_fds(msg);
			return r;
		}
	} else {
		log_debug("vhost-user: %s", req->name);
		r = req->handler(vu, msg);
		if (req->has_reply) {
			/* The front-end waits for an answer we could not give. */
			vhost_user_close_fds(msg);
			return r < 0 ? r : 0;
		}
	}
	vhost_user_close_fds(msg);
	if (req && req->has_reply && r < 0)
		return r;
	if (need_reply)
		return vhost_user_reply_u64(vu, msg, r < 0 ? 1 : 0);
	return 0;
}

static int vhost_user_read_some(struct vhost_user *vu, void *buf, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct vhost_user_msg *msg = &vu->msg;
	bool too_many = false;
	ssize_t n;

	n = recvmsg(vu->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (msg->n_fds < VHOST_USER_MAX_FDS)
				msg->fds[msg->n_fds++] = fd;
			else {
				close(fd);
				too_many = true;
			}
		}
	}
	if (too_many || (mh.msg_flags & MSG_CTRUNC))
		return log_error_errno(-EBADMSG, "vhost-user: more than %u fds with one message",
			VHOST_USER_MAX_FDS);
	if (n == 0)
		return -ECONNRESET;
	return (int)n;
}

static void vhost_user_read_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vhost_user *vu = userdata;
	struct vhost_user_msg *msg = &vu->msg;
	int r;

	for (;;) {
		size_t want;
		uint8_t *dst;

		if (vu->have < VHOST_USER_HDR_SIZE) {
			want = VHOST_USER_HDR_SIZE - vu->have;
			dst = (uint8_t *)&msg->hdr + vu->have;
		} else {
			want = VHOST_USER_HDR_SIZE + msg->hdr.size - vu->have;
			dst = msg->payload.raw + (vu->have - VHOST_USER_HDR_SIZE);
		}
		if (want > 0) {
			r = vhost_user_read_some(vu, dst, want);
			if (r == -EAGAIN)
				return;
			if (r == -ECONNRESET) {
				log_info("vhost-user front-end disconnected");
				goto fail;
			}
			if (r < 0) {
				log_error_errno(r, "vhost-user: failed to read message: %m");
				goto fail;
			}
			vu->have += (size_t)r;
		}
		if (vu->have == VHOST_USER_HDR_SIZE) {
			if ((msg->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
				log_error("vhost-user: bad version in flags 0x%x", msg->hdr.flags);
				goto fail;
			}
			if (msg->hdr.size > VHOST_USER_MAX_PAYLOAD) {
				log_error("vhost-user: payload of %u bytes exceeds %u",
					msg->hdr.size, VHOST_USER_MAX_PAYLOAD);
				goto fail;
			}
		}
		if (vu->have < VHOST_USER_HDR_SIZE || vu->have < VHOST_USER_HDR_SIZE + msg->hdr.size)
			continue;
		/* Zero the unused tail so fixed-size views never see stale bytes. */
		memset(msg->payload.raw + msg->hdr.size, 0, VHOST_USER_MAX_PAYLOAD - msg->hdr.size);
		vu->have = 0;
		r = vhost_user_dispatch(vu, msg);
		msg->n_fds = 0;
		if (r < 0)
			goto fail;
		if (vu->fd < 0)
			return;
	}
fail:
	vhost_user_disconnect(vu);
}

static void vhost_user_attach(struct vhost_user *vu, int fd)
{
	vu->fd = fd;
	vu->have = 0;
	vu->msg.n_fds = 0;
	event_assign(vu->ev, vu->base, fd, EV_READ | EV_PERSIST, vhost_user_read_cb, vu);
	event_add(vu->ev, NULL);
}

static void vhost_user_disconnect(struct vhost_user *vu)
{
	if (vu->fd < 0)
		return;
	event_del(vu->ev);
	close(vu->fd);
	vu->fd = -1;
	vhost_user_close_fds(&vu->msg);
	vu->have = 0;
	vhost_user_reset_queues(vu);
	guest_memory_clear(&vu->mem);
	vu->features = vu->protocol_features = 0;
	if (vu->ops->features_set)
		vu->ops->features_set(vu->userdata, 0);
	if (vu->listen_fd >= 0) {
		event_add(vu->listen_ev, NULL);
		log_info("Waiting for the next vhost-user front-end");
	} else
		event_base_loopbreak(vu->base);
}

static void vhost_user_fault_cb(evutil_socket_t fd, short what, void *userdata)
{
	struct vhost_user *vu = userdata;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return;
	log_error("The front-end truncated guest memory under a mapping (%llu faults), "
		  "disconnecting it",
		(unsigned long long)n);
	vhost_user_disconnect(vu);
}

static void vhost_user_accept_cb(evutil_socket_t lfd, short what, void *userdata)
{
	struct vhost_user *vu = userdata;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning_errno(-errno,
				"Failed to accept vhost-user front-end, ignoring: %m");
		return;
	}
	/* One front-end at a time: others wait in the backlog. */
	event_del(vu->listen_ev);
	log_info("vhost-user front-end connected");
	vhost_user_attach(vu, fd);
}

int vhost_user_new(struct event_base *base, int fd, const struct vhost_user_device_ops *ops,
	void *userdata, struct vhost_user **ret)
{
	_cleanup_close_ int fd_owned = fd;
	struct vhost_user *vu;
	int listening = 0, r;
	socklen_t sl = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &sl) < 0)
		return log_error_errno(-errno, "vhost-user fd %d is not a socket: %m", fd);
	vu = calloc(1, sizeof(*vu));
	if (!vu)
		return -ENOMEM;
	vu->base = base;
	vu->ops = ops;
	vu->userdata = userdata;
	vu->listen_fd = vu->fd = -1;
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++) {
		virtqueue_init(&vu->vq[i], i, vhost_user_queue_names[i], &vu->mem);
		vu->kick_ev[i] = event_new(base, -1, 0, NULL, NULL);
	}
	vu->ev = event_new(base, -1, 0, NULL, NULL);
	r = guest_memory_fault_fd();
	if (r < 0) {
		vhost_user_free(vu);
		return log_error_errno(r, "Failed to guard guest memory against truncation: %m");
	}
	vu->fault_ev = event_new(base, r, EV_READ | EV_PERSIST, vhost_user_fault_cb, vu);
	if (listening)
		vu->listen_ev = event_new(base, fd, EV_READ | EV_PERSIST, vhost_user_accept_cb, vu);
	if (!vu->ev || !vu->fault_ev || !vu->kick_ev[0] || !vu->kick_ev[1] ||
		(listening && !vu->listen_ev)) {
		vhost_user_free(vu);
		return -ENOMEM;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		vhost_user_free(vu);
		return -errno;
	}
	event_add(vu->fault_ev, NULL);
	if (listening) {
		vu->listen_fd = TAKE_FD(fd_owned);
		event_add(vu->listen_ev, NULL);
	} else
		vhost_user_attach(vu, TAKE_FD(fd_owned));
	*ret = vu;
	return 0;
}

struct vhost_user *vhost_user_free(struct vhost_user *vu)
{
	if (!vu)
		return NULL;
	if (vu->fd >= 0) {
		event_del(vu->ev);
		close(vu->fd);
		vu->fd = -1;
	}
	vhost_user_close_fds(&vu->msg);
	for (unsigned i = 0; i < VHOST_USER_NUM_QUEUES; i++) {
		/* The device gives back what it holds while the rings are still
		 * mapped: they go with vu, before the device is freed. */
		vhost_user_queue_stop(vu, i);
		if (vu->kick_ev[i]) {
			event_del(vu->kick_ev[i]);
			event_free(vu->kick_ev[i]);
		}
		virtqueue_reset(&vu->vq[i]);
	}
	guest_memory_clear(&vu->mem);
	if (vu->fault_ev)
		event_free(vu->fault_ev);
	if (vu->ev)
		event_free(vu->ev);
	if (vu->listen_ev)
		event_free(vu->listen_ev);
	if (vu->listen_fd >= 0)
		close(vu->listen_fd);
	free(vu);
	return NULL;
}

struct virtqueue *vhost_user_queue(struct vhost_user *vu, unsigned index)
{
	return index < VHOST_USER_NUM_QUEUES ? &vu->vq[index] : NULL;
}

bool vhost_user_connected(const struct vhost_user *vu)
{
	return vu->fd >= 0;
}
