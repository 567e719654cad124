/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a management tool asks about a guest besides the system.* basics:
 * operating system (os-release(5) and uname), time zone, load averages, and
 * the virtual CPUs with CPU hotplug (sysfs cpuN/online). All read small
 * kernel or /etc files once per call; the answers carry what QGA's
 * guest-get-osinfo, -timezone, -load, -vcpus and -set-vcpus need. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <guestlink/jsonrpc.h>

#include "log.h"
#include "macro.h"
#include "method.h"
#include "guestinfo.h"
#include "methods.h"
#include "worker.h"

#define GUESTINFO_LINE_MAX 512
#define GUESTINFO_MAX_VCPUS 8192
#define GUESTINFO_CPU_DIR "/sys/devices/system/cpu"

/* --- os-release --- */

/* One value of os-release(5): shell-like, optionally quoted, with backslash
 * escapes inside double quotes. Writes at most size-1 bytes. */
static void guestinfo_unquote(const char *v, char *out, size_t size)
{
	size_t n = 0;
	char q = 0;

	if (*v == '"' || *v == '\'')
		q = *v++;
	for (; *v && *v != '\n' && n + 1 < size; v++) {
		if (q && *v == q)
			break;
		if (q == '"' && *v == '\\' && v[1])
			v++;
		out[n++] = *v;
	}
	out[n] = 0;
}

/* os-release(5) is read on a worker (agent/worker.h): /etc can be a stuck
 * filesystem like any other; the answer is built on the loop. */
#define GUESTINFO_OS_RELEASE_MAX 16384

struct guestinfo_osinfo_job {
	size_t len;
	bool ok;
	char buf[GUESTINFO_OS_RELEASE_MAX + 1];
};

static void guestinfo_osinfo_run(void *p)
{
	struct guestinfo_osinfo_job *j = p;
	FILE *f = fopen("/etc/os-release", "re");

	if (!f)
		f = fopen("/usr/lib/os-release", "re");
	if (!f)
		return;
	j->len = fread(j->buf, 1, GUESTINFO_OS_RELEASE_MAX, f);
	j->buf[j->len] = 0;
	j->ok = true;
	fclose(f);
}

static void guestinfo_os_release(struct json_object *o, char *buf)
{
	static const struct {
		const char *key, *field;
	} keys[] = {
		{ "ID", "id" },
		{ "NAME", "name" },
		{ "PRETTY_NAME", "pretty_name" },
		{ "VERSION", "version" },
		{ "VERSION_ID", "version_id" },
		{ "VARIANT", "variant" },
		{ "VARIANT_ID", "variant_id" },
	};
	char val[GUESTINFO_LINE_MAX], esc[GUESTINFO_LINE_MAX * 4 + 8];

	for (char *line = buf, *next; line; line = next) {
		char *eq;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		eq = strchr(line, '=');
		if (!eq || line[0] == '#')
			continue;
		*eq = 0;
		for (size_t i = 0; i < ELEMENTSOF(keys); i++)
			if (strcmp(line, keys[i].key) == 0) {
				guestinfo_unquote(eq + 1, val, sizeof(val));
				/* A file of the guest: only valid text goes out. */
				json_object_object_add(o, keys[i].field,
					json_object_new_string(
						log_escape(esc, sizeof(esc), val, strlen(val))));
			}
	}
}

static void guestinfo_osinfo_done(struct call *call, void *p)
{
	struct guestinfo_osinfo_job *j = p;
	struct json_object *o = json_object_new_object();
	struct utsname u;

	if (!o) {
		call_os_error(call, ENOMEM, "out of memory");
		return;
	}
	if (uname(&u) == 0) {
		json_object_object_add(o, "kernel_release", json_object_new_string(u.release));
		json_object_object_add(o, "kernel_version", json_object_new_string(u.version));
		json_object_object_add(o, "machine", json_object_new_string(u.machine));
	}
	if (j->ok)
		guestinfo_os_release(o, j->buf);
	call_reply(call, o);
}

static int guestinfo_osinfo(struct call *call, void *params)
{
	struct guestinfo_osinfo_job *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	r = worker_call(call, -1, guestinfo_osinfo_run, guestinfo_osinfo_done, j, free);
	return r == -EAGAIN ? 0 : r;
}

/* --- time zone, load --- */

