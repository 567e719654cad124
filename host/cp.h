/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestlink cp: what cmd-cp.c (one file) and cp-tree.c (-r) share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cmd.h"
#include "progress.h"

#define CP_PREFIX "guest:"

struct cp_opts {
	bool verify, quiet, channel, recursive;
};

/* The whole command: the progress over all files, the totals. */
struct cp_total {
	struct progress prog;
	uint64_t base; /* bytes of the files already done */
	unsigned files, dirs, links;
	double t0;
	int status;
	bool failed;
	char last_sha[65];
	char *last_path; /* where the last file went (after "into a directory") */
};

/* Copy one regular file (exact: local and remote are the final paths, no
 * "into a directory"); on failure the message is out and tot->failed set. */
void cp_file(struct cmd_ctx *ctx, struct cp_total *tot, const struct cp_opts *o, bool upload,
	const char *local, const char *remote, bool exact);

/* Copy the tree at src (local for an upload, guest path for a download) to
 * dst_root: directories and links first, then the files through cp_file()
 * with one progress over all their bytes. Errors are reported, tot->failed set. */
void cp_tree(struct cmd_ctx *ctx, struct cp_total *tot, const struct cp_opts *o, bool upload,
	const char *src, const char *dst_root);
/* Where a tree goes: into DST/NAME when DST is a directory, else DST itself.
 * 0 and *ret (owned), or a negative errno (-ENOMEM), or minus an exit status
 * already reported. */
int cp_tree_root(struct cmd_ctx *ctx, bool upload, const char *src, const char *dst, char **ret);
