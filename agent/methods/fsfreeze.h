/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fs.freeze / fs.thaw / fs.status / fs.trim, and the question every writing
 * method asks first: is this path on a frozen filesystem? */
#pragma once

#include <stdbool.h>

#include "method.h"

/* True while any filesystem is frozen by the agent. */
bool fsfreeze_active(void);
/* -EBUSY when path (or, if it does not exist, its nearest existing parent)
 * lies on a filesystem the agent has frozen; 0 otherwise. Never blocks on the
 * frozen filesystem: it only stats. */
int fsfreeze_check_path(const char *path);
/* Thaw everything now (agent shutdown). */
void fsfreeze_thaw_all(void);

extern const struct method fsfreeze_methods[];
