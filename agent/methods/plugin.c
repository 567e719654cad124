/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Plugins: an executable NAME in the plugin directory is method NAME. It gets
 * the params as JSON on stdin and writes the result as JSON on stdout; a
 * non-zero exit is an error carrying its stderr. An optional NAME.json gives
 * the summary, the parameter schema (checked by the dispatcher like any
 * built-in method's) and the result schema for rpc.discover. Plugins run as
 * child processes through exec.c: asynchronous, with a timeout and an output
 * cap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>

#include "config.h"
#include "exec.h"
#include "log.h"
#include "macro.h"
#include "methods.h"

#define PLUGIN_MAX 256
#define PLUGIN_MAX_PARAMS 32
#define PLUGIN_MAX_SCHEMA_BYTES (64u * 1024)
#define PLUGIN_STDERR_MAX 4096
/* Optional integers the caller left out: not passed to the plugin. */
#define PLUGIN_INT_ABSENT INT64_MIN

struct plugin {
	char *name;
	char *path;
	char *summary;
	char *result_schema;
	char *param_names[PLUGIN_MAX_PARAMS];
	char *param_descriptions[PLUGIN_MAX_PARAMS];
	struct method_param params[PLUGIN_MAX_PARAMS + 1];
	size_t n_params;
	bool raw; /* no schema: the params value goes to the plugin unchecked */
};

/* One scan of the directory. Calls in flight keep their generation alive
 * after a reload replaced it: the dispatcher's rows point into it. */
struct plugin_gen {
	unsigned refs;
	struct plugin *plugins;
	struct method *rows;
	size_t n;
};

struct plugin_call {
	struct call *call;
	struct plugin_gen *gen;
	const struct plugin *plugin;
};

static struct plugin_gen *plugin_current;

static const struct {
	const char *name;
	enum param_type type;
} plugin_types[] = {
	{ "string", PARAM_STRING },
	{ "integer", PARAM_INT },
	{ "boolean", PARAM_BOOL },
	{ "object", PARAM_OBJECT },
	{ "array", PARAM_ARRAY },
	{ "string-array", PARAM_STRING_ARRAY },
	{ "any", PARAM_ANY },
};

/* Free what one row owns and leave it empty. */
static void plugin_clear(struct plugin *p)
{
	free(p->name);
	free(p->path);
	free(p->summary);
	free(p->result_schema);
	for (size_t k = 0; k < p->n_params; k++) {
		free(p->param_names[k]);
		free(p->param_descriptions[k]);
	}
	memset(p, 0, sizeof(*p));
}

static struct plugin_gen *plugin_gen_unref(struct plugin_gen *g)
{
	if (!g || --g->refs > 0)
		return NULL;
	for (size_t i = 0; i < g->n; i++)
		plugin_clear(&g->plugins[i]);
	free(g->plugins);
	free(g->rows);
	free(g);
	return NULL;
}

static bool plugin_name_valid(const char *s)
{
	if (!*s || *s == '.' || strlen(s) > 128 || strncmp(s, "rpc.", 4) == 0)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			    (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' || *s == '_'))
			return false;
	return true;
}

static const char *plugin_json_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* NAME.json: {"summary": "...", "params": [{"name", "type", "required",
 * "description", "default"}], "result": {JSON Schema}}. Returns -EINVAL
 * (logged) for a bad file; the plugin is then skipped. */
static int plugin_load_schema(int dirfd, struct plugin *p)
{
	_cleanup_free_ char *file = NULL, *text = NULL;
	struct json_object *o, *params, *result;
	_cleanup_close_ int fd = -1;
	struct stat st;
	ssize_t n;

	if (asprintf(&file, "%s.json", p->name) < 0)
		return -ENOMEM;
	fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PLUGIN_MAX_SCHEMA_BYTES)
		return log_warning_errno(-EINVAL,
			"Plugin schema %s is not a small regular file, "
			"skipping the plugin",
			file);
	text = malloc((size_t)st.st_size + 1);
	if (!text)
		return -ENOMEM;
	n = read(fd, text, (size_t)st.st_size);
	if (n < 0)
		return -errno;
	text[n] = 0;
	o = json_tokener_parse(text);
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return log_warning_errno(-EINVAL,
			"Plugin schema %s is not a JSON object, skipping "
			"the plugin",
			file);
	}
	if (plugin_json_string(o, "summary"))
		p->summary = strdup(plugin_json_string(o, "summary"));
	if (json_object_object_get_ex(o, "result", &result))
		p->result_schema =
			strdup(json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
	/* Without "params" the method takes its params unchecked. */
	if (!json_object_object_get_ex(o, "params", &params)) {
		json_object_put(o);
		return 0;
	}
	if (!json_object_is_type(params, json_type_array) ||
		json_object_array_length(params) > PLUGIN_MAX_PARAMS) {
		json_object_put(o);
		return log_warning_errno(-EINVAL,
			"Plugin schema %s: \"params\" must be an array of "
			"at most %d objects",
			file, PLUGIN_MAX_PARAMS);
	}
	for (size_t i = 0; i < json_object_array_length(params); i++) {
		struct json_object *e = json_object_array_get_idx(params, i), *v;
		const char *name = plugin_json_string(e, "name");
		const char *type = plugin_json_string(e, "type") ?: "any";
		struct method_param *mp = &p->params[p->n_params];
		bool required =
			json_object_object_get_ex(e, "required", &v) && json_object_get_boolean(v);
		size_t t;

		for (t = 0; t < ELEMENTSOF(plugin_types); t++)
			if (strcmp(plugin_types[t].name, type) == 0)
				break;
		if (!name || !*name || t == ELEMENTSOF(plugin_types)) {
			json_object_put(o);
			return log_warning_errno(-EINVAL,
				"Plugin schema %s: parameter %zu needs a "
				"name and a known type",
				file, i);
		}
		p->param_names[p->n_params] = strdup(name);
		const char *desc = plugin_json_string(e, "description");
		if (desc)
			p->param_descriptions[p->n_params] = strdup(desc);
		mp->name = p->param_names[p->n_params];
		mp->description = p->param_descriptions[p->n_params];
		mp->type = plugin_types[t].type;
		/* Every parameter gets an 8-byte slot, whatever its type. */
		mp->offset = p->n_params * sizeof(int64_t);
		mp->flags = required ? PARAM_MANDATORY : 0;
		if (mp->type == PARAM_INT) {
			mp->min = INT64_MIN + 1;
			mp->max = INT64_MAX;
			mp->def = json_object_object_get_ex(e, "default", &v) &&
						  json_object_is_type(v, json_type_int)
					  ? json_object_get_int64(v)
					  : PLUGIN_INT_ABSENT;
		} else if (mp->type == PARAM_BOOL)
			mp->def = json_object_object_get_ex(e, "default", &v) &&
				  json_object_get_boolean(v);
		p->n_params++;
	}
	json_object_put(o);
	return 1;
}

static int plugin_call_handler(struct call *call, void *params);

static bool plugin_is_builtin(const char *name)
{
	const struct method *m = method_find(name);

	return m && !(plugin_current && m >= plugin_current->rows &&
			    m < plugin_current->rows + plugin_current->n);
}

static int plugin_scan(const char *dir, struct plugin_gen **ret)
{
	struct plugin_gen *g;
	struct dirent *de;
	DIR *d;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->refs = 1;
	g->plugins = calloc(PLUGIN_MAX, sizeof(*g->plugins));
	g->rows = calloc(PLUGIN_MAX + 1, sizeof(*g->rows));
	if (!g->plugins || !g->rows) {
		plugin_gen_unref(g);
		return -ENOMEM;
	}
	d = dir ? opendir(dir) : NULL;
	if (!d) {
		if (dir && errno != ENOENT)
			log_warning_errno(-errno,
				"Cannot read the plugin directory %s, no plugins: %m", dir);
		*ret = g;
		return 0;
	}
	while ((de = readdir(d))) {
		struct plugin *p = &g->plugins[g->n];
		struct stat st;
		size_t len = strlen(de->d_name);
		int r;

		if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0)
			continue;
		if (!plugin_name_valid(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) ||
			!(st.st_mode & 0111))
			continue;
		if (plugin_is_builtin(de->d_name)) {
			/* A built-in of that name wins; say so instead of silently shadowing. */
			log_warning("Plugin %s is named like a built-in method, ignoring it",
				de->d_name);
			continue;
		}
		if (g->n >= PLUGIN_MAX) {
			log_warning("More than %d plugins in %s, ignoring the rest", PLUGIN_MAX, dir);
			break;
		}
		p->name = strdup(de->d_name);
		if (!p->name || asprintf(&p->path, "%s/%s", dir, de->d_name) < 0) {
			free(p->name);
			p->name = NULL;
			continue;
		}
		r = plugin_load_schema(dirfd(d), p);
		if (r < 0) {
			plugin_clear(p);
			continue;
		}
		p->raw = r == 0;
		g->rows[g->n] = (struct method){
			.name = p->name,
			.summary = p->summary ?: "Plugin",
			.params = r > 0 ? p->params : NULL,
			.params_size = (p->n_params ?: 1) * sizeof(int64_t),
			.handler = plugin_call_handler,
			.flags = r > 0 ? 0 : METHOD_RAW_PARAMS,
			.result_schema = p->result_schema,
		};
		g->n++;
	}
	closedir(d);
	log_debug("Found %zu plugin(s) in %s", g->n, dir);
	*ret = g;
	return 0;
}

