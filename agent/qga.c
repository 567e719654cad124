/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The qemu-guest-agent (QGA) front end: the QMP-style envelope of QEMU's
 * docs/interop/qemu-ga.rst and qga/qapi-schema.json on top of the shared
 * dispatcher. `{"execute": NAME, "arguments": {...}, "id": ANY}` is answered
 * `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}` (plus the id
 * when one was given). Each command is one row: the JSON-RPC method it runs
 * (so policy, params checking and the implementation are the JSON-RPC ones),
 * how its arguments become that method's params, and how the method's result
 * becomes the QGA return value. Only guest-sync(-delimited), guest-info and
 * guest-file-close/-flush (handles live here) are answered here. Requests
 * are handled one at a time, in order, as qemu-ga does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestlink/jsonrpc.h>

#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "log.h"
#include "method.h"
#include "qga.h"
#include "base64.h"

/* The version guest-info reports: the qemu-ga release whose schema this follows. */
#define QGA_VERSION "7.2.0"
/* Handles of guest-exec (QGA pid -> exec id) remembered at once. */
#define QGA_MAX_EXEC 256
/* Bytes of one guest-file-read (qemu-ga's default count is 4096). */
#define QGA_FILE_READ_DEFAULT 4096
#define QGA_FILE_READ_MAX (48u * 1024 * 1024)
#define QGA_MAX_FILES 128
/* QGA's freeze lasts until guest-fsfreeze-thaw; fs.freeze insists on an
 * auto-thaw deadline: the longest it allows (fsfreeze.c), one hour. */
#define QGA_FREEZE_TIMEOUT_S 3600

#define QGA_NO_SUCCESS_RESPONSE (1u << 0) /* guest-shutdown, guest-suspend-*: nothing on success */
#define QGA_DELIMITED (1u << 1)           /* the answer is preceded by 0xFF */

/* One argument of a command (qapi-schema.json), checked before conversion. */
struct qga_arg {
	const char *name;
	enum json_type type;
	bool mandatory;
};

struct qga_command;
/* Arguments (checked against the rows; may be NULL) -> params of the method
 * (new object, or NULL for none). Returns 0, or -EINVAL with desc set. */
typedef int (*qga_args_fn)(struct json_object *args, struct json_object **ret_params, char *desc,
	size_t size);
/* The method's result (borrowed) -> the QGA return value (new object). */
typedef struct json_object *(*qga_return_fn)(struct json_object *result);
/* The same with the command's arguments (borrowed; may be NULL). NULL with
 * desc set: the command fails after all (GenericError). */
typedef struct json_object *(*qga_return_args_fn)(struct json_object *result,
	struct json_object *args, char *desc, size_t size);
/* Commands answered by the front end itself. */
typedef int (
	*qga_local_fn)(struct json_object *args, struct json_object **ret, char *desc, size_t size);

/* One member renamed between QGA and the method (from -> to). */
struct qga_rename {
	const char *from, *to;
};

struct qga_command {
	const char *name;
	const char *method; /* NULL: answered by .local */
	const struct qga_arg *args;
	qga_args_fn to_params;
	qga_return_fn to_return;
	/* When the shape only renames: arguments -> params, result -> return. */
	const struct qga_rename *params_map, *return_map;
	qga_return_args_fn to_return_args;
	/* The method for these arguments when it depends on them (else .method,
	 * which guest-info's "enabled" then reflects). */
	const char *(*pick)(struct json_object *args);
	qga_local_fn local;
	unsigned flags;
};

/* A call in flight: which command it runs and the request's id, if any. */
struct qga_call {
	const struct qga_command *cmd;
	struct json_object *id;   /* owned; NULL when the request had none */
	struct json_object *args; /* owned; NULL when the request had none */
};

static struct log_ratelimit qga_rl = LOG_RATELIMIT_INIT(5000, 10);

/* --- helpers --- */

static struct json_object *qga_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (o && json_object_is_type(o, json_type_object))
		json_object_object_get_ex(o, key, &v);
	return v;
}

/* Copy o[key] to params[pkey] when present (json_object_get: shared). */
static void qga_copy(struct json_object *params, const char *pkey, struct json_object *o,
	const char *key)
{
	struct json_object *v = qga_get(o, key);

	if (v)
		json_object_object_add(params, pkey, json_object_get(v));
}

static void qga_rename(struct json_object *to, const char *to_key, struct json_object *from,
	const char *from_key)
{
	qga_copy(to, to_key, from, from_key);
}

/* A new object with map's members of from, renamed (absent ones left out). */
static struct json_object *qga_map(struct json_object *from, const struct qga_rename *map)
{
	struct json_object *o = json_object_new_object();

	for (; o && map && map->from; map++)
		qga_copy(o, map->to, from, map->from);
	return o;
}

static struct json_object *qga_empty(struct json_object *result)
{
	(void)result;
	return json_object_new_object();
}

static const char *qga_type_name(enum json_type t)
{
	switch (t) {
	case json_type_int:
		return "integer";
	case json_type_boolean:
		return "boolean";
	case json_type_string:
		return "string";
	case json_type_array:
		return "array";
	case json_type_object:
		return "object";
	default:
		return "value";
	}
}

/* The checks qemu-ga's generated unmarshalling makes: known names, types,
 * mandatory members. */
static int qga_check_args(const struct qga_command *cmd, struct json_object *args, char *desc,
	size_t size)
{
	const struct qga_arg *a;

	if (args) {
		json_object_object_foreach (args, key, v) {
			for (a = cmd->args; a && a->name; a++)
				if (strcmp(a->name, key) == 0)
					break;
			if (!a || !a->name) {
				char esc[64];
				snprintf(desc, size, "Parameter '%s' is unexpected",
					log_escape(esc, sizeof(esc), key, strlen(key)));
				return -EINVAL;
			}
			/* A double accepts an integer too (JSON has one number type). */
			/* json_type_null in a row: any type (QGA's alternates). */
			if (a->type != json_type_null && !json_object_is_type(v, a->type) &&
				!(a->type == json_type_double &&
					json_object_is_type(v, json_type_int))) {
				snprintf(desc, size, "Invalid parameter type for '%s', expected: %s",
					a->name, qga_type_name(a->type));
				return -EINVAL;
			}
		}
	}
	for (a = cmd->args; a && a->name; a++)
		if (a->mandatory && !qga_get(args, a->name)) {
			snprintf(desc, size, "Parameter '%s' is missing", a->name);
			return -EINVAL;
		}
	return 0;
}

/* --- guest-sync, guest-info --- */

static const struct qga_arg qga_sync_args[] = {
	{ "id", json_type_int, true },
	{},
};

