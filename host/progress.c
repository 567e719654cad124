/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The transfer progress line of guestlink cp (see progress.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "macro.h"
#include "progress.h"

#define PROGRESS_REDRAW_S 0.1
#define PROGRESS_RATE_WINDOW_S 1.0
#define PROGRESS_TICK_US 250000

static volatile sig_atomic_t progress_resized;
static struct sigaction progress_old_alrm, progress_old_winch;

static double progress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned progress_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
		return 80;
	return ws.ws_col;
}

static void progress_on_winch(int sig)
{
	progress_resized = 1;
}

static void progress_on_alarm(int sig)
{
}

void progress_init(struct progress *p, bool show, uint64_t total)
{
	struct sigaction sa = { .sa_handler = progress_on_winch, .sa_flags = SA_RESTART };

	memset(p, 0, sizeof(*p));
	p->enabled = show && isatty(STDERR_FILENO);
	p->total = total;
	p->t0 = p->last_move = p->win_t = progress_now();
	if (p->enabled) {
		sigemptyset(&sa.sa_mask);
		sigaction(SIGWINCH, &sa, &progress_old_winch);
	}
}

void progress_set_name(struct progress *p, const char *name)
{
	const char *base = strrchr(name, '/');
	_cleanup_free_ char *safe = NULL;
	size_t len;

	/* The last component names the file; "dir/" keeps "dir". */
	if (base && !base[1]) {
		while (base > name && base[-1] != '/')
			base--;
	} else if (base)
		base++;
	/* A guest picks names: escaped as all guest text on a terminal (C0, DEL,
	 * C1 and stray bytes as \xNN), so what is left is ASCII and valid UTF-8. */
	safe = cmd_escape(base ?: name);
	snprintf(p->name, sizeof(p->name), "%s", safe ?: "?");
	/* Cut to the buffer: drop a sequence left incomplete at the end. */
	len = strlen(p->name);
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned char c = (unsigned char)p->name[len - back];

		if (c < 0x80)
			break;
		if (c >= 0xc0) {
			size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

			if (back < need)
				p->name[len - back] = 0;
			break;
		}
	}
}

/* s from its first byte that starts a UTF-8 sequence (a cut never starts
 * with continuation bytes, which an 8-bit terminal would take for C1). */
static const char *progress_utf8_start(const char *s)
{
	while (((unsigned char)*s & 0xc0) == 0x80)
		s++;
	return s;
}

static void progress_bytes(uint64_t n, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
}

static void progress_time(double s, char *buf, size_t size)
{
	unsigned long t = s > 0 && s < 360000 ? (unsigned long)(s + 0.5) : 0;

	if (t >= 3600)
		snprintf(buf, size, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, size, "%02lu:%02lu", t / 60, t % 60);
}

