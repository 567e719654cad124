/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest->host bytes a full host socket refused stay in the guest's tx buffers
 * (the back-end holds those chains) instead of being copied: held chains go back
 * to the guest, with every byte delivered in order, when the front-end sends the
 * memory table again or stops the tx ring; past the hold's cap (small packets)
 * the bytes are copied and the tx ring keeps moving for other connections. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <unistd.h>

#include "../tap.h"
#include "gstest.h"
#include "macro.h"

#define PORT 5000
#define TOTAL (4u << 20)

static struct gt_backend b;

/* A host client connected to the guest's PORT, accepted there: the guest's side,
 * or NULL (reported as `what`). *ret_fd is the host's socket (-1 if none). */
static struct gs_conn *connect_pair(struct gs *gs, const char *what, int *ret_fd)
{
	struct gs_conn *c = NULL;

	*ret_fd = -1;
	if (gt_host_connect(&b, gs, PORT, 5000, ret_fd) == 0)
		for (uint64_t deadline = gs_now_ms() + 5000;
			!(c = gs_accept(gs, PORT)) && gs_now_ms() < deadline;)
			gs_step(gs, NULL, 0, 10);
	ok(c != NULL, "%s: connected", what);
	return c;
}

/* The guest sends buf in writes of at most `write_size` bytes to a host that does
 * not read, for 1.5 s or until it is throttled. Returns the bytes sent. */
static size_t send_unread(struct gs *gs, struct gs_conn *c, const uint8_t *buf, size_t total,
	size_t write_size)
{
	uint64_t deadline = gs_now_ms() + 1500;
	size_t sent = 0;

	while (gs_now_ms() < deadline && sent < total) {
		size_t len = MIN(total - sent, write_size);
		ssize_t n = gs_conn_send(c, buf + sent, len);

		if (n > 0)
			sent += (size_t)n;
		gs_step(gs, NULL, 0, n > 0 ? 0 : 10);
	}
	return sent;
}

/* The host reads fd until it has `want` bytes (the guest sending the rest of buf
 * meanwhile), for at most 20 s. Returns the bytes read into in. */
