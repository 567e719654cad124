/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* System management: time, hostname, logged-in users, network interfaces,
 * filesystems, and shutdown through systemd with a plain fallback. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/rtc.h>
#include <mntent.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include <utmpx.h>

#include <event2/event.h>
#include <guestlink/jsonrpc.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "fsfreeze.h"
#include "guestinfo.h"
#include "log.h"
#include "macro.h"
#include "method.h"
#include "methods.h"
#include "worker.h"

#define SYSMGMT_HOSTNAME_MAX 64
/* The shutdown starts this long after the answer at the earliest, so that the
 * answer is on its way before systemd stops the agent. */
#define SYSMGMT_SHUTDOWN_GRACE_MS 500

/* --- time --- */

static int sysmgmt_time(struct call *call, void *params)
{
	struct json_object *o = json_object_new_object();
	struct timespec ts;
	struct tm tm;
	char iso[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "seconds", json_object_new_int64(ts.tv_sec));
	json_object_object_add(o, "nanoseconds", json_object_new_int64(ts.tv_nsec));
	json_object_object_add(o, "utc", json_object_new_string(iso));
	localtime_r(&ts.tv_sec, &tm);
	json_object_object_add(o, "utc_offset_s", json_object_new_int64(tm.tm_gmtoff));
	call_reply(call, o);
	return 0;
}

struct sysmgmt_set_time_params {
	int64_t seconds;
	int64_t nanoseconds;
	const char *rtc;
};

static const char *const sysmgmt_rtc_choices[] = { "none", "write", "read", NULL };

/* The hardware clock, kept in UTC (hwclock's default without /etc/adjtime;
 * what QGA's guest-set-time does with `hwclock -w` / `hwclock -s`). */
static int sysmgmt_rtc(bool write_it, struct timespec *ts)
{
	struct rtc_time rt = { 0 };
	struct tm tm;
	int fd = open("/dev/rtc0", O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		fd = open("/dev/rtc", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write_it) {
		gmtime_r(&ts->tv_sec, &tm);
		rt = (struct rtc_time){ .tm_sec = tm.tm_sec,
			.tm_min = tm.tm_min,
			.tm_hour = tm.tm_hour,
			.tm_mday = tm.tm_mday,
			.tm_mon = tm.tm_mon,
			.tm_year = tm.tm_year };
		if (ioctl(fd, RTC_SET_TIME, &rt) < 0)
			r = -errno;
	} else if (ioctl(fd, RTC_RD_TIME, &rt) < 0)
		r = -errno;
	else {
		tm = (struct tm){ .tm_sec = rt.tm_sec,
			.tm_min = rt.tm_min,
			.tm_hour = rt.tm_hour,
			.tm_mday = rt.tm_mday,
			.tm_mon = rt.tm_mon,
			.tm_year = rt.tm_year };
		ts->tv_sec = timegm(&tm);
		ts->tv_nsec = 0;
		if (ts->tv_sec == (time_t)-1)
			r = -EINVAL;
	}
	close(fd);
	return r;
}

static int sysmgmt_set_time(struct call *call, void *params)
{
	struct sysmgmt_set_time_params *a = params;
	struct timespec ts = { .tv_sec = (time_t)a->seconds, .tv_nsec = (long)a->nanoseconds };
	const char *rtc = a->rtc ?: "none";
	int r;

	if (strcmp(rtc, "read") == 0) {
		if (a->seconds != 0) {
			call_error(call, GL_RPC_INVALID_PARAMS,
				"Invalid parameter 'seconds': not with rtc \"read\"", NULL);
			return 0;
		}
		r = sysmgmt_rtc(false, &ts);
		if (r < 0) {
			call_os_error(call, r, "cannot read the hardware clock");
			return 0;
		}
	} else if (a->seconds == 0) {
		call_error(call, GL_RPC_INVALID_PARAMS, "Missing mandatory parameter 'seconds'",
			NULL);
		return 0;
	}
	if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
		call_os_error(call, errno, "cannot set the clock");
		return 0;
	}
	log_notice("Clock set to %lld.%09ld by a client", (long long)ts.tv_sec, ts.tv_nsec);
	if (strcmp(rtc, "write") == 0) {
		r = sysmgmt_rtc(true, &ts);
		if (r < 0) {
			call_os_error(call, r, "clock set, but cannot write the hardware clock");
			return 0;
		}
	}
	call_reply(call, json_object_new_object());
	return 0;
}