static int guestinfo_timezone(struct call *call, void *params)
{
	struct json_object *o = json_object_new_object();
	time_t now = time(NULL);
	struct tm tm;

	if (!o)
		return -ENOMEM;
	tzset();
	localtime_r(&now, &tm);
	/* The abbreviation in effect (what QGA reports as the zone). */
	json_object_object_add(o, "zone", json_object_new_string(tm.tm_zone ? tm.tm_zone : "UTC"));
	json_object_object_add(o, "offset_s", json_object_new_int64(tm.tm_gmtoff));
	call_reply(call, o);
	return 0;
}

static int guestinfo_load(struct call *call, void *params)
{
	double l1, l5, l15;
	struct json_object *o;
	FILE *f = fopen("/proc/loadavg", "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%lf %lf %lf", &l1, &l5, &l15);
	fclose(f);
	if (n != 3)
		return -EIO;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "load1", json_object_new_double(l1));
	json_object_object_add(o, "load5", json_object_new_double(l5));
	json_object_object_add(o, "load15", json_object_new_double(l15));
	call_reply(call, o);
	return 0;
}

/* --- disks --- */

/* What a block device hangs off, from its sysfs path (as qemu-ga reads it,
 * qga/commands-posix.c): the PCI function's address, the kind of bus, and
 * the device node; the serial number as udev recorded it (ID_SERIAL), when
 * udev runs. Only virtio-blk disks are described in full. */
int guestinfo_disk_address(const char *name, struct json_object **ret)
{
	char path[PATH_MAX], real[PATH_MAX], line[512];
	unsigned dom, bus, slot, fn;
	const char *comp, *found = NULL;
	struct json_object *a, *pci;
	bool virtio;
	FILE *f;

	if (strchr(name, '/') || name[0] == '.')
		return -EINVAL;
	snprintf(path, sizeof(path), "/sys/class/block/%s", name);
	if (!realpath(path, real))
		return -errno;
	/* The last PCI function on the path: /sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda */
	for (comp = strchr(real, '/'); comp; comp = strchr(comp + 1, '/')) {
		int n = 0;
		if (sscanf(comp + 1, "%x:%x:%x.%x%n", &dom, &bus, &slot, &fn, &n) == 4 &&
			(comp[1 + n] == '/' || comp[1 + n] == 0))
			found = comp + 1;
	}
	if (!found)
		return -ENODEV;
	sscanf(found, "%x:%x:%x.%x", &dom, &bus, &slot, &fn);
	virtio = strstr(real, "/virtio") != NULL && strstr(real, "/host") == NULL;
	if (!virtio)
		return -EOPNOTSUPP;
	a = json_object_new_object();
	pci = json_object_new_object();
	if (!a || !pci) {
		json_object_put(a);
		json_object_put(pci);
		return -ENOMEM;
	}
	json_object_object_add(pci, "domain", json_object_new_int64(dom));
	json_object_object_add(pci, "bus", json_object_new_int64(bus));
	json_object_object_add(pci, "slot", json_object_new_int64(slot));
	json_object_object_add(pci, "function", json_object_new_int64(fn));
	json_object_object_add(a, "pci_controller", pci);
	json_object_object_add(a, "bus_type", json_object_new_string("virtio"));
	json_object_object_add(a, "bus", json_object_new_int64(0));
	json_object_object_add(a, "target", json_object_new_int64(0));
	json_object_object_add(a, "unit", json_object_new_int64(0));
	snprintf(path, sizeof(path), "/dev/%s", name);
	json_object_object_add(a, "dev", json_object_new_string(path));
	/* udev's record of the device: /run/udev/data/b<major>:<minor>. */
	snprintf(path, sizeof(path), "/sys/class/block/%s/dev", name);
	f = fopen(path, "re");
	if (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		fclose(f);
		snprintf(path, sizeof(path), "/run/udev/data/b%s", line);
		f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			if (strncmp(line, "E:ID_SERIAL=", 12) == 0) {
				char esc[sizeof(line) * 4];
				line[strcspn(line, "\n")] = 0;
				json_object_object_add(a, "serial",
					json_object_new_string(log_escape(esc, sizeof(esc),
						line + 12, strlen(line + 12))));
				break;
			}
	}
	if (f)
		fclose(f);
	*ret = a;
	return 0;
}

