/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hybrid CONNECT client handshake against a scripted Unix server (a
 * forked child): OK variants, refusals, garbage, silence, and data pipelined
 * right after the OK line. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "guestlink/address.h"
#include "tap.h"

enum after {
	AFTER_CLOSE,  /* close right after the answer */
	AFTER_SILENT, /* keep the connection open and say nothing more */
};

static char dir[] = "/tmp/guestlink-test.XXXXXX";
static char sock_path[256];

/* The child accepts one connection, checks the request line is exactly
 * "CONNECT <port>\n" (exit status 0, else 1), answers, then acts per `after`. */
static pid_t server_start(int l, uint32_t port, const char *answer, size_t len, enum after after)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;

	{
		char want[64], got[64];
		size_t n = 0;
		int fd, match;

		alarm(10); /* never outlive a broken test */
		fd = accept(l, NULL, NULL);
		if (fd < 0)
			_exit(2);
		snprintf(want, sizeof(want), "CONNECT %u\n", port);
		while (n < sizeof(got) - 1 && read(fd, got + n, 1) == 1 && got[n++] != '\n')
			;
		got[n] = 0;
		match = strcmp(got, want) == 0;
		if (len && write(fd, answer, len) != (ssize_t)len)
			_exit(3);
		if (after == AFTER_SILENT) {
			char c;
			while (read(fd, &c, 1) > 0) /* until the client closes */
				;
		}
		close(fd);
		_exit(match ? 0 : 1);
	}
}

