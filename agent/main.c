/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink-agent: options, listeners, signals, sd_notify, the loop. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include <guestlink/address.h>

#include "config.h"
#include "log.h"
#include "method.h"
#include "methods/methods.h"
#include "qga.h"
#include "serial.h"
#include "server.h"

#define MAX_LISTEN 32

struct options {
	const char *listen[MAX_LISTEN];
	size_t n_listen;
	const char *config_path;
	bool config_explicit;
	bool check_config;
};

struct agent {
	struct options opt;
	struct event_base *base;
	struct server *server;
	struct event *sig_term, *sig_int, *sig_hup, *watchdog;
	char unlink_paths[MAX_LISTEN][sizeof(((struct gl_address *)0)->path)];
	size_t n_unlink;
	struct serial *serials[MAX_LISTEN];
	size_t n_serials;
};

static void help(void)
{
	printf("Usage: guestlink-agent [OPTIONS]\n\n"
	       "Serve JSON-RPC 2.0 to the host over vsock.\n\n"
	       "  -l, --listen=ADDR    listen on ADDR (vsock::PORT, vsock:CID:PORT, unix:PATH);\n"
	       "                       repeatable; default vsock::%d unless systemd passes "
	       "sockets;\n"
	       "                       qga-ADDR speaks the qemu-guest-agent protocol on ADDR,\n"
	       "                       qga-serial[:PATH] on a virtio-serial port (default\n"
	       "                       " SERIAL_QGA_DEFAULT_PATH ")\n"
	       "  -c, --config=PATH    configuration file (default %s)\n"
	       "      --check-config   load the configuration, report errors and exit\n"
	       "  -v, --verbose        log debug messages\n"
	       "  -h, --help           show this help\n"
	       "  -V, --version        show the version\n",
		GL_DEFAULT_PORT, CONFIG_DEFAULT_PATH);
}

static int parse_argv(int argc, char **argv, struct options *o)
{
	enum { ARG_CHECK_CONFIG = 0x100 };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "l:c:vhV", longopts, NULL)) >= 0)
		switch (c) {
		case 'l':
			if (o->n_listen >= MAX_LISTEN) {
				log_error("At most %d --listen options", MAX_LISTEN);
				return -E2BIG;
			}
			o->listen[o->n_listen++] = optarg;
			break;
		case 'c':
			o->config_path = optarg;
			o->config_explicit = true;
			break;
		case ARG_CHECK_CONFIG:
			o->check_config = true;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return 0;
		case 'V':
			printf("guestlink-agent %s\n", GL_VERSION);
			return 0;
		default:
			return -EINVAL;
		}
	if (optind < argc) {
		log_error("Unexpected argument: %s", argv[optind]);
		return -EINVAL;
	}
	return 1;
}

static int agent_listen(struct agent *a, const char *s)
{
	const struct conn_proto *proto = &conn_proto_jsonrpc;
	const char *spec = s;
	struct gl_address addr;
	int fd, r;

	if (strcmp(s, "qga-serial") == 0 || strncmp(s, "qga-serial:", 11) == 0) {
		r = serial_new(a->server, s[10] ? s + 11 : SERIAL_QGA_DEFAULT_PATH,
			&a->serials[a->n_serials]);
		if (r < 0)
			return log_error_errno(r, "Failed to serve QGA on %s: %m", s);
		a->n_serials++;
		return 0;
	}
	if (strncmp(s, "qga-", 4) == 0) {
		proto = &conn_proto_qga;
		s += 4;
	}
	r = gl_address_parse(s, &addr);
	if (r < 0)
		return log_error_errno(r, "Invalid listen address '%s': %m", s);
	fd = gl_address_listen(&addr, SOMAXCONN);
	if (fd < 0)
		return log_error_errno(fd, "Failed to listen on %s: %m", s);
	if (addr.type == GL_ADDRESS_UNIX && addr.path[0] != '@')
		memcpy(a->unlink_paths[a->n_unlink++], addr.path, sizeof(addr.path));
	r = server_add_listener_proto(a->server, fd, proto);
	if (r < 0)
		return log_error_errno(r, "Failed to watch %s: %m", spec);
	log_debug("Listening on %s", spec);
	return 0;
}

static int agent_listen_systemd(struct agent *a)
{
	char **names = NULL;
	int n, r = 0;

	n = sd_listen_fds_with_names(1, &names);
	if (n < 0)
		return log_error_errno(n, "Failed to get sockets from systemd: %m");
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		if (r >= 0 && sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			r = log_error_errno(-EINVAL,
				"Socket %s from systemd is not a listening stream socket",
				names && names[i] ? names[i] : "?");
			close(fd);
		} else if (r >= 0) {
			/* FileDescriptorName=qga marks a socket for the QGA protocol. */
			bool qga = names && names[i] && strcmp(names[i], "qga") == 0;
			r = server_add_listener_proto(a->server, fd,
				qga ? &conn_proto_qga : &conn_proto_jsonrpc);
			if (r < 0)
				log_error_errno(r, "Failed to watch a socket from systemd: %m");
		} else
			close(fd);
	}
	if (names)
		for (int i = 0; i < n; i++)
			free(names[i]);
	free(names);
	return r < 0 ? r : n;
}