/* --- hostname --- */

static int sysmgmt_hostname(struct call *call, void *params)
{
	struct json_object *o;
	char name[HOST_NAME_MAX + 1];

	if (gethostname(name, sizeof(name)) < 0)
		return -errno;
	name[HOST_NAME_MAX] = 0;
	o = json_object_new_object();
	json_object_object_add(o, "hostname", json_object_new_string(name));
	call_reply(call, o);
	return 0;
}

/* RFC 1123 labels: letters, digits, hyphens inside, dots between labels. */
static bool sysmgmt_hostname_valid(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > SYSMGMT_HOSTNAME_MAX || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    (c == '-' && label > 0)))
			return false;
		label++;
	}
	return s[n - 1] != '-';
}

struct sysmgmt_set_hostname_params {
	const char *hostname;
	bool persistent;
};

static int sysmgmt_write_etc_hostname(const char *name)
{
	const char *tmp = "/etc/.hostname.guestlink";
	_cleanup_close_ int fd = -1;
	size_t len = strlen(name);

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, name, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
		int r = errno ? -errno : -EIO;
		unlink(tmp);
		return r;
	}
	if (rename(tmp, "/etc/hostname") < 0) {
		int r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

/* system.set-hostname on a worker: the freeze check stat()s /etc/hostname
 * (while anything is frozen) and the write goes to /etc, either of which can
 * hang on a stuck root filesystem. */
struct sysmgmt_hostname_job {
	char *hostname;
	bool persistent;
	struct timespec deadline; /* CLOCK_MONOTONIC: the call's fs_timeout_s */
	/* results */
	int err;
	const char *what;
	bool late; /* the deadline passed first: nothing was changed */
};

static void sysmgmt_hostname_job_free(void *p)
{
	struct sysmgmt_hostname_job *j = p;

	free(j->hostname);
	free(j);
}

static void sysmgmt_set_hostname_run(void *p)
{
	struct sysmgmt_hostname_job *j = p;
	struct timespec now;
	int r;

	/* Checked first, so that nothing changes: writing /etc on a frozen
	 * filesystem would block the worker until the thaw. */
	if (j->persistent && fsfreeze_check_path("/etc/hostname") < 0) {
		j->err = EBUSY;
		j->what = "the filesystem of /etc is frozen";
		return;
	}
	/* A call already answered -32004 (the check hung) changes nothing. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > j->deadline.tv_sec ||
		(now.tv_sec == j->deadline.tv_sec && now.tv_nsec >= j->deadline.tv_nsec)) {
		j->late = true;
		return;
	}
	if (sethostname(j->hostname, strlen(j->hostname)) < 0) {
		j->err = errno;
		j->what = "cannot set the hostname";
		return;
	}
	if (j->persistent) {
		r = sysmgmt_write_etc_hostname(j->hostname);
		if (r < 0) {
			j->err = -r;
			j->what = "hostname set, but /etc/hostname could not be written";
		}
	}
}

static void sysmgmt_set_hostname_done(struct call *call, void *p)
{
	struct sysmgmt_hostname_job *j = p;

	/* Normally answered -32004 by the worker's timer already. */
	if (j->late)
		call_error(call, GL_RPC_TIMEOUT,
			"The filesystem of /etc did not answer in time (nothing was changed)", NULL);
	else if (j->err)
		call_os_error(call, j->err, j->what);
	else
		call_reply(call, json_object_new_object());
}

static int sysmgmt_set_hostname(struct call *call, void *params)
{
	struct sysmgmt_set_hostname_params *a = params;
	struct sysmgmt_hostname_job *j;
	int r;

	if (!sysmgmt_hostname_valid(a->hostname)) {
		call_error(call,
			GL_RPC_INVALID_PARAMS, "hostname must be 1-64 characters of letters, digits, '-' and '.' (RFC 1123)",
			NULL);
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->hostname = strdup(a->hostname);
	if (!j->hostname) {
		free(j);
		return -ENOMEM;
	}
	j->persistent = a->persistent;
	clock_gettime(CLOCK_MONOTONIC, &j->deadline);
	j->deadline.tv_sec += (time_t)config_get()->fs_timeout_s;
	r = worker_call(call, -1, sysmgmt_set_hostname_run, sysmgmt_set_hostname_done, j,
		sysmgmt_hostname_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* --- users --- */

static int sysmgmt_users(struct call *call, void *params)
{
	struct json_object *list = json_object_new_array(), *o;
	struct utmpx *u;

	setutxent();
	while ((u = getutxent())) {
		char user[sizeof(u->ut_user) + 1], line[sizeof(u->ut_line) + 1];
		char host[sizeof(u->ut_host) + 1], esc[sizeof(host) * 4 + 8];
		struct json_object *e;

		if (u->ut_type != USER_PROCESS)
			continue;
		snprintf(user, sizeof(user), "%.*s", (int)sizeof(u->ut_user), u->ut_user);
		snprintf(line, sizeof(line), "%.*s", (int)sizeof(u->ut_line), u->ut_line);
		snprintf(host, sizeof(host), "%.*s", (int)sizeof(u->ut_host), u->ut_host);
		e = json_object_new_object();
		/* utmp is written by other programs: escape rather than trust its bytes. */
		json_object_object_add(e, "user",
			json_object_new_string(log_escape(esc, sizeof(esc), user, strlen(user))));
		json_object_object_add(e, "tty",
			json_object_new_string(log_escape(esc, sizeof(esc), line, strlen(line))));
		json_object_object_add(e, "host",
			json_object_new_string(log_escape(esc, sizeof(esc), host, strlen(host))));
		json_object_object_add(e, "pid", json_object_new_int(u->ut_pid));
		json_object_object_add(e, "login_time", json_object_new_int64(u->ut_tv.tv_sec));
		json_object_array_add(list, e);
	}
	endutxent();
	o = json_object_new_object();
	json_object_object_add(o, "users", list);
	call_reply(call, o);
	return 0;
}

/* --- network --- */

static struct json_object *sysmgmt_iface(struct json_object *ifaces, const char *name)
{
	struct json_object *o;

	if (json_object_object_get_ex(ifaces, name, &o))
		return o;
	o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "addresses", json_object_new_array());
	json_object_object_add(ifaces, name, o);
	return o;
}

static int sysmgmt_prefix_len(const struct sockaddr *mask)
{
	const unsigned char *b;
	size_t n;
	int bits = 0;

	if (!mask)
		return -1;
	if (mask->sa_family == AF_INET) {
		b = (const unsigned char *)&((const struct sockaddr_in *)mask)->sin_addr;
		n = 4;
	} else if (mask->sa_family == AF_INET6) {
		b = (const unsigned char *)&((const struct sockaddr_in6 *)mask)->sin6_addr;
		n = 16;
	} else
		return -1;
	for (size_t i = 0; i < n; i++)
		bits += __builtin_popcount(b[i]);
	return bits;
}

static int sysmgmt_network(struct call *call, void *params)
{
	struct json_object *ifaces, *list, *o;
	struct ifaddrs *ifa;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	ifaces = json_object_new_object();
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		struct json_object *e;
		char addr[INET6_ADDRSTRLEN];

		if (!i->ifa_name)
			continue;
		e = sysmgmt_iface(ifaces, i->ifa_name);
		json_object_object_add(e, "up", json_object_new_boolean(i->ifa_flags & IFF_UP));
		json_object_object_add(e, "loopback",
			json_object_new_boolean(i->ifa_flags & IFF_LOOPBACK));
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_PACKET) {
			const struct sockaddr_ll *ll = (const struct sockaddr_ll *)i->ifa_addr;
			const struct rtnl_link_stats *st = i->ifa_data;
			size_t len = ll->sll_halen < 8 ? ll->sll_halen : 8;

			if (len > 0) {
				char tmp[3 * 8] = "";
				for (size_t k = 0; k < len; k++) {
					char byte[4];
					snprintf(byte, sizeof(byte), k ? ":%02x" : "%02x",
						ll->sll_addr[k]);
					strncat(tmp, byte, sizeof(tmp) - strlen(tmp) - 1);
				}
				json_object_object_add(e, "mac", json_object_new_string(tmp));
			}
			if (st) {
				struct json_object *s = json_object_new_object();
				const struct {
					const char *name;
					uint32_t value;
				} stats[] = {
					{ "rx_bytes", st->rx_bytes },
					{ "tx_bytes", st->tx_bytes },
					{ "rx_packets", st->rx_packets },
					{ "tx_packets", st->tx_packets },
					{ "rx_errors", st->rx_errors },
					{ "tx_errors", st->tx_errors },
					{ "rx_dropped", st->rx_dropped },
					{ "tx_dropped", st->tx_dropped },
				};
				for (size_t k = 0; k < ELEMENTSOF(stats); k++)
					json_object_object_add(s, stats[k].name,
						json_object_new_int64(stats[k].value));
				json_object_object_add(e, "statistics", s);
			}
			continue;
		}
		if (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6)
			continue;
		const void *src =
			i->ifa_addr->sa_family == AF_INET
				? (const void *)&((const struct sockaddr_in *)i->ifa_addr)->sin_addr
				: (const void *)&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		if (!inet_ntop(i->ifa_addr->sa_family, src, addr, sizeof(addr)))
			continue;
		struct json_object *a = json_object_new_object(), *addrs;
		json_object_object_add(a, "family",
			json_object_new_string(i->ifa_addr->sa_family == AF_INET ? "inet" : "inet6"));
		json_object_object_add(a, "address", json_object_new_string(addr));
		json_object_object_add(a, "prefix",
			json_object_new_int(sysmgmt_prefix_len(i->ifa_netmask)));
		json_object_object_get_ex(e, "addresses", &addrs);
		json_object_array_add(addrs, a);
	}
	freeifaddrs(ifa);
	list = json_object_new_array();
	json_object_object_foreach (ifaces, name, v) {
		(void)name;
		json_object_array_add(list, json_object_get(v));
	}
	json_object_put(ifaces);
	o = json_object_new_object();
	json_object_object_add(o, "interfaces", list);
	call_reply(call, o);
	return 0;
}

/* --- filesystems --- */

/* statvfs() on these can hang on a dead server: listed without usage. */
static const char *const sysmgmt_remote_types[] = { "nfs", "nfs4", "cifs", "smb3", "9p", "sshfs",
	"fuse.sshfs", "ceph", "glusterfs" };

static bool sysmgmt_remote(const char *type)
{
	for (size_t i = 0; i < ELEMENTSOF(sysmgmt_remote_types); i++)
		if (strcmp(type, sysmgmt_remote_types[i]) == 0)
			return true;
	return false;
}

/* On a worker: for a filesystem on a block device, its sysfs name, found
 * through the device number whatever name the mount table gives it (NULL
 * when none). The mount table's device is any string a mount chose (a FUSE
 * server picks its own): stat() of it can hang like any path. */
static char *sysmgmt_fs_block(const char *fsname)
{
	char path[64], real[PATH_MAX];
	struct stat st;
	const char *name;

	if (fsname[0] != '/' || stat(fsname, &st) < 0 || !S_ISBLK(st.st_mode))
		return NULL;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
	if (!realpath(path, real) || !(name = strrchr(real, '/')))
		return NULL;
	return strdup(name + 1);
}

/* "block_device" and "disk": [the hardware address of the disk]. */
static void sysmgmt_fs_disk(struct json_object *e, const char *name)
{
	struct json_object *addr, *disks;

	json_object_object_add(e, "block_device", json_object_new_string(name));
	disks = json_object_new_array();
	if (guestinfo_disk_address(name, &addr) == 0)
		json_object_array_add(disks, addr);
	json_object_object_add(e, "disk", disks);
}

/* One mount as read on a worker thread (statvfs can block: agent/worker.h). */
struct sysmgmt_mount {
	char *dir, *fsname, *type, *opts;
	char *block; /* sysfs name of its block device, or NULL */
	bool readonly, has_usage;
	struct statvfs sv;
};

struct sysmgmt_fs_job {
	int err;
	struct sysmgmt_mount *mounts;
	size_t n;
};

static void sysmgmt_fs_job_free(void *p)
{
	struct sysmgmt_fs_job *j = p;

	for (size_t i = 0; i < j->n; i++) {
		free(j->mounts[i].dir);
		free(j->mounts[i].fsname);
		free(j->mounts[i].type);
		free(j->mounts[i].opts);
		free(j->mounts[i].block);
	}
	free(j->mounts);
	free(j);
}

static void sysmgmt_fs_run(void *p)
{
	struct sysmgmt_fs_job *j = p;
	struct mntent me, *m;
	char buf[4 * PATH_MAX];
	size_t cap = 0;
	FILE *f;

	f = setmntent("/proc/self/mounts", "re");
	if (!f) {
		j->err = errno;
		return;
	}
	while ((m = getmntent_r(f, &me, buf, sizeof(buf)))) {
		struct sysmgmt_mount *e;

		if (j->n == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			struct sysmgmt_mount *v = realloc(j->mounts, ncap * sizeof(*v));

			if (!v) {
				j->err = ENOMEM;
				break;
			}
			j->mounts = v;
			cap = ncap;
		}
		e = &j->mounts[j->n];
		*e = (struct sysmgmt_mount){ .dir = strdup(m->mnt_dir),
			.fsname = strdup(m->mnt_fsname),
			.type = strdup(m->mnt_type),
			.opts = strdup(m->mnt_opts),
			.readonly = hasmntopt(m, "ro") != NULL };
		j->n++;
		if (!e->dir || !e->fsname || !e->type || !e->opts) {
			j->err = ENOMEM;
			break;
		}
		e->has_usage = !sysmgmt_remote(m->mnt_type) && statvfs(m->mnt_dir, &e->sv) == 0;
		e->block = sysmgmt_fs_block(m->mnt_fsname);
	}
	endmntent(f);
}

static void sysmgmt_json_escaped(struct json_object *e, const char *key, const char *s)
{
	char esc[PATH_MAX];

	json_object_object_add(e, key,
		json_object_new_string(log_escape(esc, sizeof(esc), s, strlen(s))));
}

static void sysmgmt_fs_done(struct call *call, void *p)
{
	struct sysmgmt_fs_job *j = p;
	struct json_object *list, *o;

	if (j->err) {
		call_os_error(call, j->err, "cannot read the mount table");
		return;
	}
	list = json_object_new_array();
	for (size_t i = 0; i < j->n; i++) {
		const struct sysmgmt_mount *m = &j->mounts[i];
		const struct statvfs *sv = &m->sv;
		struct json_object *e = json_object_new_object();

		sysmgmt_json_escaped(e, "mountpoint", m->dir);
		sysmgmt_json_escaped(e, "device", m->fsname);
		sysmgmt_json_escaped(e, "type", m->type);
		sysmgmt_json_escaped(e, "options", m->opts);
		json_object_object_add(e, "readonly", json_object_new_boolean(m->readonly));
		if (m->block)
			sysmgmt_fs_disk(e, m->block);
		if (m->has_usage) {
			json_object_object_add(e, "total_bytes",
				json_object_new_int64((int64_t)(sv->f_blocks * sv->f_frsize)));
			json_object_object_add(e, "free_bytes",
				json_object_new_int64((int64_t)(sv->f_bfree * sv->f_frsize)));
			json_object_object_add(e, "available_bytes",
				json_object_new_int64((int64_t)(sv->f_bavail * sv->f_frsize)));
			json_object_object_add(e, "total_inodes",
				json_object_new_int64((int64_t)sv->f_files));
			json_object_object_add(e, "free_inodes",
				json_object_new_int64((int64_t)sv->f_ffree));
		}
		json_object_array_add(list, e);
	}
	o = json_object_new_object();
	json_object_object_add(o, "filesystems", list);
	call_reply(call, o);
}

static int sysmgmt_filesystems(struct call *call, void *params)
{
	struct sysmgmt_fs_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	r = worker_call(call, -1, sysmgmt_fs_run, sysmgmt_fs_done, j, sysmgmt_fs_job_free);
	return r == -EAGAIN ? 0 : r;
}

/* --- shutdown --- */

static const struct {
	const char *mode;
	const char *unit;
	int reboot_cmd;
} sysmgmt_shutdown_modes[] = {
	{ "poweroff", "poweroff.target", RB_POWER_OFF },
	{ "reboot", "reboot.target", RB_AUTOBOOT },
	{ "halt", "halt.target", RB_HALT_SYSTEM },
};

static const char *const sysmgmt_shutdown_choices[] = { "poweroff", "reboot", "halt", NULL };

static int sysmgmt_shutdown_systemd(const char *unit)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus *bus = NULL;
	int r;

	r = sd_bus_open_system(&bus);
	if (r < 0)
		return r;
	/* What `systemctl poweroff` does: an orderly shutdown of every unit. */
	r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
		"org.freedesktop.systemd1.Manager", "StartUnit", &error, NULL, "ss", unit,
		"replace-irreversibly");
	if (r < 0)
		log_warning_errno(r, "systemd refused %s: %s", unit,
			error.message ? error.message : "(no message)");
	sd_bus_error_free(&error);
	sd_bus_flush_close_unref(bus);
	return r;
}

