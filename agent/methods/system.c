/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* system.info: what the guest is. Small files under /etc and /proc are read
 * on a worker (agent/worker.h): /etc is a filesystem like any other, and a
 * stuck one costs only this call (-32004); the answer is built on the loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "method.h"
#include "methods/methods.h"
#include "worker.h"

/* Doubles with a fixed number of decimals: "%.17g" output is noise to readers. */
static struct json_object *json_double(double d)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.2f", d);
	return json_object_new_double_s(d, buf);
}

#define SYSTEM_SMALL_FILE 16384

/* Read a small text file; strips one trailing newline. */
static int system_read_small(const char *path, char *buf, size_t size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	size_t len = 0;

	if (fd < 0)
		return -errno;
	while (len < size - 1) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = 0;
	return (int)len;
}

static void system_add_string(struct json_object *r, const char *key, const char *buf, int len)
{
	json_object_object_add(r, key, len > 0 ? json_object_new_string(buf) : NULL);
}

/* os-release(5): KEY=value lines, values optionally quoted with \ escapes.
 * buf (the file, as read) is parsed in place. */
static struct json_object *system_os_release(char *buf, int len)
{
	struct json_object *o = json_object_new_object();

	if (!o || len < 0)
		return o;
	for (char *line = buf, *next; line; line = next) {
		char *eq, *v, *w;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		eq = strchr(line, '=');
		if (line[0] == '#' || !eq || eq == line)
			continue;
		*eq = 0;
		v = w = eq + 1;
		if (*v == '"' || *v == '\'') {
			char q = *v++;
			for (; *v && *v != q; v++) {
				if (*v == '\\' && q == '"' && v[1])
					v++;
				*w++ = *v;
			}
			*w = 0;
			v = eq + 1;
		}
		json_object_object_add(o, line, json_object_new_string(v));
	}
	return o;
}

/* /proc/meminfo (buf, as read, parsed in place). */
static struct json_object *system_memory(char *buf, int len)
{
	static const struct {
		const char *field, *key;
	} rows[] = {
		{ "MemTotal:", "total_bytes" },
		{ "MemFree:", "free_bytes" },
		{ "MemAvailable:", "available_bytes" },
		{ "SwapTotal:", "swap_total_bytes" },
		{ "SwapFree:", "swap_free_bytes" },
	};
	struct json_object *o = json_object_new_object();

	if (o && len > 0)
		for (char *line = buf, *next; line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
				unsigned long long kib;
				size_t n = strlen(rows[i].field);
				if (strncmp(line, rows[i].field, n) == 0 &&
					sscanf(line + n, "%llu", &kib) == 1)
					json_object_object_add(o, rows[i].key,
						json_object_new_int64((int64_t)(kib * 1024)));
			}
		}
	return o;
}

/* The files system.info reads, read on a worker; each length is what
 * system_read_small() returned (< 0: -errno). */
struct system_info_job {
	int os_release_len, meminfo_len, uptime_len, loadavg_len, machine_id_len, boot_id_len;
	char os_release[SYSTEM_SMALL_FILE], meminfo[SYSTEM_SMALL_FILE];
	char uptime[256], loadavg[256], machine_id[128], boot_id[128];
};

static void system_info_run(void *p)
{
	static const char *const os_release[] = { "/etc/os-release", "/usr/lib/os-release" };
	struct system_info_job *j = p;

	j->os_release_len = -ENOENT;
	for (size_t i = 0; i < ELEMENTSOF(os_release) && j->os_release_len < 0; i++)
		j->os_release_len =
			system_read_small(os_release[i], j->os_release, sizeof(j->os_release));
	j->meminfo_len = system_read_small("/proc/meminfo", j->meminfo, sizeof(j->meminfo));
	j->uptime_len = system_read_small("/proc/uptime", j->uptime, sizeof(j->uptime));
	j->loadavg_len = system_read_small("/proc/loadavg", j->loadavg, sizeof(j->loadavg));
	j->machine_id_len =
		system_read_small("/etc/machine-id", j->machine_id, sizeof(j->machine_id));
	j->boot_id_len =
		system_read_small("/proc/sys/kernel/random/boot_id", j->boot_id, sizeof(j->boot_id));
}