static void plugin_install(struct plugin_gen *g)
{
	struct plugin_gen *old = plugin_current;

	plugin_current = g;
	method_register_dynamic(g->rows, g->n);
	plugin_gen_unref(old);
}

static void plugin_reload_cb(const struct config *c, void *userdata)
{
	struct plugin_gen *g;

	if (plugin_scan(c->plugin_dir, &g) < 0) {
		log_error("Cannot rescan plugins, keeping the old set");
		return;
	}
	plugin_install(g);
}

void methods_plugin_register(void)
{
	const struct config *c = config_get();
	struct plugin_gen *g;

	config_add_reload_hook(plugin_reload_cb, NULL);
	if (plugin_scan(c ? c->plugin_dir : NULL, &g) < 0) {
		log_error("Cannot scan plugins, running without");
		return;
	}
	plugin_install(g);
}

/* --- calls --- */

static struct json_object *plugin_params_json(const struct plugin *p, struct call *call, void *params)
{
	struct json_object *o;

	if (p->raw)
		/* Unchecked: the params value itself (RAW). */
		return params ? json_object_get(params) : json_object_new_object();
	o = json_object_new_object();
	for (size_t i = 0; i < p->n_params; i++) {
		const struct method_param *mp = &p->params[i];
		void *slot = (char *)params + mp->offset;
		struct json_object *v = NULL;

		switch (mp->type) {
		case PARAM_STRING: {
			const char *s = *(const char **)slot;
			if (s)
				v = json_object_new_string(s);
			break;
		}
		case PARAM_INT:
			if (*(int64_t *)slot != PLUGIN_INT_ABSENT)
				v = json_object_new_int64(*(int64_t *)slot);
			break;
		case PARAM_BOOL:
			v = json_object_new_boolean(*(bool *)slot);
			break;
		default:
			if (*(struct json_object **)slot)
				v = json_object_get(*(struct json_object **)slot);
			break;
		}
		if (v)
			json_object_object_add(o, mp->name, v);
	}
	return o;
}