static void sysmgmt_shutdown_cb(evutil_socket_t fd, short what, void *userdata)
{
	size_t i = (size_t)(uintptr_t)userdata;

	log_notice("Shutting down (%s) on a client's request", sysmgmt_shutdown_modes[i].mode);
	if (sd_booted() > 0 && sysmgmt_shutdown_systemd(sysmgmt_shutdown_modes[i].unit) >= 0)
		return;
	/* No systemd (or it refused): the plain way, after flushing the page cache. */
	sync();
	if (reboot(sysmgmt_shutdown_modes[i].reboot_cmd) < 0)
		log_error_errno(-errno, "Failed to shut down: %m");
}

struct sysmgmt_shutdown_params {
	const char *mode;
	int64_t delay_s;
};

static int sysmgmt_shutdown(struct call *call, void *params)
{
	struct sysmgmt_shutdown_params *a = params;
	int64_t ms = a->delay_s * 1000 + SYSMGMT_SHUTDOWN_GRACE_MS;
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
		.tv_usec = (suseconds_t)(ms % 1000 * 1000) };
	const char *mode = a->mode ?: "poweroff";
	size_t i;

	for (i = 0; i < ELEMENTSOF(sysmgmt_shutdown_modes); i++)
		if (strcmp(sysmgmt_shutdown_modes[i].mode, mode) == 0)
			break;
	if (i == ELEMENTSOF(sysmgmt_shutdown_modes)) {
		call_error(call, GL_RPC_INVALID_PARAMS, "mode must be poweroff, reboot or halt",
			NULL);
		return 0;
	}
	if (geteuid() != 0) {
		call_os_error(call, EPERM, "only an agent running as root can shut down");
		return 0;
	}
	/* Answer first; the shutdown itself runs from a timer after the answer left. */
	if (event_base_once(call_event_base(call), -1, EV_TIMEOUT, sysmgmt_shutdown_cb,
		    (void *)(uintptr_t)i, &tv) < 0)
		return -ENOMEM;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "mode", json_object_new_string(mode));
	json_object_object_add(o, "in_ms", json_object_new_int64(ms));
	call_reply(call, o);
	return 0;
}

