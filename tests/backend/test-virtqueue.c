/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtqueue: pops over hand-built rings, every malformed chain marks the queue
 * broken without touching memory outside the region (ASan watches). */
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../tap.h"
#include "virtqueue.h"

#define GPA 0x100000ull
#define UVA 0x7f0000000000ull
#define MEM_SIZE (256 * 1024)
#define DESC_OFF 0x0
#define AVAIL_OFF 0x8000
#define USED_OFF 0xa000
#define DATA_OFF 0x10000

static uint8_t *mem;
static struct guest_memory gm;
static struct virtqueue vq;
static struct virtqueue_elem elem;
static uint16_t avail_idx;

static struct vring_desc *desc(unsigned i)
{
	return (struct vring_desc *)(mem + DESC_OFF) + i;
}

static struct vring_avail *avail(void)
{
	return (struct vring_avail *)(mem + AVAIL_OFF);
}

static struct vring_used *used(void)
{
	return (struct vring_used *)(mem + USED_OFF);
}

static void setup(unsigned num)
{
	memset(mem, 0, MEM_SIZE);
	guest_memory_clear(&gm);
	guest_memory_add_host(&gm, GPA, MEM_SIZE, UVA, mem);
	virtqueue_init(&vq, 1, "tx", &gm);
	vq.num = (uint16_t)num;
	vq.desc_uva = UVA + DESC_OFF;
	vq.avail_uva = UVA + AVAIL_OFF;
	vq.used_uva = UVA + USED_OFF;
	vq.addr_set = true;
	avail_idx = 0;
	if (virtqueue_map(&vq) < 0)
		diag("map failed");
}

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	*desc(i) = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

static void publish(uint16_t head)
{
	avail()->ring[avail_idx % vq.num] = head;
	avail_idx++;
	avail()->idx = avail_idx;
}

/* One broken case: pop fails with -EIO and the queue stays broken. */
static void expect_broken(enum virtqueue_dir dir, const char *what)
{
	int r = virtqueue_pop(&vq, dir, &elem);

	is_int(r, -EIO, "%s: pop fails", what);
	ok(vq.broken, "%s: queue marked broken", what);
	is_int(virtqueue_pop(&vq, dir, &elem), -EIO, "%s: stays broken", what);
	is_int(used()->idx, 0, "%s: nothing pushed", what);
}

static void test_good(void)
{
	setup(8);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), 0, "empty ring pops nothing");
	set_desc(0, GPA + DATA_OFF, 44, VRING_DESC_F_NEXT, 3);
	set_desc(3, GPA + DATA_OFF + 100, 1000, 0, 0);
	memcpy(mem + DATA_OFF, "header", 6);
	publish(0);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), 1, "two-descriptor chain pops");
	is_int(elem.n_out, 2, "two readable iovecs");
	is_int(elem.out_len, 1044, "total readable length");
	is_int(elem.n_in, 0, "no writable iovecs");
	ok(elem.iov[0].iov_base == mem + DATA_OFF, "iov points into the region");
	virtqueue_push(&vq, &elem, 0);
	is_int(used()->idx, 1, "used idx advanced");
	is_int(used()->ring[0].id, 0, "used id is the head");
	ok(!vq.broken, "queue fine");

	/* rx-like: writable chain, zero-length descriptors skipped. */
	set_desc(5, GPA + DATA_OFF, 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 6);
	set_desc(6, GPA + DATA_OFF, 4096, VRING_DESC_F_WRITE, 0);
	publish(5);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_WRITABLE, &elem), 1, "writable chain pops");
	is_int(elem.n_in, 1, "zero-length descriptor adds no iovec");
	is_int(elem.in_len, 4096, "writable length");
	virtqueue_unpop(&vq);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_WRITABLE, &elem), 1, "unpop gives it back");
	virtqueue_push(&vq, &elem, 50);
	is_int(used()->ring[1].len, 50, "used len written");

	/* Mixed chain with ANY: readable then writable. */
	set_desc(1, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 2);
	set_desc(2, GPA + DATA_OFF + 10, 10, VRING_DESC_F_WRITE, 0);
	publish(1);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_ANY, &elem), 1, "readable then writable pops");
	ok(elem.n_out == 1 && elem.n_in == 1, "one of each");

	/* Indirect table with 3 entries. */
	struct vring_desc *t = (struct vring_desc *)(mem + DATA_OFF + 0x2000);
	t[0] = (struct vring_desc){ GPA + DATA_OFF, 44, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ GPA + DATA_OFF + 44, 100, VRING_DESC_F_NEXT, 2 };
	t[2] = (struct vring_desc){ GPA + DATA_OFF + 144, 100, 0, 0 };
	set_desc(4, GPA + DATA_OFF + 0x2000, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(4);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), 1, "indirect chain pops");
	is_int(elem.out_len, 244, "indirect total length");
	ok(!vq.broken, "queue still fine");

	/* An indirect table only 8-byte aligned (slab debugging in a Linux guest
	 * gives such tables): the spec sets no alignment, so it must pop. */
	struct vring_desc u[2] = {
		{ GPA + DATA_OFF, 44, VRING_DESC_F_NEXT, 1 },
		{ GPA + DATA_OFF + 44, 20, 0, 0 },
	};
	memcpy(mem + DATA_OFF + 0x3008, u, sizeof(u));
	set_desc(5, GPA + DATA_OFF + 0x3008, sizeof(u), VRING_DESC_F_INDIRECT, 0);
	publish(5);
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), 1,
		"8-byte aligned indirect table pops");
	is_int(elem.out_len, 64, "its total length");
	ok(!vq.broken, "queue still fine after it");
}

