#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ABI of the installed libguestlink.so: exactly the functions the public
headers (proto/guestlink/*.h, installed as <guestlink/*.h>) declare are
exported, all under the version node GUESTLINK_0, nothing internal (log_*,
deadline_*, gl_base64_*) leaks, and the version script and the Debian symbols
file list the same names."""

import glob
import os
import re
import subprocess

from gltest import build_path, diag, done, is_eq, ok, skip_all, src_path

SO = build_path("proto", ".libs", "libguestlink.so")


def declared():
    """gl_* functions declared in the public headers, read from the
    preprocessor's output (comments and macros gone), only the lines that come
    from the headers themselves."""
    names = set()
    cc = os.environ.get("CC", "cc").split()
    for h in sorted(glob.glob(src_path("proto", "guestlink", "*.h"))):
        p = subprocess.run(cc + ["-E", "-I", src_path("proto"), "-x", "c", h],
                           capture_output=True, text=True, check=True)
        mine = False
        for ln in p.stdout.splitlines():
            m = re.match(r'# \d+ "([^"]+)"', ln)
            if m:
                mine = "/guestlink/" in m.group(1) and m.group(1).endswith(".h")
                continue
            if mine:
                names.update(re.findall(r"\b(gl_\w+)\s*\(", ln))
    return names


def exported():
    """({function: version}, [other symbols]) from nm -D --defined-only, which
    prints versioned names as NAME@@VERSION."""
    out = subprocess.run(["nm", "-D", "--defined-only", SO], capture_output=True, text=True,
                         check=True).stdout
    funcs, other = {}, []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) < 3:
            continue
        name, _, version = f[2].partition("@")
        if f[1] in "TtWi":
            funcs[name] = version.lstrip("@")
        else:
            other.append((name, f[1]))
    return funcs, other


def listed(path, rx):
    with open(path) as f:
        return set(re.findall(rx, f.read(), re.M))


if not os.path.exists(SO):
    skip_all("no shared libguestlink built (--disable-shared)")

decl = declared()
funcs, other = exported()
diag("%d functions declared in proto/guestlink/*.h, %d exported" % (len(decl), len(funcs)))
ok(len(decl) >= 10, "the public headers declare the gl_* API (%d functions)" % len(decl))
names = set(funcs)
is_eq(sorted(names - decl), [], "every exported function is declared in a public header")
is_eq(sorted(decl - names), [], "every function declared in a public header is exported")
is_eq(sorted(n for n in names if not n.startswith("gl_")), [], "only gl_* names are exported")
is_eq(sorted(other), [("GUESTLINK_0", "A")],
      "no data symbols exported, only the version node GUESTLINK_0")
is_eq(sorted(n for n, v in funcs.items() if v != "GUESTLINK_0"), [],
      "every exported function carries the version GUESTLINK_0")
soname = re.search(r"SONAME\s+(\S+)",
                   subprocess.run(["objdump", "-p", SO], capture_output=True, text=True,
                                  check=True).stdout)
is_eq(soname and soname.group(1), "libguestlink.so.0", "SONAME is libguestlink.so.0")

sym = listed(src_path("proto", "libguestlink.sym"), r"^\s+(gl_\w+);")
is_eq(sorted(sym ^ decl), [], "proto/libguestlink.sym lists exactly the declared functions")
deb = src_path("debian", "libguestlink0.symbols")
if os.path.exists(deb):
    dsym = listed(deb, r"^ (gl_\w+)@GUESTLINK_0 ")
    is_eq(sorted(dsym ^ decl), [], "debian/libguestlink0.symbols lists exactly the declared functions")
done()
