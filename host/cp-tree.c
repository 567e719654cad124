/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink cp -r: walk a tree (locally, or in the guest through file.list),
 * recreate its directories and symbolic links on the other side, then copy
 * its files one by one. Names from the guest are single path components or
 * skipped; links the guest describes are created, never followed. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp.h"
#include "guestlink/jsonrpc.h"
#include "macro.h"

#define CP_MAX_DEPTH 256
#define CP_MAX_ENTRIES 1000000
/* Bytes of relative paths and link targets the list holds at most: a guest
 * answering a deep tree with long names must not make us hold gigabytes
 * (each entry keeps its whole path; 16 MiB of listing at depth 200 would). */
#define CP_MAX_LIST_TEXT (64u * 1024 * 1024)

struct cp_entry {
	char *rel; /* relative to the tree's root; "" is the root */
	char type; /* 'd', 'f', 'l' */
	mode_t mode;
	uint64_t size;
	char *target; /* 'l' */
};

struct cp_list {
	struct cp_entry *v;
	size_t n, cap;
	uint64_t bytes;
	size_t text; /* bytes of rel and target strings held */
	bool full;   /* CP_MAX_ENTRIES or CP_MAX_LIST_TEXT reached (not yet reported) */
};

static void cp_list_free(struct cp_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].rel);
		free(l->v[i].target);
	}
	free(l->v);
}

