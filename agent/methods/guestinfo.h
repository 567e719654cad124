/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest information shared with other method families. */
#pragma once

#include <json-c/json.h>

/* The hardware address of block device `name` (a sysfs name: "vda",
 * "vda1"): {pci_controller: {domain, bus, slot, function}, bus_type, bus,
 * target, unit, dev, serial?} (new object). -ENODEV when it has no PCI
 * function, -EOPNOTSUPP for buses not described yet (only virtio-blk is),
 * -errno when sysfs has no such device. */
int guestinfo_disk_address(const char *name, struct json_object **ret);
