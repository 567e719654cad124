/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness for the QGA front end: bytes -> the 0xFF sentinel and
 * stream decoder -> the QGA envelope and argument checks -> the shared
 * dispatcher -> methods, through a detached QGA connection whose output is
 * discarded (fuzz-conn.h: the first byte picks how the input is split into
 * feeds, so resynchronisation across arbitrary boundaries is covered too). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz-conn.h"
#include "methods/methods.h"
#include "qga.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_qga_register(void)
{
	methods_agent_register();
	methods_system_register();
	methods_guestinfo_register();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_conn_init(fuzz_qga_register);
	return fuzz_conn_feed(&conn_proto_qga, data, size);
}
