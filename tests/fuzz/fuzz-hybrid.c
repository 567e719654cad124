/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the back-end's hybrid CONNECT line parser
 * (backend/hybrid.c, linked as it is). Checks, for any bytes:
 *  - hybrid_line_parse() agrees with an independent reading of the rule
 *    (DESIGN.md: "CONNECT <port>\n", keyword case-insensitive, at most 32
 *    bytes, port below VMADDR_PORT_ANY), port included;
 *  - hybrid_line_feed() given the same bytes in pieces (the first input byte
 *    picks the piece size) never consumes past the newline and reaches the
 *    same verdict and port as one parse of the line. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hybrid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rule, read independently: 0 and *ret_port, or -1. */
static int fuzz_reference(const uint8_t *p, size_t n, uint32_t *ret_port)
{
	static const char kw[] = "connect";
	uint64_t port = 0;
	size_t i, digits = 0;

	if (n < 2 || n > HYBRID_LINE_MAX || p[n - 1] != '\n')
		return -1;
	n--;
	if (p[n - 1] == '\r')
		n--;
	for (i = 0; i < 7; i++)
		if (i >= n || tolower(p[i]) != kw[i])
			return -1;
	if (i >= n || p[i] != ' ')
		return -1;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n; i++, digits++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (port < (1ull << 40))
			port = port * 10 + (uint64_t)(p[i] - '0');
	}
	if (digits == 0 || port >= UINT32_MAX)
		return -1;
	*ret_port = (uint32_t)port;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hybrid_line l = { .len = 0 };
	uint32_t port = 0, ref_port = 0, feed_port = 0;
	size_t piece, off = 0, line_len;
	const uint8_t *nl;
	int r, ref, fr = -EAGAIN;

	if (size == 0)
		return 0;
	piece = data[0] % 8 + 1;
	data++;
	size--;

	r = hybrid_line_parse((const char *)data, size, &port);
	ref = fuzz_reference(data, size, &ref_port);
	if ((r == 0) != (ref == 0) || (r == 0 && port != ref_port))
		abort();
	if (r != 0 && r != -EBADMSG)
		abort();

	/* In pieces: the verdict of the line up to the first newline. */
	while (off < size && fr == -EAGAIN) {
		size_t n = size - off < piece ? size - off : piece, used = SIZE_MAX;

		fr = hybrid_line_feed(&l, data + off, n, &used, &feed_port);
		if (used > n || (fr != -EBADMSG && used == 0))
			abort();
		if (memchr(data + off, '\n', used) && (used == 0 || data[off + used - 1] != '\n'))
			abort(); /* consumed past the newline */
		off += used;
	}
	nl = memchr(data, '\n', size);
	line_len = nl ? (size_t)(nl - data) + 1 : size;
	if (fr == 0) {
		if (!nl || off != line_len || fuzz_reference(data, line_len, &ref_port) != 0 ||
			feed_port != ref_port)
			abort();
	} else if (fr == -EBADMSG) {
		/* Bad or longer than a line may be: never a line the rule accepts. */
		if (nl && line_len <= HYBRID_LINE_MAX &&
			fuzz_reference(data, line_len, &ref_port) == 0)
			abort();
	} else if (fr != -EAGAIN || nl) {
		abort(); /* a newline was seen: the feed must have decided */
	}
	return 0;
}
