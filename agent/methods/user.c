/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Accounts: a user's password (shadow(5)) and SSH authorized keys
 * (sshd(8) AUTHORIZED_KEYS FILE FORMAT). What QGA's guest-set-user-password
 * and guest-ssh-*-authorized-keys do, as JSON-RPC methods.
 *
 * The password goes into /etc/shadow the way chpasswd(8) does without PAM:
 * under the lock lckpwdf(3) takes, a new file written next to it, fsynced and renamed into
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

#include "config.h"
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

/* --- the job ---
 * Everything that touches a file or NSS runs as one job on a worker
 * (agent/worker.h): the user lookup (NSS can hang: LDAP, sssd, an
 * unreachable server), the password lock and the read-modify-write-rename of
 * /etc/shadow, or the whole read-modify-write of authorized_keys. A job that
 * does not finish within fs_timeout_s costs only its call (-32004). The
 * worker sees no json-c: keys travel as plain string lists both ways. */

enum {
	USER_OP_PASSWORD,
	USER_OP_KEYS_GET,
	USER_OP_KEYS_ADD,
	USER_OP_KEYS_REMOVE,
};

/* Lines of text, each its own allocation. */
struct user_lines {
	char **v;
	size_t n, cap;
};

static void user_lines_clear(struct user_lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct user_lines){ 0 };
}