/* --- suspend --- */

/* Suspend modes: the systemd unit, and what the kernel must offer for it in
 * /sys/power/state (and /sys/power/disk), as QGA checks before it suspends. */
static const struct {
	const char *mode, *unit, *state, *disk;
} sysmgmt_suspend_modes[] = {
	{ "ram", "suspend.target", "mem", NULL },
	{ "disk", "hibernate.target", "disk", NULL },
	{ "hybrid", "hybrid-sleep.target", "disk", "suspend" },
};

static const char *const sysmgmt_suspend_choices[] = { "ram", "disk", "hybrid", NULL };

/* Whether the word is one of the space-separated words of a sysfs file. */
static bool sysmgmt_sysfs_has(const char *path, const char *word)
{
	char buf[256], *save = NULL;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	for (char *w = strtok_r(buf, " \n[]", &save); w; w = strtok_r(NULL, " \n[]", &save))
		if (strcmp(w, word) == 0)
			return true;
	return false;
}

static void sysmgmt_suspend_cb(evutil_socket_t fd, short what, void *userdata)
{
	size_t i = (size_t)(uintptr_t)userdata;
	int sfd;

	log_notice("Suspending (%s) on a client's request", sysmgmt_suspend_modes[i].mode);
	if (sd_booted() > 0 && sysmgmt_shutdown_systemd(sysmgmt_suspend_modes[i].unit) >= 0)
		return;
	/* No systemd: the kernel interface (Documentation/admin-guide/pm/sleep-states.rst). */
	sync();
	if (sysmgmt_suspend_modes[i].disk) {
		sfd = open("/sys/power/disk", O_WRONLY | O_CLOEXEC);
		if (sfd >= 0) {
			if (write(sfd, sysmgmt_suspend_modes[i].disk,
				    strlen(sysmgmt_suspend_modes[i].disk)) < 0)
				log_warning_errno(-errno,
					"Failed to set /sys/power/disk, ignoring: %m");
			close(sfd);
		}
	}
	sfd = open("/sys/power/state", O_WRONLY | O_CLOEXEC);
	if (sfd < 0 || write(sfd, sysmgmt_suspend_modes[i].state,
			       strlen(sysmgmt_suspend_modes[i].state)) < 0)
		log_error_errno(-errno, "Failed to suspend: %m");
	if (sfd >= 0)
		close(sfd);
}

