/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The method registry: static tables registered by families at startup, plus
 * one replaceable set of dynamic rows (plugins). */
#include <string.h>

#include "log.h"
#include "method.h"

#define METHOD_MAX_TABLES 32

static const struct method *method_tables[METHOD_MAX_TABLES];
static size_t method_n_tables;
static const struct method *method_dynamic;
static size_t method_n_dynamic;

void method_register(const struct method *methods)
{
	/* A fixed handful of families register at startup: overflow is a programming error. */
	if (method_n_tables >= METHOD_MAX_TABLES) {
		log_error("Too many method tables, ignoring one");
		return;
	}
	method_tables[method_n_tables++] = methods;
}

void method_register_dynamic(const struct method *methods, size_t n)
{
	method_dynamic = methods;
	method_n_dynamic = methods ? n : 0;
}

const struct method *method_next(size_t *iter)
{
	size_t i = *iter;

	for (size_t t = 0; t < method_n_tables; t++) {
		size_t n = 0;
		while (method_tables[t][n].name)
			n++;
		if (i < n) {
			(*iter)++;
			return &method_tables[t][i];
		}
		i -= n;
	}
	if (i < method_n_dynamic) {
		(*iter)++;
		return &method_dynamic[i];
	}
	return NULL;
}

const struct method *method_find(const char *name)
{
	/* Static rows first: a plugin cannot shadow a built-in method. */
	for (size_t t = 0; t < method_n_tables; t++)
		for (const struct method *m = method_tables[t]; m->name; m++)
			if (strcmp(m->name, name) == 0)
				return m;
	for (size_t i = 0; i < method_n_dynamic; i++)
		if (strcmp(method_dynamic[i].name, name) == 0)
			return &method_dynamic[i];
	return NULL;
}
