/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Method families: each registers its table at startup. */
#pragma once

void methods_agent_register(void);
/* Drop calls still waiting at exit (after the server is gone). */
void methods_agent_cleanup(void);
void methods_system_register(void);
/* exec, file, system management, fs freeze and plugin families. */
void methods_exec_register(void);
void methods_file_register(void);
void methods_sysmgmt_register(void);
void methods_fsfreeze_register(void);
/* Scans the plugin directory now and again on every configuration reload. */
void methods_plugin_register(void);
/* osinfo, time zone, load, vCPUs (guestinfo.c). */
void methods_guestinfo_register(void);
/* Passwords and SSH authorized keys (user.c). */
void methods_user_register(void);
