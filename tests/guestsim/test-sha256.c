/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The test helpers' own checks: SHA-256 against FIPS 180-4 vectors, options. */
#include <string.h>

#include "gstest.h"
#include "../tap.h"

int main(void)
{
	static char million[1000000];
	struct gs_options o;
	char hex[65];

	gt_sha256_hex("", 0, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256('')");
	gt_sha256_hex("abc", 3, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"sha256('abc')");
	gt_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		"sha256 of the 56-byte vector (two padding blocks)");
	memset(million, 'a', sizeof(million));
	gt_sha256_hex(million, sizeof(million), hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
		"sha256 of a million 'a'");
	gs_options_init(&o);
	is_int(o.queue_size, 128, "default queue size");
	is_int(o.buf_alloc, 256 * 1024, "default buf_alloc is Linux's 256 KiB");
	return tap_done();
}
