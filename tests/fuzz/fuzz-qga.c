/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness for the QGA front end: bytes -> the 0xFF sentinel and
 * stream decoder -> the QGA envelope and argument checks -> the shared
 * dispatcher -> methods, through a detached QGA connection whose output is
 * discarded. The first byte picks how the input is split into feeds, so
 * resynchronisation across arbitrary boundaries is covered too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "method.h"
#include "methods/methods.h"
#include "qga.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct event_base *fuzz_base;

static void fuzz_init(void)
{
	struct config *c;

	log_set_max_level(LOG_CRIT);
	methods_agent_register();
	methods_system_register();
	methods_guestinfo_register();
	fuzz_base = event_base_new();
	if (config_load(NULL, false, &c) < 0)
		abort();
	/* Small limits reach the size paths with small inputs; system.* reads
	 * /proc and /sys, or changes the machine: denied (the denial path is
	 * fuzzed instead). */
	c->max_message_bytes = 4096;
	c->max_inflight = 4;
	free(c->deny[0]);
	free(c->deny);
	c->deny = calloc(2, sizeof(char *));
	if (!c->deny || !(c->deny[0] = strdup("system.*")))
		abort();
	config_set(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn *conn;
	size_t chunk;

	if (!fuzz_base)
		fuzz_init();
	if (size == 0)
		return 0;
	chunk = data[0] ? data[0] : size;
	data++;
	size--;

	conn = conn_new_detached_proto(fuzz_base, &conn_proto_qga);
	if (!conn)
		return 0;
	for (size_t off = 0; off < size && !conn_closed(conn); off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		conn_feed(conn, data + off, n);
		evbuffer_drain(conn_output(conn), evbuffer_get_length(conn_output(conn)));
	}
	conn_close_unref(conn);
	/* Delayed pings still hold their calls: answer into the void and free them. */
	methods_agent_cleanup();
	event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
	return 0;
}
