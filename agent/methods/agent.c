/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agent.*: ping, echo, info, and rpc.discover (OpenRPC generated from the table). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>

#include <event2/event.h>
#include <guestlink/jsonrpc.h>

#include "config.h"
#include "dispatch.h"
#include "method.h"
#include "methods/methods.h"
#include "server.h"

/* Doubles with a fixed number of decimals: "%.17g" output is noise to readers. */
static struct json_object *json_double(double d)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.2f", d);
	return json_object_new_double_s(d, buf);
}

#define OPENRPC_VERSION "1.2.6"

static unsigned long long agent_start_usec;

static unsigned long long agent_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

struct ping_params {
	int64_t delay_ms;
};

/* A delayed pong: exercises the asynchronous path (in-flight limits,
 * shutdown, timeouts) without any side effect. */
struct ping_wait {
	struct call *call;
	struct event *timer;
	struct ping_wait *prev, *next;
};

static struct ping_wait *ping_waits;

static struct ping_wait *ping_wait_free(struct ping_wait *w)
{
	if (!w)
		return NULL;
	if (w->prev)
		w->prev->next = w->next;
	else
		ping_waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->timer)
		event_free(w->timer);
	call_unref(w->call);
	free(w);
	return NULL;
}

static void agent_ping_timer(evutil_socket_t fd, short what, void *userdata)
{
	struct ping_wait *w = userdata;

	call_reply_text(w->call, "\"pong\"");
	ping_wait_free(w);
}

