/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "virtqueue.h"

static struct log_ratelimit virtqueue_broken_rl = LOG_RATELIMIT_INIT(5000, 10);

/* The guest runs on other CPUs: these order our accesses to the shared rings. */
#define virtqueue_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define virtqueue_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define virtqueue_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

static uint16_t virtqueue_load16(const void *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static void virtqueue_store16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

void virtqueue_init(struct virtqueue *vq, unsigned index, const char *name, struct guest_memory *mem)
{
	*vq = (struct virtqueue){
		.index = index,
		.name = name,
		.mem = mem,
		.kick_fd = -1,
		.call_fd = -1,
		.err_fd = -1,
	};
}

void virtqueue_reset(struct virtqueue *vq)
{
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	if (vq->err_fd >= 0)
		close(vq->err_fd);
	virtqueue_init(vq, vq->index, vq->name, vq->mem);
}

int virtqueue_map(struct virtqueue *vq)
{
	uint64_t n = vq->num;

	vq->ready = false;
	if (n == 0 || !vq->addr_set)
		return -EINVAL;
	/* Alignment per the virtio spec; also keeps our loads aligned. */
	if ((vq->desc_uva & 15) || (vq->avail_uva & 1) || (vq->used_uva & 3))
		return -EFAULT;
	vq->desc = guest_memory_uva(vq->mem, vq->desc_uva, 16 * n);
	vq->avail = guest_memory_uva(vq->mem, vq->avail_uva, 4 + 2 * n + 2);
	vq->used = guest_memory_uva(vq->mem, vq->used_uva, 4 + 8 * n + 2);
	/* A region's mmap offset may be odd: check where the rings land for us too. */
	if (!vq->desc || !vq->avail || !vq->used || ((uintptr_t)vq->desc & 15) ||
		((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3)) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return -EFAULT;
	}
	vq->ready = true;
	return 0;
}

void virtqueue_unmap(struct virtqueue *vq)
{
	vq->ready = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
}

void virtqueue_set_broken(struct virtqueue *vq, const char *why)
{
	uint64_t one = 1;

	if (vq->broken)
		return;
	vq->broken = true;
	log_ratelimited(&virtqueue_broken_rl, LOG_WARNING, 0,
		"Queue %s is broken (%s); it stays stopped until the front-end resets it", vq->name,
		why);
	if (vq->err_fd >= 0 && write(vq->err_fd, &one, sizeof(one)) < 0)
		log_debug_errno(-errno, "Failed to signal the error fd of queue %s: %m", vq->name);
}

static int virtqueue_fail(struct virtqueue *vq, const char *why)
{
	virtqueue_set_broken(vq, why);
	return -EIO;
}

bool virtqueue_empty(struct virtqueue *vq)
{
	if (!vq->ready || vq->broken)
		return true;
	return virtqueue_load16(&vq->avail->idx) == vq->last_avail;
}

/* Append one descriptor (already copied out of guest memory) to elem. */
static int virtqueue_add_desc(struct virtqueue *vq, const struct vring_desc *d,
	enum virtqueue_dir dir, struct virtqueue_elem *elem)
{
	uint16_t flags = le16toh(d->flags);
	uint32_t len = le32toh(d->len);
	size_t n = elem->n_out + elem->n_in;
	int r;

	if (flags & VRING_DESC_F_WRITE) {
		if (dir == VIRTQUEUE_READABLE)
			return virtqueue_fail(vq, "writable descriptor on a device-readable queue");
	} else {
		if (dir == VIRTQUEUE_WRITABLE)
			return virtqueue_fail(vq, "readable descriptor on a device-writable queue");
		if (elem->n_in > 0 || elem->in_len > 0)
			return virtqueue_fail(vq, "readable descriptor after a writable one");
	}
	if (len == 0)
		return 0;
	r = guest_memory_iovec(vq->mem, le64toh(d->addr), len, elem->iov, &n, VIRTQUEUE_MAX_IOV);
	if (r == -ENOBUFS)
		return virtqueue_fail(vq, "chain spans too many buffers");
	if (r < 0)
		return virtqueue_fail(vq, "descriptor outside guest memory");
	if (flags & VRING_DESC_F_WRITE) {
		elem->n_in = n - elem->n_out;
		elem->in_len += len;
	} else {
		elem->n_out = n;
		elem->out_len += len;
	}
	return 0;
}

int virtqueue_pop(struct virtqueue *vq, enum virtqueue_dir dir, struct virtqueue_elem *elem)
{
	const uint8_t *table; /* descriptors, possibly unaligned (indirect) */
	uint16_t avail_idx, head, i;
	unsigned limit, count = 0;
	bool indirect = false;

	if (vq->broken)
		return -EIO;
	if (!vq->ready)
		return -ENODEV;
	avail_idx = virtqueue_load16(&vq->avail->idx);
	if (avail_idx == vq->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->num)
		return virtqueue_fail(vq, "available index moved by more than the ring size");
	/* Read the ring entry only after seeing the index that published it. */
	virtqueue_rmb();
	head = virtqueue_load16(&vq->avail->ring[vq->last_avail & (vq->num - 1)]);
	if (head >= vq->num)
		return virtqueue_fail(vq, "head index out of range");

	elem->head = head;
	elem->n_out = elem->n_in = 0;
	elem->out_len = elem->in_len = 0;
	table = (const uint8_t *)vq->desc;
	limit = vq->num;
	i = head;
	for (;;) {
		struct vring_desc d;
		uint16_t flags;

		if (++count > limit)
			return virtqueue_fail(vq,
				"descriptor chain longer than the ring (a loop?)");
		/* One copy, then only the copy is used: the guest may change the original. */
		memcpy(&d, table + (size_t)i * sizeof(d), sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT) {
			uint32_t len = le32toh(d.len);
			if (indirect)
				return virtqueue_fail(vq, "nested indirect descriptor table");
			if (flags & VRING_DESC_F_NEXT)
				return virtqueue_fail(vq, "indirect descriptor with NEXT set");
			if (len == 0 || len % sizeof(struct vring_desc) ||
				len / sizeof(struct vring_desc) > vq->num)
				return virtqueue_fail(vq, "bad indirect table length");
			table = guest_memory_gpa(vq->mem, le64toh(d.addr), len);
			/* No alignment demand: the spec sets none for indirect tables, and
			 * the descriptors are copied out with memcpy anyway. */
			if (!table)
				return virtqueue_fail(vq, "indirect table outside guest memory");
			indirect = true;
			limit = len / sizeof(struct vring_desc);
			count = 0;
			i = 0;
			continue;
		}
		if (virtqueue_add_desc(vq, &d, dir, elem) < 0)
			return -EIO;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= limit)
			return virtqueue_fail(vq, "next index out of range");
	}
	vq->last_avail++;
	return 1;
}

