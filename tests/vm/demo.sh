#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# guestlink demo: on a fresh Debian 12 machine, as root, installs what is needed,
# builds, boots a small VM (QEMU under TCG, Debian's kernel, systemd) and drives
# it through guestlink: info, exec, a file copied in and out, clean shutdown.
#   bash tests/vm/demo.sh            (BUILD_DIR=... to build elsewhere; default: build/)
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$src/build}
step() { printf '\n==> %s\n' "$*"; }

step "Installing build and VM packages (apt-get)"
if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends \
		build-essential autoconf automake libtool pkg-config \
		libevent-dev libjson-c-dev libsystemd-dev python3 systemd \
		qemu-system-x86 busybox-static cpio kmod socat qemu-guest-agent >/dev/null
else
	echo "not root: assuming the packages are installed"
fi

step "Building guestlink in $build"
[ -x "$src/configure" ] || (cd "$src" && ./autogen.sh)
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$src/configure" -q
make -j"$(nproc)" -s

step "Booting the demo VM and driving it through guestlink"
top_srcdir=$src top_builddir=$build exec python3 "$src/tests/vm/run-vm-tests.py" --demo
