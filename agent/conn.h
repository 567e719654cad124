/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One client connection of the agent: socket I/O, decoding, the bounded
 * output buffer, EOF and the flush on close. The public side for methods
 * (conn_ref, conn_notify, drain watches) is declared in method.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <json-c/json.h>

struct conn;
struct envelope;
struct event_base;
struct evbuffer;
struct server;

/* Output high/low-water marks: above HIGH a connection stops reading requests
 * and producers are told to wait; below LOW they resume. */
#define CONN_OUTPUT_HIGH (1024u * 1024)
#define CONN_OUTPUT_LOW (256u * 1024)

/* What is spoken on a connection: how decoded messages are handled and how
 * framing errors are answered. */
struct conn_proto {
	const char *name;
	void (*message)(struct conn *c, struct json_object *obj /* takes; NULL = null */);
	void (*syntax_error)(struct conn *c); /* answer a syntax error */
	void (*too_big)(struct conn *c);      /* answer a message over max_message_bytes */
	/* Optional: a request read by envelope_scan() (envelope.h) while the
	 * decoder held nothing; the bytes are consumed already. */
	void (*envelope)(struct conn *c, const struct envelope *e);
	/* QGA: a 0xFF byte discards partial input; after a message too big the
	 * connection drops input up to 0xFF or a newline instead of closing. */
	bool sentinel;
	bool one_at_a_time; /* next request only after the answer (answers in order) */
	bool eof_closes;    /* EOF is the peer gone (virtio-serial), not a half-close */
};

extern const struct conn_proto conn_proto_jsonrpc; /* jsonrpc.c */

/* A connection on an accepted socket (takes fd), registered with s; *ret
 * (optional) borrows it. */
int conn_new(struct server *s, struct event_base *base, int fd, const struct conn_proto *proto,
	struct conn **ret);
/* Close now, dropping queued output (idempotent). */
void conn_close(struct conn *c);
/* Re-evaluate whether to read (after the server started shutting down). */
void conn_update_reading(struct conn *c);
/* After EOF or on shutdown: close once nothing is left to answer. */
void conn_maybe_finish(struct conn *c);

/* A connection without a socket, for the fuzz harness and in-process tests:
 * feed it bytes, read what it answered. */
struct conn *conn_new_detached(struct event_base *base); /* JSON-RPC */
struct conn *conn_new_detached_proto(struct event_base *base, const struct conn_proto *proto);
int conn_feed(struct conn *c, const void *data, size_t len);
struct evbuffer *conn_output(struct conn *c);
/* Close (idempotent) and drop the caller's reference. */
struct conn *conn_close_unref(struct conn *c);

/* Used by dispatch.c and the server. */
struct server *conn_server(struct conn *c);
/* The connection's socket, for looking at its peer (borrowed; -1 when
 * detached or closed). */
int conn_fd(const struct conn *c);
struct event_base *conn_event_base(struct conn *c);
/* Append one message as a compact line (does not take obj). */
int conn_write(struct conn *c, struct json_object *obj);
/* Append bytes as they are (QGA's 0xFF sentinel). */
int conn_write_raw(struct conn *c, const void *data, size_t len);
/* Append ready-made lines (moves them out of text). */
int conn_write_text(struct conn *c, struct evbuffer *text);
/* Append the n pieces of iov as they are, all or (-ENOMEM, -EPIPE) nothing. */
int conn_write_iov(struct conn *c, const struct iovec *iov, size_t n);
/* In-flight accounting: dispatch counts calls, the connection waits for them
 * before closing after EOF or on shutdown. */
unsigned conn_inflight(struct conn *c);
void conn_inflight_inc(struct conn *c);
void conn_inflight_dec(struct conn *c);