struct sysmgmt_suspend_params {
	const char *mode;
};

static int sysmgmt_suspend(struct call *call, void *params)
{
	static const struct timeval tv = { 0, SYSMGMT_SHUTDOWN_GRACE_MS * 1000 };
	struct sysmgmt_suspend_params *a = params;
	size_t i;

	for (i = 0; i < ELEMENTSOF(sysmgmt_suspend_modes); i++)
		if (strcmp(sysmgmt_suspend_modes[i].mode, a->mode) == 0)
			break;
	if (i == ELEMENTSOF(sysmgmt_suspend_modes))
		return -EINVAL; /* the choices were checked */
	if (!sysmgmt_sysfs_has("/sys/power/state", sysmgmt_suspend_modes[i].state) ||
		(sysmgmt_suspend_modes[i].disk &&
			!sysmgmt_sysfs_has("/sys/power/disk", sysmgmt_suspend_modes[i].disk))) {
		call_os_error(call, EOPNOTSUPP, "the guest cannot suspend this way");
		return 0;
	}
	if (geteuid() != 0) {
		call_os_error(call, EPERM, "only an agent running as root can suspend");
		return 0;
	}
	/* Answer first, as for shutdown. */
	if (event_base_once(call_event_base(call), -1, EV_TIMEOUT, sysmgmt_suspend_cb,
		    (void *)(uintptr_t)i, &tv) < 0)
		return -ENOMEM;
	call_reply(call, json_object_new_object());
	return 0;
}