static void agent_on_term(evutil_socket_t sig, short what, void *userdata)
{
	struct agent *a = userdata;

	log_info("Received %s, finishing in-flight calls", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	/* Listeners are closed before STOPPING=1 goes out. */
	server_shutdown(a->server);
	sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
}

static void agent_on_hup(evutil_socket_t sig, short what, void *userdata)
{
	struct agent *a = userdata;
	struct config *c;
	int r;

	sd_notify(0, "RELOADING=1");
	r = config_load(a->opt.config_path, a->opt.config_explicit, &c);
	if (r < 0)
		log_error_errno(r, "Failed to reload %s, keeping the old configuration: %m",
			a->opt.config_path);
	else {
		config_set(c);
		config_run_reload_hooks();
		log_info("Reloaded %s", a->opt.config_path);
	}
	sd_notify(0, "READY=1");
}

static void agent_on_watchdog(evutil_socket_t fd, short what, void *userdata)
{
	sd_notify(0, "WATCHDOG=1");
}

/* Many concurrent clients need many fds; systemd leaves the soft limit at 1024. */
static void agent_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_debug_errno(-errno, "Failed to raise RLIMIT_NOFILE, ignoring: %m");
	}
}

/* The loop's timers (delay_ms, exec and plugin timeouts) never fire early:
 * without EVENT_BASE_FLAG_PRECISE_TIMER libevent may use the coarse
 * monotonic clock, a few ms behind (one kernel tick). */
static struct event_base *agent_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (!cfg)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int agent_run(struct agent *a)
{
	uint64_t wd_usec = 0;
	int r, n;

	a->base = agent_base_new();
	if (!a->base)
		return log_error_errno(-ENOMEM, "Failed to create the event loop: %m");
	r = server_new(a->base, &a->server);
	if (r < 0)
		return r;

	n = agent_listen_systemd(a);
	if (n < 0)
		return n;
	for (size_t i = 0; i < a->opt.n_listen; i++) {
		r = agent_listen(a, a->opt.listen[i]);
		if (r < 0)
			return r;
	}
	if (server_n_listeners(a->server) == 0 && a->n_serials == 0) {
		char def[32];
		snprintf(def, sizeof(def), "vsock::%d", GL_DEFAULT_PORT);
		r = agent_listen(a, def);
		if (r < 0)
			return r;
	}

	a->sig_term = evsignal_new(a->base, SIGTERM, agent_on_term, a);
	a->sig_int = evsignal_new(a->base, SIGINT, agent_on_term, a);
	a->sig_hup = evsignal_new(a->base, SIGHUP, agent_on_hup, a);
	if (!a->sig_term || !a->sig_int || !a->sig_hup || evsignal_add(a->sig_term, NULL) < 0 ||
		evsignal_add(a->sig_int, NULL) < 0 || evsignal_add(a->sig_hup, NULL) < 0)
		return log_error_errno(-ENOMEM, "Failed to watch signals: %m");

	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
		a->watchdog = event_new(a->base, -1, EV_PERSIST, agent_on_watchdog, NULL);
		if (!a->watchdog)
			return -ENOMEM;
		event_add(a->watchdog, &(struct timeval){ (time_t)(wd_usec / 2 / 1000000),
					       (suseconds_t)(wd_usec / 2 % 1000000) });
	}

	sd_notifyf(0, "READY=1\nSTATUS=Serving on %u socket(s)", server_n_listeners(a->server));
	log_debug("Ready");
	if (event_base_dispatch(a->base) < 0)
		return log_error_errno(-EIO, "The event loop failed");
	return 0;
}

static void agent_cleanup(struct agent *a)
{
	for (size_t i = 0; i < a->n_serials; i++)
		a->serials[i] = serial_free(a->serials[i]);
	a->server = server_free(a->server);
	methods_agent_cleanup();
	/* Let deferred connection frees run before the loop goes away. */
	if (a->base)
		event_base_loop(a->base, EVLOOP_NONBLOCK);
	if (a->sig_term)
		event_free(a->sig_term);
	if (a->sig_int)
		event_free(a->sig_int);
	if (a->sig_hup)
		event_free(a->sig_hup);
	if (a->watchdog)
		event_free(a->watchdog);
	if (a->base)
		event_base_free(a->base);
	for (size_t i = 0; i < a->n_unlink; i++)
		unlink(a->unlink_paths[i]);
	config_clear();
}

int main(int argc, char **argv)
{
	struct agent a = { 0 };
	struct config *c;
	int r;

	log_open("guestlink-agent");
	r = parse_argv(argc, argv, &a.opt);
	if (r <= 0)
		return r < 0 ? 2 : 0;

	r = config_load(a.opt.config_path, a.opt.config_explicit, &c);
	if (r < 0)
		return 1;
	config_set(c);
	if (a.opt.check_config) {
		config_clear();
		printf("OK\n");
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	agent_raise_nofile();
	methods_agent_register();
	methods_system_register();
	methods_exec_register();
	methods_file_register();
	methods_sysmgmt_register();
	methods_fsfreeze_register();
	methods_guestinfo_register();
	methods_user_register();
	methods_plugin_register();

	r = agent_run(&a);
	if (r < 0)
		sd_notifyf(0, "STATUS=Failed: %s\nERRNO=%d", strerror(-r), -r);
	agent_cleanup(&a);
	return r < 0 ? 1 : 0;
}