static int cp_list_add(struct cp_list *l, const char *rel, char type, mode_t mode, uint64_t size,
	const char *target)
{
	struct cp_entry *e;
	size_t text = strlen(rel) + 1 + (target ? strlen(target) + 1 : 0);

	if (l->n >= CP_MAX_ENTRIES || text > CP_MAX_LIST_TEXT - l->text) {
		l->full = true;
		return -E2BIG;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct cp_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	*e = (struct cp_entry){ .type = type, .mode = mode & 07777, .size = size };
	e->rel = strdup(rel);
	e->target = target ? strdup(target) : NULL;
	if (!e->rel || (target && !e->target)) {
		free(e->rel);
		free(e->target);
		return -ENOMEM;
	}
	l->n++;
	l->text += text;
	if (type == 'f')
		l->bytes += size;
	return 0;
}

static char *cp_path(const char *root, const char *rel)
{
	char *r;

	if (!*rel)
		return strdup(root);
	if (!*root)
		return strdup(rel);
	if (asprintf(&r, "%s%s%s", root, root[strlen(root) - 1] == '/' ? "" : "/", rel) < 0)
		return NULL;
	return r;
}

/* A name from the guest that is safe to join to a local path: one component. */
static bool cp_name_ok(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* Print "PATH: cause" and return r (negative errno). */
static int cp_walk_error(struct cmd_ctx *ctx, int r, const char *path)
{
	cmd_error_errno(ctx, CMD_EXIT_FAILED, r, path);
	return r;
}

/* Pre-order walk of a local tree (directories before their contents). */
static int cp_walk_local(struct cmd_ctx *ctx, struct cp_list *l, const char *root, const char *rel,
	int depth)
{
	_cleanup_free_ char *path = cp_path(root, rel);
	struct dirent *de;
	struct stat st;
	DIR *d;
	int r = 0;

	if (!path)
		return cp_walk_error(ctx, -ENOMEM, root);
	if (depth > CP_MAX_DEPTH)
		return cp_walk_error(ctx, -ELOOP, path);
	if (lstat(path, &st) < 0)
		return cp_walk_error(ctx, -errno, path);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			return cp_walk_error(ctx, -errno, path);
		target[n] = 0;
		return cp_list_add(l, rel, 'l', 0777, 0, target);
	}
	if (S_ISREG(st.st_mode))
		return cp_list_add(l, rel, 'f', st.st_mode, (uint64_t)st.st_size, NULL);
	if (!S_ISDIR(st.st_mode)) {
		cmd_printf(stderr,
			"guestlink: %s: not a file, directory or symbolic link, skipping\n", path);
		return 0;
	}
	r = cp_list_add(l, rel, 'd', st.st_mode, 0, NULL);
	if (r < 0)
		return r;
	d = opendir(path);
	if (!d)
		return cp_walk_error(ctx, -errno, path);
	while (r >= 0 && (de = readdir(d))) {
		_cleanup_free_ char *child = NULL;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		child = cp_path(rel, de->d_name);
		r = child ? cp_walk_local(ctx, l, root, child, depth + 1) : -ENOMEM;
	}
	closedir(d);
	return r;
}

/* The same in the guest, through file.list (and file.stat for link targets). */
static int cp_walk_remote(struct cmd_ctx *ctx, struct cp_list *l, const char *root, const char *rel,
	int depth)
{
	_cleanup_free_ char *path = cp_path(root, rel);
	struct json_object *p, *res = NULL, *entries;
	char object[4096];
	int r = 0;

	if (!path)
		return -ENOMEM;
	snprintf(object, sizeof(object), CP_PREFIX "%s", path);
	if (depth > CP_MAX_DEPTH)
		return cp_walk_error(ctx, -ELOOP, object);
	p = json_object_new_object();
	json_object_object_add(p, "path", json_object_new_string(path));
	r = cmd_call_on(ctx, "file.list", object, p, &res);
	if (r)
		return -EIO;
	entries = cmd_get_array(res, "entries");
	if (!entries) {
		json_object_put(res);
		cmd_error(ctx, CMD_EXIT_FAILED, "%s: file.list answered no entries", object);
		return -EPROTO;
	}
	for (size_t i = 0; r >= 0 && i < json_object_array_length(entries); i++) {
		struct json_object *e = json_object_array_get_idx(entries, i);
		const char *name = cmd_get_string(e, "name"), *type = cmd_get_string(e, "type");
		_cleanup_free_ char *child = NULL, *full = NULL;
		int64_t mode = 0644, size = 0;

		if (!name || !cp_name_ok(name) || !type) {
			cmd_printf(stderr,
				"guestlink: %s: an entry without a usable name, skipping\n", object);
			continue;
		}
		cmd_get_int64(e, "mode", &mode);
		cmd_get_int64(e, "size", &size);
		child = cp_path(rel, name);
		if (!child)
			r = -ENOMEM;
		else if (strcmp(type, "directory") == 0) {
			r = cp_list_add(l, child, 'd', (mode_t)mode, 0, NULL);
			if (r >= 0)
				r = cp_walk_remote(ctx, l, root, child, depth + 1);
		} else if (strcmp(type, "file") == 0)
			r = cp_list_add(l, child, 'f', (mode_t)mode, size > 0 ? (uint64_t)size : 0,
				NULL);
		else if (strcmp(type, "symlink") == 0) {
			struct json_object *sp = json_object_new_object(), *st = NULL;
			full = cp_path(root, child);
			json_object_object_add(sp, "path", json_object_new_string(full ?: ""));
			json_object_object_add(sp, "follow", json_object_new_boolean(false));
			r = cmd_call_on(ctx, "file.stat", object, sp, &st) ? -EIO : 0;
			if (r >= 0 && cmd_get_string(st, "target"))
				r = cp_list_add(l, child, 'l', 0777, 0, cmd_get_string(st, "target"));
			json_object_put(st);
		} else
			cmd_printf(stderr, "guestlink: " CP_PREFIX "%s/%s: a %s, skipping\n", path,
				name, type);
	}
	{
		bool truncated = false;
		if (r >= 0 && cmd_get_bool(res, "truncated", &truncated) && truncated) {
			cmd_error(ctx, CMD_EXIT_FAILED, "%s: too many entries", object);
			r = -E2BIG;
		}
	}
	json_object_put(res);
	return r;
}

static int cp_tree_upload(struct cmd_ctx *ctx, struct cp_total *tot, const struct cp_opts *o,
	const struct cp_list *l, const char *root)
{
	for (size_t i = 0; i < l->n && !tot->failed; i++) {
		const struct cp_entry *e = &l->v[i];
		_cleanup_free_ char *remote = cp_path(root, e->rel);
		struct json_object *p, *res = NULL;
		char object[4096];
		int r;

		if (!remote)
			return -ENOMEM;
		snprintf(object, sizeof(object), CP_PREFIX "%s", remote);
		if (e->type == 'f')
			continue; /* files go in a second pass, once their directories exist */
		p = json_object_new_object();
		json_object_object_add(p, "path", json_object_new_string(remote));
		if (e->type == 'd') {
			json_object_object_add(p, "mode", json_object_new_int((int)e->mode));
			json_object_object_add(p, "parents", json_object_new_boolean(true));
			r = cmd_call_on(ctx, "file.mkdir", object, p, &res);
			tot->dirs += r == 0;
		} else {
			json_object_object_add(p, "target", json_object_new_string(e->target));
			r = cmd_call_on(ctx, "file.symlink", object, p, &res);
			tot->links += r == 0;
		}
		json_object_put(res);
		if (r) {
			tot->failed = true;
			tot->status = r;
		}
	}
	return 0;
}

void cp_tree(struct cmd_ctx *ctx, struct cp_total *tot, const struct cp_opts *o, bool upload,
	const char *src, const char *dst_root)
{
	struct cp_list l = { 0 };
	int r;

	r = upload ? cp_walk_local(ctx, &l, src, "", 0) : cp_walk_remote(ctx, &l, src, "", 0);
	if (r == -E2BIG && l.full)
		cmd_error(ctx, CMD_EXIT_FAILED,
			"%s%s: too large a tree (more than %d entries or %u MiB of names)",
			upload ? "" : CP_PREFIX, src, CP_MAX_ENTRIES, CP_MAX_LIST_TEXT >> 20);
	if (r >= 0 && !upload) {
		/* The root's own mode, for the end. */
		struct json_object *p = json_object_new_object(), *res = NULL;
		int64_t mode = 0755;

		json_object_object_add(p, "path", json_object_new_string(src));
		if (cmd_call_on(ctx, "file.stat", NULL, p, &res) == 0)
			cmd_get_int64(res, "mode", &mode);
		json_object_put(res);
		r = cp_list_add(&l, "", 'd', (mode_t)mode, 0, NULL) < 0 ? -ENOMEM : 0;
	}
	if (r < 0) {
		tot->failed = true;
		tot->status = tot->status ?: CMD_EXIT_FAILED;
		cp_list_free(&l);
		return;
	}
	tot->prog.total = l.bytes;
	if (upload)
		cp_tree_upload(ctx, tot, o, &l, dst_root);
	else {
		/* The root was listed last (its mode comes from file.stat below);
		 * create it and every directory 0700 first, modes at the end. */
		if (mkdir(dst_root, 0700) < 0 && errno != EEXIST) {
			tot->status = cmd_error_errno(ctx, CMD_EXIT_FAILED, -errno, dst_root);
			tot->failed = true;
		}
		for (size_t i = 0; i < l.n && !tot->failed; i++) {
			const struct cp_entry *e = &l.v[i];
			_cleanup_free_ char *path = cp_path(dst_root, e->rel);

			if (!*e->rel || e->type == 'f')
				continue;
			/* Never EEXIST-tolerant below the root: a guest listing a name
			 * twice (link, then directory) must not lead writes elsewhere. */
			if (!path || (e->type == 'd' ? mkdir(path, 0700)
						     : symlink(e->target, path)) < 0) {
				tot->status = cmd_error_errno(ctx, CMD_EXIT_FAILED,
					path ? -errno : -ENOMEM, path ?: dst_root);
				tot->failed = true;
			} else if (e->type == 'd')
				tot->dirs++;
			else
				tot->links++;
		}
	}
	for (size_t i = 0; i < l.n && !tot->failed; i++) {
		const struct cp_entry *e = &l.v[i];
		_cleanup_free_ char *s = cp_path(src, e->rel), *d = cp_path(dst_root, e->rel);

		if (e->type != 'f')
			continue;
		if (!s || !d) {
			tot->failed = true;
			break;
		}
		cp_file(ctx, tot, o, upload, upload ? s : d, upload ? d : s, true);
	}
	/* Directory modes last, deepest first, so read-only ones could be filled. */
	if (!upload)
		for (size_t i = l.n; i-- > 0;) {
			const struct cp_entry *e = &l.v[i];
			_cleanup_free_ char *path = cp_path(dst_root, e->rel);

			if (e->type == 'd' && path)
				(void)chmod(path, e->mode & 01777); /* no setgid from a guest */
		}
	cp_list_free(&l);
}

int cp_tree_root(struct cmd_ctx *ctx, bool upload, const char *src, const char *dst, char **ret)
{
	const char *base;
	char *trimmed = strdup(src), *r = NULL;
	bool isdir = false;
	struct stat st;
	size_t n;

	if (!trimmed)
		return -ENOMEM;
	n = strlen(trimmed);
	while (n > 1 && trimmed[n - 1] == '/')
		trimmed[--n] = 0;
	base = strrchr(trimmed, '/');
	base = base ? base + 1 : trimmed;
	if (upload) {
		struct json_object *p = json_object_new_object(), *res = NULL;
		struct gl_error e = { 0 };
		int k;

		json_object_object_add(p, "path", json_object_new_string(dst));
		json_object_object_add(p, "follow", json_object_new_boolean(true));
		k = cmd_connect(ctx);
		if (k) {
			free(trimmed);
			return -k;
		}
		k = gl_client_call(ctx->client, "file.stat", p, ctx->timeout_ms, &res, &e);
		if (k == 0)
			isdir = cmd_get_string(res, "type") &&
				strcmp(cmd_get_string(res, "type"), "directory") == 0;
		else if (!(k == -EREMOTEIO && e.code == GL_RPC_NO_SUCH_OBJECT)) {
			char object[4096];
			snprintf(object, sizeof(object), CP_PREFIX "%s", dst);
			k = cmd_report_call_error(ctx, "file.stat", object, k, &e);
			free(trimmed);
			return -k;
		}
		json_object_put(res);
	} else
		isdir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
	if (isdir)
		r = cp_path(dst, base);
	else
		r = strdup(dst);
	free(trimmed);
	if (!r)
		return -ENOMEM;
	*ret = r;
	return 0;
}
