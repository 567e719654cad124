# SPDX-License-Identifier: LGPL-2.1-or-later
"""Comparing QGA answers with qemu-ga's: the shape of an answer (keys and
JSON types) and lists of entries keyed by a member."""


def shape(v):
    """Keys and JSON types of an answer (lists: the shape of each element)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(x) for x in v]
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def keyed(entries, key):
    """A list of objects as {entry[key]: entry}; anything else as it is."""
    return {x.get(key): x for x in entries} if isinstance(entries, list) else entries
