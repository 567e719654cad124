/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer: guest memory holding the tx and rx rings, descriptor chains and
 * vsock packets, all from the input, run through the real virtqueue and vsock
 * code. Layout of the 64 KiB guest memory (gpa = uva = 0x10000):
 *   tx: desc 0x0000, avail 0x1000, used 0x2000;  rx: desc 0x3000,
 *   avail 0x4000, used 0x5000; the rest is buffers. Input byte 0 picks the
 *   ring sizes and features (0x80: SEQPACKET); the rest is copied over the
 *   memory. Guest connections to host port 1024 reach a listener that never
 *   reads, SEQPACKET ones to port 1025 a SOCK_SEQPACKET one. */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hybrid.h"
#include "log.h"
#include "virtqueue.h"
#include "vsock.h"

#define FUZZ_GPA 0x10000ull
#define FUZZ_MEM (64 * 1024)

static uint8_t *fuzz_mem;
static char fuzz_uds[128];
static int fuzz_listen = -1, fuzz_listen_seq = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz-vring.XXXXXX", path[160];

	log_set_max_level(LOG_CRIT);
	fuzz_mem = aligned_alloc(4096, FUZZ_MEM);
	if (!fuzz_mem || !mkdtemp(dir))
		abort();
	snprintf(fuzz_uds, sizeof(fuzz_uds), "%s/vm.vsock", dir);
	snprintf(path, sizeof(path), "%s_1024", fuzz_uds);
	fuzz_listen = hybrid_listen(path, 0600, (gid_t)-1, 128);
	snprintf(path, sizeof(path), "%s_1025", fuzz_uds);
	fuzz_listen_seq = hybrid_listen_type(path, SOCK_SEQPACKET, 0600, (gid_t)-1, 128);
	if (fuzz_listen < 0 || fuzz_listen_seq < 0)
		abort();
	return 0;
}

static void fuzz_queue(struct virtqueue *vq, struct guest_memory *m, unsigned index, uint16_t num,
	unsigned off, bool event_idx)
{
	virtqueue_init(vq, index, index ? "tx" : "rx", m);
	vq->num = num;
	vq->desc_uva = FUZZ_GPA + off;
	vq->avail_uva = FUZZ_GPA + off + 0x1000;
	vq->used_uva = FUZZ_GPA + off + 0x2000;
	vq->addr_set = true;
	vq->event_idx = event_idx;
	if (virtqueue_map(vq) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_memory m = {};
	struct virtqueue rx, tx;
	struct event_base *base;
	struct vsock *v = NULL;
	int fd;

	if (size < 1)
		return 0;
	memset(fuzz_mem, 0, FUZZ_MEM);
	memcpy(fuzz_mem, data + 1, size - 1 < FUZZ_MEM ? size - 1 : FUZZ_MEM);
	guest_memory_add_host(&m, FUZZ_GPA, FUZZ_MEM, FUZZ_GPA, fuzz_mem);
	fuzz_queue(&tx, &m, 1, (uint16_t)(1u << (data[0] & 7)), 0x0000, data[0] & 0x40);
	fuzz_queue(&rx, &m, 0, (uint16_t)(1u << ((data[0] >> 3) & 7)), 0x3000, data[0] & 0x40);

	base = event_base_new();
	if (!base || vsock_new(base,
			     &(struct vsock_config){
				     .guest_cid = 3,
				     .buf_alloc = 4096,
				     .max_connections = 16,
				     .uds_path = fuzz_uds,
				     .listen_fd = -1,
			     },
			     &v) < 0)
		abort();
	vsock_set_queues(v, &rx, &tx);
	vsock_set_features(v, data[0] & 0x80 ? 1ull << VIRTIO_VSOCK_F_SEQPACKET_BIT : 0);
	vsock_queue_kick(v, &tx);
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	vsock_queue_kick(v, &rx);
	/* The guest may rewrite the rings meanwhile: run again over the same bytes. */
	vsock_queue_kick(v, &tx);
	event_base_loop(base, EVLOOP_NONBLOCK);
	vsock_free(v);
	event_base_free(base);
	/* Host side: connections made this round are never read; drop them. */
	while ((fd = accept4(fuzz_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
		close(fd);
	while ((fd = accept4(fuzz_listen_seq, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0)
		close(fd);
	guest_memory_clear(&m);
	return 0;
}
