/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* agent.conf: a JSON object read through one key table; unknown keys are errors. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "config.h"
#include "log.h"

#define CONFIG_MAX_FILE (1024 * 1024)

enum conf_type {
	CONF_GLOBS,   /* char ** */
	CONF_CIDS,    /* peer_cids + n_peer_cids */
	CONF_UINT,    /* unsigned */
	CONF_SIZE,    /* size_t */
	CONF_PATH,    /* char * */
	CONF_SECTION, /* nested object with its own table */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	size_t offset;
	int64_t min, max;
	const struct conf_key *section;
};

static const struct conf_key conf_exec_keys[] = {
	{ "max_output_bytes", CONF_SIZE, offsetof(struct config, exec_max_output_bytes), 1,
		1LL << 32, NULL },
	{ "result_ttl_s", CONF_UINT, offsetof(struct config, exec_result_ttl_s), 0, 86400 * 7, NULL },
	{ NULL, 0, 0, 0, 0, NULL },
};

static const struct conf_key conf_keys[] = {
	{ "allow", CONF_GLOBS, offsetof(struct config, allow), 0, 0, NULL },
	{ "deny", CONF_GLOBS, offsetof(struct config, deny), 0, 0, NULL },
	{ "peer_cids", CONF_CIDS, 0, 0, UINT32_MAX, NULL },
	{ "max_connections", CONF_UINT, offsetof(struct config, max_connections), 1, 1000000, NULL },
	{ "max_message_bytes", CONF_SIZE, offsetof(struct config, max_message_bytes), 256,
		1LL << 30, NULL },
	{ "max_inflight", CONF_UINT, offsetof(struct config, max_inflight), 1, 1000000, NULL },
	{ "plugin_dir", CONF_PATH, offsetof(struct config, plugin_dir), 0, 0, NULL },
	{ "plugin_timeout_s", CONF_UINT, offsetof(struct config, plugin_timeout_s), 1, 86400, NULL },
	{ "fs_timeout_s", CONF_UINT, offsetof(struct config, fs_timeout_s), 1, 86400, NULL },
	{ "exec", CONF_SECTION, 0, 0, 0, conf_exec_keys },
	{ NULL, 0, 0, 0, 0, NULL },
};

static struct config *config_current;

struct reload_hook {
	config_reload_fn fn;
	void *userdata;
};
static struct reload_hook *reload_hooks;
static size_t n_reload_hooks;

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static char **strv_new1(const char *s)
{
	char **v = calloc(2, sizeof(char *));

	if (!v)
		return NULL;
	if (s && !(v[0] = strdup(s))) {
		free(v);
		return NULL;
	}
	return v;
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	strv_free(c->allow);
	strv_free(c->deny);
	free(c->peer_cids);
	free(c->plugin_dir);
	free(c);
	return NULL;
}

static int config_defaults(struct config **ret)
{
	struct config *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->allow = strv_new1("*");
	c->deny = strv_new1(NULL);
	c->peer_cids = calloc(1, sizeof(uint32_t));
	c->plugin_dir = strdup(PKGLIBDIR "/methods.d");
	if (!c->allow || !c->deny || !c->peer_cids || !c->plugin_dir) {
		config_free(c);
		return -ENOMEM;
	}
	c->peer_cids[0] = 2;
	c->n_peer_cids = 1;
	c->max_connections = 1024;
	c->max_message_bytes = 16u * 1024 * 1024;
	c->max_inflight = 64;
	c->fs_timeout_s = 30;
	c->exec_max_output_bytes = 16u * 1024 * 1024;
	c->exec_result_ttl_s = 600;
	c->plugin_timeout_s = 30;
	*ret = c;
	return 0;
}

static int config_int(const char *path, const char *key, struct json_object *v,
	const struct conf_key *k, int64_t *ret)
{
	int64_t i;

	if (!json_object_is_type(v, json_type_int))
		return log_error_errno(-EINVAL, "%s: \"%s\" must be an integer", path, key);
	errno = 0;
	i = json_object_get_int64(v);
	/* json-c clamps out-of-range numbers to INT64_MAX/MIN and sets errno. */
	if (errno != 0 || i < k->min || i > k->max)
		return log_error_errno(-ERANGE, "%s: \"%s\" must be between %lld and %lld", path,
			key, (long long)k->min, (long long)k->max);
	*ret = i;
	return 0;
}

