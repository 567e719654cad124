/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer: the vsock packet codec and iovec helpers. The input is cut into
 * iovecs at lengths taken from its first bytes; the header is copied out of
 * them, decoded, encoded again (must give the same 44 bytes) and the payload
 * the header claims is sliced and copied (must match the flat bytes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vsock_packet.h"

#define FUZZ_MAX_IOV 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct iovec iov[FUZZ_MAX_IOV], out[FUZZ_MAX_IOV];
	uint8_t raw[VSOCK_HDR_SIZE], again[VSOCK_HDR_SIZE], *flat, *copy;
	size_t n_iov = 0, off, body, got, k, skip, len;
	struct vsock_hdr h;

	if (size < 1)
		return 0;
	/* Byte 0: how many iovecs; the next bytes: their lengths. */
	n_iov = (size_t)(data[0] % FUZZ_MAX_IOV) + 1;
	if (size < 1 + n_iov)
		return 0;
	off = 1 + n_iov;
	body = size - off;
	flat = (uint8_t *)data + off;
	for (size_t i = 0, at = 0; i < n_iov; i++) {
		size_t l = i + 1 == n_iov ? body - at : data[1 + i] % (body - at + 1);

		iov[i] = (struct iovec){ .iov_base = flat + at, .iov_len = l };
		at += l;
	}
	if (vsock_iov_copy_out(iov, n_iov, 0, raw, sizeof(raw)) < sizeof(raw))
		return 0;
	if (memcmp(raw, flat, sizeof(raw)) != 0)
		abort();
	vsock_hdr_decode(raw, &h);
	vsock_hdr_encode(&h, again);
	if (memcmp(raw, again, sizeof(raw)) != 0)
		abort();
	/* The payload the header claims, as far as the buffer holds it. */
	skip = VSOCK_HDR_SIZE;
	len = h.len;
	k = vsock_iov_slice(iov, n_iov, skip, len, out);
	got = 0;
	for (size_t i = 0; i < k; i++) {
		if (out[i].iov_len == 0 || memcmp(out[i].iov_base, flat + skip + got, out[i].iov_len))
			abort();
		got += out[i].iov_len;
	}
	if (got != (len < body - skip ? len : body - skip))
		abort();
	copy = malloc(got + 1);
	if (!copy)
		return 0;
	if (vsock_iov_copy_out(iov, n_iov, skip, copy, len) != got || memcmp(copy, flat + skip, got))
		abort();
	if (vsock_iov_copy_in(out, k, copy, got) != got)
		abort();
	free(copy);
	return 0;
}
