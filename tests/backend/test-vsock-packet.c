/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vsock packet header codec against a header laid out by hand from the
 * virtio spec (5.10.6: little-endian, packed, 44 bytes), and the iovec
 * helpers at every split point. */
#include <stdint.h>
#include <string.h>

#include "../tap.h"
#include "macro.h"
#include "vsock_packet.h"

/* A header written byte by byte, independent of the codec. */
static const uint8_t spec_hdr[VSOCK_HDR_SIZE] = {
	0x03, 0, 0, 0, 0, 0, 0, 0x80, /* src_cid 0x8000000000000003 */
	0x02, 0, 0, 0, 0, 0, 0, 0,    /* dst_cid 2 */
	0x39, 0x30, 0, 0,             /* src_port 12345 */
	0x03, 0x26, 0, 0,             /* dst_port 9731 */
	0x00, 0x10, 0, 0,             /* len 4096 */
	0x01, 0x00,                   /* type STREAM */
	0x05, 0x00,                   /* op RW */
	0x02, 0, 0, 0,                /* flags SHUTDOWN_SEND */
	0x00, 0x00, 0x04, 0x00,       /* buf_alloc 256 KiB */
	0xff, 0xff, 0xff, 0xff,       /* fwd_cnt 2^32-1 */
};

static void test_decode(void)
{
	struct vsock_hdr h;

	vsock_hdr_decode(spec_hdr, &h);
	is_int(h.src_cid, 0x8000000000000003ull, "decode: src_cid");
	is_int(h.dst_cid, 2, "decode: dst_cid");
	is_int(h.src_port, 12345, "decode: src_port");
	is_int(h.dst_port, 9731, "decode: dst_port");
	is_int(h.len, 4096, "decode: len");
	is_int(h.type, VSOCK_TYPE_STREAM, "decode: type");
	is_int(h.op, VSOCK_OP_RW, "decode: op");
	is_int(h.flags, VSOCK_SHUTDOWN_SEND, "decode: flags");
	is_int(h.buf_alloc, 256 * 1024, "decode: buf_alloc");
	is_int(h.fwd_cnt, 0xffffffffu, "decode: fwd_cnt");
}

static void test_encode(void)
{
	struct vsock_hdr h;
	uint8_t raw[VSOCK_HDR_SIZE];

	vsock_hdr_decode(spec_hdr, &h);
	memset(raw, 0xaa, sizeof(raw));
	vsock_hdr_encode(&h, raw);
	ok(memcmp(raw, spec_hdr, sizeof(raw)) == 0, "encode: the spec's bytes back, every byte");
}

static void test_iov(void)
{
	uint8_t a[3], b[5], c[4], src[12], dst[12];
	struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	struct iovec out[3];
	unsigned bad = 0;

	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i + 1);
	is_int(vsock_iov_copy_in(iov, 3, src, sizeof(src)), 12, "copy_in: all 12 bytes");
	ok(a[0] == 1 && a[2] == 3 && b[0] == 4 && b[4] == 8 && c[0] == 9 && c[3] == 12,
		"copy_in: bytes land in order across the iovecs");
	is_int(vsock_iov_copy_in(iov, 3, src, 100), 12, "copy_in: stops at the iovecs' end");
	/* Every (skip, len) pair: copy_out and slice agree with the flat bytes. */
	for (size_t skip = 0; skip <= sizeof(src); skip++)
		for (size_t len = 0; len <= sizeof(src) + 2; len++) {
			size_t want = skip + len > sizeof(src) ? sizeof(src) - skip : len;
			size_t n, k, got = 0;

			memset(dst, 0, sizeof(dst));
			n = vsock_iov_copy_out(iov, 3, skip, dst, len);
			if (n != want || memcmp(dst, src + skip, want) != 0)
				bad++;
			k = vsock_iov_slice(iov, 3, skip, len, out);
			for (size_t i = 0; i < k; i++) {
				if (out[i].iov_len == 0 || memcmp(out[i].iov_base, src + skip + got,
								   out[i].iov_len) != 0)
					bad++;
				got += out[i].iov_len;
			}
			if (got != want || k > 3)
				bad++;
		}
	is_int(bad, 0, "copy_out and slice: every skip/len pair matches the flat bytes");
	is_int(vsock_iov_slice(iov, 3, 3, 5, out), 1, "slice: exactly the second iovec");
	ok(out[0].iov_base == b && out[0].iov_len == 5, "slice: points into guest memory, no copy");
}

int main(void)
{
	test_decode();
	test_encode();
	test_iov();
	return tap_done();
}