/* --- table --- */

static const struct method_param sysmgmt_set_time_params_table[] = {
	{ "seconds", PARAM_INT, offsetof(struct sysmgmt_set_time_params, seconds), 0, 1,
		INT64_C(253402300799), 0, NULL,
		"seconds since the epoch (UTC); mandatory unless rtc is \"read\"" },
	{ "nanoseconds", PARAM_INT, offsetof(struct sysmgmt_set_time_params, nanoseconds), 0, 0,
		999999999, 0, NULL, "nanoseconds" },
	{ "rtc", PARAM_STRING, offsetof(struct sysmgmt_set_time_params, rtc), 0, 0, 0, 0,
		sysmgmt_rtc_choices, "hardware clock: none (default), write (also set it), read (set the clock from it)" },
	{},
};

static const struct method_param sysmgmt_set_hostname_params_table[] = {
	{ "hostname", PARAM_STRING, offsetof(struct sysmgmt_set_hostname_params, hostname),
		PARAM_MANDATORY, 0, SYSMGMT_HOSTNAME_MAX, 0, NULL, "the new host name (RFC 1123)" },
	{ "persistent", PARAM_BOOL, offsetof(struct sysmgmt_set_hostname_params, persistent), 0, 0,
		1, 1, NULL, "also write /etc/hostname (default true)" },
	{},
};

