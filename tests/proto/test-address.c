/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Addresses: parse/format round trips, every rejection, machine names,
 * listening/connecting on Unix sockets (0600, stale sockets), and exec:
 * commands started, spoken to and reaped. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "guestlink/address.h"
#include "tap.h"

static void test_round_trips(void)
{
	static const char *const good[] = {
		"vsock:2:9731",
		"vsock::9731",
		"vsock:3:0",
		"vsock:4294967294:4294967294",
		"unix:/run/guestlink/agent.sock",
		"unix:relative/path",
		"unix:/with:colons:9",
		"hybrid:/run/guestlink/vm1.vsock:9731",
		"hybrid:/a:b/c.vsock:1",
		"hybrid:rel.vsock:0",
		"exec:ssh hv1 guestlink -m vm1 connect 9731",
		"exec:socat - 'UNIX-CONNECT:/a b'",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct gl_address a;
		char buf[256];
		int r = gl_address_parse(good[i], &a);

		ok(r == 0, "parse %s", good[i]);
		if (r == 0) {
			r = gl_address_format(&a, buf, sizeof(buf));
			ok(r == (int)strlen(good[i]) && strcmp(buf, good[i]) == 0, "format %s",
				good[i]);
		}
	}

	{
		struct gl_address a;

		ok(gl_address_parse("vsock:2:9731", &a) == 0 && a.type == GL_ADDRESS_VSOCK &&
				a.cid == 2 && a.port == 9731,
			"vsock fields");
		ok(gl_address_parse("vsock::5", &a) == 0 && a.cid == GL_VSOCK_CID_ANY && a.port == 5,
			"vsock::PORT is any CID");
		ok(gl_address_parse("hybrid:/x/y:z.vsock:77", &a) == 0 &&
				a.type == GL_ADDRESS_HYBRID &&
				strcmp(a.path, "/x/y:z.vsock") == 0 && a.port == 77,
			"hybrid splits at the last colon");
		ok(gl_address_parse("unix:/p", &a) == 0 && a.type == GL_ADDRESS_UNIX &&
				strcmp(a.path, "/p") == 0,
			"unix fields");
	}
}

static void test_rejections(void)
{
	char longpath[200], longer[300];
	static const char *const bad[] = {
		"",
		"vsock",
		"vsock:",
		"vsock:2",
		"vsock:2:",
		"vsock::",
		"vsock:x:1",
		"vsock:2:x",
		"vsock:-1:1",
		"vsock:2:-1",
		"vsock:+2:1",
		"vsock: 2:1",
		"vsock:2:1 ",
		"vsock:2:4294967295",
		"vsock:4294967295:1",
		"vsock:4294967296:1",
		"vsock:2:99999999999",
		"vsock:2:1:3",
		"unix:",
		"hybrid:",
		"hybrid:/path",
		"hybrid:/path:",
		"hybrid::9731",
		"hybrid:/path:port",
		"hybrid:/path:4294967296",
		"tcp:1.2.3.4:5",
		"UNIX:/p",
		"/just/a/path",
		"exec:",
		"exec: \t ",
		"EXEC:cat",
	};
	struct gl_address a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&a, 0x5a, sizeof(a));
		ok(gl_address_parse(bad[i], &a) == -EINVAL && a.port == 0x5a5a5a5a,
			"reject '%s' (output untouched)", bad[i]);
	}
	ok(gl_address_parse(NULL, &a) == -EINVAL, "reject NULL");

	/* sun_path is 108 bytes with its NUL: 107 fit, 108 do not. */
	memset(longpath, 0, sizeof(longpath));
	strcpy(longpath, "unix:/");
	memset(longpath + 6, 'p', 106);
	ok(gl_address_parse(longpath, &a) == 0 && strlen(a.path) == 107, "107-byte unix path fits");
	snprintf(longer, sizeof(longer), "%sq", longpath);
	ok(gl_address_parse(longer, &a) == -EINVAL, "108-byte unix path rejected");
	snprintf(longer, sizeof(longer), "hybrid:%sq:1", longpath + 5);
	ok(gl_address_parse(longer, &a) == -EINVAL, "108-byte hybrid path rejected");
	{
		char cmd[GL_ADDRESS_COMMAND_MAX + 8];

		memset(cmd, 0, sizeof(cmd));
		strcpy(cmd, "exec:");
		memset(cmd + 5, 'c', GL_ADDRESS_COMMAND_MAX - 1);
		ok(gl_address_parse(cmd, &a) == 0 && strlen(a.command) == GL_ADDRESS_COMMAND_MAX - 1,
			"longest exec: command fits");
		cmd[5 + GL_ADDRESS_COMMAND_MAX - 1] = 'c';
		ok(gl_address_parse(cmd, &a) == -EINVAL, "overlong exec: command rejected");
	}
}

