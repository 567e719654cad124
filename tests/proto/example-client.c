/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Using libguestlink: one synchronous call, then three asynchronous calls in
 * flight at once on the same connection. Build with
 *   cc example-client.c $(pkg-config --cflags --libs guestlink libevent)
 * and run as: example-client unix:/path/to/agent.sock  (or hybrid:PATH:9731) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <event2/event.h>
#include <guestlink/guestlink.h>

static void on_reply(struct gl_client *c, int status, struct json_object *result,
	const struct gl_error *error, void *userdata)
{
	const char *tag = userdata;

	if (status == 0)
		printf("%s: %s\n", tag, json_object_to_json_string(result));
	else if (status == -EREMOTEIO)
		printf("%s: error %d: %s\n", tag, error->code, error->message);
	else
		printf("%s: %s\n", tag, strerror(-status));
}

int main(int argc, char **argv)
{
	struct json_object *result = NULL;
	struct gl_error error;
	struct gl_client *c;
	struct event_base *base;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s ADDRESS\n", argv[0]);
		return 2;
	}
	r = gl_client_connect(argv[1], 5000, &c);
	if (r < 0) {
		fprintf(stderr, "connect %s: %s\n", argv[1], strerror(-r));
		return 3;
	}

	/* Synchronous: params are taken over by the call. */
	r = gl_client_call(c, "agent.echo", json_tokener_parse("[\"hello\"]"), 5000, &result, &error);
	if (r == -EREMOTEIO)
		printf("sync: error %d: %s\n", error.code, error.message);
	else if (r < 0)
		printf("sync: %s\n", strerror(-r));
	else
		printf("sync: %s\n", json_object_to_json_string(result));
	json_object_put(result);

	/* Asynchronous: answers are matched by id, in whatever order they come. */
	base = event_base_new();
	gl_client_attach(c, base);
	gl_client_call_async(c, "agent.ping", NULL, 5000, on_reply, "ping");
	gl_client_call_async(c, "agent.echo", json_tokener_parse("{\"n\": 2}"), 5000, on_reply,
		"echo");
	gl_client_call_async(c, "no.such.method", NULL, 5000, on_reply, "nosuch");
	while (gl_client_pending(c) > 0 && event_base_loop(base, EVLOOP_ONCE) == 0)
		;

	gl_client_free(c);
	event_base_free(base);
	return 0;
}