static void system_info_done(struct call *call, void *p)
{
	struct system_info_job *j = p;
	struct json_object *r = json_object_new_object(), *k, *cpus, *load;
	char host[256 + 1] = "";
	struct utsname u;
	struct sysinfo si;

	if (!r) {
		call_os_error(call, ENOMEM, "out of memory");
		return;
	}
	if (gethostname(host, sizeof(host) - 1) == 0)
		json_object_object_add(r, "hostname", json_object_new_string(host));
	json_object_object_add(r, "os_release", system_os_release(j->os_release, j->os_release_len));

	k = json_object_new_object();
	if (uname(&u) == 0) {
		json_object_object_add(k, "name", json_object_new_string(u.sysname));
		json_object_object_add(k, "release", json_object_new_string(u.release));
		json_object_object_add(k, "version", json_object_new_string(u.version));
		json_object_object_add(k, "machine", json_object_new_string(u.machine));
	}
	json_object_object_add(r, "kernel", k);

	if (j->uptime_len > 0) {
		double up;
		if (sscanf(j->uptime, "%lf", &up) == 1)
			json_object_object_add(r, "uptime_s", json_double(up));
	}
	load = json_object_new_array();
	if (j->loadavg_len > 0) {
		double l[3];
		if (sscanf(j->loadavg, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3)
			for (int i = 0; i < 3; i++)
				json_object_array_add(load, json_double(l[i]));
	} else if (sysinfo(&si) == 0)
		for (int i = 0; i < 3; i++)
			json_object_array_add(load,
				json_double((double)si.loads[i] / (1 << SI_LOAD_SHIFT)));
	json_object_object_add(r, "loadavg", load);
	json_object_object_add(r, "memory", system_memory(j->meminfo, j->meminfo_len));

	cpus = json_object_new_object();
	json_object_object_add(cpus, "online", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(cpus, "configured",
		json_object_new_int64(sysconf(_SC_NPROCESSORS_CONF)));
	json_object_object_add(r, "cpus", cpus);

	system_add_string(r, "machine_id", j->machine_id, j->machine_id_len);
	system_add_string(r, "boot_id", j->boot_id, j->boot_id_len);
	call_reply(call, r);
}

static int system_info(struct call *call, void *params)
{
	struct system_info_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	r = worker_call(call, -1, system_info_run, system_info_done, j, free);
	return r == -EAGAIN ? 0 : r;
}

static const struct method system_methods[] = {
	{
		.name = "system.info",
		.summary = "Hostname, os-release, kernel, uptime, load, memory, CPUs, machine and "
			   "boot id",
		.handler = system_info,
		.flags = METHOD_READONLY,
		.result_schema =
			"{\"type\":\"object\",\"properties\":{"
			"\"hostname\":{\"type\":\"string\"},"
			"\"os_release\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
			"\"string\"}},"
			"\"kernel\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
			"\"string\"},"
			"\"release\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
			"\"machine\":{\"type\":\"string\"}}},"
			"\"uptime_s\":{\"type\":\"number\"},"
			"\"loadavg\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}},"
			"\"memory\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
			"\"integer\"}},"
			"\"cpus\":{\"type\":\"object\",\"properties\":{\"online\":{\"type\":"
			"\"integer\"},"
			"\"configured\":{\"type\":\"integer\"}}},"
			"\"machine_id\":{\"type\":[\"string\",\"null\"]},"
			"\"boot_id\":{\"type\":[\"string\",\"null\"]}}}",
	},
	{ .name = NULL },
};

void methods_system_register(void)
{
	method_register(system_methods);
}
