/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer harness: the agent's configuration parser (agent.conf, JSON
 * through one key table). The input is the file's content, read by
 * config_load() itself from a memfd. A configuration that loads must keep
 * every documented bound (agent/config.c's table); one that does not load
 * must leave nothing behind (ASan's leak check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_fd = -1;
static char fuzz_path[64];

static void fuzz_check(const struct config *c)
{
	if (!c->allow || !c->deny || !c->plugin_dir)
		abort();
	for (char **p = c->allow; *p; p++)
		if (!**p)
			abort();
	for (char **p = c->deny; *p; p++)
		if (!**p)
			abort();
	if (c->max_connections < 1 || c->max_connections > 1000000 || c->max_inflight < 1 ||
		c->max_inflight > 1000000 || c->max_message_bytes < 256 ||
		c->max_message_bytes > (1u << 30) || c->plugin_timeout_s < 1 ||
		c->plugin_timeout_s > 86400 || c->fs_timeout_s < 1 || c->fs_timeout_s > 86400 ||
		c->exec_max_output_bytes < 1 || c->exec_max_output_bytes > (1ull << 32) ||
		c->exec_result_ttl_s > 86400 * 7)
		abort();
	if (c->n_peer_cids > 0 && !c->peer_cids)
		abort();
	/* Policy answers for any name without crashing. */
	(void)config_method_allowed(c, "exec.run");
	(void)config_method_allowed(c, "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c = NULL;

	if (fuzz_fd < 0) {
		log_set_max_level(LOG_CRIT);
		fuzz_fd = memfd_create("agent.conf", MFD_CLOEXEC);
		if (fuzz_fd < 0)
			abort();
		snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	}
	if (ftruncate(fuzz_fd, 0) < 0 || pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)
		abort();
	if (config_load(fuzz_path, true, &c) == 0) {
		fuzz_check(c);
		config_free(c);
	}
	return 0;
}
