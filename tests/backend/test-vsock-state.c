/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The connection lifecycle's transition table: every move a connection makes is
 * allowed (listed here by hand from the protocol, not copied from the table),
 * every other move is refused, and vsock_conn_set_state() on a real connection
 * takes a legal move and answers an illegal one with -EPROTO and a reset. */
#include <errno.h>
#include <stdio.h>
#include <syslog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"
#include "log.h"
#include "macro.h"
#include "vsock_internal.h"

static const struct {
	enum vsock_state from, to;
	const char *why;
} legal[] = {
	{ VSOCK_STATE_NEW, VSOCK_STATE_LINE, "a host client is accepted" },
	{ VSOCK_STATE_NEW, VSOCK_STATE_CONNECTING, "a guest REQUEST, host connect pending" },
	{ VSOCK_STATE_NEW, VSOCK_STATE_ESTABLISHED, "a guest REQUEST, host connected at once" },
	{ VSOCK_STATE_NEW, VSOCK_STATE_CLOSED, "closed before it was set up" },
	{ VSOCK_STATE_LINE, VSOCK_STATE_REQUESTED, "the CONNECT line is complete" },
	{ VSOCK_STATE_LINE, VSOCK_STATE_CLOSED, "a bad line, the line timeout" },
	{ VSOCK_STATE_REQUESTED, VSOCK_STATE_ESTABLISHED, "the guest's RESPONSE" },
	{ VSOCK_STATE_REQUESTED, VSOCK_STATE_CLOSED, "the guest's RST, connect timeout" },
	{ VSOCK_STATE_CONNECTING, VSOCK_STATE_ESTABLISHED, "the host socket connected" },
	{ VSOCK_STATE_CONNECTING, VSOCK_STATE_CLOSED, "the host connect failed" },
	{ VSOCK_STATE_ESTABLISHED, VSOCK_STATE_CLOSING, "the guest closed, bytes owed to the host" },
	{ VSOCK_STATE_ESTABLISHED, VSOCK_STATE_CLOSED, "reset, or both sides done" },
	{ VSOCK_STATE_CLOSING, VSOCK_STATE_CLOSED, "flushed, or the close timeout" },
};

static bool is_legal(enum vsock_state from, enum vsock_state to)
{
	for (size_t i = 0; i < ELEMENTSOF(legal); i++)
		if (legal[i].from == from && legal[i].to == to)
			return true;
	return false;
}

static void test_table(void)
{
	unsigned wrong = 0, refused = 0;

	for (size_t i = 0; i < ELEMENTSOF(legal); i++)
		ok(vsock_state_move_allowed(legal[i].from, legal[i].to), "%s -> %s allowed (%s)",
			vsock_state_name(legal[i].from), vsock_state_name(legal[i].to), legal[i].why);
	for (int f = 0; f < _VSOCK_STATE_MAX; f++)
		for (int t = 0; t < _VSOCK_STATE_MAX; t++) {
			if (is_legal(f, t))
				continue;
			if (vsock_state_move_allowed(f, t)) {
				diag("%s -> %s allowed, should not be", vsock_state_name(f),
					vsock_state_name(t));
				wrong++;
			} else
				refused++;
		}
	is_int(wrong, 0, "every other move refused (%u of %u)", refused,
		_VSOCK_STATE_MAX * _VSOCK_STATE_MAX - (unsigned)ELEMENTSOF(legal));
	ok(!vsock_state_move_allowed(VSOCK_STATE_CLOSED, VSOCK_STATE_ESTABLISHED),
		"CLOSED -> ESTABLISHED refused (nothing leaves CLOSED)");
	ok(!vsock_state_move_allowed(VSOCK_STATE_LINE, VSOCK_STATE_ESTABLISHED),
		"LINE -> ESTABLISHED refused (no data before the guest's RESPONSE)");
	ok(!vsock_state_move_allowed(VSOCK_STATE_CLOSING, VSOCK_STATE_ESTABLISHED),
		"CLOSING -> ESTABLISHED refused (a guest's close is final)");
	ok(!vsock_state_move_allowed(_VSOCK_STATE_MAX, VSOCK_STATE_CLOSED) &&
			!vsock_state_move_allowed(VSOCK_STATE_NEW, _VSOCK_STATE_MAX),
		"states out of range refused");
}

/* On a real connection of a real device (no queues: nothing is sent). */
static void test_set_state(void)
{
	struct vsock_config cfg = { .guest_cid = 3, .listen_fd = -1 };
	struct event_base *base = event_base_new();
	struct vsock *v = NULL;
	struct vsock_conn *c = NULL;
	int sv[2] = { -1, -1 }, r;

	r = base ? vsock_new(base, &cfg, &v) : -ENOMEM;
	is_int(r, 0, "device created");
	if (r < 0)
		goto out;
	r = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv);
	r = r < 0 ? -errno : vsock_conn_new(v, sv[0], &c);
	is_int(r, 0, "connection created");
	if (r < 0)
		goto out;
	sv[0] = -1; /* taken */
	ok(c->state == VSOCK_STATE_NEW && vsock_connection_count(v) == 1,
		"a new connection is NEW and counted");
	is_int(vsock_conn_set_state(c, VSOCK_STATE_LINE), 0, "NEW -> LINE taken");
	is_int(vsock_conn_set_state(c, VSOCK_STATE_REQUESTED), 0, "LINE -> REQUESTED taken");
	ok(c->state == VSOCK_STATE_REQUESTED, "state is REQUESTED");
	is_int(vsock_conn_set_state(c, VSOCK_STATE_CLOSING), -EPROTO,
		"REQUESTED -> CLOSING refused with -EPROTO");
	ok(c->state == VSOCK_STATE_CLOSED && c->fd < 0 && vsock_connection_count(v) == 0,
		"the illegal move reset the connection: CLOSED, host socket closed, slot freed");
	is_int(vsock_conn_set_state(c, VSOCK_STATE_ESTABLISHED), -EPROTO,
		"CLOSED -> ESTABLISHED refused, and nothing else happens");
	ok(c->state == VSOCK_STATE_CLOSED && vsock_connection_count(v) == 0, "still CLOSED");
	event_base_loop(base, EVLOOP_NONBLOCK); /* the reaper frees it */
out:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	vsock_free(v);
	if (base)
		event_base_free(base);
}

int main(void)
{
	log_open("test-vsock-state");
	log_set_max_level(LOG_CRIT); /* the illegal move below logs an error */
	test_table();
	test_set_state();
	return tap_done();
}
