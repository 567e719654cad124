/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging for the daemons and the CLI: stderr, with syslog-style priority
 * prefixes ("<3>") when stderr is the journal, so journald keeps the levels. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "macro.h"

void log_open(const char *ident);
void log_set_max_level(int level);
int log_get_max_level(void);

/* Logs and returns -abs(error) so callers can `return log_error_errno(r, ...)`.
 * "%m" in the format expands to strerror(-error). */
int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
	_printf_(5, 6);

#define log_full_errno(level, error, ...) \
	log_internal(level, error, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* Rate limiting for messages a guest or a client can trigger: at most `burst`
 * messages per `interval_us`, then one "suppressed N" note. */
struct log_ratelimit {
	unsigned long long begin_us;
	unsigned interval_us, burst, num, suppressed;
};
#define LOG_RATELIMIT_INIT(interval_ms, burst_)        \
	{                                              \
		0, (interval_ms)*1000u, (burst_), 0, 0 \
	}
int log_ratelimit_test(struct log_ratelimit *rl);
#define log_ratelimited(rl, level, error, ...) \
	(log_ratelimit_test(rl) ? log_full_errno(level, error, __VA_ARGS__) : -abs(error))

/* Escape untrusted bytes for a log line: printable ASCII kept, the rest as \xNN.
 * Writes at most size-1 chars plus NUL into buf (truncates with "..."); returns buf. */
char *log_escape(char *buf, size_t size, const void *data, size_t len);
