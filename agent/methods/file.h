/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* file.*: the guest's files for the host, data as base64. */
#pragma once

#include "method.h"

extern const struct method file_methods[];
