/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Listeners of the agent. Connections are in conn.h; their public side
 * (conn_ref, conn_notify, drain watches) is declared in method.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "conn.h"

struct conn;
struct event_base;
struct evbuffer;
struct server;

/* A connection's place in its server's list (embedded in struct conn). */
struct server_link {
	struct conn *conn;
	struct server_link *prev, *next;
};

/* How long SIGTERM waits for in-flight calls before exiting anyway. */
#define SERVER_SHUTDOWN_TIMEOUT_S 5

int server_new(struct event_base *base, struct server **ret);
struct server *server_free(struct server *s);
/* Add a listening socket (takes ownership of fd; made non-blocking). */
int server_add_listener(struct server *s, int fd);
/* The same for connections speaking proto (e.g. QGA). */
int server_add_listener_proto(struct server *s, int fd, const struct conn_proto *proto);
struct event_base *server_event_base(const struct server *s);
unsigned server_n_listeners(const struct server *s);
unsigned server_n_connections(const struct server *s);
/* Stop accepting, let in-flight calls finish for at most
 * SERVER_SHUTDOWN_TIMEOUT_S, then leave the event loop. */
void server_shutdown(struct server *s);
/* Monotonic microseconds when the server was created. */
unsigned long long server_start_usec(const struct server *s);

/* Used by conn.c. */
bool server_shutting_down(const struct server *s);
/* A new connection joins the list (takes its reference) / leaves it (drops
 * that reference; the server may leave its loop if shutting down). */
void server_conn_added(struct server *s, struct server_link *l);
void server_conn_removed(struct server *s, struct server_link *l);
