/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QGA serial port is opened afresh for each host client, even when setting
 * up the watch on a connection fails (out of memory): the port must never be
 * left unwatched and unreopened. The "port" is a symlink to the slave of a
 * pseudo-terminal whose master plays the host; the host leaving is the master
 * closing, its return a new pair behind the same name. The watch's failure is
 * injected by linking with --wrap=conn_add_drain_watch. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "method.h"
#include "methods/methods.h"
#include "serial.h"
#include "server.h"
#include "tap.h"

int __real_conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata);
int __wrap_conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata);
static int fail_watches;

int __wrap_conn_add_drain_watch(struct conn *c, conn_drain_fn fn, void *userdata)
{
	if (fail_watches > 0) {
		fail_watches--;
		return -ENOMEM;
	}
	return __real_conn_add_drain_watch(c, fn, userdata);
}

/* A raw pseudo-terminal: master returned, the slave's name in name. */
static int pty_new(char *name, size_t size)
{
	struct termios t;
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);

	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, size) != 0)
		return -1;
	/* No echo, no line editing: bytes as a virtio-serial port carries them. */
	if (tcgetattr(m, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(m, TCSANOW, &t);
	}
	return m;
}

/* Send guest-ping from the host side and run the loop until the answer
 * arrives or timeout_s passes. */
static bool ping(struct event_base *base, int m, int timeout_s)
{
	static const char req[] = "{\"execute\":\"guest-ping\"}\n";
	char buf[4096];
	size_t got = 0;
	time_t end = time(NULL) + timeout_s;

	if (write(m, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
		return false;
	while (time(NULL) <= end) {
		struct timeval tick = { 0, 20000 };
		ssize_t n;

		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
		n = read(m, buf + got, sizeof(buf) - 1 - got);
		if (n > 0) {
			got += (size_t)n;
			buf[got] = 0;
			if (strstr(buf, "{\"return\":{}}"))
				return true;
		}
	}
	return false;
}

int main(void)
{
	struct event_base *base = event_base_new();
	char dir[] = "/tmp/guestlink-serial.XXXXXX", port[64], pts1[64], pts2[64];
	struct server *s = NULL;
	struct serial *p = NULL;
	int m1, m2;

	methods_agent_register();
	if (!mkdtemp(dir) || server_new(base, &s) < 0) {
		ok(0, "set up");
		return tap_done();
	}
	snprintf(port, sizeof(port), "%s/port", dir);
	m1 = pty_new(pts1, sizeof(pts1));
	if (m1 < 0 || symlink(pts1, port) < 0) {
		printf("1..0 # SKIP no pseudo-terminals here\n");
		return 0;
	}

	/* The first host client: setting up the watch on its connection fails. */
	fail_watches = 1;
	is_int(serial_new(s, port, &p), 0, "serial port set up");
	ok(ping(base, m1, 10), "the host is served after the watch failed once");
	is_int(fail_watches, 0, "the failure was injected");

	/* The host leaves; a new one comes behind the same name. */
	m2 = pty_new(pts2, sizeof(pts2));
	ok(m2 >= 0 && unlink(port) == 0 && symlink(pts2, port) == 0, "a second host port");
	close(m1);
	ok(ping(base, m2, 10), "the port was opened again for the next host");

	close(m2);
	serial_free(p);
	server_free(s);
	event_base_loop(base, EVLOOP_NONBLOCK); /* the deferred frees of the connections */
	methods_agent_cleanup();
	event_base_free(base);
	unlink(port);
	rmdir(dir);
	return tap_done();
}
