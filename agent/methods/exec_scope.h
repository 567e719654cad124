/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Each exec child in a transient scope of its own (systemd.scope(5)), so that
 * restarting the agent (systemctl restart, a package upgrade) does not kill
 * the commands it started: they leave the service's cgroup. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct event_base;

/* Ask systemd to start "guestlink-exec-<id>-<pid>.scope" holding pid
 * (org.freedesktop.systemd1.Manager.StartTransientUnit, PIDs=[pid]), over
 * systemd's private bus when root, else the system bus. Asynchronous: a
 * failure is logged once and the child stays in the agent's cgroup.
 * Returns 0 when asked, -ENOMEDIUM when the agent was not started by systemd
 * (not booted with systemd, or the parent is not PID 1: nothing to do), or a
 * negative errno. */
int exec_scope_move(struct event_base *base, pid_t pid, uint64_t id, const char *argv0);
