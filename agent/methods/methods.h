/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Method families: each registers its table at startup. */
#pragma once

void methods_agent_register(void);
/* Drop calls still waiting at exit (after the server is gone). */
void methods_agent_cleanup(void);
void methods_system_register(void);
