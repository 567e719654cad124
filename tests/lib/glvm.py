# SPDX-License-Identifier: LGPL-2.1-or-later
"""For tests that boot the VM suite's VM with something else inside or around
it (tests/pkg: the Debian packages, libvirt): the source and build trees as
absolute paths (top_srcdir and top_builddir set for what runs later), and
tests/vm/run-vm-tests.py as a module (its kernel, initramfs, VM and helpers).
Import it before gltest."""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.path.abspath(os.environ.get("top_srcdir", os.path.join(HERE, "..", "..")))
TOP_BUILDDIR = os.path.abspath(os.environ.get("top_builddir", os.getcwd()))
os.environ.setdefault("top_srcdir", TOP_SRCDIR)
os.environ.setdefault("top_builddir", TOP_BUILDDIR)


def load_vm_harness():
    """tests/vm/run-vm-tests.py as a module: its kernel, initramfs and VM."""
    path = os.path.join(TOP_SRCDIR, "tests", "vm", "run-vm-tests.py")
    spec = importlib.util.spec_from_file_location("run_vm_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