static void test_broken(void)
{
	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 1);
	set_desc(1, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "descriptor loop");

	setup(8);
	set_desc(2, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 2);
	publish(2);
	expect_broken(VIRTQUEUE_READABLE, "self loop");

	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 8);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "next out of range");

	setup(8);
	publish(9);
	expect_broken(VIRTQUEUE_READABLE, "head out of range");

	setup(8);
	set_desc(0, GPA + MEM_SIZE - 10, 20, 0, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "buffer runs past memory");

	setup(8);
	set_desc(0, 0x1000, 20, 0, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "buffer below memory");

	setup(8);
	set_desc(0, UINT64_MAX - 10, 100, 0, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "address + length overflow");

	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 1);
	set_desc(1, GPA + DATA_OFF, 10, VRING_DESC_F_WRITE, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "writable descriptor on tx");

	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, 0, 0);
	publish(0);
	expect_broken(VIRTQUEUE_WRITABLE, "readable descriptor on rx");

	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, GPA + DATA_OFF, 10, 0, 0);
	publish(0);
	expect_broken(VIRTQUEUE_ANY, "readable after writable");

	struct vring_desc *t = (struct vring_desc *)(mem + DATA_OFF + 0x2000);
	setup(8);
	t[0] = (struct vring_desc){ GPA + DATA_OFF + 0x3000, 32, VRING_DESC_F_INDIRECT, 0 };
	set_desc(0, GPA + DATA_OFF + 0x2000, 16, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "nested indirect");

	setup(8);
	set_desc(0, GPA + DATA_OFF + 0x2000, 20, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "indirect length not a multiple of 16");

	setup(8);
	set_desc(0, GPA + DATA_OFF + 0x2000, 9 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "indirect table larger than the ring");

	setup(8);
	set_desc(0, GPA + DATA_OFF + 0x2000, 0, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "empty indirect table");

	setup(8);
	set_desc(0, GPA + DATA_OFF + 0x2000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "indirect with NEXT");

	setup(8);
	set_desc(0, GPA + MEM_SIZE - 16, 64, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "indirect table outside memory");

	setup(8);
	memset(t, 0, 4 * 16);
	t[0] = (struct vring_desc){ GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 0 };
	set_desc(0, GPA + DATA_OFF + 0x2000, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "loop inside an indirect table");

	setup(8);
	t[0] = (struct vring_desc){ GPA + DATA_OFF, 10, VRING_DESC_F_NEXT, 5 };
	set_desc(0, GPA + DATA_OFF + 0x2000, 2 * 16, VRING_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "indirect next beyond the table");

	setup(8);
	set_desc(0, GPA + DATA_OFF, 10, 0, 0);
	publish(0);
	avail()->idx = 9; /* 9 new entries in a ring of 8 */
	expect_broken(VIRTQUEUE_READABLE, "avail index jumps by more than the ring size");

	/* A chain needing more iovecs than a chain may hold: 300 one-byte
	 * descriptors over two regions alternating. */
	setup(512);
	for (unsigned i = 0; i < 300; i++)
		set_desc(i, GPA + DATA_OFF + 2 * i, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	desc(299)->flags = 0;
	publish(0);
	expect_broken(VIRTQUEUE_READABLE, "chain with too many buffers");

	/* Broken is per queue and is cleared only by a new ring setup. */
	setup(8);
	ok(!vq.broken, "a fresh setup is not broken");
}

