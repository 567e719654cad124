/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* system.info: what the guest is. Only small files under /proc and /etc are
 * read, so the call stays synchronous. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "method.h"
#include "methods/methods.h"

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

static void system_add_string_file(struct json_object *r, const char *key, const char *path)
{
	char buf[128];

	if (system_read_small(path, buf, sizeof(buf)) > 0)
		json_object_object_add(r, key, json_object_new_string(buf));
	else
		json_object_object_add(r, key, NULL);
}

/* os-release(5): KEY=value lines, values optionally quoted with \ escapes. */
static struct json_object *system_os_release(void)
{
	static const char *const paths[] = { "/etc/os-release", "/usr/lib/os-release" };
	struct json_object *o = json_object_new_object();
	char *buf = malloc(SYSTEM_SMALL_FILE);
	int r = -ENOENT;

	if (!o || !buf) {
		free(buf);
		return o;
	}
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && r < 0; i++)
		r = system_read_small(paths[i], buf, SYSTEM_SMALL_FILE);
	if (r < 0) {
		free(buf);
		return o;
	}
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
	free(buf);
	return o;
}

static struct json_object *system_memory(void)
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
	char *buf = malloc(SYSTEM_SMALL_FILE);

	if (o && buf && system_read_small("/proc/meminfo", buf, SYSTEM_SMALL_FILE) > 0)
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
	free(buf);
	return o;
}

static int system_info(struct call *call, void *params)
{
	struct json_object *r = json_object_new_object(), *k, *cpus, *load;
	char host[256 + 1] = "";
	struct utsname u;
	struct sysinfo si;
	char buf[256];

	if (!r)
		return -ENOMEM;
	if (gethostname(host, sizeof(host) - 1) == 0)
		json_object_object_add(r, "hostname", json_object_new_string(host));
	json_object_object_add(r, "os_release", system_os_release());

	k = json_object_new_object();
	if (uname(&u) == 0) {
		json_object_object_add(k, "name", json_object_new_string(u.sysname));
		json_object_object_add(k, "release", json_object_new_string(u.release));
		json_object_object_add(k, "version", json_object_new_string(u.version));
		json_object_object_add(k, "machine", json_object_new_string(u.machine));
	}
	json_object_object_add(r, "kernel", k);

	if (system_read_small("/proc/uptime", buf, sizeof(buf)) > 0) {
		double up;
		if (sscanf(buf, "%lf", &up) == 1)
			json_object_object_add(r, "uptime_s", json_double(up));
	}
	load = json_object_new_array();
	if (system_read_small("/proc/loadavg", buf, sizeof(buf)) > 0) {
		double l[3];
		if (sscanf(buf, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3)
			for (int i = 0; i < 3; i++)
				json_object_array_add(load, json_double(l[i]));
	} else if (sysinfo(&si) == 0)
		for (int i = 0; i < 3; i++)
			json_object_array_add(load,
				json_double((double)si.loads[i] / (1 << SI_LOAD_SHIFT)));
	json_object_object_add(r, "loadavg", load);
	json_object_object_add(r, "memory", system_memory());

	cpus = json_object_new_object();
	json_object_object_add(cpus, "online", json_object_new_int64(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(cpus, "configured",
		json_object_new_int64(sysconf(_SC_NPROCESSORS_CONF)));
	json_object_object_add(r, "cpus", cpus);

	system_add_string_file(r, "machine_id", "/etc/machine-id");
	system_add_string_file(r, "boot_id", "/proc/sys/kernel/random/boot_id");
	call_reply(call, r);
	return 0;
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