static int guestinfo_disks(struct call *call, void *params)
{
	struct json_object *list = json_object_new_array(), *o;
	DIR *d = opendir("/sys/block");
	struct dirent *de;

	if (!d || !list) {
		int r = d ? -ENOMEM : -errno;
		if (d)
			closedir(d);
		json_object_put(list);
		return r;
	}
	while ((de = readdir(d))) {
		struct json_object *disk, *addr = NULL;
		char dev[300], path[PATH_MAX];
		DIR *pd;
		struct dirent *pe;

		if (de->d_name[0] == '.')
			continue;
		/* Loop, zram and other devices without hardware are not disks. */
		if (guestinfo_disk_address(de->d_name, &addr) < 0)
			continue;
		snprintf(dev, sizeof(dev), "/dev/%s", de->d_name);
		disk = json_object_new_object();
		json_object_object_add(disk, "name", json_object_new_string(dev));
		json_object_object_add(disk, "partition", json_object_new_boolean(false));
		json_object_object_add(disk, "dependencies", json_object_new_array());
		json_object_object_add(disk, "address", addr);
		json_object_array_add(list, disk);
		/* Partitions: subdirectories with a "partition" attribute. */
		snprintf(path, sizeof(path), "/sys/block/%s", de->d_name);
		pd = opendir(path);
		while (pd && (pe = readdir(pd))) {
			char attr[PATH_MAX + 300], pdev[300];
			struct json_object *part, *deps;

			if (pe->d_name[0] == '.')
				continue;
			snprintf(attr, sizeof(attr), "%s/%s/partition", path, pe->d_name);
			if (access(attr, F_OK) < 0)
				continue;
			snprintf(pdev, sizeof(pdev), "/dev/%s", pe->d_name);
			part = json_object_new_object();
			deps = json_object_new_array();
			json_object_array_add(deps, json_object_new_string(dev));
			json_object_object_add(part, "name", json_object_new_string(pdev));
			json_object_object_add(part, "partition", json_object_new_boolean(true));
			json_object_object_add(part, "dependencies", deps);
			json_object_array_add(list, part);
		}
		if (pd)
			closedir(pd);
	}
	closedir(d);
	o = json_object_new_object();
	json_object_object_add(o, "disks", list);
	call_reply(call, o);
	return 0;
}

/* --- vcpus --- */

static int guestinfo_cpu_cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The CPU numbers under sysfs, sorted. */
static int guestinfo_cpus(long **ret, size_t *ret_n)
{
	DIR *d = opendir(GUESTINFO_CPU_DIR);
	struct dirent *de;
	long *ids = NULL;
	size_t n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < GUESTINFO_MAX_VCPUS) {
		char *end;
		long id;
		long *v;

		if (strncmp(de->d_name, "cpu", 3) != 0 || !isdigit((unsigned char)de->d_name[3]))
			continue;
		id = strtol(de->d_name + 3, &end, 10);
		if (*end)
			continue;
		v = realloc(ids, (n + 1) * sizeof(*ids));
		if (!v) {
			free(ids);
			closedir(d);
			return -ENOMEM;
		}
		ids = v;
		ids[n++] = id;
	}
	closedir(d);
	qsort(ids, n, sizeof(*ids), guestinfo_cpu_cmp);
	*ret = ids;
	*ret_n = n;
	return 0;
}

/* 1 online, 0 offline; *can_offline: whether the online file exists (the boot
 * CPU usually has none). */
static int guestinfo_cpu_online(long id, bool *can_offline)
{
	char path[96], c = '1';
	int fd;

	snprintf(path, sizeof(path), GUESTINFO_CPU_DIR "/cpu%ld/online", id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	*can_offline = fd >= 0;
	if (fd < 0)
		return 1;
	if (read(fd, &c, 1) != 1)
		c = '1';
	close(fd);
	return c == '1';
}

static int guestinfo_vcpus(struct call *call, void *params)
{
	struct json_object *o, *list;
	size_t n = 0;
	long *ids = NULL;
	int r;

	r = guestinfo_cpus(&ids, &n);
	if (r < 0)
		return r;
	list = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_new_object();
		bool can_offline;
		int on = guestinfo_cpu_online(ids[i], &can_offline);

		json_object_object_add(e, "id", json_object_new_int64(ids[i]));
		json_object_object_add(e, "online", json_object_new_boolean(on));
		json_object_object_add(e, "can_offline", json_object_new_boolean(can_offline));
		json_object_array_add(list, e);
	}
	free(ids);
	o = json_object_new_object();
	json_object_object_add(o, "vcpus", list);
	call_reply(call, o);
	return 0;
}

struct guestinfo_set_vcpus_params {
	struct json_object *vcpus;
};

/* Apply entries in order and stop at the first failure, as QGA does: the
 * answer counts those applied; a failure of the very first is an error. */