static size_t drain(struct gs *gs, struct gs_conn *c, int fd, const uint8_t *buf, size_t *sent,
	size_t total, uint8_t *in, size_t want)
{
	uint64_t deadline = gs_now_ms() + 20000;
	size_t got = 0;

	while (got < want && gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (c && *sent < total) {
			n = gs_conn_send(c, buf + *sent, total - *sent);
			if (n > 0)
				*sent += (size_t)n;
		}
		n = read(fd, in + got, want - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			break;
		gs_step(gs, &p, 1, n > 0 ? 0 : 10);
	}
	return got;
}

static unsigned slots_free_after(struct gs *gs, unsigned ms)
{
	for (uint64_t deadline = gs_now_ms() + ms; gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return gs_tx_slots_free(gs);
}

/* The guest's free tx slots once all `slots` are free, or after ms. */
static unsigned slots_back_within(struct gs *gs, unsigned slots, unsigned ms)
{
	for (uint64_t deadline = gs_now_ms() + ms;
		gs_tx_slots_free(gs) < slots && gs_now_ms() < deadline;)
		gs_step(gs, NULL, 0, 10);
	return gs_tx_slots_free(gs);
}

/* A full host socket while the memory table comes again: the held chains are
 * given back first (their bytes copied), the stream arrives whole. */
static void test_mem_table(struct gs *gs, unsigned slots)
{
	uint8_t *buf = malloc(TOTAL), *in = malloc(TOTAL);
	uint64_t seed = 11;
	size_t sent, got;
	struct gs_conn *c;
	int fd = -1, r;

	gt_random(buf, TOTAL, &seed);
	c = connect_pair(gs, "mem table", &fd);
	if (!c)
		goto out;
	sent = send_unread(gs, c, buf, TOTAL, 65536);
	diag("sent %zu bytes to a host that does not read; %u of %u tx slots free", sent,
		gs_tx_slots_free(gs), slots);
	ok(sent < TOTAL && gs_tx_slots_free(gs) < slots,
		"mem table: the host does not read: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	r = gs_send_mem_table(gs);
	is_int(r, 0, "mem table: SET_MEM_TABLE again is acknowledged");
	is_int(slots_free_after(gs, 200), slots,
		"mem table: every held chain went back to the guest before the memory changed");
	ok(gt_backend_alive(&b), "mem table: back-end alive");
	got = drain(gs, c, fd, buf, &sent, TOTAL, in, TOTAL);
	ok(got == TOTAL && !memcmp(in, buf, TOTAL),
		"mem table: the whole stream arrives in order once the host reads (%zu)", got);
	is_int(gs_conn_state(c), GS_CONNECTED, "mem table: the connection lives on");
	gs_conn_close(c);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(in);
}

/* Small packets past the hold's cap: copied, the tx ring keeps moving, another
 * connection's stream goes through while the first host does not read. */
static void test_cap(struct gs *gs, unsigned slots)
{
	uint8_t *buf = malloc(TOTAL), *in = malloc(TOTAL), *buf2 = malloc(TOTAL),
		*in2 = malloc(TOTAL);
	uint64_t seed = 12;
	size_t sent, sent2 = 0, got, got2;
	struct gs_conn *c, *c2 = NULL;
	int fd = -1, fd2 = -1;

	gt_random(buf, TOTAL, &seed);
	gt_random(buf2, TOTAL, &seed);
	c = connect_pair(gs, "cap", &fd);
	if (!c)
		goto out;
	sent = send_unread(gs, c, buf, TOTAL, 1000);
	diag("sent %zu bytes in 1000-byte packets to a host that does not read; %u of %u tx "
	     "slots free",
		sent, gs_tx_slots_free(gs), slots);
	ok(sent > 100 * 1000,
		"cap: more 1000-byte packets went out than the hold takes (%zu bytes)", sent);
	ok(gs_tx_slots_free(gs) >= slots / 2,
		"cap: most of the guest's tx buffers stay free (%u of %u)", gs_tx_slots_free(gs),
		slots);
	c2 = connect_pair(gs, "cap: a second connection while the first host does not read", &fd2);
	if (!c2)
		goto out;
	got2 = drain(gs, c2, fd2, buf2, &sent2, TOTAL, in2, TOTAL);
	ok(got2 == TOTAL && !memcmp(in2, buf2, TOTAL),
		"cap: the second connection's stream goes through whole (%zu)", got2);
	got = drain(gs, c, fd, buf, &sent, TOTAL, in, TOTAL);
	ok(got == TOTAL && !memcmp(in, buf, TOTAL),
		"cap: then the first one's arrives whole and in order (%zu)", got);
	gs_conn_close(c2);
	gs_conn_close(c);
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	free(buf);
	free(in);
	free(buf2);
	free(in2);
}

/* The front-end sets the size of the running tx ring to one its rings no longer
 * fit in guest memory for, while chains are held: the ring stops, so the held
 * chains go back before it does (their bytes copied), and nothing held points
 * into guest memory while the ring is stopped. The old size starts it again. */
static void test_ring_renum(struct gs *gs, unsigned slots, unsigned queue_size)
{
	uint8_t *buf = malloc(TOTAL), *in = malloc(TOTAL);
	struct {
		uint32_t index, num;
	} st = { 1, 32768 };
	uint64_t seed = 14;
	size_t sent, got;
	struct gs_conn *c;
	int fd = -1, r;

	gt_random(buf, TOTAL, &seed);
	c = connect_pair(gs, "renum", &fd);
	if (!c)
		goto out;
	sent = send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots, "renum: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	r = gs_vu_send(gs_vu_fd(gs), VU_SET_VRING_NUM, 0, &st, sizeof(st), NULL, 0);
	if (r >= 0)
		r = gs_vu_probe(gs);
	is_int(r, 0, "renum: SET_VRING_NUM(tx, 32768) sent");
	is_int(slots_back_within(gs, slots, 5000), slots,
		"renum: every held chain went back to the guest before the ring stopped");
	st.num = queue_size;
	r = gs_vu_send(gs_vu_fd(gs), VU_SET_VRING_NUM, 0, &st, sizeof(st), NULL, 0);
	if (r >= 0)
		r = gs_vu_probe(gs);
	is_int(r, 0, "renum: SET_VRING_NUM(tx, %u) sent", st.num);
	got = drain(gs, c, fd, buf, &sent, TOTAL, in, TOTAL);
	ok(got == TOTAL && !memcmp(in, buf, TOTAL),
		"renum: the whole stream arrives in order once the ring runs again (%zu)", got);
	ok(gt_backend_alive(&b), "renum: back-end alive");
	gs_conn_close(c);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(in);
}

/* The host reads fd until EOF or an error, for at most 10 s: the bytes read
 * into in (at most max), *ret_eof whether it ended (0 or -1 from read()). */
static size_t drain_to_end(struct gs *gs, int fd, uint8_t *in, size_t max, bool *ret_eof)
{
	uint64_t deadline = gs_now_ms() + 10000;
	size_t got = 0;

	*ret_eof = false;
	while (gs_now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n = read(fd, in + got, max - got);

		if (n > 0)
			got += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			*ret_eof = true;
			break;
		}
		if (got == max)
			break;
		gs_step(gs, &p, 1, n > 0 ? 0 : 10);
	}
	return got;
}

/* The guest gives up on a connection whose chains are held: an RST drops
 * them (every chain back, the host sees the end); a SHUTDOWN of both sides
 * lets the host take every byte first, then see the end. The host closing
 * its socket gives the chains back too. */
static void test_guest_ends(struct gs *gs, unsigned slots)
{
	uint8_t *buf = malloc(TOTAL), *in = malloc(TOTAL);
	uint64_t seed = 16;
	size_t sent, got;
	struct gs_conn *c;
	bool eof;
	int fd = -1;

	gt_random(buf, TOTAL, &seed);
	c = connect_pair(gs, "guest rst", &fd);
	if (!c)
		goto out;
	send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots, "guest rst: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	gs_conn_reset(c);
	is_int(slots_back_within(gs, slots, 5000), slots, "guest rst: every held chain went back");
	drain_to_end(gs, fd, in, TOTAL, &eof);
	ok(eof, "guest rst: the host sees the connection end");
	close(fd);
	fd = -1;

	c = connect_pair(gs, "guest shutdown", &fd);
	if (!c)
		goto out;
	sent = send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots,
		"guest shutdown: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	gs_conn_close(c);
	got = drain_to_end(gs, fd, in, TOTAL, &eof);
	ok(eof && got == sent && !memcmp(in, buf, sent),
		"guest shutdown: the host takes every byte sent, in order, then the end (%zu of "
		"%zu)",
		got, sent);
	is_int(slots_back_within(gs, slots, 5000), slots,
		"guest shutdown: every held chain went back");
	close(fd);
	fd = -1;

	c = connect_pair(gs, "host close", &fd);
	if (!c)
		goto out;
	send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots, "host close: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	close(fd);
	fd = -1;
	/* The back-end may see the close only by its once-a-second hang-up poll. */
	is_int(slots_back_within(gs, slots, 10000), slots,
		"host close: every held chain went back once the host closed");
	gs_conn_close(c);
	ok(gt_backend_alive(&b), "guest and host ends: back-end alive");
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(in);
}

/* The front-end stops the tx ring (GET_VRING_BASE) while chains are held: they are
 * given back first, the base counts them consumed, and their bytes still reach the
 * host. Last: the ring stays stopped. */
static void test_ring_stop(struct gs *gs, unsigned slots)
{
	uint8_t *buf = malloc(TOTAL), *in = malloc(TOTAL);
	struct {
		uint32_t index, num;
	} st = { 1, 0 }, reply = { 99, 99 };
	uint64_t seed = 13;
	size_t sent, got, none = TOTAL;
	struct gs_conn *c;
	int fd = -1, r;

	gt_random(buf, TOTAL, &seed);
	c = connect_pair(gs, "ring stop", &fd);
	if (!c)
		goto out;
	sent = send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots, "ring stop: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
	r = gs_vu_call(gs_vu_fd(gs), VU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0, &reply,
		sizeof(reply), 5000);
	is_int(r, 8, "ring stop: GET_VRING_BASE(tx) answered");
	is_int(reply.num, gs_avail_idx(gs, 1), "ring stop: the base counts every chain consumed");
	is_int(slots_free_after(gs, 200), slots,
		"ring stop: every held chain went back to the guest");
	got = drain(gs, NULL, fd, buf, &none, TOTAL, in, sent);
	ok(got == sent && !memcmp(in, buf, sent), "ring stop: every byte sent before the stop reaches the host, in order (%zu of %zu)",
		got, sent);
	ok(gt_backend_alive(&b), "ring stop: back-end alive");
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(in);
}

/* Chains held when the back-end is told to exit (main() stops it next, the
 * guest and the host client still connected): they must go back while the
 * ring is still mapped, not after the rings and guest memory were freed
 * (gt_backend_stop() fails on a sanitizer report). The guest connects again
 * first: the ring test_ring_stop() stopped stays stopped. Returns the host
 * client's socket, for the caller to close after the stop (-1 if none). */
static int test_exit_held(struct gs *gs, unsigned slots)
{
	uint8_t *buf = malloc(TOTAL);
	uint64_t seed = 15;
	struct gs_conn *c;
	int fd = -1, r;

	gt_random(buf, TOTAL, &seed);
	r = gs_reconnect(gs, 1ull << 32);
	is_int(r, 0, "exit: the guest connects again with fresh rings");
	if (r < 0)
		goto out;
	gs_listen(gs, PORT);
	c = connect_pair(gs, "exit", &fd);
	if (!c)
		goto out;
	send_unread(gs, c, buf, TOTAL, 65536);
	ok(gs_tx_slots_free(gs) < slots, "exit: the back-end holds tx chains (%u of %u free)",
		gs_tx_slots_free(gs), slots);
out:
	free(buf);
	return fd;
}

int main(void)
{
	struct gs_options o;
	struct gs *gs = NULL;
	unsigned slots;
	int r, exit_fd = -1;

	if (!gt_backend_binary()) {
		printf("1..0 # SKIP back-end not built\n");
		return 77;
	}
	r = gt_backend_start(&b, NULL);
	ok(r == 0, "back-end started");
	if (r < 0)
		return tap_done();
	gt_options(&o, &b);
	r = gs_new(&o, &gs);
	ok(r == 0, "guestsim negotiated");
	if (r < 0)
		goto out;
	gs_listen(gs, PORT);
	slots = gs_tx_slots_free(gs);
	test_mem_table(gs, slots);
	test_cap(gs, slots);
	test_ring_renum(gs, slots, o.queue_size);
	test_guest_ends(gs, slots);
	is_int(gs_violations(gs), 0, "no protocol violation (%s)", gs_last_violation(gs));
	test_ring_stop(gs, slots);
	is_int(gs_violations(gs), 0, "no protocol violation after the ring stopped (%s)",
		gs_last_violation(gs));
	exit_fd = test_exit_held(gs, slots);
out:
	/* The back-end first, while the guest and the host client still hold chains. */
	r = gt_backend_stop(&b, NULL);
	is_int(r, 0, "back-end exits cleanly (status 0, no sanitizer report)");
	if (exit_fd >= 0)
		close(exit_fd);
	gs_free(gs);
	return tap_done();
}
