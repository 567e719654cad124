/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The qemu-guest-agent (QGA) front end: the QMP-style envelope of QEMU's
 * docs/interop/qemu-ga.rst and qga/qapi-schema.json on top of the shared
 * dispatcher. `{"execute": NAME, "arguments": {...}, "id": ANY}` is answered
 * `{"return": ...}` or `{"error": {"class": ..., "desc": ...}}` (plus the id
 * when one was given). Each command is one row: the JSON-RPC method it runs
 * (so policy, params checking and the implementation are the JSON-RPC ones),
 * how its arguments become that method's params, and how the method's result
 * becomes the QGA return value. Only guest-sync(-delimited) and guest-info
 * are answered here. Requests are handled one at a time, in order, as
 * qemu-ga does. */
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
/* Commands answered by the front end itself. */
typedef int (*qga_local_fn)(struct json_object *args, struct json_object **ret, char *desc,
	size_t size);

struct qga_command {
	const char *name;
	const char *method; /* NULL: answered by .local */
	const struct qga_arg *args;
	qga_args_fn to_params;
	qga_return_fn to_return;
	qga_local_fn local;
	unsigned flags;
};

/* A call in flight: which command it runs and the request's id, if any. */
struct qga_call {
	const struct qga_command *cmd;
	struct json_object *id; /* owned; NULL when the request had none */
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
		json_object_object_foreach(args, key, v) {
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
			if (!json_object_is_type(v, a->type) &&
				!(a->type == json_type_double && json_object_is_type(v, json_type_int))) {
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

static struct json_object *qga_ping_return(struct json_object *result)
{
	return json_object_new_object();
}

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

static struct json_object *qga_host_name_return(struct json_object *r)
{
	struct json_object *o = json_object_new_object();

	qga_rename(o, "host-name", r, "hostname");
	return o;
}

/* guest-get-users: one entry per user, with the earliest login (seconds, as
 * a number with a fraction), as qemu-ga merges sessions. */
static struct json_object *qga_users_return(struct json_object *r)
{
	struct json_object *users = qga_get(r, "users"), *out = json_object_new_array();
	size_t n = users && json_object_is_type(users, json_type_array) ?
		json_object_array_length(users) : 0;

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
					json_object_object_add(e, "login-time", json_object_new_double(t));
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
		{ "rx_bytes", "rx-bytes" }, { "rx_packets", "rx-packets" },
		{ "rx_errors", "rx-errs" }, { "rx_dropped", "rx-dropped" },
		{ "tx_bytes", "tx-bytes" }, { "tx_packets", "tx-packets" },
		{ "tx_errors", "tx-errs" }, { "tx_dropped", "tx-dropped" },
	};
	struct json_object *ifs = qga_get(r, "interfaces"), *out = json_object_new_array();
	size_t n = ifs && json_object_is_type(ifs, json_type_array) ?
		json_object_array_length(ifs) : 0;

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
				json_object_new_string(fam && strcmp(fam, "inet6") == 0 ? "ipv6" : "ipv4"));
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

/* guest-get-fsinfo: qapi GuestFilesystemInfo, for filesystems on block
 * devices (as qemu-ga lists them). Sizes as qemu-ga counts them: used =
 * blocks - free, total = used + available to unprivileged users. */
static struct json_object *qga_fsinfo_return(struct json_object *r)
{
	struct json_object *fss = qga_get(r, "filesystems"), *out = json_object_new_array();
	size_t n = fss && json_object_is_type(fss, json_type_array) ?
		json_object_array_length(fss) : 0;

	for (size_t i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(fss, i), *e;
		const char *dev = json_object_get_string(qga_get(f, "device"));
		const char *base;

		if (!dev || strncmp(dev, "/dev/", 5) != 0)
			continue;
		base = strrchr(dev, '/') + 1;
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
		/* The PCI/SCSI address of the disk needs a sysfs walk not done yet. */
		json_object_object_add(e, "disk", json_object_new_array());
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
	return json_object_new_string(json_object_get_boolean(qga_get(r, "frozen")) ? "frozen"
										 : "thawed");
}

static const struct qga_arg qga_fstrim_args[] = {
	{ "minimum", json_type_int, false },
	{},
};

static int qga_fstrim_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct json_object *p = json_object_new_object();

	if (!p)
		return -ENOMEM;
	qga_copy(p, "minimum", args, "minimum");
	*ret = p;
	return 0;
}

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

static int qga_exec_params(struct json_object *args, struct json_object **ret, char *desc,
	size_t size)
{
	struct json_object *p = json_object_new_object(), *argv = json_object_new_array();
	struct json_object *arg = qga_get(args, "arg");
	size_t n = arg ? json_object_array_length(arg) : 0;

	if (!p || !argv) {
		json_object_put(p);
		json_object_put(argv);
		return -ENOMEM;
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
	if (json_object_get_boolean(qga_get(r, "truncated"))) {
		json_object_object_add(o, "out-truncated", json_object_new_boolean(true));
		json_object_object_add(o, "err-truncated", json_object_new_boolean(true));
	}
	return o;
}

/* --- osinfo, timezone, load, vcpus --- */

static struct json_object *qga_osinfo_return(struct json_object *r)
{
	static const struct {
		const char *from, *to;
	} keys[] = {
		{ "kernel_release", "kernel-release" }, { "kernel_version", "kernel-version" },
		{ "machine", "machine" }, { "id", "id" }, { "name", "name" },
		{ "pretty_name", "pretty-name" }, { "version", "version" },
		{ "version_id", "version-id" }, { "variant", "variant" },
		{ "variant_id", "variant-id" },
	};
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		qga_rename(o, keys[i].to, r, keys[i].from);
	return o;
}

static struct json_object *qga_timezone_return(struct json_object *r)
{
	struct json_object *o = json_object_new_object();

	qga_rename(o, "zone", r, "zone");
	qga_rename(o, "offset", r, "offset_s");
	return o;
}

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

/* --- the table --- */

static const struct qga_command qga_commands[] = {
	{ .name = "guest-sync-delimited", .args = qga_sync_args, .local = qga_sync,
		.flags = QGA_DELIMITED },
	{ .name = "guest-sync", .args = qga_sync_args, .local = qga_sync },
	{ .name = "guest-ping", .method = "agent.ping", .to_return = qga_ping_return },
	{ .name = "guest-info", .local = qga_info },
	{ .name = "guest-get-time", .method = "system.time", .to_return = qga_time_return },
	{ .name = "guest-set-time", .method = "system.set-time", .args = qga_set_time_args,
		.to_params = qga_set_time_params, .to_return = qga_empty },
	{ .name = "guest-fsfreeze-status", .method = "fs.status",
		.to_return = qga_freeze_status_return },
	{ .name = "guest-fsfreeze-freeze", .method = "fs.freeze", .to_params = qga_freeze_params,
		.to_return = qga_freeze_return },
	{ .name = "guest-fsfreeze-freeze-list", .method = "fs.freeze",
		.args = qga_freeze_list_args, .to_params = qga_freeze_params,
		.to_return = qga_freeze_return },
	{ .name = "guest-fsfreeze-thaw", .method = "fs.thaw", .to_return = qga_thaw_return },
	{ .name = "guest-fstrim", .method = "fs.trim", .args = qga_fstrim_args,
		.to_params = qga_fstrim_params, .to_return = qga_fstrim_return },
	{ .name = "guest-get-host-name", .method = "system.hostname",
		.to_return = qga_host_name_return },
	{ .name = "guest-network-get-interfaces", .method = "system.network",
		.to_return = qga_interfaces_return },
	{ .name = "guest-get-fsinfo", .method = "system.filesystems",
		.to_return = qga_fsinfo_return },
	{ .name = "guest-get-users", .method = "system.users", .to_return = qga_users_return },
	{ .name = "guest-get-osinfo", .method = "system.osinfo", .to_return = qga_osinfo_return },
	{ .name = "guest-get-timezone", .method = "system.timezone",
		.to_return = qga_timezone_return },
	{ .name = "guest-get-load", .method = "system.load", .to_return = qga_load_return },
	{ .name = "guest-get-vcpus", .method = "system.vcpus", .to_return = qga_vcpus_return },
	{ .name = "guest-set-vcpus", .method = "system.set-vcpus", .args = qga_set_vcpus_args,
		.to_params = qga_set_vcpus_params, .to_return = qga_set_vcpus_return },
	{ .name = "guest-shutdown", .method = "system.shutdown", .args = qga_shutdown_args,
		.to_params = qga_shutdown_params, .to_return = qga_empty,
		.flags = QGA_NO_SUCCESS_RESPONSE },
	{ .name = "guest-exec", .method = "exec.start", .args = qga_exec_args,
		.to_params = qga_exec_params, .to_return = qga_exec_return },
	{ .name = "guest-exec-status", .method = "exec.status", .args = qga_exec_status_args,
		.to_params = qga_exec_status_params, .to_return = qga_exec_status_return },
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
	return !c->method || (method_find(c->method) &&
				     config_method_allowed(config_get(), c->method));
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

static void qga_answer(struct call *call, struct json_object *result, int code,
	const char *message, struct json_object *data)
{
	struct qga_call *q = call_frontend_data(call);
	const struct qga_command *cmd = q->cmd;
	struct json_object *answer;
	char desc[320];

	json_object_put(data);
	if (code == 0) {
		struct json_object *value = cmd->to_return ? cmd->to_return(result) : json_object_get(result);
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
	char desc[256];
	int r;

	if (!json_object_is_type(obj, json_type_object)) {
		qga_reply_error(c, NULL, "GenericError", "QMP input must be a JSON object");
		goto out;
	}
	json_object_object_foreach(obj, key, v) {
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
	cmd = qga_find(json_object_get_string(exec));
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
	if (cmd->to_params) {
		r = cmd->to_params(args, &params, desc, sizeof(desc));
		if (r < 0) {
			qga_reply_error(c, id, "GenericError",
				r == -EINVAL ? desc : "Out of memory");
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
	/* The call keeps params alive (as its "request"): handlers borrow from it. */
	if (dispatch_call_new(c, &qga_frontend, q, params, NULL, false, &call) < 0) {
		json_object_put(q->id);
		free(q);
		qga_reply_error(c, id, "GenericError", "Out of memory");
		goto out;
	}
	dispatch_invoke(call, cmd->method, params);
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

size_t qga_n_commands(void)
{
	return sizeof(qga_commands) / sizeof(qga_commands[0]) - 1;
}
