/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The qemu-guest-agent protocol front end (see qga.c): connections speaking
 * it, on a socket (qga-vsock::PORT, qga-unix:PATH) or on the virtio-serial
 * port (qga-serial:PATH, see serial.c). */
#pragma once

#include "conn.h"

extern const struct conn_proto conn_proto_qga;
/* The same on virtio-serial: EOF means the host side closed the port. */
extern const struct conn_proto conn_proto_qga_serial;
