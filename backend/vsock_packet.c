/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* virtio-vsock packet headers and iovec helpers. */
#include <endian.h>
#include <string.h>

#include "vsock_packet.h"

/* ---- headers ---- */

void vsock_hdr_decode(const uint8_t raw[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;

#define GET(field, var, conv, off)                      \
	do {                                            \
		memcpy(&var, raw + (off), sizeof(var)); \
		h->field = conv(var);                   \
	} while (0)
	GET(src_cid, u64, le64toh, 0);
	GET(dst_cid, u64, le64toh, 8);
	GET(src_port, u32, le32toh, 16);
	GET(dst_port, u32, le32toh, 20);
	GET(len, u32, le32toh, 24);
	GET(type, u16, le16toh, 28);
	GET(op, u16, le16toh, 30);
	GET(flags, u32, le32toh, 32);
	GET(buf_alloc, u32, le32toh, 36);
	GET(fwd_cnt, u32, le32toh, 40);
#undef GET
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_SIZE])
{
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;

#define PUT(field, var, conv, off)                      \
	do {                                            \
		var = conv(h->field);                   \
		memcpy(raw + (off), &var, sizeof(var)); \
	} while (0)
	PUT(src_cid, u64, htole64, 0);
	PUT(dst_cid, u64, htole64, 8);
	PUT(src_port, u32, htole32, 16);
	PUT(dst_port, u32, htole32, 20);
	PUT(len, u32, htole32, 24);
	PUT(type, u16, htole16, 28);
	PUT(op, u16, htole16, 30);
	PUT(flags, u32, htole32, 32);
	PUT(buf_alloc, u32, htole32, 36);
	PUT(fwd_cnt, u32, htole32, 40);
#undef PUT
}

/* ---- iovec helpers ---- */

size_t vsock_iov_copy_out(const struct iovec *iov, size_t n, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (size_t i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, k;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		k = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, k);
		done += k;
		skip = 0;
	}
	return done;
}

size_t vsock_iov_copy_in(const struct iovec *iov, size_t n, const void *buf, size_t len)
{
	size_t done = 0;

	for (size_t i = 0; i < n && done < len; i++) {
		size_t k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, (const uint8_t *)buf + done, k);
		done += k;
	}
	return done;
}

/* The part of iov[0..n) from byte `skip`, at most `len` bytes, into out[]. */
size_t vsock_iov_slice(const struct iovec *iov, size_t n, size_t skip, size_t len, struct iovec *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n && len > 0; i++) {
		size_t l = iov[i].iov_len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		out[k++] = (struct iovec){ .iov_base = (uint8_t *)iov[i].iov_base + skip,
			.iov_len = l };
		len -= l;
		skip = 0;
	}
	return k;
}
