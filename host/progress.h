/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A one-line transfer progress display on a terminal (stderr): name,
 * percentage, bytes, current rate, elapsed time and ETA, or "stalled" when
 * nothing moved for PROGRESS_STALLED_S. The line always fits the terminal's
 * width (re-read after SIGWINCH) so it never wraps; on a non-terminal
 * nothing is drawn at all. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define PROGRESS_STALLED_S 3.0

struct progress {
	bool enabled;
	char name[256];
	uint64_t total; /* 0: unknown */
	uint64_t done;
	double t0, last_draw, last_move;
	/* current rate: bytes over the last window */
	double win_t;
	uint64_t win_done;
	double rate;
	bool drawn, ticking;
};

/* enabled only when stderr is a terminal and show is true. */
void progress_init(struct progress *p, bool show, uint64_t total);
void progress_set_name(struct progress *p, const char *name);
/* done moved to `done` bytes (total over the whole transfer). Draws at most
 * 10 times a second unless force. */
void progress_update(struct progress *p, uint64_t done, bool force);
/* Redraw if due (for timers: shows "stalled" while nothing moves). */
void progress_tick(struct progress *p);
/* The last line, then a newline. */
void progress_finish(struct progress *p);
/* Clear the line before an error message. */
void progress_clear(struct progress *p);

/* Format one line of at most width-1 columns into buf (for tests and the
 * drawing code): what fits of name, percentage, bytes, rate, times. */
void progress_format(const struct progress *p, double now, unsigned width, char *buf, size_t size);

/* A periodic tick while a blocking transfer runs: SIGALRM every 250 ms
 * without SA_RESTART, so a blocked write returns EINTR and the caller can
 * call progress_tick(). progress_ticker_stop() restores the old state. */
void progress_ticker_start(struct progress *p);
void progress_ticker_stop(struct progress *p);

/* Seconds since progress_init(). */
double progress_elapsed(const struct progress *p);