/* stderr as a JSON-safe string: printable ASCII and newlines kept. */
static struct json_object *plugin_stderr_json(struct exec_proc *proc)
{
	size_t n;
	const char *err = exec_proc_output(proc, EXEC_STDERR, &n, NULL);
	char buf[PLUGIN_STDERR_MAX];
	size_t k = 0;

	for (size_t i = 0; i < n && k + 5 < sizeof(buf); i++) {
		unsigned char c = (unsigned char)err[i];
		if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f))
			buf[k++] = (char)c;
		else
			k += (size_t)snprintf(buf + k, sizeof(buf) - k, "\\x%02x", c);
	}
	buf[k] = 0;
	while (k > 0 && buf[k - 1] == '\n')
		buf[--k] = 0;
	return json_object_new_string(buf);
}

static void plugin_done(struct exec_proc *proc, void *userdata)
{
	struct plugin_call *pc = userdata;
	bool timed_out, truncated;
	size_t n;
	int st = exec_proc_result(proc, &timed_out);
	const char *out = exec_proc_output(proc, EXEC_STDOUT, &n, &truncated);
	char msg[256];

	if (timed_out) {
		struct json_object *data = json_object_new_object();
		json_object_object_add(data, "stderr", plugin_stderr_json(proc));
		snprintf(msg, sizeof(msg), "plugin %s timed out", pc->plugin->name);
		call_error(pc->call, GL_RPC_TIMEOUT, msg, data);
	} else if (st != 0) {
		struct json_object *data = json_object_new_object();
		json_object_object_add(data, st > 0 ? "exit_code" : "signal",
			json_object_new_int(st > 0 ? st : -st));
		json_object_object_add(data, "stderr", plugin_stderr_json(proc));
		snprintf(msg, sizeof(msg),
			st > 0 ? "plugin %s failed with exit status %d"
			       : "plugin %s was killed by signal %d",
			pc->plugin->name, st > 0 ? st : -st);
		call_error(pc->call, GL_RPC_OS_ERROR, msg, data);
	} else if (truncated) {
		snprintf(msg, sizeof(msg), "plugin %s wrote more than the output cap",
			pc->plugin->name);
		call_error(pc->call, GL_RPC_LIMIT, msg, NULL);
	} else {
		struct json_tokener *tok = json_tokener_new_ex(GL_DEFAULT_MAX_DEPTH);
		struct json_object *res = NULL;
		size_t skip = 0;

		while (skip < n && strchr(" \t\r\n", out[skip]))
			skip++;
		if (tok && skip < n) {
			json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
			res = json_tokener_parse_ex(tok, out + skip, (int)(n - skip));
			if (json_tokener_get_error(tok) == json_tokener_continue)
				res = json_tokener_parse_ex(tok, "",
					1); /* complete a trailing number */
			if (json_tokener_get_error(tok) != json_tokener_success) {
				json_object_put(res);
				res = NULL;
				snprintf(msg, sizeof(msg), "plugin %s did not write valid JSON",
					pc->plugin->name);
				call_error(pc->call, GL_RPC_OS_ERROR, msg, NULL);
			} else
				call_reply(pc->call, res);
		} else if (tok)
			call_reply(pc->call, NULL); /* no output: a null result */
		else
			call_os_error(pc->call, ENOMEM, NULL);
		if (tok)
			json_tokener_free(tok);
	}
	call_unref(pc->call);
	plugin_gen_unref(pc->gen);
	free(pc);
	exec_proc_release(proc);
}

