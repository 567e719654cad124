/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vhost-user-vsock: a vhost-user virtio-vsock device for QEMU's
 * vhost-user-vsock-pci, bridging guest connections to host Unix sockets. */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "hybrid.h"
#include "log.h"
#include "macro.h"
#include "vhost_user.h"
#include "vsock.h"

struct options {
	const char *socket_path;
	int fd;
	const char *uds_path;
	uint64_t guest_cid;
	unsigned max_connections;
	uint32_t buffer_size;
	uint64_t memory_budget;
	mode_t socket_mode;
	gid_t socket_group;
	bool print_capabilities;
	int verbose;
};

static void main_help(void)
{
	printf("Usage: vhost-user-vsock (--socket-path=PATH | --fd=N) [OPTIONS]\n"
	       "vhost-user virtio-vsock device backend for QEMU's vhost-user-vsock-pci.\n\n"
	       "  --socket-path=PATH     listen for the front-end (QEMU) on PATH\n"
	       "  --fd=N                 use fd N (listening or connected); LISTEN_FDS also works\n"
	       "  --print-capabilities   print the backend capabilities as JSON and exit\n"
	       "  --guest-cid=N          the guest's CID (default 3)\n"
	       "  --uds-path=PATH        host Unix socket for CONNECT <port>; guest connections\n"
	       "                         to host port P go to PATH_P; SOCK_SEQPACKET clients\n"
	       "                         use PATH.seqpacket\n"
	       "  --socket-mode=MODE     octal mode of the sockets created (default 0600)\n"
	       "  --socket-group=GROUP   group of the sockets created (name or number)\n"
	       "  --max-connections=N    connection cap (default %u)\n"
	       "  --buffer-size=BYTES    largest receive buffer advertised to the guest per\n"
	       "                         connection (default %u)\n"
	       "  --memory-budget=BYTES  guest data the backend may hold for this VM, all\n"
	       "                         connections together (default %llu; at least\n"
	       "                         max-connections x 2 KiB)\n"
	       "  -v, --verbose          log more (repeat for debug)\n"
	       "  -h, --help             show this help\n"
	       "  -V, --version          show the version\n",
		VSOCK_DEFAULT_MAX_CONNECTIONS, VSOCK_DEFAULT_BUF_ALLOC,
		(unsigned long long)VSOCK_DEFAULT_MEMORY_BUDGET);
}

static int main_parse_u64(const char *s, uint64_t min, uint64_t max, int base, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int main_parse_args(int argc, char **argv, struct options *o)
{
	enum {
		ARG_SOCKET_PATH = 0x100,
		ARG_FD,
		ARG_PRINT_CAPS,
		ARG_GUEST_CID,
		ARG_UDS_PATH,
		ARG_MAX_CONN,
		ARG_BUFFER_SIZE,
		ARG_SOCKET_MODE,
		ARG_SOCKET_GROUP,
		ARG_MEMORY_BUDGET,
	};
	static const struct option longopts[] = { { "socket-path", required_argument, NULL,
							  ARG_SOCKET_PATH },
		{ "fd", required_argument, NULL, ARG_FD },
		{ "print-capabilities", no_argument, NULL, ARG_PRINT_CAPS },
		{ "guest-cid", required_argument, NULL, ARG_GUEST_CID },
		{ "uds-path", required_argument, NULL, ARG_UDS_PATH },
		{ "max-connections", required_argument, NULL, ARG_MAX_CONN },
		{ "buffer-size", required_argument, NULL, ARG_BUFFER_SIZE },
		{ "memory-budget", required_argument, NULL, ARG_MEMORY_BUDGET },
		{ "socket-mode", required_argument, NULL, ARG_SOCKET_MODE },
		{ "socket-group", required_argument, NULL, ARG_SOCKET_GROUP },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' }, {} };
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "vhV", longopts, NULL)) >= 0) {
		switch (c) {
		case ARG_SOCKET_PATH:
			o->socket_path = optarg;
			break;
		case ARG_FD:
			if (main_parse_u64(optarg, 0, INT32_MAX, 10, &v) < 0)
				return log_error_errno(-EINVAL, "Invalid --fd: %s", optarg);
			o->fd = (int)v;
			break;
		case ARG_PRINT_CAPS:
			o->print_capabilities = true;
			break;
		case ARG_GUEST_CID:
			/* 0-2 are reserved (hypervisor, local, host); -1 is "any". */
			if (main_parse_u64(optarg, 3, UINT32_MAX - 1, 10, &o->guest_cid) < 0)
				return log_error_errno(-EINVAL, "Invalid --guest-cid (3..%u): %s",
					UINT32_MAX - 1, optarg);
			break;
		case ARG_UDS_PATH:
			o->uds_path = optarg;
			break;
		case ARG_MAX_CONN:
			if (main_parse_u64(optarg, 1, 1u << 20, 10, &v) < 0)
				return log_error_errno(-EINVAL, "Invalid --max-connections: %s",
					optarg);
			o->max_connections = (unsigned)v;
			break;
		case ARG_BUFFER_SIZE:
			if (main_parse_u64(optarg, 4096, 64u << 20, 10, &v) < 0)
				return log_error_errno(-EINVAL,
					"Invalid --buffer-size (4096..67108864): %s", optarg);
			o->buffer_size = (uint32_t)v;
			break;
		case ARG_MEMORY_BUDGET:
			if (main_parse_u64(optarg, 1u << 20, 1ull << 40, 10, &o->memory_budget) < 0)
				return log_error_errno(-EINVAL,
					"Invalid --memory-budget (1 MiB..1 TiB): %s", optarg);
			break;
		case ARG_SOCKET_MODE:
			if (main_parse_u64(optarg, 0, 0777, 8, &v) < 0)
				return log_error_errno(-EINVAL, "Invalid --socket-mode: %s", optarg);
			o->socket_mode = (mode_t)v;
			break;
		case ARG_SOCKET_GROUP: {
			struct group *g = getgrnam(optarg);
			if (g)
				o->socket_group = g->gr_gid;
			else if (main_parse_u64(optarg, 0, UINT32_MAX - 1, 10, &v) == 0)
				o->socket_group = (gid_t)v;
			else
				return log_error_errno(-EINVAL, "Unknown --socket-group: %s", optarg);
			break;
		}
		case 'v':
			o->verbose++;
			break;
		case 'h':
			main_help();
			return 0;
		case 'V':
			printf("vhost-user-vsock %s\n", PACKAGE_VERSION);
			return 0;
		default:
			return -EINVAL;
		}
	}
	if (optind < argc)
		return log_error_errno(-EINVAL, "Unexpected argument: %s", argv[optind]);
	if (o->memory_budget < (uint64_t)o->max_connections * 2 * VSOCK_MIN_BUF_FLOOR)
		return log_error_errno(-EINVAL,
			"--memory-budget=%llu is below --max-connections x 2 KiB (%llu)",
			(unsigned long long)o->memory_budget,
			(unsigned long long)o->max_connections * 2 * VSOCK_MIN_BUF_FLOOR);
	return 1;
}