void progress_format(const struct progress *p, double now, unsigned width, char *buf, size_t size)
{
	char done[32], total[32], rate[32], elapsed[32], eta[32], pct[8] = "";
	char fields[5][80];
	size_t nfields = 0, used = 0, max = width > 1 ? width - 1 : 0;
	bool stalled = now - p->last_move >= PROGRESS_STALLED_S && (!p->total || p->done < p->total);
	int name_w;

	if (size == 0)
		return;
	progress_bytes(p->done, done, sizeof(done));
	progress_bytes(p->total, total, sizeof(total));
	progress_bytes((uint64_t)p->rate, rate, sizeof(rate));
	progress_time(now - p->t0, elapsed, sizeof(elapsed));
	if (p->total)
		snprintf(pct, sizeof(pct), "%3u%%",
			(unsigned)(p->done >= p->total ? 100
						       : 100.0 * (double)p->done / (double)p->total));
	/* Most important first: dropped from the end when the line is narrow. */
	if (*pct)
		snprintf(fields[nfields++], sizeof(fields[0]), "%s", pct);
	if (stalled)
		snprintf(fields[nfields++], sizeof(fields[0]), "stalled");
	else
		snprintf(fields[nfields++], sizeof(fields[0]), "%s/s", rate);
	if (p->total)
		snprintf(fields[nfields++], sizeof(fields[0]), "%s/%s", done, total);
	else
		snprintf(fields[nfields++], sizeof(fields[0]), "%s", done);
	snprintf(fields[nfields++], sizeof(fields[0]), "%s", elapsed);
	if (p->total && p->rate > 0 && !stalled && p->done < p->total) {
		progress_time((double)(p->total - p->done) / p->rate, eta, sizeof(eta));
		snprintf(fields[nfields++], sizeof(fields[0]), "ETA %s", eta);
	}
	/* Keep as many fields as fit with at least a short name. */
	for (;;) {
		used = 0;
		for (size_t i = 0; i < nfields; i++)
			used += 2 + strlen(fields[i]);
		if (used + 8 <= max || nfields <= 1)
			break;
		nfields--;
	}
	name_w = used < max ? (int)(max - used) : 0;
	buf[0] = 0;
	if (name_w > 0) {
		int n = snprintf(buf, size, "%-*.*s", name_w, name_w, p->name);
		/* Long names: keep their end, where the file name is. */
		if ((size_t)name_w < strlen(p->name) && name_w > 3)
			snprintf(buf, size, "...%-*s", name_w - 3,
				progress_utf8_start(p->name + strlen(p->name) - (size_t)(name_w - 3)));
		(void)n;
	}
	for (size_t i = 0; i < nfields; i++) {
		size_t len = strlen(buf);
		if (len + 2 + strlen(fields[i]) > max)
			break;
		snprintf(buf + len, size - len, "  %s", fields[i]);
	}
}

static void progress_draw(struct progress *p, double now)
{
	char line[1024];
	unsigned width = progress_width();

	if (width > sizeof(line))
		width = sizeof(line);
	progress_resized = 0;
	progress_format(p, now, width, line, sizeof(line));
	/* \r, the line, then erase to the end: a narrower terminal leaves no tail. */
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
	p->last_draw = now;
	p->drawn = true;
}

void progress_update(struct progress *p, uint64_t done, bool force)
{
	double now = progress_now();

	if (done != p->done)
		p->last_move = now;
	p->done = done;
	if (now - p->win_t >= PROGRESS_RATE_WINDOW_S) {
		p->rate = (double)(p->done - p->win_done) / (now - p->win_t);
		p->win_t = now;
		p->win_done = p->done;
	} else if (p->rate == 0 && now - p->t0 > 0.2)
		p->rate = (double)p->done / (now - p->t0);
	if (p->enabled && (force || progress_resized || now - p->last_draw >= PROGRESS_REDRAW_S))
		progress_draw(p, now);
}

void progress_tick(struct progress *p)
{
	progress_update(p, p->done, false);
}

void progress_finish(struct progress *p)
{
	progress_ticker_stop(p);
	if (!p->enabled)
		return;
	p->last_move = progress_now();
	p->rate = p->done / (p->last_move - p->t0 > 0 ? p->last_move - p->t0 : 1);
	progress_draw(p, p->last_move);
	fputc('\n', stderr);
	p->drawn = false;
	sigaction(SIGWINCH, &progress_old_winch, NULL);
	p->enabled = false;
}

void progress_clear(struct progress *p)
{
	if (p->enabled && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		p->drawn = false;
	}
}

void progress_ticker_start(struct progress *p)
{
	struct sigaction sa = { .sa_handler = progress_on_alarm };
	struct itimerval it = { { 0, PROGRESS_TICK_US }, { 0, PROGRESS_TICK_US } };

	if (!p->enabled || p->ticking)
		return;
	p->ticking = true;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &progress_old_alrm);
	setitimer(ITIMER_REAL, &it, NULL);
}

void progress_ticker_stop(struct progress *p)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	if (!p->ticking)
		return;
	p->ticking = false;
	setitimer(ITIMER_REAL, &it, NULL);
	sigaction(SIGALRM, &progress_old_alrm, NULL);
}

double progress_elapsed(const struct progress *p)
{
	return progress_now() - p->t0;
}