static int qga_sync(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	/* The id is echoed exactly (qemu-ga answers the integer it was given). */
	*ret = json_object_get(qga_get(args, "id"));
	return 0;
}

static int qga_info(struct json_object *args, struct json_object **ret, char *desc, size_t size);

/* --- argument and result shapes, one pair per command family --- */

/* guest-get-time: nanoseconds since the epoch. */
static struct json_object *qga_time_return(struct json_object *r)
{
	int64_t s = json_object_get_int64(qga_get(r, "seconds"));
	int64_t ns = json_object_get_int64(qga_get(r, "nanoseconds"));

	return json_object_new_int64(s * 1000000000 + ns);
}

static const struct qga_arg qga_set_time_args[] = {
	{ "time", json_type_int, false },
	{},
};

static int qga_set_time_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct json_object *p = json_object_new_object(), *t = qga_get(args, "time");

	if (!p)
		return -ENOMEM;
	if (t) {
		int64_t ns = json_object_get_int64(t);
		if (ns <= 0) {
			json_object_put(p);
			snprintf(desc, size, "Invalid parameter 'time'");
			return -EINVAL;
		}
		json_object_object_add(p, "seconds", json_object_new_int64(ns / 1000000000));
		json_object_object_add(p, "nanoseconds", json_object_new_int64(ns % 1000000000));
		/* QGA writes the new time to the hardware clock too. */
		json_object_object_add(p, "rtc", json_object_new_string("write"));
	} else
		/* Without a time QGA sets the system clock from the hardware clock. */
		json_object_object_add(p, "rtc", json_object_new_string("read"));
	*ret = p;
	return 0;
}

/* guest-get-users: one entry per user, with the earliest login (seconds, as
 * a number with a fraction), as qemu-ga merges sessions. */
static struct json_object *qga_users_return(struct json_object *r)
{
	struct json_object *users = qga_get(r, "users"), *out = json_object_new_array();
	size_t n = users && json_object_is_type(users, json_type_array)
			   ? json_object_array_length(users)
			   : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *u = json_object_array_get_idx(users, i);
		const char *name = json_object_get_string(qga_get(u, "user"));
		double t = (double)json_object_get_int64(qga_get(u, "login_time"));
		size_t k, m = json_object_array_length(out);

		if (!name)
			continue;
		for (k = 0; k < m; k++) {
			struct json_object *e = json_object_array_get_idx(out, k);
			if (strcmp(json_object_get_string(qga_get(e, "user")), name) == 0) {
				if (t < json_object_get_double(qga_get(e, "login-time")))
					json_object_object_add(e, "login-time",
						json_object_new_double(t));
				break;
			}
		}
		if (k == m) {
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "user", json_object_new_string(name));
			json_object_object_add(e, "login-time", json_object_new_double(t));
			json_object_array_add(out, e);
		}
	}
	return out;
}

/* network-get-interfaces: qapi GuestNetworkInterface. */
static struct json_object *qga_interfaces_return(struct json_object *r)
{
	static const struct {
		const char *from, *to;
	} stats[] = {
		{ "rx_bytes", "rx-bytes" },
		{ "rx_packets", "rx-packets" },
		{ "rx_errors", "rx-errs" },
		{ "rx_dropped", "rx-dropped" },
		{ "tx_bytes", "tx-bytes" },
		{ "tx_packets", "tx-packets" },
		{ "tx_errors", "tx-errs" },
		{ "tx_dropped", "tx-dropped" },
	};
	struct json_object *ifs = qga_get(r, "interfaces"), *out = json_object_new_array();
	size_t n = ifs && json_object_is_type(ifs, json_type_array) ? json_object_array_length(ifs)
								    : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(ifs, i);
		struct json_object *e = json_object_new_object(), *addrs = qga_get(f, "addresses");
		struct json_object *ips = json_object_new_array(), *st = qga_get(f, "statistics");
		size_t m = addrs ? json_object_array_length(addrs) : 0;

		qga_rename(e, "name", f, "name");
		qga_rename(e, "hardware-address", f, "mac");
		for (size_t k = 0; k < m; k++) {
			struct json_object *a = json_object_array_get_idx(addrs, k);
			struct json_object *ip = json_object_new_object();
			const char *fam = json_object_get_string(qga_get(a, "family"));

			json_object_object_add(ip, "ip-address-type",
				json_object_new_string(
					fam && strcmp(fam, "inet6") == 0 ? "ipv6" : "ipv4"));
			qga_rename(ip, "ip-address", a, "address");
			qga_rename(ip, "prefix", a, "prefix");
			json_object_array_add(ips, ip);
		}
		/* qemu-ga reports addresses, and statistics with them, only for an
		 * interface that has an address. */
		if (m == 0) {
			json_object_put(ips);
			json_object_array_add(out, e);
			continue;
		}
		json_object_object_add(e, "ip-addresses", ips);
		if (st) {
			struct json_object *s = json_object_new_object();
			for (size_t k = 0; k < sizeof(stats) / sizeof(stats[0]); k++)
				qga_rename(s, stats[k].to, st, stats[k].from);
			json_object_object_add(e, "statistics", s);
		}
		json_object_array_add(out, e);
	}
	return out;
}

/* qapi GuestDiskAddress from system.disks' / system.filesystems' address. */
static const struct qga_rename qga_address_map[] = {
	{ "pci_controller", "pci-controller" },
	{ "bus_type", "bus-type" },
	{ "bus", "bus" },
	{ "target", "target" },
	{ "unit", "unit" },
	{ "serial", "serial" },
	{ "dev", "dev" },
	{},
};

static struct json_object *qga_addresses(struct json_object *list)
{
	struct json_object *out = json_object_new_array();
	size_t n = list && json_object_is_type(list, json_type_array)
			   ? json_object_array_length(list)
			   : 0;

	for (size_t i = 0; out && i < n; i++)
		json_object_array_add(out,
			qga_map(json_object_array_get_idx(list, i), qga_address_map));
	return out;
}

/* guest-get-disks: qapi GuestDiskInfo. */
static struct json_object *qga_disks_return(struct json_object *r)
{
	struct json_object *disks = qga_get(r, "disks"), *out = json_object_new_array();
	size_t n = disks && json_object_is_type(disks, json_type_array)
			   ? json_object_array_length(disks)
			   : 0;

	for (size_t i = 0; out && i < n; i++) {
		struct json_object *d = json_object_array_get_idx(disks, i);
		struct json_object *e = json_object_new_object();

		qga_rename(e, "name", d, "name");
		qga_rename(e, "partition", d, "partition");
		qga_rename(e, "dependencies", d, "dependencies");
		if (qga_get(d, "address"))
			json_object_object_add(e, "address",
				qga_map(qga_get(d, "address"), qga_address_map));
		json_object_array_add(out, e);
	}
	return out;
}