static int config_globs(const char *path, const char *key, struct json_object *v, char ***ret)
{
	char **strv;
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return log_error_errno(-EINVAL, "%s: \"%s\" must be an array of strings", path, key);
	n = json_object_array_length(v);
	if (n > 4096)
		return log_error_errno(-E2BIG, "%s: \"%s\" has too many entries", path, key);
	strv = calloc(n + 1, sizeof(char *));
	if (!strv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string) || json_object_get_string_len(e) == 0 ||
			strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
			strv_free(strv);
			return log_error_errno(-EINVAL,
				"%s: \"%s\"[%zu] must be a non-empty string", path, key, i);
		}
		strv[i] = strdup(json_object_get_string(e));
		if (!strv[i]) {
			strv_free(strv);
			return -ENOMEM;
		}
	}
	*ret = strv;
	return 0;
}

static int config_cids(const char *path, const char *key, struct json_object *v,
	const struct conf_key *k, struct config *c)
{
	uint32_t *cids;
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return log_error_errno(-EINVAL, "%s: \"%s\" must be an array of CIDs", path, key);
	n = json_object_array_length(v);
	if (n > 4096)
		return log_error_errno(-E2BIG, "%s: \"%s\" has too many entries", path, key);
	cids = calloc(n ? n : 1, sizeof(uint32_t));
	if (!cids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int64_t cid;
		int r = config_int(path, key, json_object_array_get_idx(v, i), k, &cid);
		if (r < 0) {
			free(cids);
			return r;
		}
		cids[i] = (uint32_t)cid;
	}
	free(c->peer_cids);
	c->peer_cids = cids;
	c->n_peer_cids = n;
	return 0;
}

