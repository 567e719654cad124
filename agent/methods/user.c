/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Accounts: a user's password (shadow(5)) and SSH authorized keys
 * (sshd(8) AUTHORIZED_KEYS FILE FORMAT). What QGA's guest-set-user-password
 * and guest-ssh-*-authorized-keys do, as JSON-RPC methods.
 *
 * The password goes into /etc/shadow the way chpasswd(8) does without PAM:
 * under lckpwdf(3), a new file written next to it, fsynced and renamed into
 * place, with the old file's mode and owner. A plain password is hashed with
 * crypt(3)'s preferred method (crypt_gensalt_ra with a NULL prefix: yescrypt
 * on Debian 12). The authorized_keys file lives in the user's home, which the
 * user controls: every step opens relative to a directory fd with O_NOFOLLOW,
 * so a symlink planted there cannot make the agent write elsewhere, and what
 * it creates belongs to the user. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <guestlink/jsonrpc.h>

#include "log.h"
#include "macro.h"
#include "method.h"
#include "methods.h"
#include "worker.h"

#define USER_NAME_MAX 256
#define USER_PASSWORD_MAX 4096
#define USER_KEY_MAX 16384
#define USER_MAX_KEYS 1024
#define USER_KEYS_FILE_MAX (4u * 1024 * 1024)
#define USER_SHADOW "/etc/shadow"

/* --- the user, looked up on a worker ---
 * NSS can hang (LDAP, sssd, an unreachable server): getpwnam_r() runs on a
 * worker (agent/worker.h) and the method goes on on the loop once it
 * answered; a lookup that does not answer within fs_timeout_s costs only
 * its call (-32004). */

typedef void (*user_found_fn)(struct call *call, void *params, int op, const struct passwd *pw);

struct user_lookup {
	char *name;
	void *params; /* the call's, alive as long as the worker holds the call */
	int op;
	user_found_fn found;
	/* results */
	struct passwd pw;
	char *buf;
	bool ok;
};

static void user_lookup_free(void *p)
{
	struct user_lookup *j = p;

	free(j->name);
	free(j->buf);
	free(j);
}

static void user_lookup_run(void *p)
{
	struct user_lookup *j = p;
	struct passwd *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);

	if (sz < 16384)
		sz = 16384;
	j->buf = malloc((size_t)sz);
	j->ok = j->buf && getpwnam_r(j->name, &j->pw, j->buf, (size_t)sz, &res) == 0 && res;
}

static void user_lookup_done(struct call *call, void *p)
{
	struct user_lookup *j = p;

	if (!j->ok) {
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "No such user", NULL);
		return;
	}
	j->found(call, j->params, j->op, &j->pw);
}

/* Look name up on a worker, then found(call, params, op, pw) on the loop, or
 * answer -32002. Returns what a handler returns. */
static int user_lookup(struct call *call, const char *name, void *params, int op, user_found_fn found)
{
	struct user_lookup *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return -ENOMEM;
	j->name = strdup(name);
	if (!j->name) {
		free(j);
		return -ENOMEM;
	}
	j->params = params;
	j->op = op;
	j->found = found;
	r = worker_call(call, -1, user_lookup_run, user_lookup_done, j, user_lookup_free);
	return r == -EAGAIN ? 0 : r;
}

/* --- password --- */

struct user_password_params {
	const char *user;
	const char *password;
	bool crypted;
};

