/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QGA virtio-serial port (default /dev/virtio-ports/org.qemu.guest_agent.0):
 * one stream, so one client at a time. The port is opened, served while the
 * host side is connected, and opened afresh after the host closed it. */
#pragma once

struct server;
struct serial;

#define SERIAL_QGA_DEFAULT_PATH "/dev/virtio-ports/org.qemu.guest_agent.0"

/* Start serving QGA on the character device at path (copied). The device may
 * appear later; the port is polled until it does. Returns 0 or -ENOMEM. */
int serial_new(struct server *s, const char *path, struct serial **ret);
struct serial *serial_free(struct serial *p);