static int config_apply(const char *path, const char *prefix, struct json_object *obj,
	const struct conf_key *table, struct config *c)
{
	if (!json_object_is_type(obj, json_type_object))
		return log_error_errno(-EINVAL, "%s: %s must be a JSON object", path,
			*prefix ? prefix : "the top level");

	json_object_object_foreach (obj, key, v) {
		const struct conf_key *k;
		char *field;
		char full[128];
		int64_t i = 0;
		int r = 0;

		for (k = table; k->name; k++)
			if (strcmp(k->name, key) == 0)
				break;
		snprintf(full, sizeof(full), "%s%s", prefix, key);
		if (!k->name) {
			char esc[64];
			return log_error_errno(-EINVAL, "%s: unknown key \"%s%s\"", path, prefix,
				log_escape(esc, sizeof(esc), key, strlen(key)));
		}
		field = (char *)c + k->offset;
		switch (k->type) {
		case CONF_GLOBS: {
			char **strv = NULL;
			r = config_globs(path, full, v, &strv);
			if (r >= 0) {
				strv_free(*(char ***)field);
				*(char ***)field = strv;
			}
			break;
		}
		case CONF_CIDS:
			r = config_cids(path, full, v, k, c);
			break;
		case CONF_UINT:
			r = config_int(path, full, v, k, &i);
			if (r >= 0)
				*(unsigned *)field = (unsigned)i;
			break;
		case CONF_SIZE:
			r = config_int(path, full, v, k, &i);
			if (r >= 0)
				*(size_t *)field = (size_t)i;
			break;
		case CONF_PATH: {
			char *s;
			if (!json_object_is_type(v, json_type_string) ||
				json_object_get_string(v)[0] != '/')
				return log_error_errno(-EINVAL,
					"%s: \"%s\" must be an absolute path", path, full);
			s = strdup(json_object_get_string(v));
			if (!s)
				return -ENOMEM;
			free(*(char **)field);
			*(char **)field = s;
			break;
		}
		case CONF_SECTION: {
			char sub[sizeof(full) + 1];
			snprintf(sub, sizeof(sub), "%s.", full);
			r = config_apply(path, sub, v, k->section, c);
			break;
		}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int config_read_file(const char *path, bool path_explicit, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT && !path_explicit)
			return 0;
		return log_error_errno(-errno, "Failed to open %s: %m", path);
	}
	if (fstat(fd, &st) < 0)
		return log_error_errno(-errno, "Failed to stat %s: %m", path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, "%s is not a regular file", path);
	if (st.st_size > CONFIG_MAX_FILE)
		return log_error_errno(-EFBIG, "%s is larger than %d bytes", path, CONFIG_MAX_FILE);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(-errno, "Failed to read %s: %m", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 1;
}

/* A line whose first non-blank character is '#' is a comment: blanked out
 * before parsing, so byte offsets in error messages stay right. JSON strings
 * cannot span lines (RFC 8259 section 7: no raw control characters), so a
 * line start is never inside a string. */
static void config_blank_comments(char *text, size_t len)
{
	bool line_start = true, comment = false;

	for (size_t i = 0; i < len; i++) {
		if (text[i] == '\n') {
			line_start = true;
			comment = false;
			continue;
		}
		if (line_start && text[i] == '#')
			comment = true;
		if (text[i] != ' ' && text[i] != '\t')
			line_start = false;
		if (comment)
			text[i] = ' ';
	}
}

/* 1-based line and column (in bytes) of offset off, as compilers report them. */
static void config_position(const char *text, size_t off, unsigned *ret_line, unsigned *ret_col)
{
	unsigned line = 1, col = 1;

	for (size_t i = 0; i < off && text[i]; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else
			col++;
	}
	*ret_line = line;
	*ret_col = col;
}

int config_load(const char *path, bool path_explicit, struct config **ret)
{
	struct json_tokener *tok;
	struct json_object *obj;
	struct config *c = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r;

	r = config_defaults(&c);
	if (r < 0)
		return r;
	if (!path) {
		*ret = c;
		return 0;
	}
	r = config_read_file(path, path_explicit, &text, &len);
	if (r <= 0) {
		if (r == 0) {
			*ret = c;
			return 0;
		}
		config_free(c);
		return r;
	}

	config_blank_comments(text, len);
	tok = json_tokener_new_ex(16);
	if (!tok) {
		config_free(c);
		return -ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (!obj || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		unsigned line, col;

		config_position(text,
			e == json_tokener_continue ? len : json_tokener_get_parse_end(tok), &line,
			&col);
		if (e == json_tokener_continue)
			log_error("%s:%u:%u: unexpected end of file", path, line, col);
		else
			log_error("%s:%u:%u: invalid JSON: %s", path, line, col,
				json_tokener_error_desc(e));
		json_object_put(obj);
		json_tokener_free(tok);
		config_free(c);
		return -EINVAL;
	}
	/* Only whitespace may follow the object. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
		if (!strchr(" \t\r\n", text[i])) {
			unsigned line, col;

			config_position(text, i, &line, &col);
			log_error("%s:%u:%u: trailing data after the JSON object", path, line, col);
			json_object_put(obj);
			json_tokener_free(tok);
			config_free(c);
			return -EINVAL;
		}
	json_tokener_free(tok);

	r = config_apply(path, "", obj, conf_keys, c);
	json_object_put(obj);
	if (r < 0) {
		config_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

const struct config *config_get(void)
{
	if (!config_current) {
		struct config *c;
		/* Defaults only: can fail only on OOM, and then nothing works anyway. */
		if (config_load(NULL, false, &c) < 0)
			abort();
		config_current = c;
	}
	return config_current;
}

void config_set(struct config *c)
{
	config_free(config_current);
	config_current = c;
}

void config_clear(void)
{
	config_current = config_free(config_current);
	free(reload_hooks);
	reload_hooks = NULL;
	n_reload_hooks = 0;
}

void config_add_reload_hook(config_reload_fn fn, void *userdata)
{
	struct reload_hook *h = realloc(reload_hooks, (n_reload_hooks + 1) * sizeof(*h));

	if (!h) {
		log_error("Out of memory registering a reload hook, ignoring");
		return;
	}
	reload_hooks = h;
	reload_hooks[n_reload_hooks++] = (struct reload_hook){ fn, userdata };
}

void config_run_reload_hooks(void)
{
	for (size_t i = 0; i < n_reload_hooks; i++)
		reload_hooks[i].fn(config_get(), reload_hooks[i].userdata);
}

static bool config_match(char *const *globs, const char *method)
{
	for (char *const *p = globs; p && *p; p++)
		/* "*" is the default allow rule: skip fnmatch() on every call. */
		if (((*p)[0] == '*' && (*p)[1] == 0) || fnmatch(*p, method, 0) == 0)
			return true;
	return false;
}

bool config_method_allowed(const struct config *c, const char *method)
{
	if (config_match(c->deny, method))
		return false;
	return config_match(c->allow, method);
}