/* guest-get-fsinfo: qapi GuestFilesystemInfo, for filesystems on block
 * devices (as qemu-ga lists them). Sizes as qemu-ga counts them: used =
 * blocks - free, total = used + available to unprivileged users. */
static struct json_object *qga_fsinfo_return(struct json_object *r)
{
	struct json_object *fss = qga_get(r, "filesystems"), *out = json_object_new_array();
	size_t n = fss && json_object_is_type(fss, json_type_array) ? json_object_array_length(fss)
								    : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(fss, i), *e;
		const char *dev = json_object_get_string(qga_get(f, "device"));
		const char *base;

		if (!dev || strncmp(dev, "/dev/", 5) != 0)
			continue;
		base = strrchr(dev, '/') + 1;
		if (qga_get(f, "block_device"))
			base = json_object_get_string(qga_get(f, "block_device"));
		e = json_object_new_object();
		json_object_object_add(e, "name", json_object_new_string(base));
		qga_rename(e, "mountpoint", f, "mountpoint");
		qga_rename(e, "type", f, "type");
		if (qga_get(f, "total_bytes")) {
			int64_t total = json_object_get_int64(qga_get(f, "total_bytes"));
			int64_t freeb = json_object_get_int64(qga_get(f, "free_bytes"));
			int64_t avail = json_object_get_int64(qga_get(f, "available_bytes"));
			json_object_object_add(e, "used-bytes", json_object_new_int64(total - freeb));
			json_object_object_add(e, "total-bytes",
				json_object_new_int64(total - freeb + avail));
		}
		json_object_object_add(e, "disk", qga_addresses(qga_get(f, "disk")));
		json_object_array_add(out, e);
	}
	return out;
}

/* --- fsfreeze --- */

static const struct qga_arg qga_freeze_list_args[] = {
	{ "mountpoints", json_type_array, false },
	{},
};

static int qga_freeze_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct json_object *p = json_object_new_object();

	if (!p)
		return -ENOMEM;
	qga_copy(p, "mountpoints", args, "mountpoints");
	json_object_object_add(p, "timeout_s", json_object_new_int64(QGA_FREEZE_TIMEOUT_S));
	*ret = p;
	return 0;
}

static struct json_object *qga_freeze_return(struct json_object *r)
{
	struct json_object *m = qga_get(r, "mountpoints");

	return json_object_new_int64(m ? (int64_t)json_object_array_length(m) : 0);
}

static struct json_object *qga_thaw_return(struct json_object *r)
{
	return json_object_new_int64(json_object_get_int64(qga_get(r, "thawed")));
}

static struct json_object *qga_freeze_status_return(struct json_object *r)
{
	return json_object_new_string(
		json_object_get_boolean(qga_get(r, "frozen")) ? "frozen" : "thawed");
}

static const struct qga_arg qga_fstrim_args[] = {
	{ "minimum", json_type_int, false },
	{},
};

static struct json_object *qga_fstrim_return(struct json_object *r)
{
	struct json_object *fss = qga_get(r, "filesystems"), *paths = json_object_new_array();
	struct json_object *o = json_object_new_object();
	size_t n = fss ? json_object_array_length(fss) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(fss, i);
		struct json_object *e = json_object_new_object();

		qga_rename(e, "path", f, "mountpoint");
		qga_rename(e, "error", f, "error");
		qga_rename(e, "trimmed", f, "trimmed");
		json_object_array_add(paths, e);
	}
	json_object_object_add(o, "paths", paths);
	return o;
}

/* --- shutdown --- */

static const struct qga_arg qga_shutdown_args[] = {
	{ "mode", json_type_string, false },
	{},
};

static int qga_shutdown_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	static const struct {
		const char *qga, *mode;
	} modes[] = { { "powerdown", "poweroff" }, { "halt", "halt" }, { "reboot", "reboot" } };
	const char *m = json_object_get_string(qga_get(args, "mode"));
	struct json_object *p;
	size_t i;

	if (!m)
		m = "powerdown";
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(modes[i].qga, m) == 0)
			break;
	if (i == sizeof(modes) / sizeof(modes[0])) {
		snprintf(desc, size, "Invalid parameter 'mode'");
		return -EINVAL;
	}
	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	json_object_object_add(p, "mode", json_object_new_string(modes[i].mode));
	*ret = p;
	return 0;
}

/* --- suspend: no answer on success, as shutdown --- */

static int qga_suspend_params(const char *mode, struct json_object **ret)
{
	struct json_object *p = json_object_new_object();

	if (!p)
		return -ENOMEM;
	json_object_object_add(p, "mode", json_object_new_string(mode));
	*ret = p;
	return 0;
}

static int qga_suspend_ram(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	return qga_suspend_params("ram", ret);
}

static int qga_suspend_disk(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	return qga_suspend_params("disk", ret);
}

static int qga_suspend_hybrid(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	return qga_suspend_params("hybrid", ret);
}

/* --- exec --- */

/* QGA names a process by its pid; exec.* by an id. */
static struct {
	int64_t pid, id;
} qga_exec[QGA_MAX_EXEC];
static size_t qga_exec_next;

static const struct qga_arg qga_exec_args[] = {
	{ "path", json_type_string, true },
	{ "arg", json_type_array, false },
	{ "env", json_type_array, false },
	{ "input-data", json_type_string, false },
	{ "capture-output", json_type_boolean, false },
	{},
};

static int qga_exec_params(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	struct json_object *p = json_object_new_object(), *argv = json_object_new_array();
	struct json_object *arg = qga_get(args, "arg");
	size_t n = arg ? json_object_array_length(arg) : 0;

	if (!p || !argv) {
		json_object_put(p);
		json_object_put(argv);
		return -ENOMEM;
	}
	/* Element types in QGA's words (QAPI's "arg[N]"): exec.start would
	 * name them argv[N + 1]. */
	for (int k = 0; k < 2; k++) {
		const char *name = k ? "env" : "arg";
		struct json_object *list = qga_get(args, name);

		for (size_t i = 0; list && i < json_object_array_length(list); i++)
			if (!json_object_is_type(json_object_array_get_idx(list, i),
				    json_type_string)) {
				snprintf(desc, size,
					"Invalid parameter type for '%s[%zu]', expected: string",
					name, i);
				json_object_put(p);
				json_object_put(argv);
				return -EINVAL;
			}
	}
	json_object_array_add(argv, json_object_get(qga_get(args, "path")));
	for (size_t i = 0; i < n; i++)
		json_object_array_add(argv, json_object_get(json_object_array_get_idx(arg, i)));
	json_object_object_add(p, "argv", argv); /* element types: exec.start checks them */
	qga_copy(p, "env", args, "env");
	qga_copy(p, "stdin", args, "input-data");
	json_object_object_add(p, "capture",
		json_object_new_string(json_object_get_boolean(qga_get(args, "capture-output"))
					       ? "separate"
					       : "none"));
	*ret = p;
	return 0;
}

