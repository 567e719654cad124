/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Transient scopes for exec children: see exec_scope.h. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "exec_scope.h"
#include "log.h"

static sd_bus *exec_scope_bus;
static struct event *exec_scope_ev;
static bool exec_scope_warned;

static void exec_scope_close(void)
{
	if (exec_scope_ev)
		exec_scope_ev = (event_free(exec_scope_ev), NULL);
	exec_scope_bus = sd_bus_flush_close_unref(exec_scope_bus);
}

static void exec_scope_io_cb(evutil_socket_t fd, short what, void *userdata);

/* Run the bus until it has nothing to do, then wait for what it wants next. */
static void exec_scope_pump(struct event_base *base)
{
	short want = EV_READ;
	int r, events;

	do
		r = sd_bus_process(exec_scope_bus, NULL);
	while (r > 0);
	if (r < 0) {
		log_warning("systemd bus for exec scopes failed: %s; reconnecting on the next exec",
			strerror(-r));
		exec_scope_close();
		return;
	}
	events = sd_bus_get_events(exec_scope_bus);
	if (events > 0 && (events & POLLOUT))
		want |= EV_WRITE;
	if (exec_scope_ev)
		event_free(exec_scope_ev);
	exec_scope_ev = event_new(base, sd_bus_get_fd(exec_scope_bus), want, exec_scope_io_cb, base);
	if (!exec_scope_ev || event_add(exec_scope_ev, NULL) < 0)
		exec_scope_close();
}

static void exec_scope_io_cb(evutil_socket_t fd, short what, void *userdata)
{
	if (exec_scope_bus)
		exec_scope_pump(userdata);
}

static int exec_scope_open(struct event_base *base)
{
	int r;

	if (exec_scope_bus)
		return 0;
	if (geteuid() == 0) {
		/* systemd's own socket: no dbus-daemon needed (systemctl does the same). */
		r = sd_bus_new(&exec_scope_bus);
		if (r >= 0)
			r = sd_bus_set_address(exec_scope_bus, "unix:path=/run/systemd/private");
		if (r >= 0)
			r = sd_bus_start(exec_scope_bus);
		if (r < 0)
			exec_scope_bus = sd_bus_unref(exec_scope_bus);
	}
	if (!exec_scope_bus) {
		r = sd_bus_open_system(&exec_scope_bus);
		if (r < 0)
			return r;
	}
	exec_scope_pump(base);
	return exec_scope_bus ? 0 : -ENOTCONN;
}

static int exec_scope_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	const sd_bus_error *e = sd_bus_message_get_error(m);

	if (e && !exec_scope_warned) {
		exec_scope_warned = true;
		log_warning("Cannot start a scope for an exec child: %s: %s; children stay in the "
			    "agent's cgroup (warned once)",
			e->name, e->message ?: "");
	}
	return 0;
}

int exec_scope_move(struct event_base *base, pid_t pid, uint64_t id, const char *argv0)
{
	char name[64], desc[160];
	int r;

	/* Only an agent that systemd started (its parent is PID 1, as for the
	 * socket-activated service): one started by hand or by a test suite keeps
	 * its children, and leaves no units behind on the machine. */
	if (sd_booted() <= 0 || getppid() != 1)
		return -ENOMEDIUM;
	r = exec_scope_open(base);
	if (r < 0) {
		if (!exec_scope_warned) {
			exec_scope_warned = true;
			log_warning("Cannot reach systemd for exec scopes: %s; children stay in "
				    "the "
				    "agent's cgroup (warned once)",
				strerror(-r));
		}
		return r;
	}
	/* Exec ids start again at 1 when the agent restarts, while scopes of the
	 * previous run's children may still exist: the pid keeps the name unique. */
	snprintf(name, sizeof(name), "guestlink-exec-%llu-%d.scope", (unsigned long long)id,
		(int)pid);
	/* argv0 comes from a client: only its printable ASCII reaches the unit. */
	snprintf(desc, sizeof(desc), "guestlink exec %llu: ", (unsigned long long)id);
	for (size_t k = strlen(desc); *argv0 && k + 1 < sizeof(desc); argv0++)
		if (*argv0 >= 0x20 && *argv0 < 0x7f)
			desc[k++] = *argv0, desc[k] = 0;
	r = sd_bus_call_method_async(exec_scope_bus, NULL, "org.freedesktop.systemd1",
		"/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
		"StartTransientUnit", exec_scope_reply, NULL, "ssa(sv)a(sa(sv))", name, "fail", 3,
		"PIDs", "au", 1, (uint32_t)pid, "Description", "s", desc, "CollectMode", "s",
		"inactive-or-failed", 0);
	if (r < 0) {
		exec_scope_close();
		return r;
	}
	exec_scope_pump(base);
	return 0;
}