/* Rewrite /etc/shadow with user's hash replaced. Caller holds lckpwdf(). */
static int user_shadow_replace(const char *user, const char *hash)
{
	char tmp[] = USER_SHADOW "+XXXXXX";
	struct spwd *sp;
	struct stat st;
	bool found = false;
	FILE *in, *out;
	int fd, r = 0;

	in = fopen(USER_SHADOW, "re");
	if (!in)
		return -errno;
	if (fstat(fileno(in), &st) < 0) {
		r = -errno;
		fclose(in);
		return r;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		fclose(in);
		return r;
	}
	out = fdopen(fd, "we");
	if (!out) {
		r = -errno;
		close(fd);
		goto fail;
	}
	while ((sp = fgetspent(in))) {
		if (strcmp(sp->sp_namp, user) == 0) {
			sp->sp_pwdp = (char *)hash;
			/* Days since the epoch of the last change, as chpasswd sets it. */
			sp->sp_lstchg = (long)(time(NULL) / 86400);
			found = true;
		}
		if (putspent(sp, out) < 0) {
			r = -EIO;
			break;
		}
	}
	/* fgetspent() ends on EOF and on a read error alike. */
	if (r == 0 && ferror(in))
		r = -EIO;
	if (r == 0 && !found)
		r = -ENOENT;
	if (r == 0 && (fchmod(fd, st.st_mode & 07777) < 0 || fchown(fd, st.st_uid, st.st_gid) < 0))
		r = -errno;
	if (fflush(out) != 0 || fsync(fd) < 0)
		r = r ?: -errno;
	fclose(out);
	fclose(in);
	in = NULL;
	if (r == 0 && rename(tmp, USER_SHADOW) < 0)
		r = -errno;
	if (r == 0)
		return 0;
fail:
	if (in)
		fclose(in);
	unlink(tmp);
	return r;
}

static void user_set_password_found(struct call *call, void *params, int op, const struct passwd *pw)
{
	struct user_password_params *a = params;
	struct crypt_data *cd = NULL;
	const char *hash = a->password;
	char *salt = NULL;
	int r;

	if (!a->crypted) {
		cd = calloc(1, sizeof(*cd));
		salt = crypt_gensalt_ra(NULL, 0, NULL, 0);
		if (!cd || !salt) {
			r = -(errno ?: ENOMEM);
			goto out;
		}
		hash = crypt_r(a->password, salt, cd);
		if (!hash || hash[0] == '*') {
			r = -EINVAL;
			goto out;
		}
	}
	if (lckpwdf() < 0) {
		r = -errno;
		goto out;
	}
	r = user_shadow_replace(a->user, hash);
	ulckpwdf();
out:
	if (cd)
		explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(salt);
	if (r < 0) {
		call_os_error(call, r, "cannot set the password");
		return;
	}
	log_notice("Password of user %s set by a client", a->user);
	call_reply(call, json_object_new_object());
}

static int user_set_password(struct call *call, void *params)
{
	struct user_password_params *a = params;

	/* Field separators would end the entry early; a crypted hash never has them. */
	if (strpbrk(a->password, ":\n") && a->crypted) {
		call_error(call, GL_RPC_INVALID_PARAMS,
			"Invalid parameter 'password': ':' or newline", NULL);
		return 0;
	}
	return user_lookup(call, a->user, a, 0, user_set_password_found);
}

/* --- SSH authorized keys --- */

struct user_keys_params {
	const char *user;
	struct json_object *keys;
	bool reset;
};

/* A key line sshd would read as one entry: non-empty, one line, no NUL. */
static bool user_key_valid(const char *k)
{
	return k[0] && !strpbrk(k, "\r\n") && k[0] != '#';
}

/* The user's ~/.ssh as a directory fd (created 0700 and owned by the user
 * when create is set). Never follows a symlink for .ssh itself. */