static struct json_object *qga_exec_return(struct json_object *r)
{
	struct json_object *o = json_object_new_object();
	int64_t pid = json_object_get_int64(qga_get(r, "pid"));

	qga_exec[qga_exec_next].pid = pid;
	qga_exec[qga_exec_next].id = json_object_get_int64(qga_get(r, "id"));
	qga_exec_next = (qga_exec_next + 1) % QGA_MAX_EXEC;
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	return o;
}

static const struct qga_arg qga_exec_status_args[] = {
	{ "pid", json_type_int, true },
	{},
};

static int qga_exec_status_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	int64_t pid = json_object_get_int64(qga_get(args, "pid"));
	struct json_object *p;

	for (size_t i = 0; i < QGA_MAX_EXEC; i++)
		if (qga_exec[i].id > 0 && qga_exec[i].pid == pid) {
			p = json_object_new_object();
			if (!p)
				return -ENOMEM;
			json_object_object_add(p, "id", json_object_new_int64(qga_exec[i].id));
			*ret = p;
			return 0;
		}
	snprintf(desc, size, "Invalid parameter 'pid'");
	return -EINVAL;
}

static struct json_object *qga_exec_status_return(struct json_object *r)
{
	struct json_object *o = json_object_new_object();
	bool exited = !json_object_get_boolean(qga_get(r, "running"));

	json_object_object_add(o, "exited", json_object_new_boolean(exited));
	if (!exited)
		return o;
	qga_rename(o, "exitcode", r, "code");
	qga_rename(o, "signal", r, "signal");
	qga_rename(o, "out-data", r, "stdout");
	qga_rename(o, "err-data", r, "stderr");
	/* With captured output qemu-ga always says whether it was cut. */
	if (qga_get(r, "stdout") || qga_get(r, "stderr")) {
		bool cut = json_object_get_boolean(qga_get(r, "truncated"));
		json_object_object_add(o, "out-truncated", json_object_new_boolean(cut));
		json_object_object_add(o, "err-truncated", json_object_new_boolean(cut));
	}
	return o;
}

/* --- osinfo, timezone, load, vcpus --- */

static struct json_object *qga_load_return(struct json_object *r)
{
	return json_object_get(r);
}

static struct json_object *qga_vcpus_return(struct json_object *r)
{
	struct json_object *v = qga_get(r, "vcpus"), *out = json_object_new_array();
	size_t n = v ? json_object_array_length(v) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(v, i);
		struct json_object *e = json_object_new_object();

		qga_rename(e, "online", c, "online");
		qga_rename(e, "can-offline", c, "can_offline");
		qga_rename(e, "logical-id", c, "id");
		json_object_array_add(out, e);
	}
	return out;
}

static const struct qga_arg qga_set_vcpus_args[] = {
	{ "vcpus", json_type_array, true },
	{},
};

static int qga_set_vcpus_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct json_object *in = qga_get(args, "vcpus"), *p, *list = json_object_new_array();
	size_t n = json_object_array_length(in);

	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *c = json_object_array_get_idx(in, i), *e;

		if (!qga_get(c, "logical-id") || !qga_get(c, "online")) {
			json_object_put(list);
			snprintf(desc, size, "Parameter '%s' is missing",
				qga_get(c, "logical-id") ? "online" : "logical-id");
			return -EINVAL;
		}
		e = json_object_new_object();
		qga_copy(e, "id", c, "logical-id");
		qga_copy(e, "online", c, "online");
		json_object_array_add(list, e);
	}
	p = json_object_new_object();
	if (!p) {
		json_object_put(list);
		return -ENOMEM;
	}
	json_object_object_add(p, "vcpus", list);
	*ret = p;
	return 0;
}

static struct json_object *qga_set_vcpus_return(struct json_object *r)
{
	return json_object_new_int64(json_object_get_int64(qga_get(r, "processed")));
}

/* --- accounts --- */

static const struct qga_arg qga_password_args[] = {
	{ "username", json_type_string, true },
	{ "password", json_type_string, true },
	{ "crypted", json_type_boolean, true },
	{},
};

/* QGA sends the password base64-encoded; user.set-password takes its text. */
static int qga_password_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	const char *b64 = json_object_get_string(qga_get(args, "password"));
	struct json_object *p;
	size_t len;
	void *raw = NULL;

	if (gl_base64_decode(b64, strlen(b64), &raw, &len) < 0 || memchr(raw, 0, len)) {
		if (raw)
			free(raw);
		snprintf(desc, size, "Invalid parameter 'password': not base64 of a text");
		return -EINVAL;
	}
	p = json_object_new_object();
	if (!p) {
		free(raw);
		return -ENOMEM;
	}
	qga_copy(p, "user", args, "username");
	json_object_object_add(p, "password", json_object_new_string_len(raw, (int)len));
	qga_copy(p, "crypted", args, "crypted");
	explicit_bzero(raw, len);
	free(raw);
	*ret = p;
	return 0;
}

static const struct qga_arg qga_keys_get_args[] = {
	{ "username", json_type_string, true },
	{},
};

static const struct qga_arg qga_keys_add_args[] = {
	{ "username", json_type_string, true },
	{ "keys", json_type_array, true },
	{ "reset", json_type_boolean, false },
	{},
};

static const struct qga_arg qga_keys_remove_args[] = {
	{ "username", json_type_string, true },
	{ "keys", json_type_array, true },
	{},
};

/* --- files: QGA's handles over the stateless file.* methods --- */

/* An open QGA file: its path and position; each read or write is one
 * file.read / file.write at that position. Handles are global, as qemu-ga's. */
static struct qga_file {
	char *path;
	int64_t pos;
	bool readable, writable, append;
} qga_files[QGA_MAX_FILES];
#define QGA_FILE_HANDLE_BASE 1000

static struct qga_file *qga_file_get(struct json_object *args, char *desc, size_t size)
{
	int64_t h = json_object_get_int64(qga_get(args, "handle"));