void virtqueue_unpop(struct virtqueue *vq)
{
	vq->last_avail--;
}

void virtqueue_push(struct virtqueue *vq, const struct virtqueue_elem *elem, uint32_t len)
{
	virtqueue_push_head(vq, elem->head, len);
}

void virtqueue_push_head(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *u;

	if (!vq->ready || vq->broken)
		return;
	u = &vq->used->ring[vq->used_idx & (vq->num - 1)];
	u->id = htole32(head);
	u->len = htole32(len);
	/* The entry must be visible before the index that publishes it. */
	virtqueue_wmb();
	vq->used_idx++;
	virtqueue_store16(&vq->used->idx, vq->used_idx);
}

static bool virtqueue_should_notify(struct virtqueue *vq)
{
	uint16_t old, new, event;
	bool valid;

	/* Our used index must be visible before we read the driver's wishes. */
	virtqueue_mb();
	if (vq->notify_on_empty && !vq->event_idx &&
		virtqueue_load16(&vq->avail->idx) == vq->last_avail)
		return true;
	if (!vq->event_idx)
		return !(virtqueue_load16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (!valid)
		return true;
	event = virtqueue_load16(&vq->avail->ring[vq->num]); /* used_event */
	return vring_need_event(event, new, old);
}

void virtqueue_notify(struct virtqueue *vq)
{
	uint64_t one = 1;

	if (!vq->ready || vq->call_fd < 0)
		return;
	if (!virtqueue_should_notify(vq))
		return;
	if (write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug_errno(-errno, "Failed to signal queue %s: %m", vq->name);
}

bool virtqueue_enable_kick(struct virtqueue *vq)
{
	if (!vq->ready || vq->broken)
		return false;
	if (!vq->event_idx)
		return false; /* we never set VRING_USED_F_NO_NOTIFY: kicks always come */
	/* avail_event: kick us once the driver publishes past what we consumed. */
	virtqueue_store16(&vq->used->ring[vq->num], vq->last_avail);
	virtqueue_mb();
	return virtqueue_load16(&vq->avail->idx) != vq->last_avail;
}