static const struct method_param sysmgmt_shutdown_params_table[] = {
	{ "mode", PARAM_STRING, offsetof(struct sysmgmt_shutdown_params, mode), 0, 0, 0, 0,
		sysmgmt_shutdown_choices, "poweroff (default), reboot or halt" },
	{ "delay_s", PARAM_INT, offsetof(struct sysmgmt_shutdown_params, delay_s), 0, 0, 86400, 0,
		NULL, "start the shutdown this many seconds after answering" },
	{},
};

static const struct method_param sysmgmt_suspend_params_table[] = {
	{ "mode", PARAM_STRING, offsetof(struct sysmgmt_suspend_params, mode), PARAM_MANDATORY, 0,
		0, 0, sysmgmt_suspend_choices, "ram (suspend), disk (hibernate) or hybrid" },
	{},
};

static const struct method sysmgmt_methods[] = {
	{ "system.time", "The guest's clock (UTC)", NULL, 0, sysmgmt_time, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"seconds\":{\"type\":\"integer\"},"
		"\"nanoseconds\":{\"type\":\"integer\"},\"utc\":{\"type\":\"string\"}}}" },
	{ "system.set-time", "Set the guest's clock", sysmgmt_set_time_params_table,
		sizeof(struct sysmgmt_set_time_params), sysmgmt_set_time, 0, "{\"type\":\"object\"}" },
	{ "system.hostname", "The host name", NULL, 0, sysmgmt_hostname, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"hostname\":{\"type\":\"string\"}}}" },
	{ "system.set-hostname", "Set the host name (and /etc/hostname)",
		sysmgmt_set_hostname_params_table, sizeof(struct sysmgmt_set_hostname_params),
		sysmgmt_set_hostname, METHOD_WRITES, "{\"type\":\"object\"}" },
	{ "system.users", "Logged-in sessions (utmp)", NULL, 0, sysmgmt_users, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"users\":{\"type\":\"array\"}}}" },
	{ "system.network", "Interfaces with addresses, MACs and statistics", NULL, 0,
		sysmgmt_network, METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"interfaces\":{\"type\":\"array\"}}}" },
	{ "system.filesystems", "Mounted filesystems with usage", NULL, 0, sysmgmt_filesystems,
		METHOD_READONLY,
		"{\"type\":\"object\",\"properties\":{\"filesystems\":{\"type\":\"array\"}}}" },
	{ "system.shutdown", "Power off, reboot or halt (answered before the machine goes down)",
		sysmgmt_shutdown_params_table, sizeof(struct sysmgmt_shutdown_params),
		sysmgmt_shutdown, 0,
		"{\"type\":\"object\",\"properties\":{\"mode\":{\"type\":\"string\"},"
		"\"in_ms\":{\"type\":\"integer\"}}}" },
	{ "system.suspend", "Suspend to RAM, to disk or both (answered before the guest sleeps)",
		sysmgmt_suspend_params_table, sizeof(struct sysmgmt_suspend_params),
		sysmgmt_suspend, 0, "{\"type\":\"object\"}" },
	{},
};

void methods_sysmgmt_register(void)
{
	method_register(sysmgmt_methods);
}