	if (h >= QGA_FILE_HANDLE_BASE && h < QGA_FILE_HANDLE_BASE + QGA_MAX_FILES)
		h -= QGA_FILE_HANDLE_BASE;
	else
		h = -1;
	if (h < 0 || !qga_files[h].path) {
		snprintf(desc, size, "handle '%lld' has not been found",
			(long long)json_object_get_int64(qga_get(args, "handle")));
		return NULL;
	}
	return &qga_files[h];
}

/* fopen(3) modes, as qemu-ga takes them. */
static const struct {
	const char *mode;
	bool readable, writable, append, truncate, must_exist;
} qga_file_modes[] = {
	{ "r", true, false, false, false, true },
	{ "rb", true, false, false, false, true },
	{ "r+", true, true, false, false, true },
	{ "rb+", true, true, false, false, true },
	{ "r+b", true, true, false, false, true },
	{ "w", false, true, false, true, false },
	{ "wb", false, true, false, true, false },
	{ "w+", true, true, false, true, false },
	{ "wb+", true, true, false, true, false },
	{ "w+b", true, true, false, true, false },
	{ "a", false, true, true, false, false },
	{ "ab", false, true, true, false, false },
	{ "a+", true, true, true, false, false },
	{ "ab+", true, true, true, false, false },
	{ "a+b", true, true, true, false, false },
};

static int qga_file_mode(struct json_object *args)
{
	const char *m = json_object_get_string(qga_get(args, "mode"));

	if (!m)
		m = "r";
	for (size_t i = 0; i < sizeof(qga_file_modes) / sizeof(qga_file_modes[0]); i++)
		if (strcmp(qga_file_modes[i].mode, m) == 0)
			return (int)i;
	return -1;
}

static const char *qga_file_open_method(struct json_object *args)
{
	int m = qga_file_mode(args);

	return m >= 0 && qga_file_modes[m].must_exist ? "file.stat" : "file.write";
}

static const struct qga_arg qga_file_open_args[] = {
	{ "path", json_type_string, true },
	{ "mode", json_type_string, false },
	{},
};

static int qga_file_open_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	int m = qga_file_mode(args);
	struct json_object *p;

	if (m < 0) {
		snprintf(desc, size, "Invalid parameter 'mode'");
		return -EINVAL;
	}
	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	qga_copy(p, "path", args, "path");
	/* Opening for writing creates (and for "w" truncates) the file now. */
	if (!qga_file_modes[m].must_exist) {
		json_object_object_add(p, "data", json_object_new_string(""));
		if (qga_file_modes[m].append)
			json_object_object_add(p, "append", json_object_new_boolean(true));
		else {
			json_object_object_add(p, "offset", json_object_new_int64(0));
			json_object_object_add(p, "truncate",
				json_object_new_boolean(qga_file_modes[m].truncate));
		}
	}
	*ret = p;
	return 0;
}

static struct json_object *qga_file_open_return(struct json_object *r, struct json_object *args,
	char *desc, size_t size)
{
	int m = qga_file_mode(args);

	for (size_t i = 0; i < QGA_MAX_FILES; i++) {
		struct qga_file *f = &qga_files[i];

		if (f->path)
			continue;
		f->path = strdup(json_object_get_string(qga_get(args, "path")));
		if (!f->path)
			break;
		f->pos = 0;
		f->readable = qga_file_modes[m].readable;
		f->writable = qga_file_modes[m].writable;
		f->append = qga_file_modes[m].append;
		return json_object_new_int64((int64_t)i + QGA_FILE_HANDLE_BASE);
	}
	snprintf(desc, size, "too many open files (%d)", QGA_MAX_FILES);
	return NULL;
}

static const struct qga_arg qga_file_handle_args[] = {
	{ "handle", json_type_int, true },
	{},
};

static int qga_file_close(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);

	if (!f)
		return -EINVAL;
	free(f->path);
	*f = (struct qga_file){ 0 };
	*ret = json_object_new_object();
	return 0;
}

/* Writes are in place and synchronous: nothing is buffered to flush. */
static int qga_file_flush(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	if (!qga_file_get(args, desc, size))
		return -EINVAL;
	*ret = json_object_new_object();
	return 0;
}

static const struct qga_arg qga_file_read_args[] = {
	{ "handle", json_type_int, true },
	{ "count", json_type_int, false },
	{},
};

static int qga_file_read_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);
	struct json_object *c = qga_get(args, "count"), *p;
	int64_t count = c ? json_object_get_int64(c) : QGA_FILE_READ_DEFAULT;

	if (!f)
		return -EINVAL;
	if (!f->readable) {
		snprintf(desc, size, "file not open for reading");
		return -EINVAL;
	}
	if (count < 0 || count > (int64_t)QGA_FILE_READ_MAX) {
		snprintf(desc, size, "value '%lld' is invalid for argument count", (long long)count);
		return -EINVAL;
	}
	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	json_object_object_add(p, "path", json_object_new_string(f->path));
	json_object_object_add(p, "offset", json_object_new_int64(f->pos));
	json_object_object_add(p, "length", json_object_new_int64(count));
	*ret = p;
	return 0;
}

/* Bytes a base64 text decodes to. */
static int64_t qga_b64_len(const char *s)
{
	size_t n = strlen(s);

	if (n < 4)
		return 0;
	return (int64_t)(n / 4 * 3) - (s[n - 1] == '=') - (s[n - 2] == '=');
}

static struct json_object *qga_file_read_return(struct json_object *r, struct json_object *args,
	char *desc, size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);
	const char *data = json_object_get_string(qga_get(r, "data"));
	struct json_object *o;
	int64_t n;

	if (!f || !data)
		return NULL;
	n = qga_b64_len(data);
	f->pos += n;
	o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64(n));
	json_object_object_add(o, "buf-b64", json_object_new_string(data));
	json_object_object_add(o, "eof",
		json_object_new_boolean(json_object_get_boolean(qga_get(r, "eof"))));
	return o;
}

static const struct qga_arg qga_file_write_args[] = {
	{ "handle", json_type_int, true },
	{ "buf-b64", json_type_string, true },
	{ "count", json_type_int, false },
	{},
};

