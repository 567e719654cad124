/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "deadline.h"

int64_t deadline_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t deadline_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t deadline_from_timeout(int timeout_ms)
{
	/* Rounded up: now_ms is the current millisecond's start, and a wait must
	 * never end before timeout_ms has really passed. */
	if (timeout_ms < 0)
		return -1;
	return deadline_now_ms() + timeout_ms + (timeout_ms > 0);
}

int deadline_remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - deadline_now_ms();
	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

int deadline_poll(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int left = deadline_remaining(deadline), r;

		r = poll(&p, 1, left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r > 0)
			return 0;
		if (left == 0 || deadline_remaining(deadline) == 0)
			return -ETIMEDOUT;
	}
}