static int plugin_call_handler(struct call *call, void *params)
{
	const struct config *cfg = config_get();
	const char *name = call_method(call);
	const struct plugin *p = NULL;
	struct plugin_call *pc;
	struct exec_spec spec = { 0 };
	struct json_object *in;
	struct exec_proc *proc;
	_cleanup_free_ char *env_method = NULL;
	char *argv[2], *env[2];
	const char *text;
	size_t len;
	int r;

	for (size_t i = 0; plugin_current && i < plugin_current->n; i++)
		if (strcmp(plugin_current->plugins[i].name, name) == 0)
			p = &plugin_current->plugins[i];
	if (!p) {
		call_error(call, GL_RPC_METHOD_NOT_FOUND, "plugin removed", NULL);
		return 0;
	}
	in = plugin_params_json(p, call, params);
	if (!in)
		return -ENOMEM;
	text = json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN);
	len = strlen(text);
	if (asprintf(&env_method, "GUESTLINK_METHOD=%s", p->name) < 0) {
		json_object_put(in);
		return -ENOMEM;
	}
	argv[0] = p->path;
	argv[1] = NULL;
	env[0] = env_method;
	env[1] = NULL;
	spec.argv = argv;
	spec.env = env;
	spec.stdin_data = text;
	spec.stdin_len = len;
	spec.capture = EXEC_CAPTURE_SEPARATE;
	spec.timeout_ms = (uint64_t)(cfg ? cfg->plugin_timeout_s : 30) * 1000;
	spec.max_output = cfg ? cfg->exec_max_output_bytes : 16u * 1024 * 1024;
	spec.internal = true;

	pc = calloc(1, sizeof(*pc));
	if (!pc) {
		json_object_put(in);
		return -ENOMEM;
	}
	pc->call = call;
	pc->gen = plugin_current;
	pc->plugin = p;
	r = exec_spawn(call_event_base(call), &spec, plugin_done, pc, &proc);
	json_object_put(in);
	if (r < 0) {
		free(pc);
		if (r == -EAGAIN)
			call_error(call, GL_RPC_LIMIT, "too many processes", NULL);
		else
			call_os_error(call, -r, "cannot start the plugin");
		return 0;
	}
	call_ref(call);
	plugin_current->refs++;
	return 0;
}