static int qga_file_write_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);
	const char *b64 = json_object_get_string(qga_get(args, "buf-b64"));
	struct json_object *c = qga_get(args, "count"), *p;
	int64_t have = qga_b64_len(b64), count = c ? json_object_get_int64(c) : have;

	if (!f)
		return -EINVAL;
	if (!f->writable) {
		snprintf(desc, size, "file not open for writing");
		return -EINVAL;
	}
	if (count < 0 || count > have) {
		snprintf(desc, size, "value '%lld' is invalid for argument count", (long long)count);
		return -EINVAL;
	}
	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	json_object_object_add(p, "path", json_object_new_string(f->path));
	if (count == have)
		json_object_object_add(p, "data", json_object_new_string(b64));
	else {
		/* Only the first count bytes: decode, cut, encode again. */
		void *raw = NULL;
		char *text = NULL;
		size_t len, tlen;

		if (gl_base64_decode(b64, strlen(b64), &raw, &len) < 0 ||
			gl_base64_encode(raw, (size_t)count, &text, &tlen) < 0) {
			free(raw);
			json_object_put(p);
			snprintf(desc, size, "Invalid parameter 'buf-b64'");
			return -EINVAL;
		}
		json_object_object_add(p, "data", json_object_new_string_len(text, (int)tlen));
		free(raw);
		free(text);
	}
	if (f->append)
		json_object_object_add(p, "append", json_object_new_boolean(true));
	else
		json_object_object_add(p, "offset", json_object_new_int64(f->pos));
	json_object_object_add(p, "create", json_object_new_boolean(false));
	*ret = p;
	return 0;
}

static struct json_object *qga_file_write_return(struct json_object *r, struct json_object *args,
	char *desc, size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);
	struct json_object *c = qga_get(args, "count"), *o;
	int64_t n = c ? json_object_get_int64(c)
		      : qga_b64_len(json_object_get_string(qga_get(args, "buf-b64")));

	if (!f)
		return NULL;
	f->pos += n;
	o = json_object_new_object();
	json_object_object_add(o, "count", json_object_new_int64(n));
	json_object_object_add(o, "eof", json_object_new_boolean(false));
	return o;
}

static const struct qga_arg qga_file_seek_args[] = {
	{ "handle", json_type_int, true },
	{ "offset", json_type_int, true },
	{ "whence", json_type_null, true }, /* 0/1/2 or "set"/"cur"/"end" */
	{},
};

static int qga_file_seek_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct qga_file *f = qga_file_get(args, desc, size);
	struct json_object *p;

	if (!f)
		return -EINVAL;
	p = json_object_new_object();
	if (!p)
		return -ENOMEM;
	/* The size is needed for "end" and for eof. */
	json_object_object_add(p, "path", json_object_new_string(f->path));
	*ret = p;
	return 0;
}

static struct json_object *qga_file_seek_return(struct json_object *r, struct json_object *args,
	char *desc, size_t size)
{
	static const char *const names[] = { "set", "cur", "end" };
	struct qga_file *f = qga_file_get(args, desc, size);
	struct json_object *w = qga_get(args, "whence"), *o;
	int64_t off = json_object_get_int64(qga_get(args, "offset"));
	int64_t fsize = json_object_get_int64(qga_get(r, "size")), base, pos;
	int whence = -1;

	if (!f)
		return NULL;
	if (json_object_is_type(w, json_type_int) && json_object_get_int64(w) >= 0 &&
		json_object_get_int64(w) <= 2)
		whence = (int)json_object_get_int64(w);
	else if (json_object_is_type(w, json_type_string))
		for (int i = 0; i < 3; i++)
			if (strcmp(names[i], json_object_get_string(w)) == 0)
				whence = i;
	if (whence < 0) {
		snprintf(desc, size, "Invalid parameter 'whence'");
		return NULL;
	}
	base = whence == 0 ? 0 : whence == 1 ? f->pos : fsize;
	/* Beyond INT64_MAX / 2, file.read and file.write (the offset range of
	 * agent/methods/file.c) could not go on from there: refused here, as
	 * lseek(2) refuses what the file system cannot hold. */
	if (__builtin_add_overflow(base, off, &pos) || pos < 0 || pos > INT64_MAX / 2) {
		snprintf(desc, size, "failed to seek file: Invalid argument");
		return NULL;
	}
	f->pos = pos;
	o = json_object_new_object();
	json_object_object_add(o, "position", json_object_new_int64(pos));
	json_object_object_add(o, "eof", json_object_new_boolean(pos >= fsize));
	return o;
}

/* --- members that are only renamed --- */

static const struct qga_rename qga_host_name_map[] = { { "hostname", "host-name" }, {} };
static const struct qga_rename qga_timezone_map[] = {
	{ "zone", "zone" },
	{ "offset_s", "offset" },
	{},
};
static const struct qga_rename qga_osinfo_map[] = {
	{ "kernel_release", "kernel-release" },
	{ "kernel_version", "kernel-version" },
	{ "machine", "machine" },
	{ "id", "id" },
	{ "name", "name" },
	{ "pretty_name", "pretty-name" },
	{ "version", "version" },
	{ "version_id", "version-id" },
	{ "variant", "variant" },
	{ "variant_id", "variant-id" },
	{},
};
static const struct qga_rename qga_fstrim_map[] = { { "minimum", "minimum" }, {} };
static const struct qga_rename qga_keys_params_map[] = {
	{ "username", "user" },
	{ "keys", "keys" },
	{ "reset", "reset" },
	{},
};
static const struct qga_rename qga_keys_return_map[] = { { "keys", "keys" }, {} };

/* --- the table --- */

