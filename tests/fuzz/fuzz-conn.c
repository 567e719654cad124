/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See fuzz-conn.h. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "fuzz-conn.h"
#include "log.h"
#include "method.h"
#include "methods/methods.h"
#include "server.h"

static struct event_base *fuzz_base;

void fuzz_conn_init(void (*register_methods)(void))
{
	struct config *c;

	if (fuzz_base)
		return;
	log_set_max_level(LOG_CRIT);
	register_methods();
	fuzz_base = event_base_new();
	if (!fuzz_base || config_load(NULL, false, &c) < 0)
		abort();
	c->max_message_bytes = 4096;
	c->max_inflight = 4;
	free(c->deny[0]);
	free(c->deny);
	c->deny = calloc(2, sizeof(char *));
	if (!c->deny || !(c->deny[0] = strdup("system.*")))
		abort();
	config_set(c);
}

int fuzz_conn_feed(const struct conn_proto *proto, const uint8_t *data, size_t size)
{
	struct conn *conn;
	size_t chunk;

	if (size == 0)
		return 0;
	chunk = data[0] ? data[0] : size;
	data++;
	size--;

	conn = conn_new_detached_proto(fuzz_base, proto);
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
