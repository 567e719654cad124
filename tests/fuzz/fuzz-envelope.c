/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer differential harness for the agent's envelope fast path: any
 * input through envelope_scan() and the stream decoder + gl_msg_parse(), and
 * through two detached connections, with and without the fast path; aborts
 * on any difference (envelope-diff.h). The first byte picks how the rest is
 * split into feeds (0: one feed). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "envelope-diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why;

	if (size == 0)
		return 0;
	envelope_diff_init();
	why = envelope_diff((const char *)data + 1, size - 1, data[0], NULL);
	if (why) {
		fprintf(stderr, "envelope fast path: %s\nanswers: %s\n", why,
			envelope_diff_answers());
		abort();
	}
	return 0;
}