static void main_signal_cb(evutil_socket_t sig, short what, void *userdata)
{
	struct event_base *base = userdata;

	log_info("Received signal %d, exiting", (int)sig);
	event_base_loopbreak(base);
}

static void main_vsock_kick(void *userdata, struct virtqueue *vq)
{
	vsock_queue_kick(userdata, vq);
}

static void main_vsock_release(void *userdata, struct virtqueue *vq)
{
	vsock_queue_release(userdata, vq);
}

static void main_vsock_reset(void *userdata)
{
	vsock_reset(userdata);
}

static void main_vsock_features(void *userdata, uint64_t features)
{
	vsock_set_features(userdata, features);
}

/* The vhost-user socket: --fd, --socket-path, or from systemd. */
static int main_vhost_user_fd(const struct options *o, bool *ret_created, int *ret_uds_fd,
	int *ret_seq_fd)
{
	char **names = NULL;
	int n, fd = -1;

	*ret_created = false;
	*ret_uds_fd = *ret_seq_fd = -1;
	if (o->fd >= 0)
		return o->fd;
	if (o->socket_path) {
		*ret_created = true;
		return hybrid_listen(o->socket_path, o->socket_mode, o->socket_group, 1);
	}
	n = sd_listen_fds_with_names(1, &names);
	if (n < 0)
		return log_error_errno(n, "Failed to get sockets from systemd: %m");
	/* The first socket is the vhost-user one; one named "uds" is the hybrid listener,
	 * one named "uds-seqpacket" its SOCK_SEQPACKET twin. */
	for (int i = 0; i < n; i++) {
		if (names && names[i] && strcmp(names[i], "uds") == 0)
			*ret_uds_fd = SD_LISTEN_FDS_START + i;
		else if (names && names[i] && strcmp(names[i], "uds-seqpacket") == 0)
			*ret_seq_fd = SD_LISTEN_FDS_START + i;
		else if (fd < 0)
			fd = SD_LISTEN_FDS_START + i;
		else
			close(SD_LISTEN_FDS_START + i);
	}
	if (names)
		for (int i = 0; i < n; i++)
			free(names[i]);
	free(names);
	if (fd < 0)
		return log_error_errno(-EINVAL,
			"Need --socket-path, --fd or a socket from systemd");
	return fd;
}

