/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the agent's connection harnesses (fuzz-agent, fuzz-qga) share: the
 * configuration they fuzz under, and bytes fed to a detached connection of
 * one protocol whose output is discarded. The first input byte picks how the
 * rest is split into feeds (0: one feed), so incremental decoding and
 * resynchronisation across arbitrary boundaries are covered too. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Once per process: quiet logs, register methods (methods_*_register), and a
 * configuration with small limits (max_message_bytes 4096, max_inflight 4:
 * the size and in-flight paths with small inputs) that denies system.*
 * (it reads /proc and /sys or changes the machine: the denial path is
 * fuzzed instead). */
void fuzz_conn_init(void (*register_methods)(void));

/* One input through a new detached connection of proto; returns 0. */
int fuzz_conn_feed(const struct conn_proto *proto, const uint8_t *data, size_t size);