static int agent_ping(struct call *call, void *params)
{
	const struct ping_params *p = params;
	struct ping_wait *w;
	struct timeval tv;

	if (p->delay_ms == 0) {
		call_reply_text(call, "\"pong\"");
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->timer = evtimer_new(call_event_base(call), agent_ping_timer, w);
	if (!w->timer) {
		free(w);
		return -ENOMEM;
	}
	w->call = call_ref(call);
	w->next = ping_waits;
	if (ping_waits)
		ping_waits->prev = w;
	ping_waits = w;
	tv.tv_sec = (time_t)(p->delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(p->delay_ms % 1000 * 1000);
	evtimer_add(w->timer, &tv);
	return 0;
}

static int agent_echo(struct call *call, void *params)
{
	/* Raw params: the value itself (NULL when absent); the result shares it. */
	call_reply(call, json_object_get(params));
	return 0;
}

static struct json_object *agent_allowed_methods(void)
{
	const struct config *cfg = config_get();
	struct json_object *a = json_object_new_array();
	const struct method *m;
	size_t it = 0;

	while (a && (m = method_next(&it)))
		if (config_method_allowed(cfg, m->name))
			json_object_array_add(a, json_object_new_string(m->name));
	return a;
}

static int agent_info(struct call *call, void *params)
{
	struct conn *conn = call_conn(call);
	struct server *s = conn ? conn_server(conn) : NULL;
	struct json_object *r = json_object_new_object();

	if (!r)
		return -ENOMEM;
	json_object_object_add(r, "version", json_object_new_string(GL_VERSION));
	json_object_object_add(r, "uptime_s",
		json_double((double)(agent_now_usec() - agent_start_usec) / 1e6));
	json_object_object_add(r, "pid", json_object_new_int64(getpid()));
	json_object_object_add(r, "connections",
		json_object_new_int64(s      ? server_n_connections(s)
				      : conn ? 1
					     : 0));
	json_object_object_add(r, "methods", agent_allowed_methods());
	call_reply(call, r);
	return 0;
}

static struct json_object *discover_method(const struct method *m)
{
	struct json_object *o = json_object_new_object(), *ps = json_object_new_array();
	struct json_object *res = json_object_new_object(), *schema = NULL;

	json_object_object_add(o, "name", json_object_new_string(m->name));
	if (m->summary)
		json_object_object_add(o, "summary", json_object_new_string(m->summary));
	if (m->flags & METHOD_RAW_PARAMS) {
		/* Any params value is accepted as a whole; OpenRPC cannot name it. */
		json_object_object_add(o, "x-raw-params", json_object_new_boolean(1));
	} else
		for (const struct method_param *p = m->params; p && p->name; p++) {
			struct json_object *po = json_object_new_object();
			json_object_object_add(po, "name", json_object_new_string(p->name));
			if (p->description)
				json_object_object_add(po, "description",
					json_object_new_string(p->description));
			json_object_object_add(po, "required",
				json_object_new_boolean(!!(p->flags & PARAM_MANDATORY)));
			json_object_object_add(po, "schema", dispatch_param_schema(p));
			json_object_array_add(ps, po);
		}
	json_object_object_add(o, "params", ps);
	json_object_object_add(o, "paramStructure", json_object_new_string("either"));
	if (m->result_schema)
		schema = json_tokener_parse(m->result_schema);
	json_object_object_add(res, "name", json_object_new_string("result"));
	json_object_object_add(res, "schema", schema ? schema : json_object_new_object());
	json_object_object_add(o, "result", res);
	if (m->flags & METHOD_WRITES)
		json_object_object_add(o, "x-writes", json_object_new_boolean(1));
	return o;
}

static int rpc_discover(struct call *call, void *params)
{
	const struct config *cfg = config_get();
	struct json_object *doc = json_object_new_object(), *info = json_object_new_object();
	struct json_object *ms = json_object_new_array();
	const struct method *m;
	size_t it = 0;

	if (!doc || !info || !ms) {
		json_object_put(doc);
		json_object_put(info);
		json_object_put(ms);
		return -ENOMEM;
	}
	json_object_object_add(doc, "openrpc", json_object_new_string(OPENRPC_VERSION));
	json_object_object_add(info, "title", json_object_new_string("guestlink-agent"));
	json_object_object_add(info, "version", json_object_new_string(GL_VERSION));
	json_object_object_add(doc, "info", info);
	/* Only what this agent's policy lets the caller use; rpc.discover itself
	 * is part of the protocol and not listed (OpenRPC convention). */
	while ((m = method_next(&it)))
		if (strcmp(m->name, "rpc.discover") != 0 && config_method_allowed(cfg, m->name))
			json_object_array_add(ms, discover_method(m));
	json_object_object_add(doc, "methods", ms);
	call_reply(call, doc);
	return 0;
}

static const struct method_param ping_params[] = {
	{ .name = "delay_ms",
		.type = PARAM_INT,
		.offset = offsetof(struct ping_params, delay_ms),
		.min = 0,
		.max = 60000,
		.def = 0,
		.description = "Answer after this many milliseconds (without blocking the agent)" },
	{ .name = NULL },
};

static const struct method agent_methods[] = {
	{
		.name = "agent.ping",
		.summary = "Check that the agent answers; returns \"pong\"",
		.params = ping_params,
		.params_size = sizeof(struct ping_params),
		.handler = agent_ping,
		.flags = METHOD_READONLY,
		.result_schema = "{\"type\":\"string\",\"const\":\"pong\"}",
	},
	{
		.name = "agent.echo",
		.summary = "Return the params unchanged (any JSON value)",
		.handler = agent_echo,
		.flags = METHOD_RAW_PARAMS | METHOD_READONLY,
		.result_schema = "{}",
	},
	{
		.name = "agent.info",
		.summary = "Agent version, uptime, open connections and enabled methods",
		.handler = agent_info,
		.flags = METHOD_READONLY,
		.result_schema =
			"{\"type\":\"object\",\"properties\":{"
			"\"version\":{\"type\":\"string\"},"
			"\"uptime_s\":{\"type\":\"number\"},"
			"\"pid\":{\"type\":\"integer\"},"
			"\"connections\":{\"type\":\"integer\"},"
			"\"methods\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}",
	},
	{
		.name = "rpc.discover",
		.summary = "OpenRPC document describing every enabled method",
		.handler = rpc_discover,
		.flags = METHOD_READONLY,
		.result_schema = "{\"$ref\":\"https://raw.githubusercontent.com/open-rpc/"
				 "meta-schema/master/schema.json\"}",
	},
	{ .name = NULL },
};

void methods_agent_cleanup(void)
{
	/* The connections are gone by now: the answers go nowhere, but every
	 * call is still completed properly. */
	while (ping_waits) {
		call_error(ping_waits->call, GL_RPC_INTERNAL_ERROR, "The agent is shutting down",
			NULL);
		ping_wait_free(ping_waits);
	}
}

void methods_agent_register(void)
{
	agent_start_usec = agent_now_usec();
	method_register(agent_methods);
}
