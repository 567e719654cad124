/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libguestlink: everything a management tool needs. */
#pragma once

#include <guestlink/address.h>
#include <guestlink/client.h>
#include <guestlink/jsonrpc.h>
#include <guestlink/stream.h>
