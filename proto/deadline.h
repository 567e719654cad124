/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Deadlines for blocking waits: one absolute CLOCK_MONOTONIC time in ms,
 * -1 for none, so a timeout covers a whole sequence of waits. poll() never
 * returns before its timeout, so a wait never ends early. */
#pragma once

#include <stdint.h>

int64_t deadline_now_ms(void);
/* The same clock in microseconds. */
int64_t deadline_now_us(void);
/* timeout_ms < 0: no deadline (-1). The deadline is never reached before
 * timeout_ms has passed (it is rounded up to the next millisecond). */
int64_t deadline_from_timeout(int timeout_ms);
/* Milliseconds left for poll(): -1 for none, 0 once passed. */
int deadline_remaining(int64_t deadline);
/* Wait for `events` on fd until the deadline: 0, -ETIMEDOUT or -errno. */
int deadline_poll(int fd, short events, int64_t deadline);
