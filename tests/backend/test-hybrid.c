/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The CONNECT line parser: every split point, pipelined bytes left alone,
 * and every malformed line refused. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "hybrid.h"
#include "macro.h"

static int feed_split(const char *s, size_t len, size_t split, uint32_t *port, size_t *used)
{
	struct hybrid_line l = {};
	size_t c1 = 0, c2 = 0;
	int r;

	r = hybrid_line_feed(&l, s, split, &c1, port);
	if (r != -EAGAIN) {
		*used = c1;
		return r;
	}
	r = hybrid_line_feed(&l, s + split, len - split, &c2, port);
	*used = c1 + c2;
	return r;
}

static void test_splits(void)
{
	static const char msg[] = "CONNECT 9731\nPIPELINED";
	size_t len = strlen(msg), line = strlen("CONNECT 9731\n");
	unsigned bad = 0;

	for (size_t split = 0; split <= len; split++) {
		uint32_t port = 0;
		size_t used = 0;
		int r = feed_split(msg, len, split, &port, &used);
		if (r != 0 || port != 9731 || used != line)
			bad++;
	}
	is_int(bad,
		0, "every split point of a pipelined CONNECT line parses, bytes after the newline untouched");

	/* One byte at a time. */
	struct hybrid_line l = {};
	uint32_t port = 0;
	size_t c, total = 0;
	int r = -EAGAIN;
	for (size_t i = 0; i < len && r == -EAGAIN; i++) {
		r = hybrid_line_feed(&l, msg + i, 1, &c, &port);
		total += c;
	}
	is_int(r, 0, "byte by byte");
	is_int(total, line, "consumed exactly the line");
}

static void test_lines(void)
{
	static const struct {
		const char *line;
		int ret;
		uint32_t port;
	} cases[] = {
		{ "CONNECT 1\n", 0, 1 },
		{ "connect 52\n", 0, 52 },
		{ "CoNnEcT 1024\n", 0, 1024 },
		{ "CONNECT 4294967294\n", 0, 4294967294u },
		{ "CONNECT 9731\r\n", 0, 9731 },
		{ "CONNECT  77\n", 0, 77 },
		{ "CONNECT 4294967295\n", -EBADMSG, 0 },
		{ "CONNECT 99999999999\n", -EBADMSG, 0 },
		{ "CONNECT -1\n", -EBADMSG, 0 },
		{ "CONNECT x\n", -EBADMSG, 0 },
		{ "CONNECT 12a\n", -EBADMSG, 0 },
		{ "CONNECT \n", -EBADMSG, 0 },
		{ "CONNECT\n", -EBADMSG, 0 },
		{ "CONNECT9731\n", -EBADMSG, 0 },
		{ "CONNEC 9731\n", -EBADMSG, 0 },
		{ "GET / HTTP/1.0\n", -EBADMSG, 0 },
		{ "\n", -EBADMSG, 0 },
		{ "CONNECT 9731 \n", -EBADMSG, 0 },
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct hybrid_line l = {};
		uint32_t port = 0;
		size_t c;
		int r = hybrid_line_feed(&l, cases[i].line, strlen(cases[i].line), &c, &port);
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(cases[i].line, "\r\n"),
			cases[i].line);
		if (cases[i].ret == 0)
			ok(r == 0 && port == cases[i].port, "\"%s\" -> port %u", name, cases[i].port);
		else
			is_int(r, cases[i].ret, "\"%s\" refused", name);
	}
}

static void test_overlong(void)
{
	char buf[64];
	struct hybrid_line l = {};
	uint32_t port;
	size_t c;

	memset(buf, ' ', sizeof(buf));
	memcpy(buf, "CONNECT", 7);
	is_int(hybrid_line_feed(&l, buf, 20, &c, &port), -EAGAIN, "20 bytes, no newline: need more");
	is_int(hybrid_line_feed(&l, buf, 12, &c, &port), -EBADMSG,
		"32 bytes without a newline: refused");
	struct hybrid_line l2 = {};
	snprintf(buf, sizeof(buf), "CONNECT %024u\n", 5u); /* 33 bytes */
	is_int(hybrid_line_feed(&l2, buf, strlen(buf), &c, &port), -EBADMSG, "33-byte line refused");
	struct hybrid_line l3 = {};
	snprintf(buf, sizeof(buf), "CONNECT %023u\n", 5u); /* 32 bytes */
	is_int(hybrid_line_feed(&l3, buf, strlen(buf), &c, &port), 0,
		"32-byte line (leading zeros) accepted");
	is_int(port, 5, "its port");
}

static void test_listen(void)
{
	char dir[] = "/tmp/test-hybrid.XXXXXX", path[128];
	struct stat st;
	int fd;
	bool pending;

	ok(mkdtemp(dir) != NULL, "tmpdir");
	snprintf(path, sizeof(path), "%s/vm.vsock", dir);
	fd = hybrid_listen(path, 0660, (gid_t)-1, 16);
	ok(fd >= 0, "listen");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0660, "mode 0660 as asked");
	close(fd);
	fd = hybrid_listen(path, 0600, (gid_t)-1, 16);
	ok(fd >= 0, "a stale socket file is replaced");
	ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600 as asked");
	int c = hybrid_connect_guest_port(path, 7, &pending);
	is_int(c, -ENOENT, "guest connect to a missing <path>_7 fails at once");
	char p2[160];
	snprintf(p2, sizeof(p2), "%s_7", path);
	int l7 = hybrid_listen(p2, 0600, (gid_t)-1, 16);
	c = hybrid_connect_guest_port(path, 7, &pending);
	ok(c >= 0, "guest connect to <path>_7 works");
	if (c >= 0)
		close(c);
	close(l7);
	close(fd);
	unlink(p2);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_splits();
	test_lines();
	test_overlong();
	test_listen();
	return tap_done();
}
