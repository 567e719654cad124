/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Base64 (RFC 4648, standard alphabet, padded) for binary data inside JSON
 * strings: file contents and process output. Internal to guestlink, not
 * installed. */
#pragma once

#include <stddef.h>

/* Characters needed for n bytes, without the NUL. */
#define GL_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)

/* Encode len bytes into out, which holds GL_BASE64_ENCODED_LEN(len) + 1 bytes;
 * NUL-terminates and returns the length written (without the NUL). */
size_t gl_base64_encode_to(const void *data, size_t len, char *out);

/* Encode into a new NUL-terminated string. Returns 0 or -ENOMEM. */
int gl_base64_encode(const void *data, size_t len, char **ret, size_t *ret_len);

/* Decode exactly `len` characters of strict base64 (padding required, no
 * whitespace, no characters outside the alphabet, zero unused bits) into a new
 * buffer (NUL-terminated for convenience). Returns 0, -EINVAL for bad input or
 * -ENOMEM. */
int gl_base64_decode(const char *text, size_t len, void **ret, size_t *ret_len);

/* Decode into out (at least len / 4 * 3 bytes). Returns the decoded length or
 * -EINVAL. */
long gl_base64_decode_to(const char *text, size_t len, void *out);