static int guestinfo_set_vcpus(struct call *call, void *params)
{
	struct guestinfo_set_vcpus_params *a = params;
	size_t n = json_object_array_length(a->vcpus), done = 0;
	struct json_object *o;
	int err = 0;

	for (size_t i = 0; i < n && err == 0; i++) {
		struct json_object *e = json_object_array_get_idx(a->vcpus, i), *id, *on;
		bool can_offline, want;
		char path[96];
		int64_t cpu;
		int fd;

		if (!json_object_is_type(e, json_type_object) ||
			!json_object_object_get_ex(e, "id", &id) ||
			!json_object_is_type(id, json_type_int) ||
			!json_object_object_get_ex(e, "online", &on) ||
			!json_object_is_type(on, json_type_boolean)) {
			call_error(call,
				GL_RPC_INVALID_PARAMS, "Invalid parameter 'vcpus': each entry needs an integer id and a boolean online",
				NULL);
			return 0;
		}
		cpu = json_object_get_int64(id);
		want = json_object_get_boolean(on);
		if (cpu < 0 || cpu >= GUESTINFO_MAX_VCPUS) {
			err = -EINVAL;
			break;
		}
		if (guestinfo_cpu_online(cpu, &can_offline) == (int)want) {
			done++;
			continue;
		}
		if (!can_offline) {
			err = -EPERM;
			break;
		}
		snprintf(path, sizeof(path), GUESTINFO_CPU_DIR "/cpu%lld/online", (long long)cpu);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, want ? "1" : "0", 1) != 1)
			err = -errno;
		if (fd >= 0)
			close(fd);
		if (err == 0)
			done++;
	}
	if (err < 0 && done == 0) {
		call_os_error(call, err, "cannot change the state of the first vCPU");
		return 0;
	}
	o = json_object_new_object();
	json_object_object_add(o, "processed", json_object_new_int64((int64_t)done));
	call_reply(call, o);
	return 0;
}

static const struct method_param guestinfo_set_vcpus_params_table[] = {
	{ "vcpus", PARAM_ARRAY, offsetof(struct guestinfo_set_vcpus_params, vcpus), PARAM_MANDATORY,
		0, GUESTINFO_MAX_VCPUS, 0, NULL,
		"[{id, online}] in the order to apply; stops at the first failure" },
	{},
};

static const struct method guestinfo_methods[] = {
	{ "system.osinfo", "Operating system (os-release) and kernel (uname)", NULL, 0,
		guestinfo_osinfo, 0,
		"{\"type\":\"object\",\"properties\":{\"kernel_release\":{\"type\":\"string\"},"
		"\"kernel_version\":{\"type\":\"string\"},\"machine\":{\"type\":\"string\"},"
		"\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
		"\"pretty_name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
		"\"version_id\":{\"type\":\"string\"},\"variant\":{\"type\":\"string\"},"
		"\"variant_id\":{\"type\":\"string\"}}}" },
	{ "system.timezone", "The time zone in effect and its offset from UTC", NULL, 0,
		guestinfo_timezone, 0,
		"{\"type\":\"object\",\"properties\":{\"zone\":{\"type\":\"string\"},"
		"\"offset_s\":{\"type\":\"integer\"}}}" },
	{ "system.load", "Load averages over 1, 5 and 15 minutes", NULL, 0, guestinfo_load, 0,
		"{\"type\":\"object\",\"properties\":{\"load1\":{\"type\":\"number\"},"
		"\"load5\":{\"type\":\"number\"},\"load15\":{\"type\":\"number\"}}}" },
	{ "system.disks", "Disks and partitions with the PCI address of their controller", NULL, 0,
		guestinfo_disks, 0,
		"{\"type\":\"object\",\"properties\":{\"disks\":{\"type\":\"array\"}}}" },
	{ "system.vcpus", "Virtual CPUs: online, and whether they can go offline", NULL, 0,
		guestinfo_vcpus, 0,
		"{\"type\":\"object\",\"properties\":{\"vcpus\":{\"type\":\"array\",\"items\":"
		"{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
		"\"online\":{\"type\":\"boolean\"},\"can_offline\":{\"type\":\"boolean\"}}}}}}" },
	{ "system.set-vcpus", "Bring virtual CPUs online or offline", guestinfo_set_vcpus_params_table,
		sizeof(struct guestinfo_set_vcpus_params), guestinfo_set_vcpus, 0,
		"{\"type\":\"object\",\"properties\":{\"processed\":{\"type\":\"integer\"}}}" },
	{},
};

void methods_guestinfo_register(void)
{
	method_register(guestinfo_methods);
}
