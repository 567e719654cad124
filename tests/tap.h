/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A minimal TAP producer for C tests: ok()/is_int()/is_str(), then tap_done(). */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3))) static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

#define is_int(got, want, ...)                                           \
	do {                                                             \
		long long _g = (long long)(got), _w = (long long)(want); \
		if (!ok(_g == _w, __VA_ARGS__))                          \
			printf("#   got %lld, want %lld\n", _g, _w);     \
	} while (0)

#define is_str(got, want, ...)                                                                       \
	do {                                                                                         \
		const char *_g = (got), *_w = (want);                                                \
		if (!ok(_g && _w && strcmp(_g, _w) == 0, __VA_ARGS__))                               \
			printf("#   got '%s', want '%s'\n", _g ? _g : "(null)", _w ? _w : "(null)"); \
	} while (0)

static inline void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
