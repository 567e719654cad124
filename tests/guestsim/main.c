/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestsim CLI: a simulated guest behind a vhost-user-vsock back-end. Guest ports can
 * be bridged to Unix sockets (--bridge) or served as echo services (--listen), until
 * SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "guestsim.h"
#include "macro.h"

#define MAX_PORTS 16
#define PUMP_BUF 65536

struct port_map {
	uint32_t port;
	const char *unix_path; /* NULL: echo */
};

struct pump {
	struct pump *next;
	struct gs_conn *c;
	int fd;                /* host side; -1 for echo */
	uint8_t h2g[PUMP_BUF]; /* bytes for the guest connection not yet accepted */
	size_t h2g_len;
	uint8_t g2h[PUMP_BUF];
	size_t g2h_off, g2h_len;
	bool host_eof, guest_eof, shut_guest, shut_host;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

/* Bridges poll the Unix side: connect blocking, then switch to non-blocking. */
static int connect_unix(const char *path, int *ret_fd)
{
	int fd, r = gs_unix_connect(path, &fd);

	if (r < 0)
		return r;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	*ret_fd = fd;
	return 0;
}

static struct pump *pump_free(struct pump *p)
{
	if (!p)
		return NULL;
	if (p->fd >= 0)
		close(p->fd);
	if (p->c)
		gs_conn_close(p->c);
	free(p);
	return NULL;
}

/* Move bytes both ways; returns false when the pump is finished. */
static bool pump_run(struct pump *p, short revents)
{
	ssize_t n;

	if (gs_conn_state(p->c) == GS_CLOSED && gs_conn_rx_pending(p->c) == 0 &&
		!gs_conn_peer_shut_send(p->c))
		return false; /* reset */
	/* host -> guest */
	if (p->fd >= 0 && !p->host_eof && p->h2g_len == 0 && (revents & (POLLIN | POLLHUP))) {
		n = read(p->fd, p->h2g, sizeof(p->h2g));
		if (n > 0)
			p->h2g_len = (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			p->host_eof = true;
	}
	if (p->h2g_len) {
		n = gs_conn_send(p->c, p->h2g, p->h2g_len);
		if (n > 0) {
			memmove(p->h2g, p->h2g + n, p->h2g_len - (size_t)n);
			p->h2g_len -= (size_t)n;
		} else if (n != -EAGAIN) {
			return false;
		}
	}
	if (p->host_eof && p->h2g_len == 0 && !p->shut_guest) {
		gs_conn_shutdown(p->c, SHUT_WR);
		p->shut_guest = true;
	}
	/* guest -> host (or echo) */
	if (p->g2h_len == 0 && !p->guest_eof) {
		n = gs_conn_recv(p->c, p->g2h, sizeof(p->g2h));
		if (n > 0) {
			p->g2h_off = 0;
			p->g2h_len = (size_t)n;
		} else if (n == 0 || n != -EAGAIN) {
			p->guest_eof = true;
		}
	}
	if (p->g2h_len) {
		if (p->fd >= 0) {
			n = write(p->fd, p->g2h + p->g2h_off, p->g2h_len);
			if (n < 0 && errno != EAGAIN)
				return false;
		} else {
			size_t room = sizeof(p->h2g) - p->h2g_len;

			n = (ssize_t)(p->g2h_len < room ? p->g2h_len : room);
			memcpy(p->h2g + p->h2g_len, p->g2h + p->g2h_off, (size_t)n);
			p->h2g_len += (size_t)n;
		}
		if (n > 0) {
			p->g2h_off += (size_t)n;
			p->g2h_len -= (size_t)n;
		}
	}
	if (p->guest_eof && p->g2h_len == 0 && !p->shut_host) {
		if (p->fd >= 0)
			shutdown(p->fd, SHUT_WR);
		else
			p->host_eof = true;
		p->shut_host = true;
	}
	return !(p->shut_host && p->shut_guest && p->h2g_len == 0);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: guestsim --socket-path=PATH [--guest-cid=N] [--bridge PORT=unix:PATH]...\n"
		"                [--listen PORT]... [--regions=1|2] [--queue-size=N]\n"
		"  --bridge  each host connection to guest PORT is bridged to a new\n"
		"            connection to the Unix socket PATH\n"
		"  --listen  guest PORT echoes what it receives\n"
		"Runs until SIGTERM or SIGINT.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "guest-cid", required_argument, NULL, 'c' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "listen", required_argument, NULL, 'l' },
		{ "regions", required_argument, NULL, 'r' },
		{ "queue-size", required_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct port_map ports[MAX_PORTS];
	unsigned nports = 0, npumps = 0, reported = 0;
	struct pump *pumps = NULL;
	struct gs_options o;
	struct gs *gs = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	int c, r;

	gs_options_init(&o);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		char *end;
		unsigned long v;

		switch (c) {
		case 's':
			o.socket_path = optarg;
			break;
		case 'c':
		case 'r':
		case 'q':
		case 'l':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || v > UINT32_MAX) {
				fprintf(stderr, "guestsim: bad number '%s'\n", optarg);
				return 2;
			}
			if (c == 'c')
				o.guest_cid = (uint32_t)v;
			else if (c == 'r')
				o.regions = (unsigned)v;
			else if (c == 'q')
				o.queue_size = (unsigned)v;
			else if (nports < MAX_PORTS)
				ports[nports++] = (struct port_map){ (uint32_t)v, NULL };
			break;
		case 'b': {
			char *eq = strchr(optarg, '=');

			if (!eq || strncmp(eq + 1, "unix:", 5) || !eq[6] || nports == MAX_PORTS) {
				fprintf(stderr, "guestsim: --bridge wants PORT=unix:PATH\n");
				return 2;
			}
			*eq = 0;
			v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v > UINT32_MAX) {
				fprintf(stderr, "guestsim: bad port '%s'\n", optarg);
				return 2;
			}
			ports[nports++] = (struct port_map){ (uint32_t)v, eq + 6 };
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.socket_path || optind < argc) {
		usage(stderr);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = gs_new(&o, &gs);
	if (r < 0) {
		fprintf(stderr, "guestsim: cannot start against %s: %s\n", o.socket_path,
			strerror(-r));
		return 1;
	}
	for (unsigned i = 0; i < nports; i++) {
		r = gs_listen(gs, ports[i].port);
		if (r < 0) {
			fprintf(stderr, "guestsim: listen %u: %s\n", ports[i].port, strerror(-r));
			gs_free(gs);
			return 1;
		}
	}
	fprintf(stderr, "guestsim: guest CID %u ready\n", gs_guest_cid(gs));

	while (!stop) {
		struct pollfd *pfd = calloc(npumps + 1, sizeof(*pfd));
		unsigned i = 0;

		if (!pfd)
			break;
		for (struct pump *p = pumps; p; p = p->next, i++) {
			pfd[i].fd = p->fd;
			if (p->fd >= 0 && !p->host_eof && p->h2g_len == 0)
				pfd[i].events |= POLLIN;
			if (p->fd >= 0 && p->g2h_len)
				pfd[i].events |= POLLOUT;
		}
		r = gs_step(gs, pfd, npumps, 50);
		if (r < 0) {
			free(pfd);
			fprintf(stderr, "guestsim: back-end gone: %s\n", strerror(-r));
			break;
		}
		i = 0;
		for (struct pump **pp = &pumps; *pp; i++) {
			struct pump *p = *pp;

			if (!pump_run(p, pfd[i].revents)) {
				*pp = p->next;
				pump_free(p);
				npumps--;
			} else {
				pp = &p->next;
			}
		}
		for (unsigned k = 0; k < nports; k++)
			for (struct gs_conn *gc; (gc = gs_accept(gs, ports[k].port));) {
				struct pump *p = calloc(1, sizeof(*p));

				if (!p) {
					gs_conn_reset(gc);
					continue;
				}
				p->c = gc;
				p->fd = -1;
				if (ports[k].unix_path &&
					connect_unix(ports[k].unix_path, &p->fd) < 0) {
					fprintf(stderr, "guestsim: cannot reach %s\n",
						ports[k].unix_path);
					gs_conn_reset(gc);
					free(p);
					continue;
				}
				pump_run(p, 0);
				p->next = pumps;
				pumps = p;
				npumps++;
			}
		free(pfd);
		if (gs_violations(gs) != reported) {
			reported = gs_violations(gs);
			fprintf(stderr, "guestsim: %u violations, last: %s\n", reported,
				gs_last_violation(gs));
		}
	}
	while (pumps) {
		struct pump *p = pumps;

		pumps = p->next;
		if (p->c)
			gs_conn_reset(p->c);
		p->c = NULL;
		pump_free(p);
	}
	r = gs_violations(gs) ? 1 : 0;
	gs_free(gs);
	return r;
}
