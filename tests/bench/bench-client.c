/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libguestlink's client on one connection: agent.ping calls per second with 1
 * call in flight (synchronous) and with N in flight (asynchronous, answers
 * matched by id), for SECONDS each. The C side of tests/bench/bench-python.py,
 * which runs both clients against the same agent in the same run.
 *
 * Usage: bench-client ADDRESS [SECONDS] [IN-FLIGHT]
 * Prints: "c ping 1 RATE" and "c ping N RATE" (calls/s). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>
#include <guestlink/guestlink.h>

struct bench {
	struct gl_client *c;
	double end;
	unsigned long done;
	int failed;
};

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_on_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	struct bench *b = userdata;

	if (status < 0) {
		b->failed = status;
		return;
	}
	b->done++;
	/* Closed loop: each answer sends the next call until time is up. */
	if (bench_now() < b->end &&
		gl_client_call_async(c, "agent.ping", NULL, 30000, bench_on_reply, b) < 0)
		b->failed = -EIO;
}

int main(int argc, char **argv)
{
	double seconds = argc > 2 ? atof(argv[2]) : 3.0;
	int inflight = argc > 3 ? atoi(argv[3]) : 64;
	struct bench b = { 0 };
	struct event_base *base;
	double t0;
	int r;

	if (argc < 2 || seconds <= 0 || inflight <= 0) {
		fprintf(stderr, "usage: %s ADDRESS [SECONDS] [IN-FLIGHT]\n", argv[0]);
		return 2;
	}
	r = gl_client_connect(argv[1], 30000, &b.c);
	if (r < 0) {
		fprintf(stderr, "connect %s: %s\n", argv[1], strerror(-r));
		return 3;
	}
	t0 = bench_now();
	b.end = t0 + seconds;
	while (bench_now() < b.end) {
		struct json_object *res = NULL;
		struct gl_error e;

		r = gl_client_call(b.c, "agent.ping", NULL, 30000, &res, &e);
		json_object_put(res);
		if (r < 0) {
			fprintf(stderr, "agent.ping: %s\n", strerror(-r));
			return 1;
		}
		b.done++;
	}
	printf("c ping 1 %.0f\n", (double)b.done / (bench_now() - t0));

	base = event_base_new();
	if (!base || gl_client_attach(b.c, base) < 0)
		return 1;
	b.done = 0;
	t0 = bench_now();
	b.end = t0 + seconds;
	for (int i = 0; i < inflight; i++)
		if (gl_client_call_async(b.c, "agent.ping", NULL, 30000, bench_on_reply, &b) < 0)
			return 1;
	while (gl_client_pending(b.c) > 0 && !b.failed && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	if (b.failed) {
		fprintf(stderr, "agent.ping: %s\n", strerror(-b.failed));
		return 1;
	}
	printf("c ping %d %.0f\n", inflight, (double)b.done / (bench_now() - t0));
	gl_client_free(b.c);
	event_base_free(base);
	return 0;
}