static const struct qga_command qga_commands[] = {
	{ .name = "guest-sync-delimited",
		.args = qga_sync_args,
		.local = qga_sync,
		.flags = QGA_DELIMITED },
	{ .name = "guest-sync", .args = qga_sync_args, .local = qga_sync },
	{ .name = "guest-ping", .method = "agent.ping", .to_return = qga_empty },
	{ .name = "guest-info", .local = qga_info },
	{ .name = "guest-get-time", .method = "system.time", .to_return = qga_time_return },
	{ .name = "guest-set-time",
		.method = "system.set-time",
		.args = qga_set_time_args,
		.to_params = qga_set_time_params,
		.to_return = qga_empty },
	{ .name = "guest-fsfreeze-status",
		.method = "fs.status",
		.to_return = qga_freeze_status_return },
	{ .name = "guest-fsfreeze-freeze",
		.method = "fs.freeze",
		.to_params = qga_freeze_params,
		.to_return = qga_freeze_return },
	{ .name = "guest-fsfreeze-freeze-list",
		.method = "fs.freeze",
		.args = qga_freeze_list_args,
		.to_params = qga_freeze_params,
		.to_return = qga_freeze_return },
	{ .name = "guest-fsfreeze-thaw", .method = "fs.thaw", .to_return = qga_thaw_return },
	{ .name = "guest-fstrim",
		.method = "fs.trim",
		.args = qga_fstrim_args,
		.params_map = qga_fstrim_map,
		.to_return = qga_fstrim_return },
	{ .name = "guest-get-host-name", .method = "system.hostname", .return_map = qga_host_name_map },
	{ .name = "guest-network-get-interfaces",
		.method = "system.network",
		.to_return = qga_interfaces_return },
	{ .name = "guest-get-fsinfo", .method = "system.filesystems", .to_return = qga_fsinfo_return },
	{ .name = "guest-get-users", .method = "system.users", .to_return = qga_users_return },
	{ .name = "guest-get-disks", .method = "system.disks", .to_return = qga_disks_return },
	{ .name = "guest-get-osinfo", .method = "system.osinfo", .return_map = qga_osinfo_map },
	{ .name = "guest-get-timezone", .method = "system.timezone", .return_map = qga_timezone_map },
	{ .name = "guest-get-load", .method = "system.load", .to_return = qga_load_return },
	{ .name = "guest-get-vcpus", .method = "system.vcpus", .to_return = qga_vcpus_return },
	{ .name = "guest-set-vcpus",
		.method = "system.set-vcpus",
		.args = qga_set_vcpus_args,
		.to_params = qga_set_vcpus_params,
		.to_return = qga_set_vcpus_return },
	{ .name = "guest-shutdown",
		.method = "system.shutdown",
		.args = qga_shutdown_args,
		.to_params = qga_shutdown_params,
		.to_return = qga_empty,
		.flags = QGA_NO_SUCCESS_RESPONSE },
	{ .name = "guest-set-user-password",
		.method = "user.set-password",
		.args = qga_password_args,
		.to_params = qga_password_params,
		.to_return = qga_empty },
	{ .name = "guest-ssh-get-authorized-keys",
		.method = "user.ssh-keys",
		.args = qga_keys_get_args,
		.params_map = qga_keys_params_map,
		.return_map = qga_keys_return_map },
	{ .name = "guest-ssh-add-authorized-keys",
		.method = "user.ssh-add-keys",
		.args = qga_keys_add_args,
		.params_map = qga_keys_params_map,
		.to_return = qga_empty },
	{ .name = "guest-ssh-remove-authorized-keys",
		.method = "user.ssh-remove-keys",
		.args = qga_keys_remove_args,
		.params_map = qga_keys_params_map,
		.to_return = qga_empty },
	{ .name = "guest-file-open",
		.method = "file.read",
		.pick = qga_file_open_method,
		.args = qga_file_open_args,
		.to_params = qga_file_open_params,
		.to_return_args = qga_file_open_return },
	{ .name = "guest-file-close", .args = qga_file_handle_args, .local = qga_file_close },
	{ .name = "guest-file-flush", .args = qga_file_handle_args, .local = qga_file_flush },
	{ .name = "guest-file-read",
		.method = "file.read",
		.args = qga_file_read_args,
		.to_params = qga_file_read_params,
		.to_return_args = qga_file_read_return },
	{ .name = "guest-file-write",
		.method = "file.write",
		.args = qga_file_write_args,
		.to_params = qga_file_write_params,
		.to_return_args = qga_file_write_return },
	{ .name = "guest-file-seek",
		.method = "file.stat",
		.args = qga_file_seek_args,
		.to_params = qga_file_seek_params,
		.to_return_args = qga_file_seek_return },
	{ .name = "guest-suspend-ram",
		.method = "system.suspend",
		.to_params = qga_suspend_ram,
		.to_return = qga_empty,
		.flags = QGA_NO_SUCCESS_RESPONSE },
	{ .name = "guest-suspend-disk",
		.method = "system.suspend",
		.to_params = qga_suspend_disk,
		.to_return = qga_empty,
		.flags = QGA_NO_SUCCESS_RESPONSE },
	{ .name = "guest-suspend-hybrid",
		.method = "system.suspend",
		.to_params = qga_suspend_hybrid,
		.to_return = qga_empty,
		.flags = QGA_NO_SUCCESS_RESPONSE },
	{ .name = "guest-exec",
		.method = "exec.start",
		.args = qga_exec_args,
		.to_params = qga_exec_params,
		.to_return = qga_exec_return },
	{ .name = "guest-exec-status",
		.method = "exec.status",
		.args = qga_exec_status_args,
		.to_params = qga_exec_status_params,
		.to_return = qga_exec_status_return },
	{},
};

