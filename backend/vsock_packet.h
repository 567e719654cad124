/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock packets: the 44-byte little-endian header (virtio spec 5.10.6,
 * struct virtio_vsock_hdr) and the iovec helpers that move payload between
 * guest buffers and host memory. Pure: no state, no I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HOST_CID 2
#define VSOCK_HDR_SIZE 44

enum {
	VSOCK_OP_INVALID,
	VSOCK_OP_REQUEST,
	VSOCK_OP_RESPONSE,
	VSOCK_OP_RST,
	VSOCK_OP_SHUTDOWN,
	VSOCK_OP_RW,
	VSOCK_OP_CREDIT_UPDATE,
	VSOCK_OP_CREDIT_REQUEST,
	_VSOCK_OP_MAX,
};

#define VSOCK_TYPE_STREAM 1
#define VSOCK_TYPE_SEQPACKET 2
#define VSOCK_SEQ_EOM 1u /* last packet of a message */
#define VSOCK_SEQ_EOR 2u /* ... sent with MSG_EOR */
#define VIRTIO_VSOCK_F_SEQPACKET_BIT 1
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_SHUTDOWN_MASK (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/* The header in host order, after being copied out and decoded. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE]);

/* Copy up to len bytes of iov[0..n), starting `skip` bytes in, to buf.
 * Returns the bytes copied (less than len when the iovecs end first). */
size_t vsock_iov_copy_out(const struct iovec *iov, size_t n, size_t skip, void *buf, size_t len);
/* Copy up to len bytes of buf into iov[0..n) from its start. Returns the bytes copied. */
size_t vsock_iov_copy_in(const struct iovec *iov, size_t n, const void *buf, size_t len);
/* The part of iov[0..n) from byte `skip`, at most `len` bytes, as iovecs in out[]
 * (which has room for n entries). Returns the number of entries written. */
size_t vsock_iov_slice(const struct iovec *iov, size_t n, size_t skip, size_t len, struct iovec *out);