static int user_ssh_dir(const struct passwd *pw, bool create)
{
	int home, fd;

	home = open(pw->pw_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (home < 0)
		return -errno;
	fd = openat(home, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		bool made = mkdirat(home, ".ssh", 0700) == 0;

		if (!made && errno != EEXIST) {
			fd = -errno;
			close(home);
			return fd;
		}
		fd = openat(home, ".ssh", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* Only the directory made here is given to the user. */
		if (fd >= 0 && made && fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
			int e = -errno;
			close(fd);
			close(home);
			return e;
		}
	}
	if (fd < 0)
		fd = -errno;
	close(home);
	return fd;
}

/* The lines of authorized_keys (new array; empty when the file is absent).
 * For a client (raw false): the keys only, escaped, comments and over-long
 * lines left out. For rewriting the file (raw true): every line as it is, so
 * add and remove keep what they do not touch; a file over USER_KEYS_FILE_MAX
 * is -EFBIG rather than rewritten shorter. */
static int user_keys_read(int dir, bool raw, struct json_object **ret)
{
	struct json_object *list = json_object_new_array();
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	FILE *f;
	int fd;

	if (!list)
		return -ENOMEM;
	fd = dir < 0 ? -1 : openat(dir, "authorized_keys", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (dir >= 0 && errno != ENOENT) {
			int e = -errno;
			json_object_put(list);
			return e;
		}
		*ret = list;
		return 0;
	}
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		json_object_put(list);
		return -ENOMEM;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char esc[USER_KEY_MAX * 4 + 8];

		total += (size_t)n;
		if (total > USER_KEYS_FILE_MAX) {
			if (raw) {
				free(line);
				fclose(f);
				json_object_put(list);
				return -EFBIG;
			}
			break;
		}
		if (line[n - 1] == '\n')
			line[--n] = 0;
		if (raw) {
			json_object_array_add(list, json_object_new_string_len(line, (int)n));
			continue;
		}
		while (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		if (n == 0 || line[0] == '#' || (size_t)n > USER_KEY_MAX)
			continue;
		/* The file is the user's: only valid text goes out. */
		json_object_array_add(list,
			json_object_new_string(log_escape(esc, sizeof(esc), line, (size_t)n)));
	}
	free(line);
	fclose(f);
	*ret = list;
	return 0;
}

/* Replace authorized_keys with the lines of list, owned by the user, 0600. */
static int user_keys_write(int dir, const struct passwd *pw, struct json_object *list)
{
	static const char tmp[] = ".authorized_keys.guestlink";
	size_t n = json_object_array_length(list);
	int fd, r = 0;
	FILE *f;

	(void)unlinkat(dir, tmp, 0);
	fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
		r = -errno;
		close(fd);
		goto fail;
	}
	f = fdopen(fd, "we");
	if (!f) {
		close(fd);
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", json_object_get_string(json_object_array_get_idx(list, i)));
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = -errno;
	fclose(f);
	if (r == 0 && renameat(dir, tmp, dir, "authorized_keys") < 0)
		r = -errno;
	if (r == 0)
		return 0;
fail:
	(void)unlinkat(dir, tmp, 0);
	return r;
}

static bool user_list_has(struct json_object *list, const char *k)
{
	for (size_t i = 0; i < json_object_array_length(list); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(list, i)), k) == 0)
			return true;
	return false;
}

/* An empty element is allowed and ignored: virsh set-user-sshkeys --file
 * splits the file at every newline (g_strsplit), so a file ending in one sends
 * "" last, and qemu-ga accepts it (commands-posix-ssh.c checks only for '#'
 * and newlines). */
static int user_keys_check(struct call *call, struct json_object *keys)
{
	for (size_t i = 0; keys && i < json_object_array_length(keys); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(keys, i));
		if (k[0] == '\0')
			continue;
		if (!user_key_valid(k) || strlen(k) > USER_KEY_MAX) {
			char msg[96];
			snprintf(msg, sizeof(msg),
				"Invalid parameter 'keys': element %zu is not one key line", i);
			call_error(call, GL_RPC_INVALID_PARAMS, msg, NULL);
			return -EINVAL;
		}
	}
	return 0;
}

static void user_keys_found(struct call *call, void *params, int op, const struct passwd *pw)
{
	struct user_keys_params *a = params;
	struct json_object *cur = NULL, *next = NULL, *o;
	int dir, r;

	dir = user_ssh_dir(pw, op > 0);
	if (dir < 0 && !(dir == -ENOENT && op <= 0)) {
		call_os_error(call, dir, "cannot open the user's .ssh directory");
		return;
	}
	r = user_keys_read(dir, op != 0, &cur);
	if (r < 0)
		goto out;
	if (op == 0) {
		o = json_object_new_object();
		json_object_object_add(o, "keys", cur); /* takes cur */
		cur = NULL;
		call_reply(call, o);
		goto out;
	}
	next = json_object_new_array();
	if (!next) {
		r = -ENOMEM;
		goto out;
	}
	if (op > 0) {
		/* Add: the old keys (unless reset), then each new one not there yet. */
		if (!a->reset)
			for (size_t i = 0; i < json_object_array_length(cur); i++)
				json_object_array_add(next,
					json_object_get(json_object_array_get_idx(cur, i)));
		for (size_t i = 0; i < json_object_array_length(a->keys); i++) {
			struct json_object *k = json_object_array_get_idx(a->keys, i);
			if (json_object_get_string(k)[0] != '\0' &&
				!user_list_has(next, json_object_get_string(k)))
				json_object_array_add(next, json_object_get(k));
		}
	} else {
		for (size_t i = 0; i < json_object_array_length(cur); i++) {
			struct json_object *k = json_object_array_get_idx(cur, i);
			if (!user_list_has(a->keys, json_object_get_string(k)))
				json_object_array_add(next, json_object_get(k));
		}
	}
	if (dir >= 0 && (op > 0 || json_object_array_length(next) != json_object_array_length(cur)))
		r = user_keys_write(dir, pw, next);
	if (r == 0) {
		log_notice("SSH authorized keys of user %s changed by a client", a->user);
		call_reply(call, json_object_new_object());
	}
out:
	if (r < 0)
		call_os_error(call, r, "cannot update authorized_keys");
	json_object_put(cur);
	json_object_put(next);
	if (dir >= 0)
		close(dir);
}