static void main_raise_nofile(void)
{
	struct rlimit rl;

	/* Every connection holds a host socket. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	struct options o = {
		.fd = -1,
		.guest_cid = 3,
		.max_connections = VSOCK_DEFAULT_MAX_CONNECTIONS,
		.buffer_size = VSOCK_DEFAULT_BUF_ALLOC,
		.memory_budget = VSOCK_DEFAULT_MEMORY_BUDGET,
		.socket_mode = 0600,
		.socket_group = (gid_t)-1,
	};
	struct vhost_user_device_ops ops = {
		.queue_kick = main_vsock_kick,
		.queue_release = main_vsock_release,
		.reset = main_vsock_reset,
		.device_features = 1ull << VIRTIO_VSOCK_F_SEQPACKET_BIT,
		.features_set = main_vsock_features,
	};
	struct event *sig_term = NULL, *sig_int = NULL;
	struct vhost_user *vu = NULL;
	struct event_base *base = NULL;
	struct vsock *vsock = NULL;
	uint8_t config[8];
	uint64_t cid_le;
	bool vu_created = false, uds_created = false;
	char seq_path[PATH_MAX] = "";
	int r, vu_fd, uds_fd, seq_fd;

	log_open("vhost-user-vsock");
	r = main_parse_args(argc, argv, &o);
	if (r <= 0)
		return r < 0 ? 2 : 0;
	if (o.print_capabilities) {
		/* QEMU's vhost-user.json: the device type is all a vsock backend declares. */
		printf("{\n  \"type\": \"vsock\"\n}\n");
		return 0;
	}
	if (o.verbose)
		log_set_max_level(o.verbose > 1 ? LOG_DEBUG : LOG_INFO);
	if (o.fd >= 0 && o.socket_path)
		return log_error_errno(-EINVAL, "--fd and --socket-path exclude each other"), 2;
	signal(SIGPIPE, SIG_IGN);
	main_raise_nofile();

	base = event_base_new();
	if (!base) {
		log_error("Failed to create the event loop");
		return 1;
	}
	/* Before any socket exists: a test may signal as soon as it sees one. */
	sig_term = evsignal_new(base, SIGTERM, main_signal_cb, base);
	sig_int = evsignal_new(base, SIGINT, main_signal_cb, base);
	if (!sig_term || !sig_int || evsignal_add(sig_term, NULL) < 0 ||
		evsignal_add(sig_int, NULL) < 0) {
		r = log_error_errno(-ENOMEM, "Failed to set up signal handling");
		goto out;
	}
	vu_fd = main_vhost_user_fd(&o, &vu_created, &uds_fd, &seq_fd);
	if (vu_fd < 0) {
		r = vu_fd;
		goto out;
	}
	if (o.uds_path && uds_fd < 0) {
		uds_fd = hybrid_listen(o.uds_path, o.socket_mode, o.socket_group, SOMAXCONN);
		uds_created = uds_fd >= 0;
		if (uds_fd < 0) {
			close(vu_fd);
			r = uds_fd;
			goto out;
		}
	}
	r = vsock_new(base,
		&(struct vsock_config){
			.guest_cid = o.guest_cid,
			.buf_alloc = o.buffer_size,
			.max_connections = o.max_connections,
			.memory_budget = o.memory_budget,
			.uds_path = o.uds_path,
			.listen_fd = uds_fd,
		},
		&vsock);
	if (r < 0) {
		close(vu_fd); /* vsock_new() took uds_fd, on failure too */
		if (seq_fd >= 0)
			close(seq_fd);
		goto out;
	}
	/* SEQPACKET host clients connect to "<uds-path>.seqpacket". */
	if (o.uds_path && seq_fd < 0) {
		if ((size_t)snprintf(seq_path, sizeof(seq_path), "%s.seqpacket", o.uds_path) >=
			sizeof(seq_path)) {
			close(vu_fd);
			r = log_error_errno(-ENAMETOOLONG, "--uds-path is too long");
			goto out;
		}
		seq_fd = hybrid_listen_type(seq_path, SOCK_SEQPACKET, o.socket_mode, o.socket_group,
			SOMAXCONN);
		if (seq_fd < 0) {
			seq_path[0] = 0;
			close(vu_fd);
			r = seq_fd;
			goto out;
		}
	}
	if (seq_fd >= 0) {
		r = vsock_set_seqpacket_listener(vsock, seq_fd);
		if (r < 0) {
			close(vu_fd);
			goto out;
		}
	}
	cid_le = htole64(o.guest_cid);
	memcpy(config, &cid_le, sizeof(config));
	ops.config = config;
	ops.config_size = sizeof(config);
	r = vhost_user_new(base, vu_fd, &ops, vsock, &vu);
	if (r < 0)
		goto out;
	vsock_set_queues(vsock, vhost_user_queue(vu, 0), vhost_user_queue(vu, 1));

	log_info("Serving guest CID %llu%s%s", (unsigned long long)o.guest_cid,
		o.uds_path ? " on " : "", o.uds_path ? o.uds_path : "");
	(void)sd_notify(0, "READY=1");
	event_base_dispatch(base);
	(void)sd_notify(0, "STOPPING=1");
	r = 0;
out:
	if (sig_term)
		event_free(sig_term);
	if (sig_int)
		event_free(sig_int);
	vu = vhost_user_free(vu);
	vsock = vsock_free(vsock);
	if (base)
		event_base_free(base);
	if (vu_created)
		unlink(o.socket_path);
	if (uds_created) /* a socket systemd passed in is systemd's to remove */
		unlink(o.uds_path);
	if (seq_path[0])
		unlink(seq_path);
	return r < 0 ? 1 : 0;
}