/* Start COMMAND, optionally write and read back, close; the wait status. */
static int exec_run(const char *address, const char *say, char *heard, size_t size, pid_t *ret_pid)
{
	struct gl_address a;
	pid_t pid = -1;
	int fd;

	if (gl_address_parse(address, &a) < 0)
		return -EINVAL;
	fd = gl_address_open(&a, 1000, &pid);
	if (fd < 0)
		return fd;
	*ret_pid = pid;
	if (say) {
		size_t got = 0;

		/* A command that is already gone makes this fail (EPIPE): fine. */
		(void)send(fd, say, strlen(say), MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		while (got + 1 < size) {
			ssize_t n = read(fd, heard + got, size - 1 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		heard[got] = 0;
	}
	return gl_address_close(fd, pid);
}

static bool reaped(pid_t pid)
{
	return pid > 0 && waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void test_exec(void)
{
	struct gl_address a;
	char heard[64];
	pid_t pid = 0;
	int st;

	gl_address_parse("exec:cat", &a);
	ok(gl_address_connect(&a, 100) == -EOPNOTSUPP, "gl_address_connect(exec:): -EOPNOTSUPP");

	st = exec_run("exec:tr a-z A-Z", "hello\n", heard, sizeof(heard), &pid);
	ok(st == 0 && strcmp(heard, "HELLO\n") == 0, "exec: stdin and stdout are the socket");
	ok(reaped(pid), "exec: command reaped");

	st = exec_run("exec:sh -c 'cat >/dev/null; exit 3'", NULL, NULL, 0, &pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 3,
		"exec: shell quoting splits the command (status %d)", WEXITSTATUS(st));
	ok(reaped(pid), "exec: shell command reaped");

	st = exec_run("exec:/nonexistent/guestlink-test", "x", heard, sizeof(heard), &pid);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 127 && heard[0] == 0,
		"exec: missing program: EOF, status 127");

	/* Ignores the end of its stdin: SIGTERM after the grace time. */
	st = exec_run("exec:sleep 60", NULL, NULL, 0, &pid);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "exec: lingering command terminated");
	ok(reaped(pid), "exec: lingering command reaped");

	/* Ignores SIGTERM too: SIGKILL. */
	st = exec_run("exec:sh -c \"trap '' TERM; sleep 5; sleep 5\"", NULL, NULL, 0, &pid);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "exec: stubborn command killed");
	ok(reaped(pid), "exec: stubborn command reaped");
}

static void test_format(void)
{
	struct gl_address a;
	char small[8];

	gl_address_parse("unix:/run/guestlink/x.sock", &a);
	ok(gl_address_format(&a, small, sizeof(small)) == -ENOSPC,
		"format into a short buffer: -ENOSPC");
}

static void test_machine(void)
{
	struct gl_address a;
	char buf[256], name[200];

	ok(gl_address_from_machine("vm1", &a) == 0, "machine vm1");
	gl_address_format(&a, buf, sizeof(buf));
	is_str(buf, "hybrid:/run/guestlink/vm1.vsock:9731", "machine address");
	ok(gl_address_from_machine("", &a) == -EINVAL, "empty machine name rejected");
	ok(gl_address_from_machine("a/b", &a) == -EINVAL, "machine name with / rejected");
	ok(gl_address_from_machine("..", &a) == -EINVAL, "machine name .. rejected");
	ok(gl_address_from_machine(NULL, &a) == -EINVAL, "NULL machine name rejected");
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	ok(gl_address_from_machine(name, &a) == -EINVAL, "machine name too long for sun_path");
}

static void test_unix(void)
{
	char dir[] = "/tmp/guestlink-test.XXXXXX", path[256], addr[300];
	struct gl_address a, h;
	struct stat st;
	int l, l2, c, fd;
	mode_t old;

	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/agent.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	gl_address_parse(addr, &a);

	ok(gl_address_connect(&a, 1000) == -ENOENT, "connect to a missing socket: -ENOENT");

	old = umask(0);
	l = gl_address_listen(&a, 0);
	umask(old);
	ok(l >= 0, "listen on unix");
	ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0600,
		"socket file is 0600 even with umask 0 (mode %o)", st.st_mode & 07777);
	ok(l >= 0 && (fcntl(l, F_GETFL) & O_NONBLOCK) && (fcntl(l, F_GETFD) & FD_CLOEXEC),
		"listener is non-blocking and close-on-exec");

	ok(gl_address_listen(&a, 0) == -EADDRINUSE, "a live listener is not replaced");

	c = gl_address_connect(&a, 1000);
	ok(c >= 0, "connect");
	ok(c >= 0 && !(fcntl(c, F_GETFL) & O_NONBLOCK) && (fcntl(c, F_GETFD) & FD_CLOEXEC),
		"connected fd is blocking and close-on-exec");
	fd = accept(l, NULL, NULL);
	ok(fd >= 0 && write(c, "x", 1) == 1, "accepted and writable");
	close(fd);
	close(c);
	close(l);

	/* The file stays behind after close: a stale socket. */
	ok(gl_address_connect(&a, 1000) == -ECONNREFUSED,
		"connect to a stale socket: -ECONNREFUSED");
	l2 = gl_address_listen(&a, 0);
	ok(l2 >= 0, "listen replaces a stale socket");
	close(l2);
	unlink(path);

	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	close(fd);
	ok(gl_address_listen(&a, 0) == -EEXIST, "a regular file in the way is kept: -EEXIST");
	ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "... and still there");
	unlink(path);

	snprintf(addr, sizeof(addr), "hybrid:%s:1", path);
	gl_address_parse(addr, &h);
	ok(gl_address_listen(&h, 0) == -EINVAL, "listening on hybrid is -EINVAL");

	rmdir(dir);
}

int main(void)
{
	test_round_trips();
	test_rejections();
	test_format();
	test_machine();
	test_unix();
	test_exec();
	return tap_done();
}
