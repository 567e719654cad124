/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "guestlink";
static int log_max_level = LOG_INFO;
static int log_to_journal = -1;

/* systemd sets JOURNAL_STREAM to "DEV:INO" of the stream it connected to
 * stdout/stderr (systemd.exec(5), "$JOURNAL_STREAM"). The variable is
 * inherited by children whose stderr may be anything (a pipe, a file, a
 * terminal): only when stderr is that very socket do priority prefixes
 * reach journald instead of ending up as "<3>" in someone's output. */
static bool log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != 0)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_open(const char *ident)
{
	const char *e;

	log_ident = ident;
	log_to_journal = log_stderr_is_journal();
	e = getenv("GUESTLINK_LOG_LEVEL");
	if (e && *e >= '0' && *e <= '7' && !e[1])
		log_max_level = *e - '0';
}

void log_set_max_level(int level)
{
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...)
{
	char msg[1024], expanded[1024];
	int saved = errno;
	va_list ap;
	size_t j = 0;

	error = -abs(error);
	if (level > log_max_level)
		goto out;

	/* Expand %m ourselves: errno is not what the caller means. */
	for (const char *p = fmt; *p && j < sizeof(expanded) - 1; p++) {
		if (p[0] == '%' && p[1] == 'm') {
			const char *s = strerror(-error);
			size_t n = strlen(s);
			if (n > sizeof(expanded) - 1 - j)
				n = sizeof(expanded) - 1 - j;
			memcpy(expanded + j, s, n);
			j += n;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			expanded[j++] = '%';
			if (j < sizeof(expanded) - 1)
				expanded[j++] = '%';
			p++;
		} else
			expanded[j++] = *p;
	}
	expanded[j] = 0;

	va_start(ap, fmt);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	vsnprintf(msg, sizeof(msg), expanded, ap);
#pragma GCC diagnostic pop
	va_end(ap);

	if (log_to_journal > 0)
		fprintf(stderr, "<%d>%s\n", level, msg);
	else if (log_max_level >= LOG_DEBUG)
		fprintf(stderr, "%s: %s:%d: %s\n", log_ident, file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", log_ident, msg);
out:
	errno = saved;
	return error;
}

int log_ratelimit_test(struct log_ratelimit *rl)
{
	struct timespec ts;
	unsigned long long now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
	if (rl->begin_us == 0 || now - rl->begin_us >= rl->interval_us) {
		if (rl->suppressed)
			log_warning("(%u similar messages suppressed)", rl->suppressed);
		rl->begin_us = now;
		rl->num = 0;
		rl->suppressed = 0;
	}
	if (rl->num < rl->burst) {
		rl->num++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}

char *log_escape(char *buf, size_t size, const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = data;
	size_t j = 0;

	if (size == 0)
		return buf;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;
		if (j + need + 4 > size) {
			if (size >= 4) {
				j = j < size - 4 ? j : size - 4;
				memcpy(buf + j, "...", 3);
				j += 3;
			}
			break;
		}
		if (need == 1)
			buf[j++] = (char)c;
		else {
			buf[j++] = '\\';
			buf[j++] = 'x';
			buf[j++] = hex[c >> 4];
			buf[j++] = hex[c & 15];
		}
	}
	buf[j] = 0;
	return buf;
}
