/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /etc/guestlink/agent.conf: JSON, every key optional, unknown keys an error. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/guestlink/agent.conf"

struct config {
	char **allow; /* NULL-terminated glob patterns; default {"*"} */
	char **deny;  /* NULL-terminated; default empty */
	uint32_t *peer_cids;
	size_t n_peer_cids;           /* default: {2} */
	unsigned max_connections;     /* default 1024 */
	size_t max_message_bytes;     /* default 16 MiB */
	unsigned max_inflight;        /* default 64 per connection */
	char *plugin_dir;             /* default PKGLIBDIR "/methods.d" */
	size_t exec_max_output_bytes; /* default 16 MiB */
	unsigned exec_result_ttl_s;   /* default 600 */
	unsigned plugin_timeout_s;    /* default 30 */
	unsigned fs_timeout_s;        /* default 30: a filesystem call on a worker thread
					 answers -32004 after this (agent/worker.h) */
};

/* Load path (NULL = defaults only; a missing default file is not an error).
 * Returns 0 or a negative errno, logging what was wrong and where. */
int config_load(const char *path, bool path_explicit, struct config **ret);
struct config *config_free(struct config *c);

/* The current configuration (replaced on SIGHUP; do not keep the pointer
 * across event loop iterations). */
const struct config *config_get(void);

/* Install c as the current configuration (takes ownership; frees the old one). */
void config_set(struct config *c);
/* Free the current configuration at exit. */
void config_clear(void);

/* Called after a successful reload (SIGHUP) with the new configuration, so
 * families with state derived from it (plugins) can refresh. */
typedef void (*config_reload_fn)(const struct config *c, void *userdata);
void config_add_reload_hook(config_reload_fn fn, void *userdata);
void config_run_reload_hooks(void);

/* Policy: deny wins over allow; patterns are fnmatch(3) globs. */
bool config_method_allowed(const struct config *c, const char *method);