static int user_keys_op(struct call *call, struct user_keys_params *a, int op)
{
	if (op != 0 && user_keys_check(call, a->keys) < 0)
		return 0;
	return user_lookup(call, a->user, a, op, user_keys_found);
}

static int user_keys_get(struct call *call, void *params)
{
	return user_keys_op(call, params, 0);
}

static int user_keys_add(struct call *call, void *params)
{
	return user_keys_op(call, params, 1);
}

static int user_keys_remove(struct call *call, void *params)
{
	return user_keys_op(call, params, -1);
}

#define USER_PARAM                                                                                 \
	{                                                                                          \
		"user", PARAM_STRING, offsetof(struct user_keys_params, user), PARAM_MANDATORY, 0, \
			USER_NAME_MAX, 0, NULL, "user name"                                        \
	}

static const struct method_param user_password_params_table[] = {
	{ "user", PARAM_STRING, offsetof(struct user_password_params, user), PARAM_MANDATORY, 0,
		USER_NAME_MAX, 0, NULL, "user name" },
	{ "password", PARAM_STRING, offsetof(struct user_password_params, password), PARAM_MANDATORY,
		0, USER_PASSWORD_MAX, 0, NULL, "the new password, or its crypt(3) hash when crypted" },
	{ "crypted", PARAM_BOOL, offsetof(struct user_password_params, crypted), 0, 0, 1, 0, NULL,
		"password is already a crypt(3) hash (default false)" },
	{},
};

static const struct method_param user_keys_get_params_table[] = {
	USER_PARAM,
	{},
};

static const struct method_param user_keys_add_params_table[] = {
	USER_PARAM,
	{ "keys", PARAM_STRING_ARRAY, offsetof(struct user_keys_params, keys), PARAM_MANDATORY, 0,
		USER_MAX_KEYS, 0, NULL, "authorized_keys lines to add" },
	{ "reset", PARAM_BOOL, offsetof(struct user_keys_params, reset), 0, 0, 1, 0, NULL,
		"replace all existing keys (default false)" },
	{},
};

static const struct method_param user_keys_remove_params_table[] = {
	USER_PARAM,
	{ "keys", PARAM_STRING_ARRAY, offsetof(struct user_keys_params, keys), PARAM_MANDATORY, 0,
		USER_MAX_KEYS, 0, NULL, "authorized_keys lines to remove" },
	{},
};

static const struct method user_methods[] = {
	{ "user.set-password", "Set a user's password (plain or crypt(3) hash) in /etc/shadow",
		user_password_params_table, sizeof(struct user_password_params), user_set_password,
		METHOD_WRITES, "{\"type\":\"object\"}" },
	{ "user.ssh-keys", "A user's SSH authorized keys", user_keys_get_params_table,
		sizeof(struct user_keys_params), user_keys_get, 0,
		"{\"type\":\"object\",\"properties\":{\"keys\":{\"type\":\"array\",\"items\":"
		"{\"type\":\"string\"}}}}" },
	{ "user.ssh-add-keys", "Add SSH authorized keys of a user (or replace them all)",
		user_keys_add_params_table, sizeof(struct user_keys_params), user_keys_add,
		METHOD_WRITES, "{\"type\":\"object\"}" },
	{ "user.ssh-remove-keys", "Remove SSH authorized keys of a user",
		user_keys_remove_params_table, sizeof(struct user_keys_params), user_keys_remove,
		METHOD_WRITES, "{\"type\":\"object\"}" },
	{},
};

void methods_user_register(void)
{
	method_register(user_methods);
}