static const struct qga_command *qga_find(const char *name)
{
	for (const struct qga_command *c = qga_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static bool qga_enabled(const struct qga_command *c)
{
	return !c->method ||
	       (method_find(c->method) && config_method_allowed(config_get(), c->method));
}

static int qga_info(struct json_object *args, struct json_object **ret, char *desc, size_t size)
{
	struct json_object *o = json_object_new_object(), *list = json_object_new_array();

	if (!o || !list) {
		json_object_put(o);
		json_object_put(list);
		return -ENOMEM;
	}
	for (const struct qga_command *c = qga_commands; c->name; c++) {
		struct json_object *e = json_object_new_object();
		json_object_object_add(e, "enabled", json_object_new_boolean(qga_enabled(c)));
		json_object_object_add(e, "name", json_object_new_string(c->name));
		json_object_object_add(e, "success-response",
			json_object_new_boolean(!(c->flags & QGA_NO_SUCCESS_RESPONSE)));
		json_object_array_add(list, e);
	}
	json_object_object_add(o, "version", json_object_new_string(QGA_VERSION));
	json_object_object_add(o, "supported_commands", list);
	*ret = o;
	return 0;
}

/* --- answers --- */

static void qga_write(struct conn *c, unsigned flags, struct json_object *id,
	struct json_object *answer /* takes */)
{
	if (!answer)
		return;
	if (id)
		json_object_object_add(answer, "id", json_object_get(id));
	/* The sentinel lets the host skip whatever stale bytes came before. */
	if (flags & QGA_DELIMITED)
		conn_write_raw(c, "\xff", 1);
	conn_write(c, answer);
	json_object_put(answer);
}

static struct json_object *qga_error_new(const char *klass, const char *desc)
{
	struct json_object *o = json_object_new_object(), *e = json_object_new_object();

	if (!o || !e) {
		json_object_put(o);
		json_object_put(e);
		return NULL;
	}
	json_object_object_add(e, "class", json_object_new_string(klass));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object_object_add(o, "error", e);
	return o;
}

static struct json_object *qga_return_new(struct json_object *value /* takes */)
{
	struct json_object *o = json_object_new_object();

	if (!o) {
		json_object_put(value);
		return NULL;
	}
	json_object_object_add(o, "return", value);
	return o;
}

static void qga_answer(struct call *call, struct json_object *result, int code, const char *message,
	struct json_object *data)
{
	struct qga_call *q = call_frontend_data(call);
	const struct qga_command *cmd = q->cmd;
	struct json_object *answer;
	char desc[320];

	json_object_put(data);
	desc[0] = 0;
	if (code == 0 && cmd->to_return_args) {
		struct json_object *value = cmd->to_return_args(result, q->args, desc, sizeof(desc));
		json_object_put(result);
		answer = value ? qga_return_new(value) : qga_error_new("GenericError", desc);
	} else if (code == 0) {
		struct json_object *value = cmd->to_return    ? cmd->to_return(result)
					    : cmd->return_map ? qga_map(result, cmd->return_map)
							      : json_object_get(result);
		json_object_put(result);
		answer = (cmd->flags & QGA_NO_SUCCESS_RESPONSE) ? (json_object_put(value), NULL)
								: qga_return_new(value);
	} else if (code == GL_RPC_METHOD_NOT_FOUND) {
		snprintf(desc, sizeof(desc), "The command %s has not been found", cmd->name);
		answer = qga_error_new("CommandNotFound", desc);
	} else if (code == GL_RPC_DENIED) {
		/* What qemu-ga says about a command blocked with --block-rpcs. */
		snprintf(desc, sizeof(desc), "Command %s has been disabled", cmd->name);
		answer = qga_error_new("CommandNotFound", desc);
	} else {
		answer = qga_error_new("GenericError", message ? message : "Internal error");
	}
	qga_write(call_connection(call), cmd->flags, q->id, answer);
	json_object_put(q->id);
	json_object_put(q->args);
	free(q);
}

static const struct call_frontend qga_frontend = {
	.name = "qga",
	.answer = qga_answer,
};

/* --- requests --- */

static void qga_reply_error(struct conn *c, struct json_object *id, const char *klass,
	const char *desc)
{
	qga_write(c, 0, id, qga_error_new(klass, desc));
}

static void qga_message(struct conn *c, struct json_object *obj)
{
	struct json_object *exec = NULL, *args = NULL, *id = NULL, *params = NULL;
	const struct qga_command *cmd;
	struct qga_call *q;
	struct call *call;
	struct json_object *req;
	char desc[256];
	int r;

	if (!json_object_is_type(obj, json_type_object)) {
		qga_reply_error(c, NULL, "GenericError", "QMP input must be a JSON object");
		goto out;
	}
	json_object_object_foreach (obj, key, v) {
		if (strcmp(key, "execute") == 0)
			exec = v;
		else if (strcmp(key, "arguments") == 0)
			args = v;
		else if (strcmp(key, "id") == 0)
			id = v;
		else {
			char esc[64];
			snprintf(desc, sizeof(desc), "QMP input member '%s' is unexpected",
				log_escape(esc, sizeof(esc), key, strlen(key)));
			qga_reply_error(c, NULL, "GenericError", desc);
			goto out;
		}
	}
	if (!exec) {
		qga_reply_error(c, id, "GenericError", "QMP input lacks member 'execute'");
		goto out;
	}
	if (!json_object_is_type(exec, json_type_string)) {
		qga_reply_error(c, id, "GenericError", "QMP input member 'execute' must be a string");
		goto out;
	}
	if (args && !json_object_is_type(args, json_type_object)) {
		qga_reply_error(c, id, "GenericError",
			"QMP input member 'arguments' must be an object");
		goto out;
	}
	/* A name with a NUL inside is no command's name. */
	cmd = strlen(json_object_get_string(exec)) == (size_t)json_object_get_string_len(exec)
		      ? qga_find(json_object_get_string(exec))
		      : NULL;
	if (!cmd) {
		char esc[80];
		const char *name = json_object_get_string(exec);
		snprintf(desc, sizeof(desc), "The command %s has not been found",
			log_escape(esc, sizeof(esc), name, strlen(name)));
		qga_reply_error(c, id, "CommandNotFound", desc);
		goto out;
	}
	if (qga_check_args(cmd, args, desc, sizeof(desc)) < 0) {
		qga_reply_error(c, id, "GenericError", desc);
		goto out;
	}
	if (cmd->local) {
		struct json_object *ret = NULL;
		if (cmd->local(args, &ret, desc, sizeof(desc)) < 0)
			qga_reply_error(c, id, "GenericError", desc);
		else
			qga_write(c, cmd->flags, id, qga_return_new(ret));
		goto out;
	}
	if (cmd->params_map && !(params = qga_map(args, cmd->params_map))) {
		qga_reply_error(c, id, "GenericError", "Out of memory");
		goto out;
	}
	if (cmd->to_params) {
		r = cmd->to_params(args, &params, desc, sizeof(desc));
		if (r < 0) {
			qga_reply_error(c, id, "GenericError", r == -EINVAL ? desc : "Out of memory");
			goto out;
		}
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		qga_reply_error(c, id, "GenericError", "Out of memory");
		goto out;
	}
	q->cmd = cmd;
	q->id = json_object_get(id);
	q->args = json_object_get(args);
	/* The call's "request" is a JSON-RPC shaped envelope, as the audit trail
	 * reads it ({"id", "params"}); it keeps params alive: handlers borrow. */
	req = json_object_new_object();
	if (req && params)
		json_object_object_add(req, "params", json_object_get(params));
	if (req && id)
		json_object_object_add(req, "id", json_object_get(id));
	if (!req || dispatch_call_new(c, &qga_frontend, q, req, NULL, false, &call) < 0) {
		json_object_put(req);
		json_object_put(q->id);
		json_object_put(q->args);
		free(q);
		qga_reply_error(c, id, "GenericError", "Out of memory");
		goto out;
	}
	json_object_put(req); /* the call holds its own reference */
	dispatch_invoke(call, cmd->pick ? cmd->pick(args) : cmd->method, params);
	call_unref(call);
out:
	json_object_put(params);
	json_object_put(obj);
}

static void qga_syntax_error(struct conn *c)
{
	qga_reply_error(c, NULL, "GenericError", "JSON parse error");
}

static void qga_too_big(struct conn *c)
{
	char desc[96];

	log_ratelimited(&qga_rl, LOG_NOTICE, 0, "QGA: dropping a message over %zu bytes",
		config_get()->max_message_bytes);
	snprintf(desc, sizeof(desc), "JSON parse error, message larger than %zu bytes",
		config_get()->max_message_bytes);
	qga_reply_error(c, NULL, "GenericError", desc);
}

const struct conn_proto conn_proto_qga = {
	.name = "qga",
	.message = qga_message,
	.syntax_error = qga_syntax_error,
	.too_big = qga_too_big,
	.sentinel = true,
	.one_at_a_time = true,
};

const struct conn_proto conn_proto_qga_serial = {
	.name = "qga-serial",
	.message = qga_message,
	.syntax_error = qga_syntax_error,
	.too_big = qga_too_big,
	.sentinel = true,
	.one_at_a_time = true,
	.eof_closes = true,
};