static void test_map(void)
{
	setup(8);
	vq.used_uva = UVA + MEM_SIZE - 8;
	is_int(virtqueue_map(&vq), -EFAULT, "used ring past memory is refused");
	ok(!vq.ready, "not ready");
	vq.used_uva = UVA + USED_OFF + 2;
	is_int(virtqueue_map(&vq), -EFAULT, "misaligned used ring is refused");
	vq.used_uva = UVA + USED_OFF;
	vq.desc_uva = UVA + 8;
	is_int(virtqueue_map(&vq), -EFAULT, "misaligned descriptor table is refused");
	vq.desc_uva = UVA + MEM_SIZE - 16 * 4;
	is_int(virtqueue_map(&vq), -EFAULT, "descriptor table past memory is refused");
	vq.desc_uva = UVA;
	is_int(virtqueue_map(&vq), 0, "good addresses map");
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), 0, "and pop");
	vq.num = 0;
	is_int(virtqueue_map(&vq), -EINVAL, "size 0 is refused");
	is_int(virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem), -ENODEV, "unmapped queue pops nothing");
	/* A region whose mmap offset is odd: aligned addresses land on odd pointers. */
	setup(8);
	guest_memory_clear(&gm);
	guest_memory_add_host(&gm, GPA, MEM_SIZE - 16, UVA, mem + 1);
	is_int(virtqueue_map(&vq), -EFAULT,
		"rings aligned for the front-end but misaligned in our mapping are refused");
	ok(!vq.ready, "not ready");
	setup(8);
}

static bool signalled(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v);
}

static void test_notify(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint16_t *used_event, *avail_event;

	setup(8);
	vq.call_fd = fd;
	vq.event_idx = true;
	used_event = &avail()->ring[8];
	avail_event = (uint16_t *)&used()->ring[8];
	for (unsigned i = 0; i < 4; i++) {
		set_desc(i, GPA + DATA_OFF, 10, 0, 0);
		publish((uint16_t)i);
	}
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	virtqueue_push(&vq, &elem, 0);
	virtqueue_notify(&vq);
	ok(signalled(fd), "EVENT_IDX: first used buffer signals");
	*used_event = 0;
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	virtqueue_push(&vq, &elem, 0);
	virtqueue_notify(&vq);
	ok(!signalled(fd), "EVENT_IDX: used_event behind: no signal");
	*used_event = 2;
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	virtqueue_push(&vq, &elem, 0);
	virtqueue_notify(&vq);
	ok(signalled(fd), "EVENT_IDX: crossing used_event signals");

	ok(virtqueue_enable_kick(&vq), "enable_kick: a buffer is still pending");
	is_int(*avail_event, 3, "avail_event set to our position");
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	ok(!virtqueue_enable_kick(&vq), "enable_kick: nothing pending");
	is_int(*avail_event, 4, "avail_event follows");

	setup(8);
	vq.call_fd = fd;
	avail()->flags = VRING_AVAIL_F_NO_INTERRUPT;
	set_desc(0, GPA + DATA_OFF, 10, 0, 0);
	publish(0);
	publish(0);
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	virtqueue_push(&vq, &elem, 0);
	virtqueue_notify(&vq);
	ok(!signalled(fd), "NO_INTERRUPT suppresses");
	vq.notify_on_empty = true;
	virtqueue_notify(&vq);
	ok(!signalled(fd), "NOTIFY_ON_EMPTY: not empty yet, still suppressed");
	virtqueue_pop(&vq, VIRTQUEUE_READABLE, &elem);
	virtqueue_push(&vq, &elem, 0);
	virtqueue_notify(&vq);
	ok(signalled(fd), "NOTIFY_ON_EMPTY: signals once the ring is empty");
	vq.call_fd = -1;
	close(fd);
}

int main(void)
{
	mem = aligned_alloc(4096, MEM_SIZE);
	test_good();
	test_broken();
	test_map();
	test_notify();
	guest_memory_clear(&gm);
	free(mem);
	return tap_done();
}
