/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: bytes -> stream decoder -> JSON-RPC dispatch -> methods,
 * through a detached connection whose output is discarded (fuzz-conn.h: the
 * first byte picks how the input is split into feeds). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-conn.h"
#include "methods/methods.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_agent_register(void)
{
	methods_agent_register();
	methods_system_register();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_conn_init(fuzz_agent_register);
	return fuzz_conn_feed(&conn_proto_jsonrpc, data, size);
}