static int server_stop(pid_t pid)
{
	int status = 0;

	kill(pid, SIGTERM);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int server_wait(pid_t pid)
{
	int status = 0;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_unix(void)
{
	struct gl_address a;
	char addr[300];

	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	if (gl_address_parse(addr, &a) < 0)
		return -EINVAL;
	return gl_address_connect(&a, 2000);
}

/* One scenario: handshake over a fresh connection; returns its result. */
static int scenario(int l, const char *answer, size_t len, enum after after, uint32_t *ret_port,
	int *ret_match, int timeout_ms)
{
	pid_t pid = server_start(l, 9731, answer, len, after);
	int fd = connect_unix(), r, st;

	r = fd < 0 ? fd : gl_hybrid_handshake(fd, 9731, timeout_ms, ret_port);
	if (fd >= 0)
		close(fd);
	st = server_wait(pid);
	if (ret_match)
		*ret_match = st == 0;
	return r;
}

static void test_answers(int l)
{
	static const struct {
		const char *answer;
		int want;
		uint32_t port;
		const char *why;
	} cases[] = {
		{ "OK 1073741824\n", 0, 1073741824, "Firecracker / vhost-device-vsock: OK <port>" },
		{ "OK 1073741825\r\n", 0, 1073741825, "CRLF line end" },
		{ "OK 2147483647 extra words\n", 0, 2147483647, "words after the port" },
		{ "OK \n", 0, 0, "OK and a space, no port" },
		{ "OK\n", 0, 0, "bare OK" },
		{ "OK x\n", 0, 0, "OK with a non-numeric port" },
		{ "OK 99999999999\n", 0, 0, "OK with an out-of-range port: port 0" },
		{ "ok 5\n", -EPROTO, 0, "lowercase ok is not OK" },
		{ "OKAY 5\n", -EPROTO, 0, "OKAY is not OK" },
		{ "ERROR\n", -EPROTO, 0, "an error line" },
		{ "\n", -EPROTO, 0, "an empty line" },
		{ "garbage garbage garbage garbage garbage garbage garbage garbage garbage!\n",
			-EPROTO, 0, "a line longer than any answer" },
		{ "", -ECONNREFUSED, 0, "closed without a word: refused" },
		{ "OK 12", -ECONNRESET, 0, "closed in the middle of the line" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t port = 0xdeadbeef;
		int match = 0, r;

		r = scenario(l, cases[i].answer, strlen(cases[i].answer), AFTER_CLOSE, &port,
			&match, 2000);
		is_int(r, cases[i].want, "%s", cases[i].why);
		if (cases[i].want == 0)
			is_int(port, cases[i].port, "... host port %u", cases[i].port);
		else
			ok(port == 0xdeadbeef, "... host port left untouched on failure");
		ok(match, "... the server got exactly \"CONNECT 9731\\n\"");
	}
}

static void test_silence(int l)
{
	pid_t pid = server_start(l, 9731, "", 0, AFTER_SILENT);
	int fd = connect_unix(), r;
	int64_t t0, dt;

	t0 = now_ms();
	r = fd < 0 ? fd : gl_hybrid_handshake(fd, 9731, 300, NULL);
	dt = now_ms() - t0;
	is_int(r, -ETIMEDOUT, "silent server: -ETIMEDOUT");
	/* Deadlines never end early (deadline.h); late only under load. */
	ok(dt >= 300 && dt < 10000, "... after %lld ms (timeout 300 ms, never earlier)",
		(long long)dt);
	if (fd >= 0)
		close(fd);
	is_int(server_wait(pid), 0, "... the request line was right");

	/* A partial answer then silence also times out. */
	pid = server_start(l, 9731, "OK 10", 5, AFTER_SILENT);
	fd = connect_unix();
	t0 = now_ms();
	r = fd < 0 ? fd : gl_hybrid_handshake(fd, 9731, 300, NULL);
	dt = now_ms() - t0;
	is_int(r, -ETIMEDOUT, "half a line then silence: -ETIMEDOUT");
	ok(dt >= 300 && dt < 10000, "... after %lld ms", (long long)dt);
	if (fd >= 0)
		close(fd);
	server_wait(pid);
}

static void test_pipelined(int l)
{
	static const char answer[] =
		"OK 1073741824\n{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":1}\nmore";
	pid_t pid = server_start(l, 9731, answer, sizeof(answer) - 1, AFTER_CLOSE);
	int fd = connect_unix(), r;
	char buf[256];
	size_t n = 0;
	ssize_t k;

	r = fd < 0 ? fd : gl_hybrid_handshake(fd, 9731, 2000, NULL);
	is_int(r, 0, "answer and data in one write: handshake ok");
	while (fd >= 0 && n < sizeof(buf) - 1 && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = 0;
	is_str(buf, "{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":1}\nmore",
		"the bytes after the OK line are all left in the socket");
	if (fd >= 0)
		close(fd);
	server_wait(pid);
}

static void test_connect(int l)
{
	struct gl_address a;
	char addr[300], buf[16];
	pid_t pid;
	int fd;
	ssize_t n;
	int64_t t0, dt;

	/* gl_address_connect does the handshake for hybrid addresses. */
	snprintf(addr, sizeof(addr), "hybrid:%s:4242", sock_path);
	gl_address_parse(addr, &a);
	pid = server_start(l, 4242, "OK 1073741900\nhi", 16, AFTER_CLOSE);
	fd = gl_address_connect(&a, 2000);
	ok(fd >= 0, "connect to hybrid:PATH:4242");
	n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	ok(n == 2 && memcmp(buf, "hi", 2) == 0, "... and the stream starts right after OK");
	if (fd >= 0)
		close(fd);
	is_int(server_wait(pid), 0, "... the server got \"CONNECT 4242\\n\"");

	pid = server_start(l, 4242, "", 0, AFTER_CLOSE);
	is_int(gl_address_connect(&a, 2000), -ECONNREFUSED,
		"hybrid connect, guest refuses: -ECONNREFUSED");
	server_wait(pid);

	pid = server_start(l, 4242, "", 0, AFTER_SILENT);
	t0 = now_ms();
	fd = gl_address_connect(&a, 300);
	dt = now_ms() - t0;
	is_int(fd, -ETIMEDOUT, "hybrid connect, silent backend: -ETIMEDOUT");
	ok(dt >= 300 && dt < 10000, "... within the one deadline (%lld ms)", (long long)dt);
	if (fd >= 0)
		close(fd);
	server_stop(pid);

	pid = server_start(l, 4242, "nope\n", 5, AFTER_CLOSE);
	is_int(gl_address_connect(&a, 2000), -EPROTO, "hybrid connect, garbage: -EPROTO");
	server_wait(pid);
}

int main(void)
{
	struct gl_address a;
	char addr[300];
	int l;

	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/backend.vsock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	gl_address_parse(addr, &a);
	l = gl_address_listen(&a, 16);
	ok(l >= 0, "scripted server listens");
	if (l >= 0) {
		/* The children block in accept(). */
		fcntl(l, F_SETFL, fcntl(l, F_GETFL) & ~O_NONBLOCK);
		test_answers(l);
		test_silence(l);
		test_pipelined(l);
		test_connect(l);
		close(l);
	}
	unlink(sock_path);
	rmdir(dir);
	return tap_done();
}