static int user_lines_add(struct user_lines *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strndup(s, len);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static bool user_lines_has(const struct user_lines *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

struct user_job {
	/* in (copied on the loop) */
	char *user;
	int op;
	char *password;
	bool crypted;
	struct user_lines keys; /* add, remove */
	bool reset;
	struct timespec deadline; /* CLOCK_MONOTONIC: the call's fs_timeout_s */
	/* out */
	bool no_user;
	bool late; /* the deadline passed first: nothing was changed */
	int err;   /* errno */
	const char *what;
	struct user_lines lines; /* get: authorized_keys as read */
};

static void user_job_free(void *p)
{
	struct user_job *j = p;

	free(j->user);
	if (j->password) {
		explicit_bzero(j->password, strlen(j->password));
		free(j->password);
	}
	user_lines_clear(&j->keys);
	user_lines_clear(&j->lines);
	free(j);
}

static bool user_past(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* On a worker: the user's passwd entry (pw's strings in *ret_buf). */
static int user_getpw(const char *name, struct passwd *pw, char **ret_buf)
{
	struct passwd *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	char *buf;
	int r;

	if (sz < 16384)
		sz = 16384;
	buf = malloc((size_t)sz);
	if (!buf)
		return -ENOMEM;
	r = getpwnam_r(name, pw, buf, (size_t)sz, &res);
	if (r != 0 || !res) {
		free(buf);
		return r != 0 && r != ENOENT && r != ESRCH ? -r : -ENOENT;
	}
	*ret_buf = buf;
	return 0;
}

/* --- password --- */

struct user_password_params {
	const char *user;
	const char *password;
	bool crypted;
};

/* The lock lckpwdf(3) takes, which passwd(1), chpasswd(8), useradd(8) and
 * vipw(8) hold while they rewrite the account files: a write lock on the
 * whole of /etc/.pwd.lock, opened O_WRONLY|O_CREAT, mode 0600 (glibc
 * shadow/lckpwdf.c). lckpwdf() itself bounds its F_SETLKW with alarm(),
 * whose SIGALRM is process-wide: unusable on a worker thread. An open file
 * description lock conflicts with those classic record locks (fcntl(2)),
 * and the non-blocking F_OFD_SETLK tried until the deadline keeps the
 * worker's own bound: the thread is free again when its call times out.
 * Returns the lock's fd (closing it unlocks), -ETIMEDOUT or -errno. */
#define USER_PWD_LOCK "/etc/.pwd.lock"
#define USER_PWD_LOCK_POLL_MS 10

static int user_pwd_lock(const struct timespec *deadline)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(USER_PWD_LOCK, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	while (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		int e = errno;
		struct timespec pause = { 0, USER_PWD_LOCK_POLL_MS * 1000000L };

		if (e != EAGAIN && e != EACCES && e != EINTR) {
			close(fd);
			return -e;
		}
		if (user_past(deadline)) {
			close(fd);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
	return fd;
}

/* Rewrite /etc/shadow with user's hash replaced. Caller holds the lock. */
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
	/* fgetspent_r(): fgetspent()'s static entry is not for threads. */
	for (;;) {
		struct spwd ent;
		char buf[4096];

		int e = fgetspent_r(in, &ent, buf, sizeof(buf), &sp);

		if (e != 0) {
			if (e == ERANGE)
				r = -EFBIG; /* a line longer than buf: never rewrite it shorter */
			break;
		}
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
	/* fgetspent_r() ends on EOF and on a read error alike. */
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

/* On a worker: hash (unless crypted), lock, rewrite, unlock. */
static void user_password_run(struct user_job *j)
{
	struct crypt_data *cd = NULL;
	const char *hash = j->password;
	char *salt = NULL;
	int lock, r;

	if (!j->crypted) {
		errno = 0;
		cd = calloc(1, sizeof(*cd));
		salt = crypt_gensalt_ra(NULL, 0, NULL, 0);
		if (!cd || !salt) {
			r = -(errno ?: ENOMEM);
			goto out;
		}
		hash = crypt_r(j->password, salt, cd);
		if (!hash || hash[0] == '*') {
			r = -EINVAL;
			goto out;
		}
	}
	lock = user_pwd_lock(&j->deadline);
	if (lock < 0) {
		r = lock;
		goto out;
	}
	/* A call already answered -32004 changes nothing after all. */
	r = user_past(&j->deadline) ? -ETIMEDOUT : user_shadow_replace(j->user, hash);
	close(lock);
out:
	if (cd)
		explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(salt);
	if (r == -ETIMEDOUT)
		j->late = true; /* the deadline, not the kernel's ETIMEDOUT */
	else if (r < 0) {
		j->err = -r;
		j->what = "cannot set the password";
	}
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

/* The lines of authorized_keys as they are, without their newlines (none
 * when the file is absent). For a client (raw false) reading stops at
 * USER_KEYS_FILE_MAX; for rewriting the file (raw true), so that add and
 * remove keep what they do not touch, a larger file is -EFBIG rather than
 * rewritten shorter. */
static int user_keys_read(int dir, bool raw, struct user_lines *ret)
{
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	FILE *f;
	int fd, r = 0;

	fd = dir < 0 ? -1 : openat(dir, "authorized_keys", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dir >= 0 && errno != ENOENT ? -errno : 0;
	f = fdopen(fd, "re");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	while (r == 0 && (n = getline(&line, &cap, f)) > 0) {
		total += (size_t)n;
		if (total > USER_KEYS_FILE_MAX) {
			if (raw)
				r = -EFBIG;
			break;
		}
		if (line[n - 1] == '\n')
			line[--n] = 0;
		r = user_lines_add(ret, line, (size_t)n);
	}
	if (r == 0 && ferror(f))
		r = -EIO;
	free(line);
	fclose(f);
	return r;
}

/* Replace authorized_keys with lines, owned by the user, 0600. */
static int user_keys_write(int dir, const struct passwd *pw, const struct user_lines *lines)
{
	static const char tmp[] = ".authorized_keys.guestlink";
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
	for (size_t i = 0; i < lines->n; i++)
		fprintf(f, "%s\n", lines->v[i]);
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

/* On a worker: read authorized_keys and, for add and remove, write it back. */
static void user_keys_run(struct user_job *j, const struct passwd *pw)
{
	struct user_lines cur = { 0 }, next = { 0 };
	int dir, r;

	dir = user_ssh_dir(pw, j->op == USER_OP_KEYS_ADD);
	if (dir < 0 && !(dir == -ENOENT && j->op != USER_OP_KEYS_ADD)) {
		j->err = -dir;
		j->what = "cannot open the user's .ssh directory";
		return;
	}
	if (j->op == USER_OP_KEYS_GET) {
		r = user_keys_read(dir, false, &j->lines);
		goto out;
	}
	r = user_keys_read(dir, true, &cur);
	if (r < 0)
		goto out;
	if (j->op == USER_OP_KEYS_ADD) {
		/* The old keys (unless reset), then each new one not there yet. */
		for (size_t i = 0; r == 0 && !j->reset && i < cur.n; i++)
			r = user_lines_add(&next, cur.v[i], strlen(cur.v[i]));
		for (size_t i = 0; r == 0 && i < j->keys.n; i++)
			if (!user_lines_has(&next, j->keys.v[i]))
				r = user_lines_add(&next, j->keys.v[i], strlen(j->keys.v[i]));
	} else
		for (size_t i = 0; r == 0 && i < cur.n; i++)
			if (!user_lines_has(&j->keys, cur.v[i]))
				r = user_lines_add(&next, cur.v[i], strlen(cur.v[i]));
	if (r == 0 && dir >= 0 && (j->op == USER_OP_KEYS_ADD || next.n != cur.n))
		r = user_keys_write(dir, pw, &next);
out:
	if (r < 0) {
		j->err = -r;
		j->what = "cannot update authorized_keys";
	}
	user_lines_clear(&cur);
	user_lines_clear(&next);
	if (dir >= 0)
		close(dir);
}

static void user_job_run(void *p)
{
	struct user_job *j = p;
	struct passwd pw;
	char *buf = NULL;
	int r;

	r = user_getpw(j->user, &pw, &buf);
	if (r == -ENOENT) {
		j->no_user = true;
		return;
	}
	if (r < 0) {
		j->err = -r;
		j->what = "cannot look the user up";
		return;
	}
	if (j->op == USER_OP_PASSWORD)
		user_password_run(j);
	else
		user_keys_run(j, &pw);
	free(buf);
}

static void user_job_done(struct call *call, void *p)
{
	struct user_job *j = p;
	struct json_object *list, *o;

	if (j->no_user) {
		call_error(call, GL_RPC_NO_SUCH_OBJECT, "No such user", NULL);
		return;
	}
	/* Its own deadline may come a moment before the worker's timer: the same answer. */
	if (j->late) {
		call_error(call, GL_RPC_TIMEOUT,
			"The password file stayed locked (nothing was changed)", NULL);
		return;
	}
	if (j->err) {
		call_os_error(call, j->err, j->what);
		return;
	}
	if (j->op != USER_OP_KEYS_GET) {
		if (j->op == USER_OP_PASSWORD)
			log_notice("Password of user %s set by a client", j->user);
		else
			log_notice("SSH authorized keys of user %s changed by a client", j->user);
		call_reply(call, json_object_new_object());
		return;
	}
	/* The keys only, escaped: comments and over-long lines left out. */
	list = json_object_new_array();
	for (size_t i = 0; list && i < j->lines.n; i++) {
		char *line = j->lines.v[i], esc[USER_KEY_MAX * 4 + 8];
		size_t n = strlen(line);

		while (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		if (n == 0 || line[0] == '#' || n > USER_KEY_MAX)
			continue;
		/* The file is the user's: only valid text goes out. */
		json_object_array_add(list,
			json_object_new_string(log_escape(esc, sizeof(esc), line, n)));
	}
	o = json_object_new_object();
	json_object_object_add(o, "keys", list);
	call_reply(call, o);
}

/* A job for op on user, its deadline the worker's timeout. */
static struct user_job *user_job_new(const char *user, int op)
{
	struct user_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->op = op;
	j->user = strdup(user);
	if (!j->user) {
		free(j);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &j->deadline);
	j->deadline.tv_sec += (time_t)config_get()->fs_timeout_s;
	return j;
}

static int user_job_submit(struct call *call, struct user_job *j)
{
	int r = worker_call(call, -1, user_job_run, user_job_done, j, user_job_free);

	return r == -EAGAIN ? 0 : r;
}

static int user_set_password(struct call *call, void *params)
{
	struct user_password_params *a = params;
	struct user_job *j;

	/* Field separators would end the entry early; a crypted hash never has them. */
	if (strpbrk(a->password, ":\n") && a->crypted) {
		call_error(call, GL_RPC_INVALID_PARAMS,
			"Invalid parameter 'password': ':' or newline", NULL);
		return 0;
	}
	j = user_job_new(a->user, USER_OP_PASSWORD);
	if (!j)
		return -ENOMEM;
	j->crypted = a->crypted;
	j->password = strdup(a->password);
	if (!j->password) {
		user_job_free(j);
		return -ENOMEM;
	}
	return user_job_submit(call, j);
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

static int user_keys_op(struct call *call, struct user_keys_params *a, int op)
{
	struct user_job *j;

	if (op != USER_OP_KEYS_GET && user_keys_check(call, a->keys) < 0)
		return 0;
	j = user_job_new(a->user, op);
	if (!j)
		return -ENOMEM;
	j->reset = a->reset;
	for (size_t i = 0; op != USER_OP_KEYS_GET && i < json_object_array_length(a->keys); i++) {
		const char *k = json_object_get_string(json_object_array_get_idx(a->keys, i));

		if (k[0] != '\0' && user_lines_add(&j->keys, k, strlen(k)) < 0) {
			user_job_free(j);
			return -ENOMEM;
		}
	}
	return user_job_submit(call, j);
}

static int user_keys_get(struct call *call, void *params)
{
	return user_keys_op(call, params, USER_OP_KEYS_GET);
}

static int user_keys_add(struct call *call, void *params)
{
	return user_keys_op(call, params, USER_OP_KEYS_ADD);
}

static int user_keys_remove(struct call *call, void *params)
{
	return user_keys_op(call, params, USER_OP_KEYS_REMOVE);
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
